"""The exported reader, run by TorchScript (models/model.pt, needs torch) or by ONNX Runtime (models/onnx, no torch):
`open_reader` gives either behind one interface on uint8 grayscale NumPy images: `prepare` (each reading size),
`read_prepared`, `read`, and the largest prepared image the network reads (`max_height`, `max_width`)."""
import math
import warnings
from pathlib import Path

import numpy as np

from im2latex import Im2LatexError

RUNTIMES = {"torchscript": Path("models/model.pt"), "onnx": Path("models/onnx")}


class TorchScriptReader:
    """The TorchScript file (im2latex/reader.py's FormulaReader) on NumPy images."""

    def __init__(self, path: str | Path):
        import torch

        self.torch, self.file = torch, load_reader(path)
        encoder = self.file.net.encoder
        with torch.no_grad():  # each cell covers `stride` pixels; the encoder has one position per cell row/column
            stride = 64 // math.isqrt(encoder(torch.zeros(1, 1, 64, 64)).shape[1])
        self.max_height, self.max_width = stride * int(encoder.pos_y.shape[0]), stride * int(encoder.pos_x.shape[0])

    def prepare(self, image: np.ndarray) -> list:
        return self.file.prepare(self.torch.from_numpy(np.require(image, requirements=["C", "W"])))

    def read_prepared(self, images: list[list]) -> tuple[list[str], list[float]]:
        return self.file.read_prepared(images)

    def read(self, images: list[np.ndarray]) -> tuple[list[str], list[float]]:
        return self.read_prepared([self.prepare(image) for image in images])

    def __call__(self, images: list[np.ndarray]) -> list[str]:
        return self.read(images)[0]


def load_reader(path: str | Path):
    """The TorchScript file at `path`. Loading it needs torch alone: the network's code (and torchvision, seconds of
    imports) stays unloaded, so `predict` starts faster."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as e:
        raise Im2LatexError(f"cannot load model {path}: {str(e).splitlines()[0]}") from None


def open_reader(path: str | Path | None = None, runtime: str = "torchscript", threads: int = 0,
                read_scales: list[float] | None = None, beam_width: int | None = None):
    """The exported reader at `path` (default: the pipeline's output for `runtime`). `read_scales` and `beam_width`
    replace the exported reading (ONNX only: the TorchScript file holds its own)."""
    if runtime not in RUNTIMES:
        raise Im2LatexError(f"unknown runtime {runtime!r}: choose {' or '.join(RUNTIMES)}")
    path = Path(path or RUNTIMES[runtime])
    if not path.exists():
        raise Im2LatexError(f"no model at {path}: train and export one first with `make repro` (or `dvc repro`)")
    if runtime == "onnx":
        from im2latex.onnx_reader import OnnxReader

        return OnnxReader(path, threads, read_scales, beam_width)
    if read_scales is not None or beam_width is not None:
        raise Im2LatexError("the TorchScript file reads as it was exported: other reading sizes or beams need --runtime onnx")
    return TorchScriptReader(path)
