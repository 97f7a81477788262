"""Input normalisation speed: milliseconds an image for preprocessing's `prepare_image` (the glyphs measured by SciPy)
and for the exported model's `inputs.prepare` (measured by its own TorchScript-able code), on the same training
images, one thread; the two must give the same images.

    python bench/bench_prepare.py               # the first 600 images of data/raw (run `make repro` first)
    python bench/bench_prepare.py --count 2000

Prints the figures and writes them to --out (default bench/prepare_results.json).
"""
import time
from pathlib import Path

import numpy as np
import torch

import common
from im2latex.config import PreprocessConfig, load_section
from im2latex.data.images import load_image
from im2latex.data.preprocessing import prepare_image
from im2latex.model.inputs import prepare


def main() -> None:
    parser = common.make_parser(__doc__, "bench/prepare_results.json", "params")
    parser.add_argument("--raw", type=Path, default=Path("data/raw"), help="the download stage's output (default: %(default)s)")
    parser.add_argument("--count", type=int, default=600, help="images, the first by name (default: %(default)s)")
    args = parser.parse_args()
    common.require(args.params, args.raw / "formula_images")
    torch.set_num_threads(1)  # as in the preprocess stage: one process per core
    cfg = load_section(args.params, "preprocess", PreprocessConfig)
    images = [load_image(p) for p in sorted((args.raw / "formula_images").glob("*.png"))[:args.count]]
    start = time.perf_counter()
    ours = [prepare_image(image, cfg) for image in images]
    middle = time.perf_counter()
    exported = [prepare(torch.from_numpy(image.copy()), cfg.threshold, cfg.pad, cfg.glyph_height).numpy() for image in images]
    end = time.perf_counter()
    same = sum(np.array_equal(a, b) if a is not None else b.size == 0 for a, b in zip(ours, exported))
    results = {"images": len(images), "preprocessing_ms": round((middle - start) / len(images) * 1e3, 3),
               "exported_ms": round((end - middle) / len(images) * 1e3, 3), "identical": same}
    common.write(results, args.out)


if __name__ == "__main__":
    main()
