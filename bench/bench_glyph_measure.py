"""How steady the glyph measure is: `glyph_size` of generated formulas rendered at several dpi.

    python bench/bench_glyph_measure.py [--formulas 40] [--dpi 75 100 150 200 300]

Each formula is rendered at 10 pt, supersampled 2x (antialiased, like pdflatex), at each dpi. A measure that
normalised perfectly would give each formula the same value per 100 dpi at every dpi. Per dpi, the bench
prints the geometric mean over the formulas of that value against the same formula's at the highest dpi (the
bias of low resolutions) and the spread of that ratio (sd of its log: the noise per image). Formulas differ in
true size (the renderer draws \\small, \\normalsize or \\large), but each keeps its size across dpi, so the
ratios are free of it. Writes the figures to --out (default bench/glyph_measure_results.json).
"""
import math
import statistics
import tempfile
from pathlib import Path

import torch

import common
from im2latex.data.generator import generate_formulas
from im2latex.data.preprocessing import load_image
from im2latex.data.rendering import RenderStyle, render_formulas
from im2latex.model.inputs import glyph_size


def main() -> None:
    parser = common.make_parser(__doc__, "bench/glyph_measure_results.json")
    parser.add_argument("--formulas", type=int, default=40, help="generated formulas (default: %(default)s)")
    parser.add_argument("--dpi", type=int, nargs="+", default=[75, 100, 150, 200, 300])
    parser.add_argument("--threshold", type=int, default=200, help="pixels darker than this are ink (default: %(default)s)")
    args = parser.parse_args()
    formulas = generate_formulas(args.formulas, 1, 60)
    per_100_dpi: dict[int, dict[int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dpi in args.dpi:
            targets = [Path(tmp, f"{dpi}_{n}.png") for n in range(len(formulas))]
            ok = render_formulas(formulas, targets, seed=0, style=RenderStyle((dpi, dpi), (4, 4), 0.0, (10,), (2.0, 2.0)),
                                 chunk=len(formulas), workers=1)
            per_100_dpi[dpi] = {}
            for n, (target, rendered) in enumerate(zip(targets, ok)):
                if rendered:
                    ink = torch.from_numpy(load_image(target).copy()) < args.threshold
                    rows, cols = ink.any(1).nonzero(), ink.any(0).nonzero()
                    crop = ink[int(rows[0]):int(rows[-1]) + 1, int(cols[0]):int(cols[-1]) + 1]
                    per_100_dpi[dpi][n] = glyph_size(crop) * 100 / dpi
    top = max(args.dpi)
    against_top = {}
    for dpi in args.dpi:
        logs = [math.log(v / per_100_dpi[top][n]) for n, v in per_100_dpi[dpi].items() if n in per_100_dpi[top]]
        against_top[dpi] = {"geometric_mean_ratio": round(math.exp(statistics.mean(logs)), 3),
                            "sd_log_ratio": round(statistics.pstdev(logs), 3)}
    results = {"formulas": len(formulas), "threshold": args.threshold, f"against_{top}_dpi": against_top,
               "median_px_per_100_dpi": {dpi: round(statistics.median(v.values()), 2) for dpi, v in per_100_dpi.items()}}
    common.write(results, args.out)


if __name__ == "__main__":
    main()
