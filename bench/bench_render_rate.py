"""Benchmark: formulas/s of the render-rate check (evaluation.render_rate) on 500 model-like predictions:
the 300 of metrics/predictions.tsv, then 200 of its targets cut at a random token (as a model that stops
early or runs on leaves them: many do not render). Prints the figures.

    python bench/bench_render_rate.py [--n 500]"""
import argparse
import csv
import logging
import random
import time

from im2latex.evaluation import render_rate


def predictions(n: int) -> list[str]:
    with open("metrics/predictions.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    rng = random.Random(0)
    out = [r["prediction"] for r in rows]
    while len(out) < n:
        tokens = rng.choice(rows)["target"].split()
        out.append(" ".join(tokens[:rng.randint(1, len(tokens))]))
    return out[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    formulas = predictions(args.n)
    start = time.perf_counter()
    rate = render_rate(formulas)
    seconds = time.perf_counter() - start
    print(f"{len(formulas)} predictions, render rate {rate:.3f}: {seconds:.1f} s, {len(formulas) / seconds:.0f} formulas/s")


if __name__ == "__main__":
    main()
