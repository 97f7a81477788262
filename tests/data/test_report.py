"""data-report: token and bigram coverage and the length histogram against a reference folder."""
import json

from im2latex.data import layout
from im2latex.data.report import compare


def test_coverage_against_a_small_reference(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    formulas = ["x ^ { 2 }", "a + b", "x ^ { 2 } + a"]
    layout.write_lists(data, formulas, {"train": [(0, "0"), (1, "1")], "validate": [(2, "2")], "test": []})
    (data / layout.IMAGES).mkdir()
    for name in "012":
        (data / layout.IMAGES / f"{name}.png").write_bytes(b"")  # only the formulas are read
    ref = tmp_path / "ref"
    ref.mkdir()
    # the real split's counts: x, ^, {, }, 2, + are ours; \alpha is not
    (ref / "vocab_val_freq.tsv").write_text("token\tcount\nx\t10\n^\t10\n{\t20\n}\t20\n2\t10\n+\t10\n\\alpha\t20\n")
    (ref / "bigrams_val.tsv").write_text("first\tsecond\tcount\nx\t^\t30\n^\t{\t30\n\\alpha\t+\t40\n")
    (ref / "stats.json").write_text(json.dumps({"formulas": 2, "length_tokens": {"mean": 4.0, "median": 4},
                                                "length_histogram_bins_of_10": {"0": 2}}))
    report = compare(data, ref)
    assert report["formulas"] == 3 and report["distinct_tokens"] == 8
    assert report["real_token_occurrences_covered"] == 80 / 100
    assert report["real_distinct_tokens_covered"] == 6 / 7
    assert report["real_bigram_occurrences_covered"] == 60 / 100
    assert report["real_distinct_bigrams_covered"] == 2 / 3
    assert report["tokens_not_in_real_vocabulary"] == ["a", "b"]
    assert report["length_histogram"][0] == [1.0, 1.0]
