"""Benchmark: formulas/s of the synthetic renderers (im2latex.data.rendering.render_formulas at data.synthetic.chunk):
each renderer alone and params.yaml's mix on --n generated formulas, then the download stage's synthetic source as a whole
(sources.build_synthetic: test and validation splits at eval_chunk and --train formulas at chunk, in one pool on every core)
with that mix. Every other setting is params.yaml's data.synthetic. Prints the figures and writes them as JSON.

    python bench/bench_render_speed.py [--n 1000] [--workers 2] [--train 22000] [--out bench/render_speed_results.json]

Each figure is wall time: run it on an otherwise idle machine."""
import collections
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

from im2latex.config import DataConfig, load_section
from im2latex.data import layout
from im2latex.data.generator import generate_formulas
from im2latex.data.rendering import RENDERERS, render_formulas
from im2latex.data.sources import build_synthetic, render_style

def timed_render(formulas: list[str], style, chunk: int, workers: int | None) -> dict:
    """formulas/s of one render_formulas call, and how many formulas each renderer drew."""
    used: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        render_formulas(formulas, [Path(tmp, f"{i}.png") for i in range(len(formulas))], 0, style, chunk, workers, used)
        seconds = time.perf_counter() - start
    return {"formulas_per_s": round(len(formulas) / seconds), "seconds": round(seconds, 2),
            "drawn": dict(sorted(collections.Counter(used).items()))}


def main() -> None:
    import common  # here, not at the top: the spawned render workers import this script, and common imports torch

    parser = common.make_parser(__doc__, "bench/render_speed_results.json", "params")
    parser.add_argument("--n", type=int, default=1000, help="formulas for each renderer alone and the mix (default: %(default)s; 0: none)")
    parser.add_argument("--workers", type=int, default=None, help="render processes of those runs (default: one per core)")
    parser.add_argument("--train", type=int, default=None, help="training formulas of the stage run (default: params.yaml's; 0: no stage run)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    data = load_section(args.params, "data", DataConfig)
    cfg = data.synthetic
    formulas = generate_formulas(args.n, 0, cfg.max_tokens)
    results = {"n": args.n, "workers": args.workers or "one per core", "chunk": cfg.chunk}
    for name in RENDERERS if formulas else ():
        results[name] = timed_render(formulas, dataclasses.replace(render_style(cfg), renderers=((name, 1.0),)),
                                     cfg.chunk, args.workers)
    if formulas:
        results["mix"] = timed_render(formulas, render_style(cfg), cfg.chunk, args.workers)
    stage = dataclasses.replace(cfg, train=cfg.train if args.train is None else args.train)
    if stage.train:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            build_synthetic(Path(tmp), stage, data.seed)
            seconds = time.perf_counter() - start
            drawn = collections.Counter(line.split("\t")[1].strip() for line in open(Path(tmp, layout.RENDERERS)))
        total = stage.train + stage.validate + stage.test
        results["stage"] = {"formulas": total, "formulas_per_s": round(total / seconds), "seconds": round(seconds, 1),
                            "drawn": dict(sorted(drawn.items()))}
    common.write(results, args.out)


if __name__ == "__main__":
    main()
