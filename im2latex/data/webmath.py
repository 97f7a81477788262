"""Render formulas as web pages show them: MathJax 3 (TeX input, SVG output, display mode) in Node, then the
SVG rasterised by resvg at a screen's font size and pixel density, antialiased, black on white. Users screenshot
formulas from MathJax/KaTeX pages; these renders teach the model that look. Same contract as
`rendering.render_formulas`: 8-bit grayscale PNGs, which formulas succeeded, results that depend only on the
inputs and the seed."""
import contextlib
import io
import json
import logging
import math
import multiprocessing.util
import random
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np
import resvg
from PIL import Image

from im2latex import Im2LatexError
from im2latex.data.rendering import PNG_LEVEL

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("mathjax_svg.mjs")
NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"  # `make mathjax` installs MathJax there
# MathJax sets a formula in 4-8 ms; these only stop a Node process that hangs, with room for a machine a hundred times
# slower than that (a data stage niced behind a training run once took more than 0.2 s a formula)
BATCH_TIMEOUT_S = 60.0
FORMULA_TIMEOUT_S = 1.0
# MathJax's SVG lengths are 1/1000 em. Glyphs may overhang the box MathJax computes (italic f, accents), so the
# canvas gets this margin on each side; ink that touches the canvas edge was clipped and is drawn again with
# WIDE_MARGIN. A small margin keeps the canvas small: rasterising costs per pixel (resvg also encodes a PNG)
MARGIN = 150
WIDE_MARGIN = 1000
# resvg's parse options: no system fonts (MathJax draws every glyph as a path) and a transform that draws the SVG at
# its own size. The `resvg` binding draws the same pixels as `resvg-py` in 0.43x its time (docs/experiments.md)
_OPTIONS = resvg.usvg.Options.default()
_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # an affine transform as (a, b, c, d, e, f): x' = a x + b y + c, y' = d x + e y + f
_WHITE = (255, 255, 255, 255)
_SVG_TAG = re.compile(r"<svg\b[^>]*>")
_VIEWBOX = re.compile(r'viewBox="([-\d.e]+) ([-\d.e]+) ([-\d.e]+) ([-\d.e]+)"')

Job = tuple[list[str], list[Path], int, tuple[int, ...], tuple[int, int], tuple[int, int]]


def require_node() -> None:
    """Fail with one clear line when Node or MathJax (the npm package mathjax-full) is missing."""
    if shutil.which("node") is None:
        raise Im2LatexError("node not found: the web math renderer needs Node.js and MathJax; "
                            "`make mathjax` (or `make repro`) installs them (as root on Debian/Ubuntu)")
    if not (NODE_MODULES / "mathjax-full" / "package.json").is_file():
        raise Im2LatexError(f"MathJax is not installed ({NODE_MODULES / 'mathjax-full'} is missing): "
                            "run `make mathjax` (or `make repro`) to install it with npm")


class MathJax:
    """One Node process running mathjax_svg.mjs that typesets batch after batch (a JSON line each way), so
    MathJax loads and V8 warms up once per worker, not once per chunk. MathJax keeps no state from one formula
    to the next (the script resets labels and loads no \\newcommand), so an SVG does not depend on the batch."""

    def __init__(self) -> None:
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: nobody reads it until something fails
        self._proc = subprocess.Popen(["node", str(SCRIPT), str(NODE_MODULES)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr, encoding="utf-8")

    def typeset(self, formulas: list[str]) -> list[str | None]:
        """Each formula's SVG, or None where MathJax refuses it (unknown macro, error node, unset character)."""
        if not formulas:
            return []
        assert self._proc.stdin is not None and self._proc.stdout is not None
        watchdog = threading.Timer(BATCH_TIMEOUT_S + FORMULA_TIMEOUT_S * len(formulas), self._proc.kill)
        watchdog.start()
        try:
            self._proc.stdin.write(json.dumps(formulas) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        finally:
            watchdog.cancel()
        out = json.loads(line) if line else None
        if not isinstance(out, list) or len(out) != len(formulas):
            self._stderr.seek(0)
            why = self._stderr.read().decode(errors="replace").strip().splitlines()[-1:] or [repr(out)[:200]]
            raise Im2LatexError(f"MathJax ({SCRIPT.name}) gave no answer for a batch of {len(formulas)} formulas within "
                                f"{BATCH_TIMEOUT_S + FORMULA_TIMEOUT_S * len(formulas):.0f} s: {why[0]}")
        for formula, result in zip(formulas, out):
            if not isinstance(result, str):
                log.debug("MathJax refused %r: %s", formula, result.get("error"))
        return [result if isinstance(result, str) else None for result in out]

    def close(self) -> None:
        """End the Node process (it exits at the end of its input)."""
        if self._proc.stdin:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()

    def __enter__(self) -> "MathJax":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def typeset(formulas: list[str]) -> list[str | None]:
    """Each formula's MathJax SVG, or None where MathJax refuses it; one Node process for the whole batch."""
    require_node()
    with MathJax() as mathjax:
        return mathjax.typeset(formulas)


def _draw(svg: str, tag: re.Match, box: tuple[float, float, float, float], em_px: float, margin: float) -> np.ndarray:
    x, y, w, h = box
    # whole pixels at exactly em_px per em: the viewBox grows to the rounded-up size instead of being stretched
    width, height = math.ceil((w + 2 * margin) * em_px / 1000), math.ceil((h + 2 * margin) * em_px / 1000)
    root = (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{width}" height="{height}" viewBox="{x - margin:.3f} {y - margin:.3f} '
            f'{width * 1000 / em_px:.3f} {height * 1000 / em_px:.3f}">')
    # MathJax draws every glyph as a path (the script refuses SVGs with <text>), so no system font is loaded
    # and the pixels do not depend on the machine's fonts
    png = resvg.render(resvg.usvg.Tree.from_str(root + svg[tag.end():], _OPTIONS), _IDENTITY, bg_color=_WHITE)
    return np.asarray(Image.open(io.BytesIO(bytes(png))).convert("L"))


def rasterise(svg: str, em_px: float) -> Image.Image | None:
    """The SVG at `em_px` pixels per em, black on white, cropped to its ink (mode "L"); None without ink."""
    tag = _SVG_TAG.search(svg)
    match = _VIEWBOX.search(tag.group(0)) if tag else None
    if tag is None or match is None:
        return None
    box = tuple(map(float, match.groups()))
    gray = _draw(svg, tag, box, em_px, MARGIN)
    ink = gray < 255
    if ink[0].any() or ink[-1].any() or ink[:, 0].any() or ink[:, -1].any():
        gray = _draw(svg, tag, box, em_px, WIDE_MARGIN)
        ink = gray < 255
    rows, cols = np.nonzero(ink.any(axis=1))[0], np.nonzero(ink.any(axis=0))[0]
    if rows.size == 0:
        return None
    return Image.fromarray(gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])


def render_chunk(job: Job, mathjax: MathJax) -> list[bool]:
    """Render one chunk at one font size and density (a screen) to the given PNG paths; returns which succeeded."""
    formulas, targets, seed, densities, font_px, pad = job
    rng = random.Random(seed)
    em_px = rng.randint(*font_px) * rng.choice(densities)  # a 2x screen draws the same CSS px with twice the pixels
    ok = []
    for svg, target in zip(mathjax.typeset(formulas), targets):
        sides = [rng.randint(*pad) for _ in range(4)]  # drawn for every formula, so a failure leaves the rest unchanged
        image = rasterise(svg, em_px) if svg is not None else None
        ok.append(image is not None)
        if image is not None:
            top, bottom, left, right = sides
            canvas = Image.new("L", (image.width + left + right, image.height + top + bottom), 255)
            canvas.paste(image, (left, top))
            canvas.save(target, compress_level=PNG_LEVEL)
    return ok


_worker_mathjax: MathJax | None = None


def worker_chunk(job: Job) -> list[bool]:
    """render_chunk with this process's own Node process, started at its first chunk and kept for the next ones. In
    a pool's worker it is closed when the worker exits (a killed worker's Node process ends too: its input closes);
    elsewhere, close_worker closes it."""
    global _worker_mathjax
    if _worker_mathjax is None:
        _worker_mathjax = MathJax()
        multiprocessing.util.Finalize(None, close_worker, exitpriority=10)
    return render_chunk(job, _worker_mathjax)


def close_worker() -> None:
    """End this process's Node process, if worker_chunk started one."""
    global _worker_mathjax
    if _worker_mathjax is not None:
        _worker_mathjax.close()
        _worker_mathjax = None


def chunk_jobs(formulas: list[str], targets: list[Path], seed: int, densities: tuple[int, ...] = (1, 2),
               font_px: tuple[int, int] = (14, 22), chunk: int = 200, pad: tuple[int, int] = (4, 16)) -> list[Job]:
    """The chunks of render_web (its arguments are described there), each seeded by the seed and its place."""
    if len(formulas) != len(targets):
        raise ValueError(f"{len(formulas)} formulas but {len(targets)} targets")
    if chunk < 1:
        raise Im2LatexError(f"the web renderer's chunk must be 1 or more, got {chunk}")
    return [(formulas[i:i + chunk], targets[i:i + chunk], seed * 1_000_003 + i, tuple(densities), font_px, pad)
            for i in range(0, len(formulas), chunk)]


def render_web(formulas: list[str], targets: list[Path], seed: int, densities: tuple[int, ...] = (1, 2),
               font_px: tuple[int, int] = (14, 22), chunk: int = 200, pad: tuple[int, int] = (4, 16)) -> list[bool]:
    """Render every formula with MathJax to its target PNG, chunk after chunk in one Node process; returns which
    succeeded. Each chunk draws a font size in CSS px (`font_px`, a range) and a screen density (`densities`), so an
    em is font_px x density pixels; `pad` is the range of the white border on each side, in pixels (screenshots of a
    formula's element on a page keep 6-18). The result depends only on the inputs and the seed.
    (The data stage renders these chunks in `rendering.render_parts`' pool, beside LaTeX's.)"""
    jobs = chunk_jobs(formulas, targets, seed, densities, font_px, chunk, pad)
    require_node()
    if not jobs:
        return []
    with MathJax() as mathjax:
        ok = [success for job in jobs for success in render_chunk(job, mathjax)]
    log.info("web renderer: %d of %d formulas refused by MathJax or without ink", ok.count(False), len(ok))
    return ok
