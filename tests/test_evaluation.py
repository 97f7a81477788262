"""The render-rate check: batched LaTeX runs, one run per formula only where errors leave no choice."""
import subprocess

import pytest

from im2latex import evaluation
from im2latex.evaluation import latex_accepts, render_rate

GOOD = [r"\frac { a } { b }", r"x ^ { 2 } + y _ { i }", r"\sqrt [ 8 ] { Q - 1 _ { e } }", r"\left( x \right)"]
BROKEN = [
    r"\frac { a } {",  # unclosed brace: would swallow the next pages without the non-\long wrapper
    r"x } + 1",  # one brace too many
    r"\left( \begin{array} { c c c } \right. \frac { 5 } { x } { N } ~ j",  # leaves an array open: loops with the next
    r"\undefinedcommand x",
]


def test_each_formula_is_judged_alone_though_run_together():
    formulas = [GOOD[0], BROKEN[0], GOOD[1], BROKEN[1], GOOD[2], BROKEN[2], GOOD[2], BROKEN[3], GOOD[3]]
    assert latex_accepts(formulas) == [True, False, True, False, True, False, True, False, True]
    assert [latex_accepts([f]) for f in formulas] == [[ok] for ok in latex_accepts(formulas)]


def test_render_rate_counts_empty_predictions_as_not_rendered():
    assert render_rate(GOOD + BROKEN + [""], chunk=4) == pytest.approx(4 / 9)
    assert render_rate([]) == 0.0


def test_a_clean_chunk_is_one_latex_run(monkeypatch):
    runs = []
    real = subprocess.run
    monkeypatch.setattr(evaluation.subprocess, "run", lambda *a, **k: runs.append(a) or real(*a, **k))
    assert latex_accepts(GOOD * 10 + [BROKEN[0], BROKEN[1], BROKEN[3]]) == [True] * 40 + [False] * 3
    assert len(runs) == 1


def test_the_test_split_is_read_at_the_size_the_exported_reader_reads(tiny_dataset):
    """The evaluate stage rescales the prepared test images by each of evaluate.read_scales; the exported reader
    prepares an image at glyph_height x each scale: both must give the network the same size."""
    import numpy as np
    import torch

    from im2latex.data import layout
    from im2latex.data.preprocessing import load_image
    from im2latex.model.inputs import prepare

    raw = [torch.from_numpy(load_image(s.image).copy()) for s in layout.read_split(tiny_dataset, "test")]
    at_10 = [prepare(image, 200, 4, 10.0).numpy() for image in raw]
    assert evaluation.rescale(at_10, 1.0) is at_10
    for image, small, rescaled in zip(raw, at_10, evaluation.rescale(at_10, 1.2)):
        direct = prepare(image, 200, 4, 12.0).numpy()
        assert rescaled.dtype == np.uint8
        assert rescaled.shape == (round(small.shape[0] * 1.2), round(small.shape[1] * 1.2))
        assert abs(rescaled.shape[0] - direct.shape[0]) <= 3 and abs(rescaled.shape[1] - direct.shape[1]) <= 3
