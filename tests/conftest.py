"""Fixtures: a tiny dataset rendered with real LaTeX, built once per test session."""
from pathlib import Path

import pytest

from im2latex.config import PreprocessConfig, SyntheticConfig
from im2latex.data.sources import build_synthetic

TINY = SyntheticConfig(train=16, validate=4, test=4, max_tokens=40, dpi=(90, 110), pad=(2, 8), noise=0.01, chunk=8)
PREPROCESS = PreprocessConfig(threshold=200, pad=4, scale=1.0, max_height=160, max_width=800, max_tokens=150)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """24 synthetic formulas in IM2LATEX-100K layout (read-only: copy it before changing it)."""
    root = tmp_path_factory.mktemp("tiny")
    build_synthetic(root, TINY, seed=1)
    return root
