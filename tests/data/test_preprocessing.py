import io
import os
import pickle

import numpy as np
import pytest
from PIL import Image

from im2latex import Im2LatexError
from im2latex.data import layout
from im2latex.data.preprocessing import load_image, load_split, prepare_image, preprocess_split, save_split
from im2latex.data.tokenizer import tokenize
from im2latex.data.vocab import build_vocabulary
from tests.conftest import PREPROCESS


def test_crop_pad_and_scale():
    gray = np.full((50, 80), 255, np.uint8)
    gray[10:20, 30:60] = 0
    gray[40, 70] = 220  # a speck lighter than the threshold is not ink
    cfg = PREPROCESS.__class__(**{**PREPROCESS.__dict__, "pad": 3, "scale": 1.0})
    out = prepare_image(gray, cfg)
    assert out.shape == (16, 36) and out[:3].min() == 255 and out[3:13, 3:33].max() == 0
    cfg = PREPROCESS.__class__(**{**PREPROCESS.__dict__, "pad": 3, "scale": 0.5})
    assert prepare_image(gray, cfg).shape == (8, 18)
    assert prepare_image(np.full((5, 5), 255, np.uint8), cfg) is None


def test_transparent_png_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)  # black, fully transparent ...
    rgba[1, 1] = (0, 0, 0, 255)  # ... but one opaque black pixel
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    gray = load_image(buffer.getvalue())
    assert gray[0, 0] == 255 and gray[1, 1] == 0


def test_unreadable_image_is_named(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(Im2LatexError, match="bad.png: not a readable image"):
        load_image(bad)


def test_split_round_trip_and_filter_counts(tiny_dataset, tmp_path):
    samples = layout.read_split(tiny_dataset, "train")
    vocab, _ = build_vocabulary([tokenize(s.formula) for s in samples], min_freq=1)
    lengths = sorted(len(tokenize(s.formula)) for s in samples)
    limit = lengths[len(lengths) // 2]
    cfg = PREPROCESS.__class__(**{**PREPROCESS.__dict__, "max_tokens": limit})
    data, counts = preprocess_split(samples, vocab, cfg, workers=1)
    too_long = sum(1 for n in lengths if n > limit)
    assert counts == {"kept": 16 - too_long, "dropped_blank": 0, "dropped_too_large": 0, "dropped_too_long": too_long}
    save_split(tmp_path / "train.pkl", data)
    loaded = load_split(tmp_path / "train.pkl")
    assert loaded["formulas"] == data["formulas"]
    for ids, formula, image in zip(loaded["ids"], loaded["formulas"], loaded["images"]):
        assert " ".join(vocab.decode(ids)) == formula  # token ids round trip
        assert image.dtype == np.uint8 and image.ndim == 2 and image.min() < 100


def test_size_limit_drops_and_counts(tiny_dataset):
    samples = layout.read_split(tiny_dataset, "validate")
    vocab, _ = build_vocabulary([tokenize(s.formula) for s in samples], min_freq=1)
    cfg = PREPROCESS.__class__(**{**PREPROCESS.__dict__, "max_width": 1})
    data, counts = preprocess_split(samples, vocab, cfg, workers=1)
    assert counts["dropped_too_large"] == 4 and data["images"] == []


class _Evil:
    def __reduce__(self):
        return os.system, ("echo pwned",)


def test_loader_refuses_anything_but_plain_types_and_arrays(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"images": [_Evil()], "ids": [], "formulas": [], "names": []}))
    with pytest.raises(Im2LatexError, match="refusing to load"):
        load_split(path)
