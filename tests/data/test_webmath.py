"""The web math renderer: real MathJax in Node and real resvg, no mocks (needs `make mathjax`)."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from im2latex import Im2LatexError
from im2latex.data import webmath
from im2latex.data.webmath import render_web

FRACTION = r"\frac { a } { b } + \operatorname { s i n } ( x )"


def ink_box(path: Path) -> tuple[int, int]:
    """Height and width of the non-white pixels."""
    ink = np.asarray(Image.open(path)) < 255
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_a_2x_screen_draws_the_formula_twice_as_large_in_black_on_white(tmp_path):
    targets = [tmp_path / "1x.png", tmp_path / "2x.png"]
    for density, target in zip((1, 2), targets):
        assert render_web([FRACTION], [target], seed=0, densities=(density,), font_px=(20, 20)) == [True]
    small, large = (Image.open(t) for t in targets)
    assert small.mode == large.mode == "L"
    pixels = np.asarray(small)
    assert pixels.min() < 40  # black ink, antialiased edges in between
    assert ((pixels > 0) & (pixels < 255)).any()
    assert pixels[0].min() == pixels[-1].min() == pixels[:, 0].min() == pixels[:, -1].min() == 255  # white border
    (h1, w1), (h2, w2) = ink_box(targets[0]), ink_box(targets[1])
    # MathJax's box for it is 1.81 em tall and 4.77 em wide: 36 x 95 px at 20 px per em
    assert 32 <= h1 <= 40 and 88 <= w1 <= 98
    assert abs(h2 / h1 - 2) < 0.1 and abs(w2 / w1 - 2) < 0.1


def test_a_formula_mathjax_refuses_fails_alone(tmp_path):
    formulas = [r"x ^ { 2 }", r"\foo { x }", r"\frac { a", r"\text { 中 }", r"\mathrm { d } y"]
    targets = [tmp_path / f"{i}.png" for i in range(len(formulas))]
    # one chunk: the unknown macro, the missing brace and the character outside MathJax's fonts fail within it
    assert render_web(formulas, targets, seed=3, chunk=len(formulas)) == [True, False, False, False, True]
    assert [t.exists() for t in targets] == [True, False, False, False, True]


def test_each_chunk_draws_its_own_screen_from_the_seed(tmp_path):
    formulas = [r"x ^ { 2 }", FRACTION, r"\sqrt { y }", r"\sum _ { i } a _ { i }", r"{ \cal L }", r"\hbar \omega"]
    runs = []
    for run in ("a", "b"):
        targets = [tmp_path / run / f"{i}.png" for i in range(len(formulas))]
        targets[0].parent.mkdir()
        assert render_web(formulas, targets, seed=7, chunk=2) == [True] * len(formulas)
        runs.append([np.asarray(Image.open(t)) for t in targets])
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
    # chunks draw their own screens: with 3 chunks, some sizes differ from the first chunk's
    assert len({image.shape for image in runs[0]}) > 1


def test_require_node_names_the_missing_install(tmp_path, monkeypatch):
    monkeypatch.setattr(webmath, "NODE_MODULES", tmp_path / "node_modules")
    with pytest.raises(Im2LatexError, match="make mathjax") as missing:
        webmath.require_node()
    assert "\n" not in str(missing.value) and "mathjax-full" in str(missing.value)
    with pytest.raises(Im2LatexError, match="make mathjax"):
        render_web([r"x"], [tmp_path / "x.png"], seed=0)
    monkeypatch.setattr(webmath.shutil, "which", lambda name: None)
    with pytest.raises(Im2LatexError, match="node not found.*make mathjax"):
        webmath.require_node()


def test_a_node_process_that_never_answers_ends_in_one_line(tmp_path, monkeypatch):
    silent = tmp_path / "silent.mjs"
    silent.write_text("process.stdin.resume();\n")  # reads every batch and answers none
    monkeypatch.setattr(webmath, "SCRIPT", silent)
    monkeypatch.setattr(webmath, "BATCH_TIMEOUT_S", 1.0)
    with pytest.raises(Im2LatexError, match=r"gave no answer for a batch of 2 formulas within 3 s") as error:
        webmath.typeset([r"x", r"y"])
    assert "\n" not in str(error.value)
