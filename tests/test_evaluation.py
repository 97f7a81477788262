"""The render-rate check: batched LaTeX runs, one run per formula only where errors leave no choice."""
import subprocess

import pytest

from im2latex.data import rendering
from im2latex.data.rendering import latex_accepts, render_rate

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
    monkeypatch.setattr(rendering.subprocess, "run", lambda *a, **k: runs.append(a) or real(*a, **k))
    assert latex_accepts(GOOD * 10 + [BROKEN[0], BROKEN[1], BROKEN[3]]) == [True] * 40 + [False] * 3
    assert len(runs) == 1


def test_lengths_spelled_apart_as_the_dataset_writes_them_are_set():
    spelled = [r"a , \hspace { 1 c m } b", r"a \hspace* { 0 . 5 e m } b", r"a \vspace { 2 p t } b"]
    assert rendering.latex_source(spelled[0]) == r"a , \hspace{1cm} b"
    assert latex_accepts(spelled) == [True, True, True]
    assert latex_accepts([r"a \hspace { 1 q q } b"]) == [False]  # not a unit: still refused
