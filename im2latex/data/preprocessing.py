"""Crop, pad, scale and encode samples; save each split as a pickle of plain types and numpy arrays."""
import multiprocessing
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.ndimage
import torch
from tqdm import tqdm

from im2latex import Im2LatexError
from im2latex.config import PreprocessConfig
from im2latex.data.images import load_image
from im2latex.data.layout import Sample
from im2latex.data.tokenizer import tokenize
from im2latex.data.vocab import Vocabulary
from im2latex.model.inputs import MAX_MEASURED_PIXELS, ink_crop, measurable, scale_and_pad, upper_quartile

PICKLE_PROTOCOL = 4  # fixed, so equal data gives equal bytes


def prepare_image(gray: np.ndarray, cfg: PreprocessConfig) -> np.ndarray | None:
    """`inputs.prepare`, as the exported model prepares an image: crop to ink, rescale to the glyph height and pad;
    None when blank. The glyph size is measured by `glyph_size` below: the same figure, and about 1 ms an image instead
    of 12 (bench/bench_prepare.py)."""
    crop, ink = ink_crop(torch.from_numpy(np.require(gray, requirements=["C", "W"])), cfg.threshold)
    if crop.numel() == 0:
        return None
    measured = glyph_size(ink.numpy()) if cfg.glyph_height > 0 else 0.0
    return scale_and_pad(crop, measured, cfg.pad, [cfg.glyph_height])[0].numpy()


def glyph_size(ink: np.ndarray) -> float:
    """`inputs.glyph_size` with the 8-connected ink components labelled by SciPy's C code instead of TorchScript's
    label spreading: the same components, so the same figure, without a pass over the pixels per labelling step."""
    ink, shrink = measurable(torch.from_numpy(ink), MAX_MEASURED_PIXELS)
    labels, _ = scipy.ndimage.label(ink.numpy(), structure=np.ones((3, 3), dtype=bool))
    heights = [rows.stop - rows.start for rows, _ in scipy.ndimage.find_objects(labels)]
    return upper_quartile(torch.tensor(heights, dtype=torch.long) * shrink)


def _prepare(job: tuple[Sample, PreprocessConfig]) -> np.ndarray | None:
    sample, cfg = job
    torch.set_num_threads(1)  # one process per core already
    return prepare_image(load_image(sample.image), cfg)


def preprocess_split(samples: list[Sample], vocab: Vocabulary, cfg: PreprocessConfig,
                     workers: int | None = None) -> tuple[dict, dict[str, int]]:
    """Encode one split; returns its data and how many samples were kept or dropped and why."""
    data = {"images": [], "ids": [], "formulas": [], "names": []}
    counts = {"kept": 0, "dropped_blank": 0, "dropped_too_large": 0, "dropped_too_long": 0}
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        images = pool.imap(_prepare, [(s, cfg) for s in samples], chunksize=64)
        for sample, image in tqdm(zip(samples, images), total=len(samples), desc="preprocess", unit="image"):
            tokens = tokenize(sample.formula)
            if image is None or not tokens:
                counts["dropped_blank"] += 1
            elif image.shape[0] > cfg.max_height or image.shape[1] > cfg.max_width:
                counts["dropped_too_large"] += 1
            elif len(tokens) > cfg.max_tokens:
                counts["dropped_too_long"] += 1
            else:
                counts["kept"] += 1
                data["images"].append(image)
                data["ids"].append(np.asarray(vocab.encode(tokens), dtype=np.int32))
                data["formulas"].append(" ".join(tokens))
                data["names"].append(sample.image.stem)
    return data, counts


def save_split(path: str | Path, data: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=PICKLE_PROTOCOL)


class _PlainUnpickler(pickle.Unpickler):
    """Rebuilds only plain Python values and numpy arrays: a pickle naming anything else is refused."""
    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise Im2LatexError(f"refusing to load {module}.{name} from a pickle: only plain types and numpy arrays are allowed")
        return super().find_class(module, name)


@dataclass(frozen=True)
class Split:
    """A preprocessed split: prepared images (uint8 arrays), token ids, normalised formulas, image names."""
    images: list[np.ndarray]
    ids: list[np.ndarray]
    formulas: list[str]
    names: list[str]


def load_split(path: str | Path) -> Split:
    """Load a split written by save_split, refusing any other kind of object."""
    try:
        with open(path, "rb") as f:
            data = _PlainUnpickler(f).load()
    except (OSError, pickle.UnpicklingError, EOFError) as e:
        raise Im2LatexError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict) or set(data) != {"images", "ids", "formulas", "names"}:
        raise Im2LatexError(f"{path}: not a preprocessed split")
    return Split(**data)


def tensor_images(images: list[np.ndarray]) -> list[torch.Tensor]:
    """Images as the tensors the reader takes (writable, contiguous)."""
    return [torch.from_numpy(np.require(i, requirements=["C", "W"])) for i in images]
