"""Per-image reading time and BLEU-4 of the exported reader, one image at a time, on each runtime and setting side by
side: the TorchScript file, the ONNX graphs read as exported, and the fast setting (ONNX, fewer sizes, greedy). Also
how many images the ONNX reader reads exactly as the TorchScript file does. Prints the figures and writes them as JSON.

    python bench/bench_read.py [--data DIR] [--split test] [--count 30] [--threads 2] [--fast-scales 1.1]
                               [--model models/model.pt] [--onnx models/onnx] [--out bench/read_results.json]

DIR is a labelled folder as `python -m im2latex evaluate` takes (default: data/raw, the synthetic test split).
Needs models/model.pt and models/onnx (`make repro`)."""
import platform
import statistics
import time
from pathlib import Path

import torch

import common
from im2latex.data.images import load_image
from im2latex.data.layout import read_labelled_folder
from im2latex.runtimes import open_reader


def timed_reads(reader, images: list) -> tuple[list[str], list[float]]:
    """Each image read alone: its text and seconds; one untimed read first (allocators, TorchScript's optimiser)."""
    reader.read(images[:1])
    texts, seconds = [], []
    for image in images:
        start = time.perf_counter()
        texts.append(reader.read([image])[0][0])
        seconds.append(time.perf_counter() - start)
    return texts, seconds


def main() -> None:
    parser = common.make_parser(__doc__, "bench/read_results.json", "model")
    parser.add_argument("--onnx", type=Path, default=Path("models/onnx"), help="(default: %(default)s)")
    parser.add_argument("--data", type=Path, default=Path("data/raw"), help="labelled images (default: %(default)s)")
    parser.add_argument("--split", default="test", help="split of an IM2LATEX-100K layout (default: %(default)s)")
    parser.add_argument("--count", type=int, default=30, help="images read, the folder's first (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="threads of each runtime (default: %(default)s)")
    parser.add_argument("--fast-scales", type=float, nargs="+", default=[1.1], help="the fast setting's reading sizes, "
                        "read greedily (default: %(default)s)")
    args = parser.parse_args()
    common.require(args.model, args.onnx, args.data)
    torch.set_num_threads(args.threads)
    _, paths, labels = read_labelled_folder(args.data, args.split, None)
    images, labels = [load_image(p) for p in paths[:args.count]], labels[:args.count]
    scored = common.folder_scorer(args.data, args.split, labels)
    readers = {"torchscript": open_reader(args.model, "torchscript"),
               "onnx": open_reader(args.onnx, "onnx", threads=args.threads),
               "onnx fast": open_reader(args.onnx, "onnx", threads=args.threads, read_scales=args.fast_scales, beam_width=1)}
    results = {"machine": f"{platform.machine()}, {args.threads} threads, torch {torch.__version__}",
               "data": f"{args.data} ({args.split}), first {len(images)} images, one at a time",
               "fast setting": f"reading sizes {args.fast_scales}, greedy"}
    texts = {}
    for name, reader in readers.items():
        texts[name], seconds = timed_reads(reader, images)
        metrics = scored(texts[name])
        results[name] = {"p50_s": round(statistics.median(seconds), 4), "mean_s": round(statistics.mean(seconds), 4),
                         "bleu4": round(metrics["bleu4"], 4), "edit_score": round(metrics["edit_score"], 4)}
    for name in ("onnx", "onnx fast"):
        results[name]["speed-up over torchscript"] = round(results["torchscript"]["p50_s"] / results[name]["p50_s"], 2)
    same = sum(a == b for a, b in zip(texts["onnx"], texts["torchscript"]))
    results["onnx reads as torchscript"] = f"{same} of {len(images)}"
    common.write(results, args.out)


if __name__ == "__main__":
    main()
