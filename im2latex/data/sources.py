"""Data sources; each writes a dataset in the IM2LATEX-100K layout (see layout.py)."""
import logging
import shutil
import time
from pathlib import Path

from im2latex import Im2LatexError
from im2latex.config import DataConfig, SyntheticConfig
from im2latex.data import layout
from im2latex.data.generator import generate_formulas
from im2latex.data.markov import markov_formulas
from im2latex.data.normalise import normalise_all
from im2latex.data.rendering import RENDERERS, RenderStyle, render_parts

log = logging.getLogger(__name__)
SOURCES = ("synthetic", "im2latex-100k", "folder")


def render_style(cfg: SyntheticConfig) -> RenderStyle:
    """The style of the synthetic renders that `cfg` describes."""
    return RenderStyle(cfg.dpi, cfg.pad, cfg.noise, tuple(cfg.font_sizes), cfg.downsample, cfg.bold, cfg.blur,
                       cfg.binarise, cfg.jpeg, tuple(sorted(cfg.renderers.items())), cfg.tinted, cfg.dark)


def build_synthetic(out: Path, cfg: SyntheticConfig, seed: int) -> dict[str, int]:
    """Generate formulas and render them; formulas LaTeX rejects are left out and counted."""
    if min(cfg.chunk, cfg.eval_chunk) < 1:
        raise Im2LatexError(f"params.yaml: data.synthetic.chunk and eval_chunk must be 1 or more, got {cfg.chunk} and {cfg.eval_chunk}")
    # test and validate come first in the generator's stream, so they stay the same when `train` changes
    sizes = {"test": cfg.test, "validate": cfg.validate, "train": cfg.train}
    if not 0 <= cfg.markov <= 1:
        raise Im2LatexError(f"params.yaml: data.synthetic.markov is a share of the training formulas, from 0 to 1; got {cfg.markov}")
    chained = round(cfg.markov * cfg.train)  # the last ones of the training split, so the others stay the same
    formulas = generate_formulas(sum(sizes.values()) - chained, seed, cfg.max_tokens)
    formulas += markov_formulas(chained, seed, cfg.max_tokens) if chained else []
    names = [f"{i:07d}" for i in range(len(formulas))]
    targets = [out / layout.IMAGES / f"{n}.png" for n in names]
    (out / layout.IMAGES).mkdir()
    unknown = sorted(set(cfg.renderers) - set(RENDERERS))
    if unknown or not cfg.renderers or min(cfg.renderers.values()) < 0 or sum(cfg.renderers.values()) <= 0:
        raise Im2LatexError(f"params.yaml: data.synthetic.renderers must give renderers of {', '.join(RENDERERS)} "
                            f"non-negative weights, not all 0; got {dict(cfg.renderers)}")
    style = render_style(cfg)
    start = time.perf_counter()
    # each LaTeX run draws one style: the evaluation splits, rendered in small runs of their own, span many styles
    # (at `chunk` formulas per run, 300 test images had 2) and do not depend on the training split
    evaluated = cfg.test + cfg.validate
    used: list[str] = []
    ok = render_parts([(formulas[:evaluated], targets[:evaluated], seed, cfg.eval_chunk),
                       (formulas[evaluated:], targets[evaluated:], seed + 1, cfg.chunk)], style, used=used)
    elapsed = time.perf_counter() - start
    log.info("rendered %d formulas in %.1f s (%.0f formulas/s), %d rejected by LaTeX",
             len(formulas), elapsed, len(formulas) / elapsed, ok.count(False))
    with open(out / layout.RENDERERS, "w") as f:  # which renderer drew each image, for the data report
        f.writelines(f"{name}\t{r}\n" for name, r in zip(names, used) if r)
    splits, first = {}, 0
    for split, size in sizes.items():
        splits[split] = [(i, names[i]) for i in range(first, first + size) if ok[i]]
        first += size
    layout.write_lists(out, formulas, splits)
    return {split: len(samples) for split, samples in splits.items()}


def copy_folder(out: Path, folder: Path) -> dict[str, int]:
    """Validate a user's dataset in IM2LATEX-100K layout and copy it, its formulas normalised."""
    if not folder.is_dir():
        raise Im2LatexError(f"data.folder: {folder} is not a folder")
    counts = layout.validate(folder)
    for name in [layout.split_file(s) for s in layout.SPLITS]:
        shutil.copyfile(folder / name, out / name)
    # labels written by a person are spelled as IM2LATEX-100K's are; normalised ones come back unchanged
    formulas, _ = normalise_all(layout.read_formulas(folder))
    (out / layout.FORMULAS).write_bytes("".join(f + "\n" for f in formulas).encode())
    shutil.copytree(folder / layout.IMAGES, out / layout.IMAGES)
    return counts


def fetch_dataset(out: Path, cfg: DataConfig) -> dict[str, int]:
    """Write the dataset chosen by `cfg.source` into the empty folder `out`; returns samples per split."""
    if cfg.source == "synthetic":
        return build_synthetic(out, cfg.synthetic, cfg.seed)
    if cfg.source == "folder":
        return copy_folder(out, Path(cfg.folder))
    if cfg.source == "im2latex-100k":
        from im2latex.data.download import download_im2latex_100k

        download_im2latex_100k(out, cfg.mirrors, cfg.manifest)
        return layout.validate(out)
    raise Im2LatexError(f"data.source: unknown source {cfg.source!r}; choose one of {', '.join(SOURCES)}")
