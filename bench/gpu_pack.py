"""Pack what bench/bench_gpu.py needs into one small folder that a GPU machine can be sent: a slice of
the preprocessed training split, the validation and test splits, the vocabulary, and any labelled folders
of real images, prepared as the exported model reads them at one size (glyphs preprocess.glyph_height x
--read-scale tall). The test split is packed from its raw images (--raw) the same way, as the evaluate stage reads them.

    python bench/gpu_pack.py --out gpu [--train 14000] [--read-scale 1.2] [--folder DIR ...]"""
import argparse
import dataclasses
import gzip
import pickle
import shutil
from pathlib import Path

import torch

from im2latex.config import PreprocessConfig, load_section
from im2latex.data.preprocessing import load_image, load_split
from im2latex.data.tokenizer import normalize
from im2latex.evaluation import read_labelled_folder
from im2latex.model.inputs import prepare


def dump(data, path: Path) -> None:
    with gzip.open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data/preprocessed"))
    parser.add_argument("--raw", type=Path, default=Path("data/raw"), help="the dataset whose test images are packed")
    parser.add_argument("--vocab", type=Path, default=Path("data/vocab.json"))
    parser.add_argument("--train", type=int, default=14000, help="training samples to pack (the transfer is capped at 64 MiB)")
    parser.add_argument("--folder", type=Path, nargs="*", default=[], help="labelled folders (N.png + formulas.lst) to score")
    parser.add_argument("--read-scale", type=float, default=1.2, help="one reading size, relative to preprocess.glyph_height")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    prep = load_section(args.params, "preprocess", PreprocessConfig)
    scale = args.read_scale
    args.out.mkdir(parents=True, exist_ok=True)
    train = dataclasses.asdict(load_split(args.data / "train.pkl"))
    dump({k: v[:args.train] for k, v in train.items()}, args.out / "train.pkl.gz")
    dump(dataclasses.asdict(load_split(args.data / "validate.pkl")), args.out / "validate.pkl.gz")
    shutil.copyfile(args.vocab, args.out / "vocab.json")

    def read(folder: Path) -> dict:
        _, paths, formulas = read_labelled_folder(folder, "test", None)
        images = [prepare(torch.from_numpy(load_image(p).copy()), prep.threshold, prep.pad, prep.glyph_height * scale).numpy()
                  for p in paths]
        return {"images": images, "formulas": formulas}

    test = read(args.raw)
    dump(dict(test, formulas=[normalize(f) for f in test["formulas"]]), args.out / "test.pkl.gz")
    for folder in args.folder:
        dump(read(folder), args.out / f"real_{folder.name}.pkl.gz")


if __name__ == "__main__":
    main()
