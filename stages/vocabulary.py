"""vocabulary: the token vocabulary of the training split."""
import logging

from im2latex.config import VocabConfig, load_section
from im2latex.console import run_stage
from im2latex.data.layout import read_split
from im2latex.data.tokenizer import tokenize
from im2latex.data.vocab import build_vocabulary


def main(params: str, data: str, out: str) -> None:
    cfg = load_section(params, "vocab", VocabConfig)
    vocab, counts = build_vocabulary((tokenize(s.formula) for s in read_split(data, "train")), cfg.min_freq)
    vocab.save(out)
    logging.info("%d tokens (%d distinct seen, min_freq %d)", len(vocab), len(counts), cfg.min_freq)


if __name__ == "__main__":
    run_stage(main, "stages.vocabulary PARAMS DATA_DIR VOCAB_JSON")
