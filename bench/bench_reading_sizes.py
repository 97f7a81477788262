"""Benchmark: which reading sizes (evaluate.read_scales) read labelled folders best. Every image is read
once at each scale alone; each combination of scales then keeps, per image, the reading the network is most
confident of, as the exported file does. Prints BLEU-4 per folder and combination, writes them as JSON.

    python bench/bench_reading_sizes.py FOLDER [FOLDER ...] [--scales 1.0 1.1 1.2 1.3] [--out FILE]

A folder is N.png + formulas.lst, or IM2LATEX-100K layout (its test split: `data/raw` reads the raw
synthetic test images). Needs models/weights.pt (`make repro`)."""
import argparse
import hashlib
import itertools
import json
from pathlib import Path

import torch

from im2latex.config import EvaluateConfig, PreprocessConfig, load_section
from im2latex.evaluation import score_folder
from im2latex.export import FormulaReader
from im2latex.model.network import load_model


class Readings:
    """Each image read once per scale; `read(sizes)` answers from those readings."""

    def __init__(self, readers: dict[float, FormulaReader]):
        self.readers, self.seen = readers, {}

    @staticmethod
    def key(image: torch.Tensor) -> str:
        return f"{tuple(image.shape)}{hashlib.md5(image.numpy().tobytes()).hexdigest()}"

    def read(self, sizes: tuple[float, ...]):
        def read(batch: list[torch.Tensor]) -> list[str]:
            new = [image for image in batch if self.key(image) not in self.seen]
            if new:
                found = {scale: reader.read(new) for scale, reader in self.readers.items()}
                for n, image in enumerate(new):
                    self.seen[self.key(image)] = {s: (texts[n], scores[n]) for s, (texts, scores) in found.items()}
            return [max((self.seen[self.key(image)][s] for s in sizes), key=lambda r: r[1])[0] for image in batch]
        return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 1.1, 1.2, 1.3])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--weights", type=Path, default=Path("models/weights.pt"))
    parser.add_argument("--out", type=Path, default=Path("bench/reading_sizes_results.json"))
    args = parser.parse_args()
    prep = load_section(args.params, "preprocess", PreprocessConfig)
    evaluate = load_section(args.params, "evaluate", EvaluateConfig)
    beam = evaluate.beam_width
    net, tokens = load_model(args.weights)
    results = {"weights": str(args.weights), "beam_width": beam, "bleu4": {}}
    for folder in args.folders:
        readings = Readings({s: FormulaReader(net, tokens, prep.threshold, prep.pad, [prep.glyph_height * s], beam,
                                                 evaluate.length_penalty)
                             for s in args.scales})
        combos = [c for k in range(1, len(args.scales) + 1) for c in itertools.combinations(args.scales, k)]
        results["bleu4"][str(folder)] = row = {}
        for sizes in combos:
            row[" + ".join(map(str, sizes))] = score_folder(readings.read(sizes), folder)["bleu4"]
        print(folder, json.dumps(row, indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
