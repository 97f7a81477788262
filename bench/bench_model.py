"""Benchmark: training samples/s (training's own step), greedy / beam latency per image (eager vs TorchScript,
with and without the decoder's key/value cache), and the exported file's whole read of one image. Prints the
figures and writes them as JSON.

    python bench/bench_model.py [--images 20] [--steps 20] [--out bench/results.json]

Needs the pipeline's outputs (data/preprocessed, models/weights.pt, models/model.pt): run `make repro` first."""
import itertools
import platform
import time

import torch

import common
from im2latex.model.inputs import to_batch


def train_samples_per_s(trainer: common.Trainer, batches: list) -> float:
    """Samples/s of training steps on collated batches; the first two warm up allocators and are not timed."""
    seen, start = 0, time.perf_counter()
    for n, batch in enumerate(batches):
        if n == 2:
            seen, start = 0, time.perf_counter()
        trainer.step(batch)
        seen += len(batch[0])
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = common.make_parser(__doc__, "bench/results.json", "params", "data", "weights", "model")
    parser.add_argument("--images", type=int, default=20, help="test images timed one at a time")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed")
    args = parser.parse_args()
    common.require(args.data / "train.pkl", args.data / "test.pkl", args.weights, args.model)

    params = common.load_params(args.params)
    width = params.read.beam_width
    net, tokens, model = common.load_weights(args.weights)
    scripted = common.load_exported(args.model)
    train, test = common.load_splits(args.data, "train", "test")
    trainer = common.Trainer(tokens, model, params.train, 1000, "cpu")
    batches = list(itertools.islice(common.batches(train, params.train.batch_size, True, params.train.seed), args.steps + 2))
    images = [torch.from_numpy(i) for i in test.images[:args.images]]
    prepared = [to_batch([i]) for i in images]
    results = {"machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
               "train_precision": params.train.precision,
               "train_samples_per_s": round(train_samples_per_s(trainer, batches), 1),
               "beam_width": width, "latency_ms_per_image": {}}
    with torch.no_grad():
        for name, decoder in (("eager", net), ("torchscript", scripted.net)):
            for cache in (True, False):
                key = f"{name}, {'cache' if cache else 'no cache'}"
                results["latency_ms_per_image"][f"greedy, {key}"] = common.latency_ms(
                    lambda x: decoder.greedy(x, 0, cache), prepared)
                results["latency_ms_per_image"][f"beam {width}, {key}"] = common.latency_ms(
                    lambda x: decoder.beam_search(x, width, 0, cache), prepared)
        # what a user waits for: the exported file's read (prepare at each reading size, decode, confidence)
        results[f"read_ms_per_image, {len(scripted.glyph_heights)} reading sizes"] = common.latency_ms(
            lambda x: scripted.read([x]), images)
    common.write(results, args.out)


if __name__ == "__main__":
    main()
