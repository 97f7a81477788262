"""Benchmark: how to read an image, chosen on labelled folders. Every image is read once at each reading size
(read.read_scales relative to preprocess.glyph_height), keeping every hypothesis of the beam with its
confidence; each set of sizes and each `agreement` then picks per image as the exported file does (`consensus`
over the candidates of those sizes; `max` keeps the most confident one). Prints BLEU-4 and edit score per folder
and rule, writes them as JSON.

    python bench/bench_reading_sizes.py FOLDER [FOLDER ...] [--split validate] \\
        [--sets 1.1,1.3 0.9,1.0,1.1,1.2,1.3,1.4] [--agreements max 8 16 32] [--out FILE]

A folder is N.png + formulas.lst, or IM2LATEX-100K layout (`data/raw --split validate` reads the raw synthetic
validation images). Needs models/weights.pt (`make repro`)."""
import hashlib
from pathlib import Path

import numpy as np
import torch

import common
from im2latex.data.preprocessing import tensor_images
from im2latex.evaluation import score_folder
from im2latex.model.inputs import prepare_sizes, to_batch
from im2latex.reader import FormulaReader, consensus


class Readings:
    """Each image's candidates at every scale, found once; `read(scales, agreement)` answers from them."""

    def __init__(self, reader: FormulaReader, scales: list[float], glyph_height: float):
        self.reader, self.scales, self.heights, self.seen = reader, scales, [glyph_height * s for s in scales], {}

    @staticmethod
    def key(image: torch.Tensor) -> str:
        return f"{tuple(image.shape)}{hashlib.md5(image.numpy().tobytes()).hexdigest()}"

    def find(self, batch: list[torch.Tensor]) -> None:
        new = [image for image in batch if self.key(image) not in self.seen]
        sizes = [prepare_sizes(image, self.reader.threshold, self.reader.pad, self.heights) for image in new]
        for image, prepared in zip(new, sizes):  # a blank image has no candidates
            self.seen[self.key(image)] = {s: ([], []) for s in self.scales} if prepared[0].numel() == 0 else None
        kept = [(image, prepared) for image, prepared in zip(new, sizes) if prepared[0].numel() > 0]
        found = {s: self.reader.candidates([to_batch([p[k] for _, p in kept])]) if kept else ([], [])
                 for k, s in enumerate(self.scales)}
        for n, (image, _) in enumerate(kept):
            self.seen[self.key(image)] = {s: (ids[n], scores[n]) for s, (ids, scores) in found.items()}

    def read(self, scales: tuple[float, ...], agreement: str):
        def read(images: list[np.ndarray]) -> list[str]:
            batch = tensor_images(images)
            self.find(batch)
            texts = []
            for image in batch:
                ids = [r for s in scales for r in self.seen[self.key(image)][s][0]]
                scores = [c for s in scales for c in self.seen[self.key(image)][s][1]]
                if not ids:
                    texts.append("")
                    continue
                k = max(range(len(ids)), key=scores.__getitem__) if agreement == "max" else consensus(ids, scores, float(agreement))
                texts.append(self.reader.to_text(ids[k]))
            return texts
        return read


def main() -> None:
    parser = common.make_parser(__doc__, "bench/reading_sizes_results.json", "params", "weights")
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--split", default="test", help="split of a folder in IM2LATEX-100K layout")
    parser.add_argument("--sets", nargs="+", default=["1.1,1.3", "1.0,1.1,1.2,1.3", "0.9,1.0,1.1,1.2,1.3",
                                                      "0.9,1.0,1.1,1.2,1.3,1.4"],
                        help="comma-separated scales; read.read_scales is always added")
    parser.add_argument("--agreements", nargs="+", default=["max", "8", "16", "32"])
    args = parser.parse_args()
    common.require(args.weights)
    params = common.load_params(args.params)
    prep, read_cfg = params.preprocess, params.read
    sets = [tuple(float(s) for s in spec.split(",")) for spec in args.sets]
    sets += [] if tuple(read_cfg.read_scales) in sets else [tuple(read_cfg.read_scales)]  # what the exported file reads at
    scales = sorted({s for scales in sets for s in scales})
    net, tokens, _ = common.load_weights(args.weights)
    reader = FormulaReader(net, tokens, prep.threshold, prep.pad, [prep.glyph_height], read_cfg.beam_width,
                           read_cfg.length_penalty)
    results = {"weights": str(args.weights), "beam_width": read_cfg.beam_width, "split": args.split, "scores": {}}
    for folder in args.folders:
        readings = Readings(reader, scales, prep.glyph_height)
        results["scores"][str(folder)] = rows = {}
        for scales_set in sets:
            for agreement in args.agreements:
                metrics = score_folder(readings.read(scales_set, agreement), folder, args.split)
                rows[f"{' + '.join(map(str, scales_set))}, {agreement}"] = row = {
                    k: metrics[k] for k in ("bleu4", "edit_score", "exact_match")}
                print(folder, scales_set, agreement, row, flush=True)
    common.write(results, args.out)


if __name__ == "__main__":
    main()
