"""Render formulas to grayscale PNGs with real LaTeX, as IM2LATEX-100K was rendered:
one `latex` run over a document with one formula per page, then `dvipng -T tight`."""
import contextlib
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from im2latex import Im2LatexError


PREAMBLE = r"""\documentclass[12pt]{article}
\usepackage{amsmath,amssymb}
\pagestyle{empty}
\begin{document}
"""
SIZES = [r"\normalsize", r"\normalsize", r"\large", r"\small"]
LATEX_TIMEOUT_S = 10.0
_MARK = re.compile(r"^IM2LATEX-FORMULA (\d+)$")


@dataclass(frozen=True)
class RenderStyle:
    dpi: tuple[int, int]  # range a chunk's dpi is drawn from
    pad: tuple[int, int]  # range of the white border on each side, pixels
    noise: float  # fraction of pixels darkened to a light gray speck


def require_latex() -> None:
    """Fail with one clear line when the TeX tools are missing."""
    missing = [tool for tool in ("latex", "dvipng") if shutil.which(tool) is None]
    if missing:
        raise Im2LatexError(
            f"{' and '.join(missing)} not found: install TeX, e.g. "
            "`apt-get install texlive-latex-base dvipng` (Debian/Ubuntu) or `make repro` as root"
        )


def _document(formulas: list[str], rng: random.Random) -> str:
    pages = [
        f"\\typeout{{IM2LATEX-FORMULA {i}}}\n{rng.choice(SIZES)}\\mbox{{}}\\mbox{{$\\displaystyle {f}$}}\n\\newpage\n"
        for i, f in enumerate(formulas)
    ]
    return PREAMBLE + "".join(pages) + "\\end{document}\n"


def failed_formulas(log_text: str) -> set[int]:
    """Indices of the formulas whose page produced a LaTeX error ('! ...' after its marker)."""
    failed, current = set(), None
    for line in log_text.splitlines():
        mark = _MARK.match(line)
        if mark:
            current = int(mark.group(1))
        elif line.startswith("! ") and current is not None:
            failed.add(current)
    return failed


def _page_count(log_text: str) -> int:
    match = re.search(r"Output written on \S+ \((\d+) pages?", log_text)
    return int(match.group(1)) if match else 0


def _finish(page: Path, rng: random.Random, style: RenderStyle) -> Image.Image:
    """Pad the tight crop with a random white border and add light noise."""
    ink = np.asarray(Image.open(page).convert("L"), dtype=np.float32)
    top, bottom, left, right = (rng.randint(*style.pad) for _ in range(4))
    canvas = np.full((ink.shape[0] + top + bottom, ink.shape[1] + left + right), 255.0, dtype=np.float32)
    canvas[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    if style.noise > 0:  # sparse light-gray specks, like dust on a scan (dense noise would bloat the PNGs)
        speckle = np.random.default_rng(rng.getrandbits(32))
        spots = speckle.random(canvas.shape) < style.noise
        canvas[spots] = np.minimum(canvas[spots], speckle.uniform(205, 250, int(spots.sum())))
    return Image.fromarray(np.clip(canvas, 0, 255).round().astype(np.uint8), mode="L")


def render_chunk(job: tuple[list[str], list[Path], int, RenderStyle]) -> list[bool]:
    """Render one chunk of formulas to the given PNG paths; returns which succeeded."""
    formulas, targets, seed, style = job
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="im2latex-render-") as tmp:
        tex = Path(tmp, "formulas.tex")
        tex.write_text(_document(formulas, rng))
        try:  # some broken formulas send TeX's error recovery into an endless loop
            subprocess.run(["latex", "-interaction=nonstopmode", "-no-shell-escape", tex.name], cwd=tmp,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                           timeout=LATEX_TIMEOUT_S + 0.05 * len(formulas))
            log_text = Path(tmp, "formulas.log").read_text(errors="replace")
        except subprocess.TimeoutExpired:
            log_text = ""
        dvi = Path(tmp, "formulas.dvi")
        failed = failed_formulas(log_text)
        if not log_text or not dvi.exists() or _page_count(log_text) != len(formulas):
            # a fatal error or a loop swallowed pages, so pages no longer match formulas: render one by one
            if len(formulas) == 1:
                return [False]
            return [render_chunk(([f], [t], seed + i, style))[0] for i, (f, t) in enumerate(zip(formulas, targets))]
        dpi = rng.randint(*style.dpi)
        subprocess.run(["dvipng", "-q", "-T", "tight", "-D", str(dpi), "-bg", "White", "-o", "page%d.png", dvi.name],
                       cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=600)
        pages = sorted(Path(tmp).glob("page*.png"), key=lambda p: int(p.stem[4:]))
        if len(pages) != len(formulas):
            return [False] * len(formulas)
        ok = []
        for i, (page, target) in enumerate(zip(pages, targets)):
            image = _finish(page, rng, style)  # drawn for every page, so a failure leaves the others unchanged
            ok.append(i not in failed)
            if ok[-1]:
                image.save(target, optimize=False)
        return ok


def render_formulas(formulas: list[str], targets: list[Path], seed: int, style: RenderStyle,
                    chunk: int, workers: int | None = None) -> list[bool]:
    """Render every formula to its target PNG in parallel chunks; returns which succeeded.
    The result depends only on the inputs and the seed, not on the number of workers."""
    require_latex()
    jobs = [(formulas[i:i + chunk], targets[i:i + chunk], seed * 1_000_003 + i, style)
            for i in range(0, len(formulas), chunk)]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    ok: list[bool] = []
    with contextlib.ExitStack() as stack, tqdm(total=len(formulas), desc="render", unit="formula") as bar:
        pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers)) if workers > 1 else None
        for result in pool.imap(render_chunk, jobs) if pool else map(render_chunk, jobs):
            ok += result
            bar.update(len(result))
    return ok
