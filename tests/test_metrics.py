import pytest

from im2latex.metrics import bleu4, edit_score, exact_match, score

A = r"\frac { a } { b } + c ^ { 2 }".split()
B = r"x _ { i } = y _ { j } + 1".split()


def test_perfect_predictions():
    assert score([A, B], [A, B]) == {"bleu4": 1.0, "edit_score": 1.0, "exact_match": 1.0}


def test_known_pairs():
    wrong = B[:-1] + ["2"]  # one substitution in 11 tokens
    assert edit_score([A, B], [A, wrong]) == pytest.approx(1 - 1 / (len(A) + len(B)))
    assert exact_match([A, B], [A, wrong]) == 0.5
    assert bleu4([["a", "b", "c", "d"]], [["a", "b", "c", "e"]]) == pytest.approx(0.0, abs=1e-70)  # no 4-gram match, no smoothing
    # nltk's own definition: geometric mean of modified precisions, here 6/7, 5/6, 4/5, 3/4, no brevity penalty
    assert bleu4([list("abcdefg")], [list("abcdefx")]) == pytest.approx((6 / 7 * 5 / 6 * 4 / 5 * 3 / 4) ** 0.25)


def test_missing_prediction_counts_as_empty():
    assert score([A], [None]) == {"bleu4": 0.0, "edit_score": 0.0, "exact_match": 0.0}
    assert edit_score([A, B], [A, []]) == pytest.approx(1 - len(B) / (len(A) + len(B)))
