"""Render formulas as web pages show them: MathJax 3 (TeX input, SVG output, display mode) in Node, then the
SVG rasterised by resvg at a screen's font size and pixel density, antialiased, black on white. Users screenshot
formulas from MathJax/KaTeX pages; these renders teach the model that look. Same contract as
`rendering.render_formulas`: 8-bit grayscale PNGs, which formulas succeeded, results that depend only on the
inputs and the seed."""
import io
import json
import logging
import math
import os
import random
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import resvg_py
from PIL import Image
from tqdm import tqdm

from im2latex import Im2LatexError

log = logging.getLogger(__name__)

SCRIPT = Path(__file__).with_name("mathjax_svg.mjs")
NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"  # `make mathjax` installs MathJax there
# MathJax loads in ~0.2 s; the typesetting of a chunk is what takes the time, so a stuck one is what this guards
NODE_TIMEOUT_S = 30.0
NODE_TIMEOUT_PER_FORMULA_S = 0.2
# MathJax's SVG lengths are 1/1000 em; glyphs may overhang the viewBox (italic corrections, big operators),
# so it is widened by this margin on each side before rasterising and the ink is cropped afterwards
MARGIN = 500
_SVG_TAG = re.compile(r"<svg\b[^>]*>")
_VIEWBOX = re.compile(r'viewBox="([-\d.e]+) ([-\d.e]+) ([-\d.e]+) ([-\d.e]+)"')


def require_node() -> None:
    """Fail with one clear line when Node or MathJax (the npm package mathjax-full) is missing."""
    if shutil.which("node") is None:
        raise Im2LatexError("node not found: the web math renderer needs Node.js and MathJax; "
                            "`make mathjax` (or `make repro`) installs them (as root on Debian/Ubuntu)")
    if not (NODE_MODULES / "mathjax-full" / "package.json").is_file():
        raise Im2LatexError(f"MathJax is not installed ({NODE_MODULES / 'mathjax-full'} is missing): "
                            "run `make mathjax` (or `make repro`) to install it with npm")


def typeset(formulas: list[str]) -> list[str | None]:
    """Each formula's MathJax SVG, or None where MathJax refuses it; one Node process for the whole batch."""
    if not formulas:
        return []
    try:
        done = subprocess.run(["node", str(SCRIPT), str(NODE_MODULES)], input=json.dumps(formulas),
                              capture_output=True, text=True, check=True,
                              timeout=NODE_TIMEOUT_S + NODE_TIMEOUT_PER_FORMULA_S * len(formulas))
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"{SCRIPT.name} failed: {err.stderr.strip().splitlines()[-1:] or err}") from err
    out = json.loads(done.stdout)
    if len(out) != len(formulas):
        raise RuntimeError(f"{SCRIPT.name} returned {len(out)} results for {len(formulas)} formulas")
    for formula, result in zip(formulas, out):
        if not isinstance(result, str):
            log.debug("MathJax refused %r: %s", formula, result.get("error"))
    return [result if isinstance(result, str) else None for result in out]


def rasterise(svg: str, em_px: float) -> Image.Image | None:
    """The SVG at `em_px` pixels per em, black on white, cropped to its ink (mode "L"); None without ink."""
    tag = _SVG_TAG.search(svg)
    box = _VIEWBOX.search(tag.group(0)) if tag else None
    if box is None:
        return None
    x, y, w, h = map(float, box.groups())
    # whole pixels at exactly em_px per em: the viewBox grows to the rounded-up size instead of being stretched
    width, height = math.ceil((w + 2 * MARGIN) * em_px / 1000), math.ceil((h + 2 * MARGIN) * em_px / 1000)
    root = (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{width}" height="{height}" viewBox="{x - MARGIN:.3f} {y - MARGIN:.3f} '
            f'{width * 1000 / em_px:.3f} {height * 1000 / em_px:.3f}">')
    # MathJax draws every glyph as a path, so no system font is used: the pixels do not depend on the machine
    png = resvg_py.svg_to_bytes(svg_string=root + svg[tag.end():], background="white", skip_system_fonts=True)
    gray = np.asarray(Image.open(io.BytesIO(bytes(png))).convert("L"))
    rows, cols = np.nonzero(gray < 255)
    if rows.size == 0:
        return None
    return Image.fromarray(gray[rows.min():rows.max() + 1, cols.min():cols.max() + 1])


def render_chunk(job: tuple[list[str], list[Path], int, tuple[int, ...], tuple[int, int], tuple[int, int]]) -> list[bool]:
    """Render one chunk at one font size and density (a screen) to the given PNG paths; returns which succeeded."""
    formulas, targets, seed, densities, font_px, pad = job
    rng = random.Random(seed)
    em_px = rng.randint(*font_px) * rng.choice(densities)  # a 2x screen draws the same CSS px with twice the pixels
    ok = []
    for svg, target in zip(typeset(formulas), targets):
        sides = [rng.randint(*pad) for _ in range(4)]  # drawn for every formula, so a failure leaves the rest unchanged
        image = rasterise(svg, em_px) if svg is not None else None
        ok.append(image is not None)
        if image is not None:
            top, bottom, left, right = sides
            canvas = Image.new("L", (image.width + left + right, image.height + top + bottom), 255)
            canvas.paste(image, (left, top))
            canvas.save(target, optimize=False)
    return ok


def render_web(formulas: list[str], targets: list[Path], seed: int, densities: tuple[int, ...] = (1, 2),
               font_px: tuple[int, int] = (14, 22), chunk: int = 200, workers: int | None = None,
               pad: tuple[int, int] = (2, 8)) -> list[bool]:
    """Render every formula with MathJax to its target PNG in parallel chunks; returns which succeeded.
    Each chunk draws a font size in CSS px (`font_px`, a range) and a screen density (`densities`), so an em is
    font_px x density pixels; `pad` is the range of the white border on each side. The result depends only on
    the inputs and the seed, not on the number of workers."""
    if len(formulas) != len(targets):
        raise ValueError(f"{len(formulas)} formulas but {len(targets)} targets")
    if chunk < 1:
        raise Im2LatexError(f"the web renderer's chunk must be 1 or more, got {chunk}")
    require_node()
    jobs = [(formulas[i:i + chunk], targets[i:i + chunk], seed * 1_000_003 + i, tuple(densities), font_px, pad)
            for i in range(0, len(formulas), chunk)]
    # threads suffice: each chunk's typesetting, most of the work, runs in its own Node process
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    ok: list[bool] = []
    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(formulas), desc="render web", unit="formula") as bar:
        for result in pool.map(render_chunk, jobs):
            ok += result
            bar.update(len(result))
    log.info("web renderer: %d of %d formulas refused by MathJax or without ink", ok.count(False), len(ok))
    return ok
