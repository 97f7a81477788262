"""Render formulas to grayscale PNGs with real LaTeX, as IM2LATEX-100K was rendered: one `latex` run
over a document with one formula per page, then `dvipng -T tight`. Each chunk draws a font size and
dpi; each image may then be downsampled (antialiasing, like the dataset's 200 dpi renders halved),
emboldened, blurred, binarised or JPEG-compressed, so the renders span what users feed."""
import io
import logging
import contextlib
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from tqdm import tqdm

from im2latex import Im2LatexError

log = logging.getLogger(__name__)


_PREAMBLE = r"""\documentclass[{size}pt]{article}
\usepackage{amsmath,amssymb}
\pagestyle{empty}
\begin{document}
"""


# Renderers of the synthetic data: LaTeX in Computer Modern and in three other math fonts from Debian's TeX packages
# (texlive-fonts-recommended, lmodern), and MathJax's SVG as a web page shows it (im2latex/data/webmath.py)
LATEX_FONTS = {"latex": "", "latex-times": "\\usepackage{mathptmx}\n", "latex-palatino": "\\usepackage{mathpazo}\n",
               "latex-lmodern": "\\usepackage{lmodern}\n"}
RENDERERS = (*LATEX_FONTS, "mathjax")


def preamble(size: int, font: str = "latex") -> str:
    """The document's start, at a font size of 10, 11 or 12 pt, in one of LATEX_FONTS."""
    return _PREAMBLE.replace("{size}", str(size)).replace("\\begin{document}", LATEX_FONTS[font] + "\\begin{document}")


# zlib's fastest level for the PNGs written: the same pixels as Pillow's default level (6) in about half its time,
# files 12-15% larger
PNG_LEVEL = 1
def scratch_dir(prefix: str) -> tempfile.TemporaryDirectory:
    """A temporary folder for files written and read once (LaTeX's pages): in memory (/dev/shm) where the machine has
    one, unless TMPDIR names another place. dvipng writes a file per formula, and on this project's 2-core machine
    creating a small file took 0.8 ms in /tmp and 0.01 ms in /dev/shm."""
    shm = "/dev/shm"
    memory = "TMPDIR" not in os.environ and os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK)
    return tempfile.TemporaryDirectory(prefix=prefix, dir=shm if memory else None)


SIZES = [r"\normalsize", r"\normalsize", r"\large", r"\small"]
LATEX_TIMEOUT_S = 10.0
_MARK = re.compile(r"^IM2LATEX-FORMULA (\d+)$")


@dataclass(frozen=True)
class RenderStyle:
    dpi: tuple[int, int]  # range a chunk's dpi is drawn from
    pad: tuple[int, int]  # range of the white border on each side, pixels
    noise: float  # fraction of pixels darkened to a light gray speck
    font_sizes: tuple[int, ...] = (12,)  # document class size (10, 11 or 12 pt), drawn per chunk
    downsample: tuple[float, float] = (1.0, 1.0)  # a chunk is rendered at dpi x f, then shrunk by f (LANCZOS)
    bold: float = 0.0  # share of images whose strokes are thickened
    blur: float = 0.0  # share of images blurred a little
    binarise: float = 0.0  # share of images thresholded to black and white
    jpeg: float = 0.0  # share of images saved through a low-quality JPEG
    renderers: tuple[tuple[str, float], ...] = (("latex", 1.0),)  # (renderer, weight): chunks shared out by weight
    tinted: float = 0.0  # share of images on a tinted background, in a text colour's gray
    dark: float = 0.0  # share of images in dark mode: light ink on a dark background


def require_latex() -> None:
    """Fail with one clear line when the TeX tools are missing."""
    missing = [tool for tool in ("latex", "dvipng") if shutil.which(tool) is None]
    if missing:
        raise Im2LatexError(
            f"{' and '.join(missing)} not found: install TeX, e.g. "
            "`apt-get install texlive-latex-base dvipng` (Debian/Ubuntu) or `make repro` as root"
        )


_LENGTH = re.compile(r"(\\[hv]space\*?) \{ ([^{}]*) \}")


def latex_source(formula: str) -> str:
    """The normalised formula as TeX reads it: the dataset spells lengths apart (`\\hspace { 1 c m }`), TeX wants
    `\\hspace{1cm}`."""
    return _LENGTH.sub(lambda m: f"{m.group(1)}{{{m.group(2).replace(' ', '')}}}", formula)


def _document(formulas: list[str], sizes: list[str], size: int, font: str = "latex") -> str:
    pages = [f"\\typeout{{IM2LATEX-FORMULA {i}}}\n{s}\\mbox{{}}\\mbox{{$\\displaystyle {f}$}}\n\\newpage\n"
             for i, (f, s) in enumerate(zip(formulas, sizes))]
    return preamble(size, font) + "".join(pages) + "\\end{document}\n"


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


def page_count(log_text: str) -> int:
    """Pages the `latex` run wrote, from its log."""
    match = re.search(r"Output written on \S+ \((\d+) pages?", log_text)
    return int(match.group(1)) if match else 0


def looks(image: Image.Image, rng: random.Random, tinted: float, dark: float) -> Image.Image:
    """Dark ink on white -> maybe a tinted page with ink in a text colour's gray, maybe dark mode (inverted).
    Its draws come from a generator of their own, so that the other draws of a chunk are the same with or without it."""
    tint, invert, page, ink = rng.random() < tinted, rng.random() < dark, rng.randint(200, 245), rng.randint(0, 110)
    if not (tint or invert):
        return image
    gray = np.asarray(image, dtype=np.float32) / 255.0
    gray = ink + (page - ink) * gray if tint else 255.0 * gray
    return Image.fromarray((255.0 - gray if invert else gray).round().astype(np.uint8), mode="L")


def darkest_neighbour(gray: np.ndarray) -> np.ndarray:
    """Each pixel the darkest of its 3x3 neighbourhood, the edges repeated outwards: strokes a pixel thicker. The same
    pixels as Pillow's MinFilter(3) in a tenth of its time (two 3-pixel passes instead of a 9-pixel rank per pixel)."""
    edged = np.pad(gray, 1, mode="edge")
    rows = np.minimum(np.minimum(edged[:-2], edged[1:-1]), edged[2:])
    return np.minimum(np.minimum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def _finish(page: Path, rng: random.Random, style: RenderStyle, factor: float, looks_rng: random.Random) -> Image.Image:
    """Degrade the tight crop as the style says, pad it with a random white border and add light noise.
    Every random draw is made whatever the outcome, so one image's style never shifts the next one's."""
    image = Image.open(page).convert("L")
    bold, blur, binarise, jpeg = (rng.random() < style.bold, rng.random() < style.blur,
                                  rng.random() < style.binarise, rng.random() < style.jpeg)
    radius, cut, quality = rng.uniform(0.3, 0.9), rng.randint(110, 190), rng.randint(30, 85)
    if bold:
        image = Image.fromarray(darkest_neighbour(np.asarray(image)), mode="L")
    if factor > 1.0:
        size = (max(1, round(image.width / factor)), max(1, round(image.height / factor)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    if binarise:
        image = image.point(lambda v: 255 if v >= cut else 0)
    ink = np.asarray(image)
    top, bottom, left, right = (rng.randint(*style.pad) for _ in range(4))
    canvas = np.full((ink.shape[0] + top + bottom, ink.shape[1] + left + right), 255, dtype=np.uint8)
    canvas[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
    if style.noise > 0:  # sparse light-gray specks, like dust on a scan (dense noise would bloat the PNGs)
        speckle = np.random.default_rng(rng.getrandbits(32))
        spots = speckle.random(canvas.shape) < style.noise
        # a speck's gray rounded from float32, as when the canvas was float32: the same pixels as every earlier render
        specks = speckle.uniform(205, 250, int(spots.sum())).astype(np.float32).round()
        canvas[spots] = np.minimum(canvas[spots], specks)
    image = looks(Image.fromarray(canvas, mode="L"), looks_rng, style.tinted, style.dark)
    if jpeg:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("L")
    return image


Job = tuple[list[str], list[Path], int, RenderStyle, str]  # formulas, their PNG paths, seed, style, one of LATEX_FONTS
# smaller chunks of one font are joined into `latex` runs of about this many formulas (the evaluation splits' chunks of
# 10, twenty to a run): a run costs 0.1-0.15 s before its first page, as much as 150 formulas' pages
RUN = 200


def render_chunks(jobs: list[Job]) -> list[list[bool]]:
    """Render chunks of formulas with LaTeX to the given PNG paths; returns which succeeded, chunk by chunk. Each chunk
    draws its document's font size, dpi and looks from its seed. Chunks of one font and size share one `latex` run,
    and each chunk's pages are drawn by a dvipng of its own at its dpi: the pixels are those of the chunk set alone."""
    results: dict[int, list[bool]] = {}
    runs: dict[tuple[str, int], list[tuple[int, random.Random, list[str]]]] = {}
    for k, (formulas, _, seed, style, font) in enumerate(jobs):
        rng = random.Random(seed)
        size = rng.choice(style.font_sizes)
        runs.setdefault((font, size), []).append((k, rng, [rng.choice(SIZES) for _ in formulas]))
    for (font, size), members in runs.items():
        formulas = [f for k, _, _ in members for f in jobs[k][0]]
        with scratch_dir("im2latex-render-") as tmp:
            tex = Path(tmp, "formulas.tex")
            tex.write_text(_document(formulas, [s for _, _, sizes in members for s in sizes], size, font))
            try:  # some broken formulas send TeX's error recovery into an endless loop
                subprocess.run(["latex", "-interaction=nonstopmode", "-no-shell-escape", tex.name], cwd=tmp,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                               timeout=LATEX_TIMEOUT_S + 0.05 * len(formulas))
                log_text = Path(tmp, "formulas.log").read_text(errors="replace")
            except subprocess.TimeoutExpired:
                log_text = ""
            dvi = Path(tmp, "formulas.dvi")
            if not log_text or not dvi.exists() or page_count(log_text) != len(formulas):
                # a fatal error or a loop swallowed pages, so pages no longer match formulas: each chunk alone, then
                # a chunk alone formula by formula
                for k, _, _ in members:
                    results[k] = render_chunks([jobs[k]])[0] if len(members) > 1 else _one_by_one(jobs[k])
                continue
            failed, first = failed_formulas(log_text), 0
            for k, rng, _ in members:
                formulas, targets, seed, style, _ = jobs[k]
                results[k] = _draw_pages(tmp, dvi, first, len(formulas), targets, failed, rng, random.Random(f"looks {seed}"), style)
                first += len(formulas)
    return [results[k] for k in range(len(jobs))]


def _one_by_one(job: Job) -> list[bool]:
    formulas, targets, seed, style, font = job
    if len(formulas) == 1:
        return [False]
    return [render_chunks([([f], [t], seed + i, style, font)])[0][0] for i, (f, t) in enumerate(zip(formulas, targets))]


def _draw_pages(tmp: str, dvi: Path, first: int, count: int, targets: list[Path], failed: set[int], rng: random.Random,
                looks_rng: random.Random, style: RenderStyle) -> list[bool]:
    """dvipng the pages first + 1 .. first + count of the run at the chunk's dpi, finish and save each."""
    dpi, factor = rng.randint(*style.dpi), rng.uniform(*style.downsample)
    subprocess.run(["dvipng", "-q", "-T", "tight", "-D", str(round(dpi * factor)), "-bg", "White", "-p", f"={first + 1}",
                    "-l", f"={first + count}", "-o", "page%d.png", dvi.name],
                   cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=600)
    pages = [Path(tmp, f"page{first + 1 + i}.png") for i in range(count)]
    if not all(page.exists() for page in pages):
        return [False] * count
    ok = []
    for i, (page, target) in enumerate(zip(pages, targets)):
        image = _finish(page, rng, style, factor, looks_rng)  # drawn for every page: a failure leaves the others unchanged
        ok.append(first + i not in failed)
        if ok[-1]:
            image.save(target, compress_level=PNG_LEVEL)
    return ok


def assign_renderers(renderers: tuple[tuple[str, float], ...], chunks: int, seed: int) -> list[str]:
    """A renderer for each of `chunks` chunks, in the shares of `renderers`' weights to the nearest chunk (largest
    remainders), in an order shuffled by the seed. Drawn apart from the chunks' other draws, so the styles are the
    same whatever the weights."""
    names, weights = [n for n, _ in renderers], [w for _, w in renderers]
    if sum(weights) <= 0:
        return ["latex"] * chunks
    quotas = [w / sum(weights) * chunks for w in weights]
    counts = [int(q) for q in quotas]
    for i in sorted(range(len(names)), key=lambda i: int(quotas[i]) - quotas[i])[:chunks - sum(counts)]:
        counts[i] += 1
    order = [n for n, c in zip(names, counts) for _ in range(c)]
    random.Random(f"renderers {seed}").shuffle(order)
    return order


def render_formulas(formulas: list[str], targets: list[Path], seed: int, style: RenderStyle,
                    chunk: int, workers: int | None = None, used: list[str] | None = None) -> list[bool]:
    """Render every formula to its target PNG in parallel chunks, each chunk by one renderer, the chunks shared
    out in `style.renderers`' proportions; returns which succeeded, and appends to `used` the renderer of each
    ("" where none could).
    A formula MathJax cannot set is set by LaTeX instead (and logged). The result depends only on the inputs and the
    seed, not on the number of workers."""
    return render_parts([(formulas, targets, seed, chunk)], style, workers, used)


def _task(task: tuple[int, str, object]) -> tuple[int, list[bool]]:
    """A pool worker's job: LaTeX chunks of one font, or a MathJax chunk (typeset by the worker's own Node process)."""
    from im2latex.data import webmath

    index, kind, job = task
    return index, [ok for oks in render_chunks(job) for ok in oks] if kind == "latex" else webmath.worker_chunk(job)


def render_parts(parts: list[tuple[list[str], list[Path], int, int]], style: RenderStyle, workers: int | None = None,
                 used: list[str] | None = None) -> list[bool]:
    """render_formulas for several (formulas, targets, seed, chunk) parts at once: each part is cut and seeded as
    render_formulas alone would, and every chunk of every part and renderer runs in one pool of processes, so that
    no part and no renderer waits for another's last chunks. Returns which succeeded, the parts one after another."""
    from im2latex.data import webmath

    require_latex()
    latex_jobs, web_jobs, web, renderer = [], [], [], {}
    for formulas, targets, seed, chunk in parts:
        formulas = [latex_source(f) for f in formulas]
        jobs = [(formulas[i:i + chunk], targets[i:i + chunk], seed * 1_000_003 + i, style)
                for i in range(0, len(formulas), chunk)]
        jobs = [(*job, r) for job, r in zip(jobs, assign_renderers(style.renderers, len(jobs), seed))]
        renderer.update((t, job[4]) for job in jobs for t in job[1])
        for font in LATEX_FONTS:  # small chunks of one font joined in runs of about RUN formulas
            same, per = [job for job in jobs if job[4] == font], max(1, RUN // chunk)
            latex_jobs += [same[i:i + per] for i in range(0, len(same), per)]
        part_web = [job for job in jobs if job[4] == "mathjax"]
        if part_web:
            webmath.require_node()
            web += part_web  # its MathJax formulas, cut in chunks as webmath.render_web cuts them
            web_jobs += webmath.chunk_jobs([f for job in part_web for f in job[0]],
                                           [t for job in part_web for t in job[1]], seed, chunk=chunk)
    # the slow MathJax chunks first and the small ones last, so the pool's workers finish together
    latex_jobs.sort(key=lambda run: -sum(len(job[0]) for job in run))
    tasks = [("mathjax", job, job[1]) for job in web_jobs] + [("latex", run, [t for job in run for t in job[1]]) for run in latex_jobs]
    status: dict[Path, bool] = {}
    workers = min(workers or os.cpu_count() or 1, max(len(tasks), 1))
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(total=sum(len(targets) for _, _, targets in tasks), desc="render", unit="formula"))
        pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(workers)) if workers > 1 and len(tasks) > 1 else None

        def run(batch: list[tuple[str, object, list[Path]]]) -> None:
            numbered = [(i, kind, job) for i, (kind, job, _) in enumerate(batch)]
            for index, result in pool.imap_unordered(_task, numbered) if pool else map(_task, numbered):
                status.update(zip(batch[index][2], result))
                bar.update(len(result))

        run(tasks)
        # what MathJax could not set, LaTeX sets, with the seed of the chunk it was drawn in
        retry = [([f for f, t in zip(fs, ts) if not status[t]], [t for t in ts if not status[t]], s, style, "latex")
                 for fs, ts, s, _, _ in web]
        retry = [("latex", [job], job[1]) for job in retry if job[0]]
        if web:
            drawn, refused = sum(len(job[0]) for job in web), sum(len(targets) for _, _, targets in retry)
            log.info("MathJax set %d of %d formulas; LaTeX sets the %d it could not", drawn - refused, drawn, refused)
            renderer.update((t, "latex") for _, _, targets in retry for t in targets)
            bar.total += refused
            run(retry)
        if pool is not None:  # let the workers exit on their own, closing their Node processes, before the pool ends
            pool.close()
            pool.join()
    if web:
        webmath.close_worker()  # the Node process of a render without a pool
    targets = [t for part in parts for t in part[1]]
    if used is not None:
        used += [renderer[t] if status.get(t) else "" for t in targets]
    return [status.get(t, False) for t in targets]


# A run of several formulas that has not ended by then loops (50 take 0.2 s) and is split; a formula
# alone gets the data stage's patient timeout, so a busy machine never fails a formula that renders.
LOOP_TIMEOUT_S = 0.5
# Each formula is the argument of a macro that is not \long: an unclosed `{` then ends at the blank line
# after it, as an error on its own page, instead of swallowing the next formulas' pages.
CHECK = "\\def\\imtwolatexcheck#1{\\mbox{$\\displaystyle #1$}}\n"


def latex_accepts(formulas: list[str]) -> list[bool]:
    """Whether LaTeX typesets each formula without an error, from one `latex` run over a page per formula
    (as the data stage renders, without the PNGs). When an error swallows pages, so that pages no longer
    match formulas, the run is split in halves until the culprit is alone: a broken formula costs a few
    runs, never one run per formula of its chunk."""
    if not formulas:
        return []
    formulas = [latex_source(f) for f in formulas]
    with scratch_dir("im2latex-eval-") as tmp:
        tex = Path(tmp, "formulas.tex")
        tex.write_text(preamble(12) + CHECK + "".join(
            f"\\typeout{{IM2LATEX-FORMULA {i}}}\n\\mbox{{}}\\imtwolatexcheck{{{f}}}\n\n\\newpage\n"
            for i, f in enumerate(formulas)) + "\\end{document}\n")
        try:  # some broken formulas send TeX's error recovery into an endless loop
            subprocess.run(["latex", "-interaction=nonstopmode", "-no-shell-escape", tex.name], cwd=tmp,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                           timeout=LATEX_TIMEOUT_S if len(formulas) == 1 else LOOP_TIMEOUT_S + 0.02 * len(formulas))
            log_text = Path(tmp, "formulas.log").read_text(errors="replace")
        except subprocess.TimeoutExpired:
            log_text = ""
    if log_text and page_count(log_text) == len(formulas):
        failed = failed_formulas(log_text)
        return [i not in failed for i in range(len(formulas))]
    if len(formulas) == 1:
        return [False]
    half = len(formulas) // 2
    return latex_accepts(formulas[:half]) + latex_accepts(formulas[half:])


def render_rate(predictions: list[str], chunk: int = 50) -> float:
    """Share of predictions that LaTeX renders without an error (empty ones do not count as rendered).
    Chunks of `chunk` run in parallel, one `latex` process per core."""
    if not predictions:
        return 0.0
    require_latex()
    chunks = [predictions[i:i + chunk] for i in range(0, len(predictions), chunk)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        ok = [accepted and bool(p) for part, oks in zip(chunks, pool.map(latex_accepts, chunks))
              for p, accepted in zip(part, oks)]
    return sum(ok) / len(ok)
