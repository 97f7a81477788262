"""preprocess: crop, pad, scale and encode every split into data/preprocessed/<split>.pkl."""
import json
import logging
from pathlib import Path

from im2latex.config import PreprocessConfig, load_section
from im2latex.console import run_stage
from im2latex.data.layout import SPLITS, read_formulas, read_split
from im2latex.data.preprocessing import preprocess_split, save_split
from im2latex.data.vocab import Vocabulary
from im2latex.files import atomic_dir, atomic_file


def main(params: str, data: str, vocab: str, out: str, report: str) -> None:
    cfg = load_section(params, "preprocess", PreprocessConfig)
    vocabulary, formulas = Vocabulary.load(vocab), read_formulas(Path(data))
    counts = {}
    with atomic_dir(out) as tmp:
        for split in SPLITS:
            split_data, counts[split] = preprocess_split(read_split(data, split, formulas), vocabulary, cfg)
            save_split(tmp / f"{split}.pkl", split_data)
            logging.info("%s: %s", split, counts[split])
    with atomic_file(report, "w") as f:
        json.dump(counts, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    run_stage(main, "stages.preprocess PARAMS DATA_DIR VOCAB_JSON OUT_DIR REPORT_JSON")
