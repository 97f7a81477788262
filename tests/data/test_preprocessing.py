import io
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from im2latex import Im2LatexError
from im2latex.data import layout, preprocessing
from im2latex.data.generator import generate_formulas
from im2latex.data.preprocessing import load_image, load_split, prepare_image, preprocess_split, save_split
from im2latex.data.rendering import RenderStyle, render_formulas
from im2latex.data.tokenizer import tokenize
from im2latex.data.vocab import build_vocabulary
from im2latex.model import inputs
from tests.conftest import PREPROCESS


def test_crop_and_pad():
    gray = np.full((50, 80), 255, np.uint8)
    gray[10:20, 30:60] = 0
    gray[40, 70] = 220  # a speck lighter than the threshold is not ink
    cfg = PREPROCESS.__class__(**{**PREPROCESS.__dict__, "pad": 3, "glyph_height": 0.0})
    out = prepare_image(gray, cfg)
    assert out.shape == (16, 36) and out[:3].min() == 255 and out[3:13, 3:33].max() == 0
    assert prepare_image(np.full((5, 5), 255, np.uint8), cfg) is None


def test_glyph_size_is_the_upper_quartile_of_component_heights():
    ink = torch.zeros(40, 200, dtype=torch.bool)
    for x in range(0, 150, 15):  # ten glyphs 12 pixels tall ...
        ink[10:22, x:x + 8] = True
    ink[5:35, 180:184] = True  # ... one tall bracket, a rule and a speck do not move the quartile
    ink[38, 0:150] = True
    ink[0, 199] = True
    assert inputs.glyph_size(ink) == 12.0
    assert inputs.glyph_size(ink.repeat_interleave(2, 0).repeat_interleave(2, 1)) == 24.0
    assert inputs.glyph_size(torch.zeros(5, 5, dtype=torch.bool)) == 0.0


FORMULA = r"\frac { \partial \phi } { \partial x ^ { \mu } } = \sum _ { i = 1 } ^ { N } g _ { i } ( x ) \, \alpha ^ { 2 }"


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> dict[int, np.ndarray]:
    """One formula rendered by LaTeX at three very different resolutions."""
    root = tmp_path_factory.mktemp("dpi")
    images = {}
    for dpi in (75, 150, 300):
        target = root / f"{dpi}.png"
        assert render_formulas([FORMULA], [target], seed=0, style=RenderStyle((dpi, dpi), (4, 4), 0.0), chunk=1, workers=1) == [True]
        images[dpi] = load_image(target)
    return images


def _similar(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of the ink of two images once both are resized to the first's shape."""
    b = np.asarray(Image.fromarray(b).resize((a.shape[1], a.shape[0]), Image.Resampling.BILINEAR), np.float32)
    return float(np.corrcoef(255.0 - a.astype(np.float32).ravel(), 255.0 - b.ravel())[0, 1])


def test_one_formula_at_three_dpi_is_normalised_to_one_size(renders):
    assert renders[300].shape[1] > 3.5 * renders[75].shape[1]  # the raw renders differ four-fold
    prepared = [prepare_image(image, PREPROCESS.__class__(**{**PREPROCESS.__dict__, "glyph_height": 10.0}))
                for image in renders.values()]
    widths = [p.shape[1] for p in prepared]
    assert max(widths) < 1.25 * min(widths), widths  # within the spread the training renders cover
    assert all(_similar(prepared[1], p) > 0.6 for p in prepared)


def test_preprocessing_prepares_images_as_the_exported_model_does(renders):
    """Preprocessing measures glyphs with SciPy's labelling, the exported model with its own TorchScript: the same
    figure on renders at three resolutions, on one blown up past the pixel limit (measured at half resolution) and
    on random ink (many components, touching only at corners), so the same prepared images."""
    rng = np.random.default_rng(0)
    big = np.kron(renders[300], np.ones((2, 2), dtype=np.uint8))
    assert (big < 200).sum() > 0 and big.size > inputs.MAX_MEASURED_PIXELS
    images = [*renders.values(), big]
    for ink in [image < 200 for image in images] + [rng.random(shape) < p for shape, p in
                                                    [((37, 211), 0.3), ((64, 64), 0.5), ((9, 500), 0.6), ((1, 1), 1.0)]]:
        assert preprocessing.glyph_size(ink) == inputs.glyph_size(torch.from_numpy(ink))
    assert preprocessing.glyph_size(np.zeros((5, 5), dtype=bool)) == 0.0
    for image in images:
        np.testing.assert_array_equal(prepare_image(image, PREPROCESS), inputs.prepare(
            torch.from_numpy(image), PREPROCESS.threshold, PREPROCESS.pad, PREPROCESS.glyph_height).numpy())


def test_low_and_high_resolution_renders_are_normalised_alike(tmp_path):
    """Over several formulas, rendered at 100 and at 300 dpi (supersampled, as pdflatex antialiases), the
    prepared images have the same size on average and per formula. The median component height (the measure
    before) shrank the 100 dpi renders by 9% on average, and scattered them more."""
    formulas = generate_formulas(24, 3, 60)
    widths = {}
    for dpi in (100, 300):
        targets = [tmp_path / f"{dpi}_{n}.png" for n in range(len(formulas))]
        style = RenderStyle((dpi, dpi), (4, 4), 0.0, (10,), (2.0, 2.0))
        assert all(render_formulas(formulas, targets, seed=0, style=style, chunk=len(formulas), workers=1))
        cfg = PREPROCESS.__class__(**{**PREPROCESS.__dict__, "glyph_height": 13.0})
        widths[dpi] = np.array([prepare_image(load_image(t), cfg).shape[1] for t in targets], np.float64)
    ratios = widths[100] / widths[300]
    assert abs(np.log(ratios).mean()) < 0.07, ratios  # the median measure: 0.093
    assert np.log(ratios).std() < 0.13, ratios  # the median measure: 0.156


def test_a_transparent_whole_page_reads_as_its_tight_crop(renders):
    """IM2LATEX-100K's own renders: a transparent A4 page at 200 dpi with the formula somewhere on it,
    its antialiasing in the alpha channel."""
    ink = 255 - renders[300]
    page = np.zeros((2339, 1654, 4), np.uint8)  # transparent black
    page[700:700 + ink.shape[0], 300:300 + ink.shape[1], 3] = ink
    buffer = io.BytesIO()
    Image.fromarray(page, "RGBA").save(buffer, format="PNG")
    cfg = PREPROCESS.__class__(**{**PREPROCESS.__dict__, "glyph_height": 10.0})
    from_page, from_crop = prepare_image(load_image(buffer.getvalue()), cfg), prepare_image(renders[300], cfg)
    assert abs(from_page.shape[1] - from_crop.shape[1]) <= 2 and abs(from_page.shape[0] - from_crop.shape[0]) <= 2
    assert _similar(from_crop, from_page) > 0.95


def test_dark_mode_and_a_tinted_background_read_as_dark_ink_on_white(renders):
    """A screenshot in dark mode (light ink on a dark background) and one on a tinted page give the same input
    as the original, not one block of 'ink'."""
    cfg = PREPROCESS.__class__(**{**PREPROCESS.__dict__, "glyph_height": 10.0})
    original = prepare_image(renders[150], cfg)
    assert (prepare_image(255 - renders[150], cfg) == original).all()
    tinted = prepare_image((renders[150] * (215 / 255)).round().astype(np.uint8), cfg)  # a light gray-blue page
    assert tinted.shape == original.shape and _similar(original, tinted) > 0.99
    dark_tinted = prepare_image((40 + (255 - renders[150]) * (180 / 255)).astype(np.uint8), cfg)  # gray ink on near-black
    assert dark_tinted.shape == original.shape and _similar(original, dark_tinted) > 0.99


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
    assert loaded.formulas == data["formulas"]
    for ids, formula, image in zip(loaded.ids, loaded.formulas, loaded.images):
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
