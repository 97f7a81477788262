"""download: write the dataset chosen by `data.source` in IM2LATEX-100K layout."""
import logging

from im2latex.config import DataConfig, load_section
from im2latex.console import run_stage
from im2latex.data.sources import fetch_dataset
from im2latex.files import atomic_dir


def main(params: str, out: str) -> None:
    cfg = load_section(params, "data", DataConfig)
    with atomic_dir(out) as tmp:
        counts = fetch_dataset(tmp, cfg)
    logging.info("%s dataset in %s: %s", cfg.source, out, counts)


if __name__ == "__main__":
    run_stage(main, "stages.download PARAMS OUT_DIR")
