import dataclasses
import os
import random
import tempfile

import numpy as np
import pytest
import torch
from PIL import Image

from im2latex import Im2LatexError
from im2latex.data import generator, layout, rendering
from im2latex.data.generator import generate_formulas
from im2latex.data.rendering import RenderStyle, failed_formulas, render_formulas, render_parts
from im2latex.data.sources import build_synthetic
from im2latex.data.tokenizer import tokenize
from im2latex.model.inputs import glyph_size
from tests.conftest import TINY

CONSTRUCTS = [r"\frac", "_", "^", r"\sqrt", "[", r"\alpha", r"\hat", r"\bar", r"\tilde", r"\dot", r"\vec",
              r"\overline", r"\sum", r"\int", r"\left(", r"\right)", r"\mathrm", r"\mathbf", r"\cal", r"\mathcal",
              r"\,", r"\;", r"\quad", "~", r"\begin{array}", r"\begin{matrix}", "&", r"\\", r"\hspace", "!", ":",
              r"\mid", r"\vert", r"\stackrel", r"\displaystyle", r"\not", r"\biggl", r"\left<"]


def test_generation_is_deterministic_and_seed_dependent():
    assert generate_formulas(50, seed=3, max_tokens=150) == generate_formulas(50, seed=3, max_tokens=150)
    assert generate_formulas(50, seed=3, max_tokens=150) != generate_formulas(50, seed=4, max_tokens=150)


def test_formulas_are_normalised_distinct_and_within_length():
    formulas = generate_formulas(500, seed=0, max_tokens=60)
    assert len(set(formulas)) == 500
    for f in formulas:
        assert " ".join(tokenize(f)) == f  # already in normalised form
        assert 1 <= len(f.split(" ")) <= 60


def _balanced(tokens: list[str]) -> bool:
    depth = {"brace": 0, "left": 0, "env": 0}
    for t in tokens:
        depth["brace"] += (t == "{") - (t == "}")
        depth["left"] += (t.startswith("\\left") and not t[5:6].isalpha()) - (t.startswith("\\right") and not t[6:7].isalpha())
        depth["env"] += t.startswith("\\begin{") - t.startswith("\\end{")
        if min(depth.values()) < 0:
            return False
    return not any(depth.values())


def test_formulas_have_the_structure_of_real_ones():
    formulas = [f.split(" ") for f in generate_formulas(2000, seed=1, max_tokens=150)]
    assert all(_balanced(f) for f in formulas)
    # scripts are always braced, and the subscript comes first, as the dataset's normalisation writes them
    for f in formulas:
        for i, t in enumerate(f[:-1]):
            if t in ("_", "^"):
                assert f[i + 1] == "{"
    text = [" ".join(f) for f in formulas]
    share = lambda pattern: sum(pattern in t for t in text) / len(text)
    assert share(" = ") > 0.4  # equations
    assert share(" _ { ") > 0.6 and share(" ( ") > 0.3  # indices, function application and brackets
    assert share("\\frac {") > 0.2 and share("\\int") > 0.03 and share("\\sum _ {") > 0.02
    assert share("\\operatorname {") > 0.03 and share("\\mathrm {") > 0.05 and share("^ { \\prime } ") > 0.02
    # the normalisation braces every cell of an array; wide spaces mostly follow a comma between equations
    for f in formulas:
        for i, t in enumerate(f):
            if t == "&":
                assert f[i - 1] == "}" and f[i + 1] == "{"
    assert share(", \\quad") + share(", \\qquad") > 0.03 and share("\\mathrm { f o r") > 0.003


def test_pick_draws_as_random_choices_does():
    tables = [generator.SPACES, generator.LATIN, ((1, 2, 3), (80, 16, 4))]
    ours, theirs = generator.FormulaGenerator(5, 150), random.Random(5)
    for table in tables * 200:
        options, weights = (list(table), list(table.values())) if isinstance(table, dict) else table
        assert ours.pick(table) == theirs.choices(options, weights=weights)[0]


def test_every_construct_appears():
    tokens = {t for f in generate_formulas(1000, seed=0, max_tokens=150) for t in tokenize(f)}
    assert [c for c in CONSTRUCTS if c not in tokens] == []


def test_lengths_follow_the_real_spread():
    lengths = [len(f.split(" ")) for f in generate_formulas(2000, seed=0, max_tokens=150)]
    assert min(lengths) < 10 and max(lengths) > 130
    assert 45 < np.mean(lengths) < 70  # IM2LATEX-100K: mean 57.7


def test_every_rendered_formula_is_a_readable_grayscale_image(tiny_dataset):
    samples = [s for split in layout.SPLITS for s in layout.read_split(tiny_dataset, split)]
    assert len(samples) == 24
    for sample in samples:
        with Image.open(sample.image) as image:
            assert image.mode == "L" and image.width > 5 and image.height > 5
            assert np.asarray(image).min() < 150  # there is ink


def test_rendering_reports_failures_and_keeps_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(rendering, "LATEX_TIMEOUT_S", 2.0)
    # a macro that expands forever stands for the predictions that send TeX's error recovery into a loop
    formulas = [r"x ^ { 2 }", r"\frac { a } { b", r"\nosuchcommand x", r"\def \x { \x } \x", r"\sqrt { y }"]
    targets = [tmp_path / f"{i}.png" for i in range(len(formulas))]
    ok = render_formulas(formulas, targets, seed=0, style=RenderStyle((100, 100), (2, 2), 0.0), chunk=5, workers=1)
    assert ok == [True, False, False, False, True]
    assert [t.exists() for t in targets] == ok


def test_rendering_is_byte_stable(tmp_path):
    formulas = generate_formulas(6, seed=5, max_tokens=40)
    style = RenderStyle((90, 120), (2, 9), 0.02)
    a = [tmp_path / f"a{i}.png" for i in range(6)]
    b = [tmp_path / f"b{i}.png" for i in range(6)]
    render_formulas(formulas, a, seed=1, style=style, chunk=3, workers=2)
    render_formulas(formulas, b, seed=1, style=style, chunk=3, workers=1)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_thickened_strokes_are_pillows_min_filter(tiny_dataset):
    """The emboldening step (rendering.darkest_neighbour) draws the pixels Pillow's MinFilter(3) drew, on renders and
    on noise, odd shapes and single rows or columns included: every earlier render stays as it was."""
    from PIL import ImageFilter

    rng = np.random.default_rng(0)
    renders = [np.asarray(Image.open(p)) for p in sorted((tiny_dataset / layout.IMAGES).glob("*.png"))[:8]]
    noise = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(1, 1), (1, 7), (9, 1), (2, 3), (37, 120)]]
    for gray in renders + noise:
        expected = np.asarray(Image.fromarray(gray, mode="L").filter(ImageFilter.MinFilter(3)))
        thick = rendering.darkest_neighbour(gray)
        assert thick.dtype == np.uint8 and np.array_equal(thick, expected)
    assert rendering.darkest_neighbour(renders[0]).mean() < renders[0].mean()  # the ink grew


def test_chunks_of_one_font_share_a_latex_run_and_render_as_each_alone(tmp_path, monkeypatch):
    style = RenderStyle((90, 120), (2, 9), 0.02, font_sizes=(11,), downsample=(1.0, 2.0), bold=0.5)
    formulas = generate_formulas(7, seed=5, max_tokens=40)
    formulas[4] = r"\nosuchcommand x"  # an error on its page: that formula fails, its chunk's others do not
    chunks = [(0, 3), (3, 6), (6, 7)]
    jobs = lambda prefix: [(formulas[a:b], [tmp_path / f"{prefix}{i}.png" for i in range(a, b)], 40 + a, style, "latex")
                           for a, b in chunks]
    alone = [rendering.render_chunks([job])[0] for job in jobs("alone")]
    runs = []
    real_run = rendering.subprocess.run
    monkeypatch.setattr(rendering.subprocess, "run", lambda args, **kw: runs.append(args[0]) or real_run(args, **kw))
    together = rendering.render_chunks(jobs("together"))
    assert together == alone == [[True] * 3, [True, False, True], [True]]
    assert runs == ["latex"] + ["dvipng"] * 3  # one latex run, each chunk's pages drawn at its own dpi
    for i in range(7):
        assert (tmp_path / f"together{i}.png").exists() == (i != 4)
        if i != 4:
            assert (tmp_path / f"together{i}.png").read_bytes() == (tmp_path / f"alone{i}.png").read_bytes()


def test_parts_render_in_one_pool_as_each_alone_and_latex_sets_what_mathjax_refuses(tmp_path, caplog):
    # every chunk MathJax's: \dag is not in MathJax's TeX, so LaTeX sets it, with the seed of its chunk
    style = RenderStyle((90, 120), (2, 9), 0.02, renderers=(("mathjax", 1.0),))
    parts = [(generate_formulas(3, seed=1, max_tokens=30) + [r"a \dag"], 2, 2), (generate_formulas(5, seed=2, max_tokens=30), 3, 3)]
    alone, alone_used = [], []
    for k, (formulas, seed, chunk) in enumerate(parts):
        targets = [tmp_path / f"alone{k}-{i}.png" for i in range(len(formulas))]
        assert render_formulas(formulas, targets, seed=seed, style=style, chunk=chunk, workers=1, used=alone_used) == [True] * len(formulas)
        alone += [t.read_bytes() for t in targets]
    together = [[tmp_path / f"together{k}-{i}.png" for i in range(len(formulas))] for k, (formulas, _, _) in enumerate(parts)]
    used = []
    with caplog.at_level("INFO", logger="im2latex.data.rendering"):
        ok = render_parts([(formulas, targets, seed, chunk) for (formulas, seed, chunk), targets in zip(parts, together)],
                          style, workers=2, used=used)
    assert ok == [True] * 9 and used == alone_used == ["mathjax"] * 3 + ["latex"] + ["mathjax"] * 5
    assert [t.read_bytes() for targets in together for t in targets] == alone
    assert "MathJax set 8 of 9 formulas; LaTeX sets the 1 it could not" in caplog.text


@pytest.mark.skipif(not os.access("/dev/shm", os.W_OK), reason="a machine without /dev/shm")
def test_latex_pages_go_to_memory_unless_tmpdir_says_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("TMPDIR", raising=False)
    with rendering.scratch_dir("im2latex-test-") as folder:
        assert os.path.dirname(folder) == "/dev/shm" and os.path.isdir(folder)
    assert not os.path.exists(folder)  # removed on leaving
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # Python reads TMPDIR once
    with rendering.scratch_dir("im2latex-test-") as folder:
        assert os.path.dirname(folder) == str(tmp_path)


def test_the_test_and_validation_sets_do_not_depend_on_the_training_size(tmp_path):
    def build(name: str, train: int) -> dict[str, list[tuple[str, bytes]]]:
        (tmp_path / name).mkdir()
        build_synthetic(tmp_path / name, dataclasses.replace(TINY, train=train, chunk=4), seed=3)
        return {split: [(s.formula, s.image.read_bytes()) for s in layout.read_split(tmp_path / name, split)]
                for split in ("validate", "test")}

    small, large = build("small", 2), build("large", 9)
    assert small == large and len(small["test"]) == 4 and len(small["validate"]) == 4


def test_a_chunk_under_one_is_refused_in_one_line(tmp_path):
    with pytest.raises(Im2LatexError, match="eval_chunk must be 1 or more"):
        build_synthetic(tmp_path, dataclasses.replace(TINY, eval_chunk=0), seed=0)
    assert not any(tmp_path.iterdir())  # nothing written


def test_the_test_split_spans_many_render_styles(tmp_path):
    """Each LaTeX run draws one dpi; the test split is rendered in runs of `eval_chunk`, so with runs of one formula
    its glyphs vary with the dpi range (50-400), while in one run they share a dpi."""
    def glyph_sizes(name: str, eval_chunk: int) -> list[float]:
        (tmp_path / name).mkdir()
        cfg = dataclasses.replace(TINY, train=1, validate=0, test=8, dpi=(50, 400), font_sizes=[10], downsample=(1.0, 1.0),
                                  bold=0.0, blur=0.0, binarise=0.0, jpeg=0.0, noise=0.0, eval_chunk=eval_chunk)
        build_synthetic(tmp_path / name, cfg, seed=3)
        return [glyph_size(torch.from_numpy(np.asarray(Image.open(s.image)) < 200))
                for s in layout.read_split(tmp_path / name, "test")]

    spread, single = glyph_sizes("spread", 1), glyph_sizes("single", 8)
    assert len(spread) == len(single) == 8
    assert max(spread) / min(spread) > 2.5
    assert max(single) / min(single) < 1.8


def test_log_parser_attributes_errors_to_formulas():
    log = "IM2LATEX-FORMULA 0\nIM2LATEX-FORMULA 1\n! Undefined control sequence.\nl.9 ...\nIM2LATEX-FORMULA 2\n"
    assert failed_formulas(log) == {1}


FORMULA = r"\int _ { 0 } ^ { 1 } \frac { \alpha x ^ { 2 } } { \sqrt { y } } d x = \sum _ { i = 1 } ^ { N } \beta _ { i }"


def ink_box(path) -> tuple[int, int]:
    ink = np.asarray(Image.open(path)) < 128
    rows, cols = ink.any(1).nonzero()[0], ink.any(0).nonzero()[0]
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


@pytest.mark.parametrize("font", ["latex-times", "latex-palatino", "latex-lmodern"])
def test_each_latex_font_sets_a_formula_at_the_size_of_computer_modern(font, tmp_path):
    images = {}
    for name in ("latex", font):
        style = RenderStyle((150, 150), (4, 4), 0.0, renderers=((name, 1.0),))
        assert render_formulas([FORMULA], [tmp_path / f"{name}.png"], seed=0, style=style, chunk=1, workers=1) == [True]
        images[name] = np.asarray(Image.open(tmp_path / f"{name}.png"))
    (h, w), (h0, w0) = ink_box(tmp_path / f"{font}.png"), ink_box(tmp_path / "latex.png")
    assert 0.8 < h / h0 < 1.1 and 0.8 < w / w0 < 1.1  # the same formula at the same size ...
    assert images[font].shape != images["latex"].shape or (images[font] != images["latex"]).any()  # ... in another font


def test_dark_mode_renders_are_the_inverted_renders_and_prepare_alike(tmp_path):
    from im2latex.model.inputs import prepare

    formulas = generate_formulas(4, seed=2, max_tokens=30)
    plain, dark = [tmp_path / f"p{i}.png" for i in range(4)], [tmp_path / f"d{i}.png" for i in range(4)]
    style = RenderStyle((90, 160), (2, 9), 0.01, downsample=(1.0, 2.0), blur=0.3)
    render_formulas(formulas, plain, seed=1, style=style, chunk=2, workers=1)
    render_formulas(formulas, dark, seed=1, style=dataclasses.replace(style, dark=1.0), chunk=2, workers=1)
    for p, d in zip(plain, dark):
        a, b = np.asarray(Image.open(p)), np.asarray(Image.open(d))
        assert (b == 255 - a).all() and np.median(b) < 30  # light ink on a dark page
        assert torch.equal(prepare(torch.from_numpy(a), 200, 4, 12.0), prepare(torch.from_numpy(b), 200, 4, 12.0))


def test_a_tinted_page_keeps_its_ink_darker_than_the_threshold(tmp_path):
    formulas = generate_formulas(4, seed=3, max_tokens=30)
    targets = [tmp_path / f"{i}.png" for i in range(4)]
    render_formulas(formulas, targets, seed=2, style=RenderStyle((120, 120), (4, 9), 0.0, tinted=1.0), chunk=4, workers=1)
    for path in targets:
        image = np.asarray(Image.open(path))
        assert 200 <= np.median(image) <= 245 and image.min() <= 110  # a gray page, ink in a text colour's gray


def test_the_data_report_gives_each_renderers_share(tmp_path):
    from im2latex.data.report import describe

    cfg = dataclasses.replace(TINY, train=16, chunk=4, eval_chunk=4,
                              renderers={"latex": 1.0, "latex-times": 1.0, "latex-palatino": 1.0, "latex-lmodern": 1.0})
    build_synthetic(tmp_path, cfg, seed=5)
    shares = describe(tmp_path)["renderers"]
    assert set(shares) <= {"latex", "latex-times", "latex-palatino", "latex-lmodern"} and len(shares) >= 3
    assert sum(shares.values()) == pytest.approx(1.0)


def test_chunks_are_shared_out_among_renderers_in_proportion_to_their_weights():
    weights = (("latex", 0.72), ("latex-times", 0.06), ("latex-palatino", 0.06), ("latex-lmodern", 0.04), ("mathjax", 0.12))
    order = rendering.assign_renderers(weights, 88, seed=1)
    counts = {name: order.count(name) for name, _ in weights}
    assert len(order) == 88 and all(abs(counts[n] - w * 88) < 1 for n, w in weights), counts
    assert order != sorted(order) and order == rendering.assign_renderers(weights, 88, seed=1)
    assert rendering.assign_renderers(weights, 88, seed=2) != order
    assert rendering.assign_renderers((("latex", 0.0),), 3, seed=0) == ["latex"] * 3
