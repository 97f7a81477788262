"""Normalisation speed: formulas per second on a test set's worth of labels.

    python bench/bench_normalise.py                        # 9,000 formulas from the synthetic generator
    python bench/bench_normalise.py formulas.raw.lst       # the lines of a file, repeated up to 9,000

Prints the figures and writes them to --out (default bench/normalise_results.json).
"""
import time
from pathlib import Path

import common
from im2latex.data.generator import generate_formulas
from im2latex.data.layout import decode_formulas
from im2latex.data.normalise import normalise_all


def main() -> None:
    parser = common.make_parser(__doc__, "bench/normalise_results.json")
    parser.add_argument("formulas", type=Path, nargs="?", help="one formula per line (default: generated formulas)")
    parser.add_argument("--count", type=int, default=9000, help="formulas to normalise (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported (default: %(default)s)")
    args = parser.parse_args()
    if args.formulas:
        lines = decode_formulas(args.formulas.read_bytes(), str(args.formulas))
        formulas, source = (lines * (args.count // len(lines) + 1))[:args.count], args.formulas.name
    else:
        formulas, source = generate_formulas(args.count, 0, 150), "generator (seed 0, max_tokens 150)"
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        _, fallbacks = normalise_all(formulas)
        times.append(time.perf_counter() - start)
    best = min(times)
    results = {"source": source, "formulas": len(formulas), "seconds": round(best, 3),
               "formulas_per_s": round(len(formulas) / best), "fallbacks": fallbacks}
    common.write(results, args.out)


if __name__ == "__main__":
    main()
