"""The Markov chain over the real split's token pairs: settable formulas with the pairs' own shares."""
import collections
import dataclasses

import pytest

from im2latex import Im2LatexError
from im2latex.data import layout
from im2latex.data.markov import BIGRAMS, MarkovFormulas, load_bigrams, markov_formulas
from im2latex.data.rendering import latex_accepts
from im2latex.data.sources import build_synthetic
from tests.conftest import TINY


def test_the_chain_is_seeded_and_writes_distinct_normalised_formulas():
    formulas = markov_formulas(300, seed=4, max_tokens=150)
    assert formulas == markov_formulas(300, seed=4, max_tokens=150) != markov_formulas(300, seed=5, max_tokens=150)
    assert len(set(formulas)) == 300 and all(0 < len(f.split(" ")) <= 150 and "  " not in f for f in formulas)


def test_groups_pairs_scripts_and_arguments_are_whole():
    for formula in markov_formulas(1000, seed=1, max_tokens=150):
        tokens, depth, lefts = formula.split(" "), 0, 0
        for i, t in enumerate(tokens):
            depth += (t == "{") - (t == "}")
            lefts += t.startswith(r"\left") - t.startswith(r"\right")
            assert depth >= 0 and lefts >= 0, formula
            if t in ("_", "^", r"\frac", r"\hat", r"\mathrm"):
                assert tokens[i + 1] == "{", formula
        assert depth == 0 and lefts == 0, formula
        assert "_ { } _" not in formula and not any(f"{s} {{ {x} }} {s}" in formula for s in "_^" for x in "ijk12")


def test_latex_sets_nearly_every_formula():
    formulas = markov_formulas(400, seed=2, max_tokens=150)
    assert sum(latex_accepts(formulas)) >= 0.97 * len(formulas)


def test_the_chain_follows_the_pair_counts():
    """The successors of the most frequent tokens come in about the real split's proportions."""
    table, counts = load_bigrams(), collections.Counter()
    for formula in markov_formulas(3000, seed=0, max_tokens=150):
        tokens = formula.split(" ")
        counts.update(zip(tokens, tokens[1:]))
    for first in ("=", "+", r"\alpha", ","):
        successors, cumulative = table[first]
        real = dict(zip(successors, (b - a for a, b in zip([0] + cumulative, cumulative))))
        ours = {s: n for (f, s), n in counts.items() if f == first}
        top = max(real, key=real.get)
        assert top == max(ours, key=ours.get)  # the same favourite successor
        share = lambda d, s: d.get(s, 0) / sum(d.values())
        assert abs(share(ours, top) - share(real, top)) < 0.05
    assert BIGRAMS.is_file() and MarkovFormulas(0, 150).takes_argument >= {r"\frac", r"\hat", "_", "^", r"\mathrm"}


def test_the_share_replaces_the_last_training_formulas_only(tmp_path):
    def build(name: str, share: float) -> dict[str, list[str]]:
        (tmp_path / name).mkdir()
        build_synthetic(tmp_path / name, dataclasses.replace(TINY, train=10, chunk=5, markov=share), seed=3)
        return {split: [s.formula for s in layout.read_split(tmp_path / name, split)] for split in layout.SPLITS}

    grammar, mixed = build("grammar", 0.0), build("mixed", 0.4)
    assert mixed["test"] == grammar["test"] and mixed["validate"] == grammar["validate"]
    assert mixed["train"][:6] == grammar["train"][:6]
    assert set(mixed["train"][6:]) <= set(markov_formulas(4, seed=3, max_tokens=TINY.max_tokens))
    with pytest.raises(Im2LatexError, match="markov"):
        build_synthetic(tmp_path, dataclasses.replace(TINY, markov=1.5), seed=3)
