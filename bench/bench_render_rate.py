"""Benchmark: formulas/s of the render-rate check (im2latex.data.rendering.render_rate) on 500 model-like predictions:
the 300 of metrics/predictions.tsv (--predictions), then 200 of its targets cut at a random token (as a model that stops
early or runs on leaves them: many do not render). Prints the figures and writes them as JSON.

    python bench/bench_render_rate.py [--n 500] [--out bench/render_rate_results.json]

Needs metrics/predictions.tsv (`dvc repro evaluate`)."""
import csv
import logging
import random
import time
from pathlib import Path

import common
from im2latex.data.rendering import render_rate


def predictions(path: Path, n: int) -> list[str]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    rng = random.Random(0)
    out = [r["prediction"] for r in rows]
    while len(out) < n:
        tokens = rng.choice(rows)["target"].split()
        out.append(" ".join(tokens[:rng.randint(1, len(tokens))]))
    return out[:n]


def main() -> None:
    parser = common.make_parser(__doc__, "bench/render_rate_results.json")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--predictions", type=Path, default=Path("metrics/predictions.tsv"), help="(default: %(default)s)")
    args = parser.parse_args()
    common.require(args.predictions, hint="run `dvc repro evaluate` first")
    logging.disable(logging.WARNING)
    formulas = predictions(args.predictions, args.n)
    start = time.perf_counter()
    rate = render_rate(formulas)
    seconds = time.perf_counter() - start
    common.write({"predictions": len(formulas), "render_rate": round(rate, 3), "seconds": round(seconds, 1),
                  "formulas_per_s": round(len(formulas) / seconds)}, args.out)


if __name__ == "__main__":
    main()
