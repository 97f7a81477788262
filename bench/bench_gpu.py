"""GPU benchmark of a configuration, through training's own step (bench/common.py's Trainer: the module's loss,
fused AdamW, schedule, clipping, bf16 autocast): the model and training settings of --params with --preset over
them (default presets/gpu.yaml), trained for --seconds on the preprocessed training split, the learning rate
decaying over that time. Reports training samples/s, peak GPU memory, validation token accuracy, greedy BLEU-4
on the test split, and per-image latency of greedy and beam decoding at batch 1 and of beam decoding at batch 64.

    python bench/bench_gpu.py [--preset presets/gpu.yaml] [--seconds 130] [--warmup 500] [--out bench/gpu_results.json]
    python bench/bench_gpu.py --device cpu --preset '' --seconds 5 --test 8        # a smoke test on CPU

Needs data/preprocessed and data/vocab.json (`dvc repro preprocess`). bench/gpu_preset_results.json holds the
figures of 2026-11-27 (README), from an earlier version of this script: its own copy of the loop (warm-up 500, no
dropout, no clipping, a constant rate after warm-up) on 14,000 formulas packed by the removed bench/gpu_pack.py."""
import dataclasses
import time
from pathlib import Path

import torch

import common


def main() -> None:
    parser = common.make_parser(__doc__, "bench/gpu_results.json", "params", "data", "vocab")
    parser.add_argument("--preset", default="presets/gpu.yaml", help="a preset over --params ('' for none)")
    parser.add_argument("--seconds", type=float, default=130.0, help="training time (default: %(default)s)")
    parser.add_argument("--test", type=int, default=0, help="test images scored, 50 of them timed (default: all)")
    parser.add_argument("--warmup", type=int, help="warm-up steps (default: train.warmup_steps; the GPU preset's 4,000 "
                                                   "outlast a 130 s run, the figures of 2026-11-27 used 500)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    common.require(*(args.data / f"{s}.pkl" for s in ("train", "validate", "test")), args.vocab,
                   hint="run `dvc repro preprocess` first")
    params = common.load_params(args.params, Path(args.preset) if args.preset else None)
    train, val, test = common.load_splits(args.data, "train", "validate", "test")
    test = common.head(test, args.test)
    torch.manual_seed(params.train.seed)
    tokens = common.load_tokens(args.vocab)
    train_cfg = params.train if args.warmup is None else dataclasses.replace(params.train, warmup_steps=args.warmup)
    trainer = common.Trainer(tokens, params.model, train_cfg, 10**9, args.device)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seen, steps, epoch, start = 0, 0, 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for batch in common.batches(train, train_cfg.batch_size, True, train_cfg.seed, epoch, train_cfg.curriculum):
            trainer.step(batch, progress=(time.perf_counter() - start) / args.seconds)
            seen, steps = seen + len(batch[0]), steps + 1
            if time.perf_counter() - start >= args.seconds:
                break
        epoch += 1
    seconds = time.perf_counter() - start
    net, width, penalty = trainer.module.net.eval(), params.read.beam_width, params.read.length_penalty
    timed = [[image] for image in test.images[:50]]
    results = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu", "torch": torch.__version__,
               "preset": args.preset, "model": params.model, "batch_size": train_cfg.batch_size, "lr": train_cfg.lr,
               "warmup_steps": train_cfg.warmup_steps,
               "samples": seen, "steps": steps, "epochs": round(seen / len(train.images), 2), "seconds": round(seconds, 1),
               "samples_per_s": round(seen / seconds, 1),
               "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if args.device == "cuda" else None,
               "val_token_acc": round(trainer.token_accuracy(val), 4),
               "test_bleu4_greedy": common.bleu(net, tokens, test),
               "latency_ms_per_image_greedy_batch1": common.latency_ms(lambda x: common.decode(net, tokens, x, 1), timed),
               f"latency_ms_per_image_beam{width}_batch1": common.latency_ms(
                   lambda x: common.decode(net, tokens, x, width, length_penalty=penalty), timed)}
    start = time.perf_counter()
    common.decode(net, tokens, test.images, width, batch_size=64, length_penalty=penalty)
    results[f"ms_per_image_beam{width}_batch64"] = round(1000 * (time.perf_counter() - start) / len(test.images), 2)
    common.write(results, args.out)


if __name__ == "__main__":
    main()
