"""What the benchmarks share, so that none of them copies the project: the pipeline's files (params.yaml with an
optional preset over it, the preprocessed splits, the trained weights, the exported reader), training's own step
(`Im2LatexModule.loss_and_accuracy`, its optimiser, schedule and gradient clipping), decoding through the network's
public `greedy` / `beam_search` with the special ids of `im2latex.tokens`, timing, and writing the results.

A module, not a script: the scripts beside it import it (`import common`; Python puts bench/ on the path)."""
import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import yaml

from im2latex.config import ModelConfig, PreprocessConfig, ReadConfig, TrainConfig, load_section
from im2latex.data.dataset import BucketBatchSampler, collate
from im2latex.data.layout import is_im2latex_layout
from im2latex.data.normalise import normalise_all
from im2latex.data.preprocessing import Split, load_split
from im2latex.data.tokenizer import normalize
from im2latex.data.vocab import Vocabulary
from im2latex.metrics import bleu4, score
from im2latex.model.inputs import to_batch
from im2latex.model.network import Im2LatexNet, load_model
from im2latex.presets import read_preset
from im2latex.runtimes import load_reader
from im2latex.tokens import END, PAD, START, strip_specials
from im2latex.training import Im2LatexModule, resolve_precision

PATHS = {"params": "params.yaml", "data": "data/preprocessed", "vocab": "data/vocab.json", "weights": "models/weights.pt",
         "model": "models/model.pt"}


def make_parser(doc: str, out: str, *paths: str) -> argparse.ArgumentParser:
    """A script's parser: its docstring as help, `--out` (default `out`), and a `--NAME` option for each of the
    pipeline's files named (params, data, vocab, weights, model; defaults in PATHS)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in paths:
        parser.add_argument(f"--{name}", type=Path, default=Path(PATHS[name]), help="(default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path(out), help="the JSON file written (default: %(default)s)")
    return parser


def require(*paths: Path, hint: str = "run `make repro` first") -> None:
    """Stop with one line where any of the files a benchmark reads is missing."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: {hint}")


@dataclasses.dataclass(frozen=True)
class Params:
    model: dict  # the network's keyword arguments
    train: TrainConfig
    read: ReadConfig  # how the reader reads: beam width, length penalty, reading sizes, agreement
    preprocess: PreprocessConfig


def load_params(path: Path, preset: Path | None = None) -> Params:
    """The sections of params.yaml the benchmarks use, read by the project's own loader, with a preset's keys
    (presets/*.yaml) written over them first."""
    if preset:
        params = yaml.safe_load(Path(path).read_text())
        for dotted, value in read_preset(preset, path)[1].items():
            *parents, key = dotted.split(".")
            section = params
            for parent in parents:
                section = section[parent]
            section[key] = value
        merged = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        with merged:
            yaml.safe_dump(json.loads(json.dumps(params)), merged)  # the preset's YAML types as plain ones
        try:
            return load_params(Path(merged.name))
        finally:
            Path(merged.name).unlink()
    return Params(dataclasses.asdict(load_section(path, "model", ModelConfig)), load_section(path, "train", TrainConfig),
                  load_section(path, "read", ReadConfig), load_section(path, "preprocess", PreprocessConfig))


def load_splits(folder: Path, *names: str) -> list[Split]:
    """Preprocessed splits (train, validate, test) of the pipeline's data/preprocessed."""
    return [load_split(Path(folder) / f"{name}.pkl") for name in names]


def head(split: Split, n: int) -> Split:
    """The first n samples of a split (all of them where n is 0)."""
    return Split(*(column[:n or None] for column in (split.images, split.ids, split.formulas, split.names)))


def load_tokens(path: Path) -> list[str]:
    """The vocabulary's tokens (data/vocab.json), index = token id."""
    return Vocabulary.load(path).tokens


def load_weights(path: Path) -> tuple[Im2LatexNet, list[str], dict]:
    """The trained network (eval mode), its vocabulary, and the model settings it was built with."""
    net, tokens = load_model(path)
    return net, tokens, torch.load(path, map_location="cpu", weights_only=True)["model"]


def load_exported(path: Path) -> torch.jit.ScriptModule:
    """The exported reader (models/model.pt): what `predict`, `evaluate` and the server run."""
    return load_reader(path)


def batches(split: Split, batch_size: int, shuffle: bool, seed: int, epoch: int = 0, curriculum: int = 0) -> Iterator:
    """Collated batches of a split, bucketed by image size as training batches them."""
    sampler = BucketBatchSampler([image.shape for image in split.images], batch_size, shuffle, seed, curriculum=curriculum)
    sampler.set_epoch(epoch)
    for batch in sampler:
        yield collate([(split.images[i], split.ids[i]) for i in batch])


class Trainer:
    """Training's own step outside Lightning: Im2LatexModule's loss (label smoothing from train), its fused AdamW
    and warm-up + cosine schedule, gradients clipped at train.grad_clip (a non-finite step skipped), autocast
    in bf16 where train.precision says so. `progress` (0 to 1), where given, is the share of a time budget spent:
    the schedule decays over it as training's max_minutes makes it."""

    def __init__(self, tokens: list[str], model: dict, train: TrainConfig, total_steps: int, device: str):
        self.train, self.device = train, device
        self.module = Im2LatexModule(tokens, model, train.lr, train.weight_decay, train.warmup_steps, total_steps,
                                     train.label_smoothing).to(device).train()
        setup = self.module.configure_optimizers()
        self.optimizer, self.schedule = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
        self.bf16 = resolve_precision(train.precision, "cpu" if device == "cpu" else "gpu").startswith("bf16")

    def step(self, batch, progress: float = 0.0) -> float:
        """One optimiser step on a collated batch; returns its loss."""
        batch = [t.to(self.device, non_blocking=True) for t in batch]
        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.bf16):
            loss = self.module.loss_and_accuracy(batch, self.train.label_smoothing)[0]
        loss.backward()
        self.module.configure_gradient_clipping(self.optimizer, self.train.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.module.time_progress = progress
        self.schedule.step()
        return loss.item()

    def token_accuracy(self, split: Split, batch_size: int = 64) -> float:
        """Teacher-forced token accuracy on a split (the validation figure training logs)."""
        self.module.eval()
        with torch.no_grad(), torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.bf16):
            found = [self.module.loss_and_accuracy([t.to(self.device) for t in b], 0.0)[1].item()
                     for b in batches(split, batch_size, False, 0)]
        self.module.train()
        return sum(found) / len(found)


def decode(net: Im2LatexNet, tokens: list[str], images: list[np.ndarray], width: int, batch_size: int = 64,
           length_penalty: float = 0.0) -> list[list[str]]:
    """Tokens of each prepared image: greedy (width 1) or beam search, batched by size, up to the end token."""
    device = next(net.parameters()).device
    order = sorted(range(len(images)), key=lambda i: images[i].shape)
    out: list[list[str]] = [[] for _ in images]
    for k in range(0, len(order), batch_size):
        part = order[k:k + batch_size]
        x = to_batch([torch.from_numpy(images[i]) for i in part]).to(device)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            ids = net.greedy(x) if width <= 1 else net.beam_search(x, width, length_penalty=length_penalty)
        for i, row in zip(part, ids.tolist()):
            out[i] = [tokens[t] for t in strip_specials(row, END, [PAD, START])]
    return out


def bleu(net: Im2LatexNet, tokens: list[str], split: Split, width: int = 1) -> float:
    """Corpus BLEU-4 of the decoded split against its formulas."""
    return round(bleu4([f.split() for f in split.formulas], decode(net, tokens, split.images, width)), 4)


def latency_ms(run: Callable, items: list) -> float:
    """Mean milliseconds of `run(item)` over the items, after one untimed call (TorchScript optimises on the
    first calls, allocators warm up)."""
    run(items[0])
    times = []
    for item in items:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        run(item)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return round(1000 * statistics.mean(times), 1)


def write(results: dict, out: Path) -> None:
    """Print the figures and write them as JSON."""
    text = json.dumps(results, indent=2) + "\n"
    print(text, end="")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)


def folder_scorer(folder: Path, split: str, labels: list[str]) -> Callable[[list[str]], dict[str, float]]:
    """Readings of a labelled folder's images -> their scores, compared as `evaluate` compares them (a plain
    folder's labels and readings normalised as IM2LATEX-100K's were)."""
    plain = not is_im2latex_layout(folder, split, None)
    targets = [t.split() for t in (normalise_all(labels)[0] if plain else [normalize(f) for f in labels])]
    return lambda texts: score(targets, [t.split() for t in (normalise_all(texts)[0] if plain else texts)])
