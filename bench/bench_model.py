"""Benchmark: training samples/s, greedy / beam latency per image (eager vs TorchScript, with and without
the decoder's key/value cache), and the exported file's whole read of one image. Prints the figures and
writes them as JSON.

    python bench/bench_model.py [--images 20] [--steps 20] [--out bench/results.json]

Needs the pipeline's outputs (data/preprocessed, models/weights.pt, models/model.pt): run `make repro` first."""
import argparse
import json
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch

from im2latex.config import EvaluateConfig, TrainConfig, load_section
from im2latex.data.dataset import BucketBatchSampler, FormulaDataset, collate
from im2latex.data.preprocessing import load_split
from im2latex.model.inputs import to_batch
from im2latex.model.network import load_model
from im2latex.training import Im2LatexModule


def train_samples_per_s(weights: Path, data: Path, cfg: TrainConfig, steps: int) -> float:
    net, tokens = load_model(weights)
    state = torch.load(weights, weights_only=True)
    module = Im2LatexModule(tokens, state["model"], cfg.lr, cfg.weight_decay, cfg.warmup_steps, 1000, cfg.label_smoothing)
    module.train()
    optimizer = module.configure_optimizers()["optimizer"]  # training's own (fused AdamW)
    dataset = FormulaDataset(load_split(data / "train.pkl"))
    sampler = BucketBatchSampler([i.shape for i in dataset.images], cfg.batch_size, True, cfg.seed)
    batches = [collate([dataset[i] for i in b]) for b in list(sampler)[:steps + 2]]
    seen, start = 0, None
    for n, batch in enumerate(batches):
        if n == 2:  # the first steps warm up allocators
            seen, start = 0, time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision.startswith("bf16")):
            loss = module._loss(batch, cfg.label_smoothing)[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        seen += len(batch[0])
    return seen / (time.perf_counter() - start)


def latency_ms(decode, images: list[torch.Tensor]) -> float:
    decode(images[0])  # warm-up (TorchScript optimises on the first calls)
    times = []
    for image in images:
        start = time.perf_counter()
        decode(image)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.mean(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--data", type=Path, default=Path("data/preprocessed"))
    parser.add_argument("--weights", type=Path, default=Path("models/weights.pt"))
    parser.add_argument("--scripted", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--images", type=int, default=20, help="test images timed one at a time")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed")
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    missing = [str(p) for p in (args.data / "train.pkl", args.data / "test.pkl", args.weights, args.scripted) if not p.exists()]
    if missing:
        raise SystemExit(f"bench_model needs the pipeline's outputs, and these are missing: {', '.join(missing)}. Run `make repro` first")

    train_cfg = load_section(args.params, "train", TrainConfig)
    width = load_section(args.params, "evaluate", EvaluateConfig).beam_width
    net, _ = load_model(args.weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(args.scripted))
    test = load_split(args.data / "test.pkl")
    images = [to_batch([torch.from_numpy(i)]) for i in test.images[:args.images]]
    results = {"machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
               "train_precision": train_cfg.precision,
               "train_samples_per_s": round(train_samples_per_s(args.weights, args.data, train_cfg, args.steps), 1),
               "beam_width": width, "latency_ms_per_image": {}}
    with torch.no_grad():
        for name, model in (("eager", net), ("torchscript", scripted.net)):
            for cache in (True, False):
                key = f"{name}, {'cache' if cache else 'no cache'}"
                results["latency_ms_per_image"][f"greedy, {key}"] = round(latency_ms(lambda x: model.greedy(x, 0, cache), images), 1)
                results["latency_ms_per_image"][f"beam {width}, {key}"] = round(
                    latency_ms(lambda x: model.beam_search(x, width, 0, cache), images), 1)
        # what a user waits for: the exported file's read (prepare at each reading size, decode, confidence)
        raw = [torch.from_numpy(i) for i in test.images[:args.images]]
        results[f"read_ms_per_image, {len(scripted.glyph_heights)} reading sizes"] = round(latency_ms(lambda x: scripted.read([x]), raw), 1)
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
