import pytest

from im2latex import Im2LatexError
from im2latex.data.vocab import Vocabulary, build_vocabulary
from im2latex.tokens import END, SPECIALS, UNK


def test_min_freq_specials_and_order():
    vocab, counts = build_vocabulary([["b", "a", "b"], ["b", "c", "a"]], min_freq=2)
    assert vocab.tokens == SPECIALS + ["a", "b"]
    assert counts["c"] == 1
    assert vocab.encode(["a", "c", "b"]) == [4, UNK, 5]


def test_decode_stops_at_end_and_skips_padding():
    vocab, _ = build_vocabulary([["x", "y"]], min_freq=1)
    assert vocab.decode([1, 4, 5, END, 4, 0]) == ["x", "y"]


def test_save_load_round_trip(tmp_path):
    vocab, _ = build_vocabulary([[r"\frac", "{", "é", "}"]], min_freq=1)
    vocab.save(tmp_path / "v.json")
    assert Vocabulary.load(tmp_path / "v.json").tokens == vocab.tokens
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(Im2LatexError, match="cannot read vocabulary"):
        Vocabulary.load(tmp_path / "bad.json")
