"""How often the ONNX reader (models/onnx) gives the TorchScript file's (models/model.pt) prediction, on a whole
labelled folder read in batches as `python -m im2latex evaluate` reads it, with each runtime's time and BLEU-4.
Prints the figures and writes them as JSON; `--diff` also writes the images they read differently (TSV).

    python bench/bench_parity.py [--data DIR] [--split test] [--count N] [--batch-size 64] [--threads 2]
                                 [--model models/model.pt] [--onnx models/onnx] [--out bench/parity_results.json]

DIR is a labelled folder as `evaluate` takes (default: data/raw, the synthetic test split).
Needs models/model.pt and models/onnx (`make repro`)."""
import csv
import platform
import time
from pathlib import Path

import torch

import common
from im2latex.data.images import load_image
from im2latex.data.layout import read_labelled_folder
from im2latex.evaluation import predict_all
from im2latex.runtimes import open_reader


def main() -> None:
    parser = common.make_parser(__doc__, "bench/parity_results.json", "model")
    parser.add_argument("--onnx", type=Path, default=Path("models/onnx"), help="(default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data/raw"), help="labelled images (default: %(default)s)")
    parser.add_argument("--split", default="test", help="split of an IM2LATEX-100K layout (default: %(default)s)")
    parser.add_argument("--count", type=int, default=0, help="images read, the folder's first (default: all)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per call, as evaluate's (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="threads of each runtime (default: %(default)s)")
    parser.add_argument("--diff", type=Path, help="a TSV of the images read differently (name, torchscript, onnx)")
    args = parser.parse_args()
    common.require(args.model, args.onnx, args.data)
    torch.set_num_threads(args.threads)
    names, paths, labels = (x[:args.count or None] for x in read_labelled_folder(args.data, args.split, None))
    images = [load_image(p) for p in paths]
    scored = common.folder_scorer(args.data, args.split, labels)
    results = {"machine": f"{platform.machine()}, {args.threads} threads, torch {torch.__version__}",
               "data": f"{args.data} ({args.split}), {len(images)} images in calls of {args.batch_size}"}
    texts = {}
    for name, path in (("torchscript", args.model), ("onnx", args.onnx)):
        reader = open_reader(path, name, threads=args.threads)
        start = time.perf_counter()
        texts[name] = predict_all(reader, images, args.batch_size)
        seconds = time.perf_counter() - start
        metrics = scored(texts[name])
        results[name] = {"seconds": round(seconds, 1), "bleu4": round(metrics["bleu4"], 4)}
    differ = [(n, a, b) for n, a, b in zip(names, texts["torchscript"], texts["onnx"]) if a != b]
    results["onnx reads as torchscript"] = f"{len(images) - len(differ)} of {len(images)}"
    results["agreement"] = round(1 - len(differ) / max(len(images), 1), 4)
    if args.diff:
        with open(args.diff, "w", newline="") as f:
            csv.writer(f, delimiter="\t").writerows([("name", "torchscript", "onnx"), *differ])
    common.write(results, args.out)


if __name__ == "__main__":
    main()
