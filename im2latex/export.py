"""TorchScript export of the reader (im2latex/reader.py): the network, its decoding, its input normalisation and the
vocabulary in one file that plain `torch.jit.load` runs, with no project code."""
import contextlib
import os
import sys
import warnings

import torch
from torch import Tensor

from im2latex import Im2LatexError
from im2latex.model.network import Im2LatexNet
from im2latex.reader import FormulaReader


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


def script(net: Im2LatexNet, tokens: list[str], threshold: int, pad: int, glyph_heights: list[float],
           beam_width: int, length_penalty: float = 0.0, agreement: float = 16.0) -> torch.jit.ScriptModule:
    with warnings.catch_warnings(), _relative_source_names():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated for torch.export, which cannot hold a decoding loop
        return torch.jit.script(FormulaReader(net.eval(), tokens, threshold, pad, glyph_heights, beam_width, length_penalty,
                                              agreement))


def check_parity(net: Im2LatexNet, scripted: torch.jit.ScriptModule, batches: list[Tensor], beam_width: int) -> int:
    """Compare scripted and eager decoding token for token, the best hypothesis of the beam and the one the
    consensus picks; raises on the first mismatch. Returns images checked."""
    eager = FormulaReader(net.eval(), [], 0, 0, [1.0], beam_width, scripted.length_penalty, scripted.agreement)
    checked = 0
    for batch in batches:
        for a, b in ((eager.decode(batch, beam_width), scripted.decode(batch, beam_width)),
                     (eager.decode_best([batch])[0], scripted.decode_best([batch])[0])):
            for n, (x, y) in enumerate(zip(a, b)):
                if x != y:
                    raise Im2LatexError(f"export parity failed: image {checked + n} decodes to {y} scripted but {x} eager")
        checked += batch.shape[0]
    return checked
