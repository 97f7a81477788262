"""What a dataset holds (formulas, lengths, the share of each renderer) and, against IM2LATEX-100K's statistics,
how close it comes: token and bigram coverage, length histogram."""
import json
from collections import Counter
from pathlib import Path

from im2latex.data import layout
from im2latex.data.tokenizer import tokenize


def read_reference(folder: Path) -> tuple[Counter, dict]:
    """Token counts (vocab_val_freq.tsv) and statistics (stats.json) of the real dataset."""
    counts = Counter()
    for line in (folder / "vocab_val_freq.tsv").read_text(encoding="utf-8").split("\n")[1:]:
        token, _, count = line.rpartition("\t")
        if token:
            counts[token] = int(count)
    return counts, json.loads((folder / "stats.json").read_text())


def read_bigrams(folder: Path) -> Counter:
    """Counts of adjacent token pairs (bigrams_val.tsv: first, second, count; pairs seen at least 5 times)."""
    counts = Counter()
    for line in (folder / "bigrams_val.tsv").read_text(encoding="utf-8").split("\n")[1:]:
        fields = line.split("\t")
        if len(fields) == 3:
            counts[fields[0], fields[1]] = int(fields[2])
    return counts


def length_histogram(lengths: list[int]) -> dict[int, float]:
    """Share of formulas per bin of 10 tokens."""
    bins = Counter(min(n, 150) // 10 * 10 for n in lengths)
    return {b: bins[b] / len(lengths) for b in range(0, 160, 10)}


def renderer_shares(data: Path) -> dict[str, float]:
    """Share of the images each renderer (and so each font or web look) drew, from the synthetic source's record."""
    record = data / layout.RENDERERS
    if not record.is_file():
        return {}
    counts = Counter(line.partition("\t")[2] for line in record.read_text().splitlines() if line)
    return {name: round(n / sum(counts.values()), 4) for name, n in sorted(counts.items())}


def describe(data: Path) -> dict:
    """Formulas, distinct tokens, lengths and renderer shares of `data`."""
    formulas = [tokenize(s.formula) for split in layout.SPLITS for s in layout.read_split(data, split)]
    lengths = sorted(len(f) for f in formulas)
    return {"formulas": len(formulas), "distinct_tokens": len({t for f in formulas for t in f}),
            "length_mean": sum(lengths) / max(1, len(lengths)), "length_median": lengths[len(lengths) // 2] if lengths else 0,
            "renderers": renderer_shares(data)}


def compare(data: Path, reference: Path) -> dict:
    """Token coverage and length distribution of `data` against the real dataset's statistics."""
    formulas = [tokenize(s.formula) for split in layout.SPLITS for s in layout.read_split(data, split)]
    ours = Counter(t for f in formulas for t in f)
    real, stats = read_reference(reference)
    real_total = sum(real.values())
    ours_bigrams = {pair for f in formulas for pair in zip(f, f[1:])}
    real_bigrams = read_bigrams(reference) if (reference / "bigrams_val.tsv").is_file() else Counter()
    real_hist = {int(b): n / stats["formulas"] for b, n in stats["length_histogram_bins_of_10"].items()}
    lengths = sorted(len(f) for f in formulas)
    return {
        "formulas": len(formulas),
        "distinct_tokens": len(ours),
        "real_distinct_tokens_covered": sum(1 for t in real if t in ours) / len(real),
        "real_token_occurrences_covered": sum(n for t, n in real.items() if t in ours) / real_total,
        "distinct_bigrams": len(ours_bigrams),
        "real_bigram_occurrences_covered": (sum(n for pair, n in real_bigrams.items() if pair in ours_bigrams)
                                            / max(1, sum(real_bigrams.values()))),
        "real_distinct_bigrams_covered": sum(1 for pair in real_bigrams if pair in ours_bigrams) / max(1, len(real_bigrams)),
        "tokens_not_in_real_vocabulary": sorted(t for t in ours if t not in real),
        "length_mean": sum(lengths) / len(lengths),
        "length_median": lengths[len(lengths) // 2],
        "real_length_mean": stats["length_tokens"]["mean"],
        "real_length_median": stats["length_tokens"]["median"],
        "length_histogram": {b: [round(v, 4), round(real_hist.get(b, 0.0), 4)]
                             for b, v in length_histogram(lengths).items()},
        "renderers": renderer_shares(data),
    }
