"""The published metrics, computed as the published numbers are: pure functions on token lists."""
import warnings

import editdistance


def bleu4(targets: list[list[str]], predictions: list[list[str]]) -> float:
    """nltk corpus_bleu: 4-gram, uniform weights, no smoothing."""
    from nltk.translate.bleu_score import corpus_bleu  # here: nltk's imports cost `predict`, which scores nothing, a second

    with warnings.catch_warnings():  # nltk warns when some n-gram order has no match; the score is then 0
        warnings.simplefilter("ignore")
        return float(corpus_bleu([[t] for t in targets], predictions))


def edit_score(targets: list[list[str]], predictions: list[list[str]]) -> float:
    """1 - sum of token Levenshtein distances / sum of max(len(target), len(prediction))."""
    total = sum(max(len(t), len(p)) for t, p in zip(targets, predictions))
    distance = sum(editdistance.eval(t, p) for t, p in zip(targets, predictions))
    return 1.0 - distance / total if total else 1.0


def exact_match(targets: list[list[str]], predictions: list[list[str]]) -> float:
    return sum(t == p for t, p in zip(targets, predictions)) / len(targets) if targets else 0.0


def score(targets: list[list[str]], predictions: list[list[str] | None]) -> dict[str, float]:
    """All three metrics; a missing prediction (None) counts as empty."""
    predictions = [p or [] for p in predictions]
    return {"bleu4": bleu4(targets, predictions), "edit_score": edit_score(targets, predictions),
            "exact_match": exact_match(targets, predictions)}
