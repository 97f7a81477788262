"""How steady the glyph measure is: `glyph_size` of generated formulas rendered at several dpi.

    python bench/bench_glyph_measure.py [--formulas 6] [--dpi 75 100 150 200 300]

Each formula is rendered at 10 pt, supersampled 2x (antialiased, like pdflatex), at each dpi. A measure that
normalised perfectly would give the same value per 100 dpi for every dpi and every formula. Prints the
figures and writes them to bench/glyph_measure_results.json.
"""
import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from im2latex.data.generator import generate_formulas
from im2latex.data.preprocessing import load_image
from im2latex.data.rendering import RenderStyle, render_formulas
from im2latex.model.inputs import glyph_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formulas", type=int, default=6, help="generated formulas (default: %(default)s)")
    parser.add_argument("--dpi", type=int, nargs="+", default=[75, 100, 150, 200, 300])
    parser.add_argument("--threshold", type=int, default=200, help="pixels darker than this are ink (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("bench/glyph_measure_results.json"))
    args = parser.parse_args()
    formulas = generate_formulas(args.formulas, 0, 60)
    per_100_dpi: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dpi in args.dpi:
            targets = [Path(tmp, f"{dpi}_{n}.png") for n in range(len(formulas))]
            ok = render_formulas(formulas, targets, seed=0, style=RenderStyle((dpi, dpi), (4, 4), 0.0, (10,), (2.0, 2.0)),
                                 chunk=len(formulas), workers=1)
            sizes = []
            for target, rendered in zip(targets, ok):
                if rendered:
                    ink = torch.from_numpy(load_image(target).copy()) < args.threshold
                    rows, cols = ink.any(1).nonzero(), ink.any(0).nonzero()
                    crop = ink[int(rows[0]):int(rows[-1]) + 1, int(cols[0]):int(cols[-1]) + 1]
                    sizes.append(round(glyph_size(crop) * 100 / dpi, 2))
            per_100_dpi[dpi] = sizes
    medians = {dpi: statistics.median(v) for dpi, v in per_100_dpi.items()}
    results = {"formulas": len(formulas), "threshold": args.threshold, "glyph_px_per_100_dpi": per_100_dpi,
               "median_per_dpi": medians,
               "spread_across_dpi": round(max(medians.values()) / min(medians.values()), 3),
               "spread_across_formulas": round(statistics.median(max(v) / min(v) for v in per_100_dpi.values()), 3)}
    print(json.dumps(results, indent=1))
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
