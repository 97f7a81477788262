"""TorchScript export: the network, its decoding, its input normalisation and the vocabulary in one
file that plain `torch.jit.load` runs, with no project code."""
import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import List, Tuple

import torch
from torch import Tensor, nn

from im2latex import Im2LatexError
from im2latex.model.inputs import prepare_sizes, to_batch
from im2latex.data.vocab import strip_specials
from im2latex.model.network import Im2LatexNet, teacher_forcing


class FormulaReader(nn.Module):
    """forward(images): uint8 grayscale images (H, W) of any size -> LaTeX strings (space-separated tokens).
    A blank image gives an empty string. Each image is read at every size in `glyph_heights` (glyph sizes in
    pixels), and the reading the network is most confident of wins. `length_penalty`: see Im2LatexNet.beam_search."""

    def __init__(self, net: Im2LatexNet, tokens: List[str], threshold: int, pad: int, glyph_heights: List[float],
                 beam_width: int, length_penalty: float = 0.0):
        super().__init__()
        self.net, self.tokens = net, tokens
        self.threshold, self.pad, self.glyph_heights, self.beam_width = threshold, pad, glyph_heights, beam_width
        self.length_penalty = length_penalty

    @torch.jit.export
    def decode(self, batch: Tensor, beam_width: int) -> List[List[int]]:
        """Token ids for a prepared batch (B, 1, H, W): greedy when beam_width is 1."""
        with torch.no_grad():
            ids = self.net.greedy(batch) if beam_width <= 1 else self.net.beam_search(
                batch, beam_width, length_penalty=self.length_penalty)
        rows: List[List[int]] = ids.tolist()
        return [strip_specials(row, self.net.end_id, [self.net.pad_id, self.net.start_id]) for row in rows]

    @torch.jit.export
    def to_text(self, ids: List[int]) -> str:
        return " ".join([self.tokens[i] for i in ids])

    @torch.jit.export
    def confidence(self, batch: Tensor, ids: List[List[int]]) -> List[float]:
        """Per image, the geometric mean of the probabilities the network gives its own output tokens
        (end token included): 1.0 is certain, near 0 is a guess."""
        inputs, targets = teacher_forcing([torch.tensor(row, dtype=torch.long) for row in ids],
                                          self.net.pad_id, self.net.start_id, self.net.end_id)
        with torch.no_grad():
            logp = torch.log_softmax(self.net(batch, inputs).float(), dim=-1)
        mask = targets != self.net.pad_id
        picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * mask
        return (picked.sum(1) / mask.sum(1)).exp().tolist()

    @torch.jit.export
    def decode_best(self, batches: List[Tensor]) -> Tuple[List[List[int]], List[float]]:
        """The same images prepared at several sizes, a batch per size -> per image, the token ids of the
        reading with the highest confidence, and that confidence."""
        best: List[List[int]] = []
        scores: List[float] = []
        for batch in batches:
            ids = self.decode(batch, self.beam_width)
            for n, score in enumerate(self.confidence(batch, ids)):
                if n == len(best):
                    best.append(ids[n])
                    scores.append(score)
                elif score > scores[n]:
                    best[n] = ids[n]
                    scores[n] = score
        return best, scores

    @torch.jit.export
    def read(self, images: List[Tensor]) -> Tuple[List[str], List[float]]:
        """LaTeX and confidence of each image; a blank image gives "" with confidence 0."""
        sizes: List[List[Tensor]] = [[] for _ in self.glyph_heights]
        where: List[int] = []
        for n, image in enumerate(images):
            prepared = prepare_sizes(image, self.threshold, self.pad, self.glyph_heights)
            if prepared[0].numel() > 0:
                for k, p in enumerate(prepared):
                    sizes[k].append(p)
                where.append(n)
        texts = ["" for _ in images]
        scores = [0.0 for _ in images]
        if len(where) > 0:
            ids, confidences = self.decode_best([to_batch(prepared) for prepared in sizes])
            for n, row, score in zip(where, ids, confidences):
                texts[n] = self.to_text(row)
                scores[n] = score
        return texts, scores

    def forward(self, images: List[Tensor]) -> List[str]:
        return self.read(images)[0]


def _import_path(filename: str | None) -> str | None:
    """`filename` relative to the sys.path entry it was imported from (`im2latex/export.py`, `torch/nn/...`)."""
    if not filename:
        return filename
    path = os.path.abspath(filename)
    roots = [os.path.abspath(p or ".") for p in sys.path]
    roots = [r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)]
    return os.path.relpath(path, max(roots, key=len)) if roots else os.path.basename(path)


@contextlib.contextmanager
def _relative_source_names():
    """TorchScript's debug info records the file each scripted function came from. Recording it relative
    to its import root keeps the checkout's (and the virtual environment's) location out of the file,
    so exports from clones at different paths are byte-identical."""
    original = torch._sources.get_source_lines_and_file
    holders = [m for m in (torch._sources, torch.jit.frontend, torch.jit.annotations, torch._jit_internal)
               if getattr(m, "get_source_lines_and_file", None) is original]

    def relative(obj, error_msg=None):
        lines, lineno, filename = original(obj, error_msg)
        return lines, lineno, _import_path(filename)
    for module in holders:
        module.get_source_lines_and_file = relative
    try:
        yield
    finally:
        for module in holders:
            module.get_source_lines_and_file = original


def reading_sizes(glyph_height: float, read_scales: list[float]) -> list[float]:
    """The glyph sizes the reader reads an image at: the training size (preprocess.glyph_height) times each
    of evaluate.read_scales."""
    if not read_scales or min(read_scales) <= 0:
        raise Im2LatexError(f"params.yaml: evaluate.read_scales must list one or more positive factors, got {read_scales!r}")
    return [glyph_height * scale for scale in read_scales]


def script(net: Im2LatexNet, tokens: list[str], threshold: int, pad: int, glyph_heights: list[float],
           beam_width: int, length_penalty: float = 0.0) -> torch.jit.ScriptModule:
    with warnings.catch_warnings(), _relative_source_names():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated for torch.export, which cannot hold a decoding loop
        return torch.jit.script(FormulaReader(net.eval(), tokens, threshold, pad, glyph_heights, beam_width, length_penalty))


def check_parity(net: Im2LatexNet, scripted: torch.jit.ScriptModule, batches: list[Tensor], beam_width: int) -> int:
    """Compare scripted and eager decoding token for token; raises on the first mismatch. Returns images checked."""
    eager = FormulaReader(net.eval(), [], 0, 0, [1.0], beam_width, scripted.length_penalty)
    checked = 0
    for batch in batches:
        a, b = eager.decode(batch, beam_width), scripted.decode(batch, beam_width)
        for n, (x, y) in enumerate(zip(a, b)):
            if x != y:
                raise Im2LatexError(f"export parity failed: image {checked + n} decodes to {y} scripted but {x} eager")
        checked += len(a)
    return checked


def load_reader(path: str | Path) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as e:
        raise Im2LatexError(f"cannot load model {path}: {str(e).splitlines()[0]}") from None
