"""What limits the CPU default: optimiser steps or capacity? Trains the CPU default's recipe (batch 12, lr 3e-3,
every epoch sorted narrow to wide, gradients clipped at 5) on a GPU for the CPU run's samples, then for more
time, at a larger batch, and a larger network for the same time; scores each with greedy and beam-3 decoding on
the synthetic test split and on every labelled folder that bench/gpu_pack.py packed. A variant with `seconds`
follows its cosine learning-rate schedule over wall-clock time, so a time-capped run still anneals. One variant
per process, all at once; writes one JSON per variant and limits.json to $OUT.

    python bench/gpu_pack.py --out gpu --folder DIR...           # here
    OUT=out python bench/gpu_limits.py                           # on the GPU machine
    python bench/gpu_limits.py --rate cpu_run wide_b12_long      # here: CPU training samples/s of their models
    SMOKE=1 OUT=/tmp python bench/gpu_limits.py cpu_run          # a smoke test here (CPU, a few steps)
The variants with encoder self-attention (model.encoder_layers) or tweaks (tied embeddings, weight averaging, Adam
beta2, attention within rows) try cheap changes to the CPU run at its number of steps or at its time. GREEDY=0 skips
greedy decoding, WORKERS sets the data loader's workers (3)."""
import argparse, json, math, os, subprocess, sys, time
from pathlib import Path

import torch

sys.path.insert(0, os.getcwd())
from bench.gpu_sweep import batches, decode_all, load
from im2latex.data.dataset import BucketBatchSampler, collate
from im2latex.data.vocab import Vocabulary
from im2latex.training import Im2LatexModule

CPU_MODEL = dict(d_model=128, heads=4, layers=2, ff=512, dropout=0.0, encoder_channels=16, max_len=160, encoder_layers=0)
WIDE = dict(CPU_MODEL, d_model=256, heads=8, layers=3, ff=1024, encoder_channels=32)
LONG_S = float(os.environ.get("LONG_S", "330"))  # the time-capped variants
CPU_SAMPLES = 88_000  # the default run: 4 epochs of 22,000
VARIANTS = {  # name: model, batch, lr, budget (samples or seconds)[, tweaks: see tweak()]
    "cpu_run": (CPU_MODEL, 12, 3e-3, dict(samples=CPU_SAMPLES)),
    # cheap changes to the CPU run at its number of steps
    "enc_attn": (dict(CPU_MODEL, encoder_layers=1), 12, 3e-3, dict(samples=CPU_SAMPLES)),
    "tied": (CPU_MODEL, 12, 3e-3, dict(samples=CPU_SAMPLES), dict(tied=True)),
    "ema": (CPU_MODEL, 12, 3e-3, dict(samples=CPU_SAMPLES), dict(ema=0.999)),
    "betas98": (CPU_MODEL, 12, 3e-3, dict(samples=CPU_SAMPLES), dict(beta2=0.98)),
    "tied_ema_b98": (CPU_MODEL, 12, 3e-3, dict(samples=CPU_SAMPLES), dict(tied=True, ema=0.999, beta2=0.98)),
    "enc_attn_all": (dict(CPU_MODEL, encoder_layers=1), 12, 3e-3, dict(samples=CPU_SAMPLES), dict(tied=True, ema=0.999, beta2=0.98)),
    # at the CPU run's time: the layer costs about 30% of the CPU's steps/s, so 4 epochs of 16,000 formulas
    "enc_attn_cpu_time": (dict(CPU_MODEL, encoder_layers=1), 12, 3e-3, dict(samples=64_000)),
    "row_attn_cpu_time": (dict(CPU_MODEL, encoder_layers=1), 12, 3e-3, dict(samples=66_000), dict(rows=True)),
    "cpu_model_b12_long": (CPU_MODEL, 12, 3e-3, dict(seconds=LONG_S)),
    "wide_b12_long": (WIDE, 12, 1e-3, dict(seconds=LONG_S)),
    "cpu_model_b48_long": (CPU_MODEL, 48, 3e-3, dict(seconds=LONG_S)),
    "wide_b48_long": (WIDE, 48, 1e-3, dict(seconds=LONG_S)),
}


class RowEncoder(torch.nn.Module):
    """An Encoder whose self-attention layers attend within each row of cells only (h * w^2 rather than
    (h * w)^2 scores)."""

    def __init__(self, enc):
        super().__init__()
        self.enc, self.layers = enc, enc.layers
        enc.layers = torch.nn.ModuleList()

    def forward(self, images):
        from im2latex.model.network import cell_bias
        x = self.enc(images)
        b, n, d = x.shape
        h = (images.shape[2] // 2 + 3) // 4
        w = n // h
        bias = cell_bias(images).reshape(b * h, 1, 1, w)
        bias = bias.masked_fill(torch.isinf(bias).all(-1, keepdim=True), 0.0)  # a row wholly padding stays finite
        x = x.reshape(b * h, w, d)
        for layer in self.layers:
            x = layer(x, bias)
        return x.reshape(b, n, d)


def tweak(m, t):
    """Apply a variant's tweaks to the module; returns the EMA copy of the network (or None)."""
    import copy
    if t.get("rows"):
        m.net.encoder = RowEncoder(m.net.encoder)
    if t.get("tied"):
        m.net.head.weight = m.net.embed.weight
    return copy.deepcopy(m.net) if t.get("ema") else None


def run(name, out, smoke):
    from nltk.translate.bleu_score import corpus_bleu
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model, bs, lr, budget, *rest = VARIANTS[name]
    t = rest[0] if rest else {}
    train, val, test = load("train"), load("validate"), load("test")
    reals = {p.name[5:-7]: load(p.name[:-7]) for p in sorted(Path("gpu").glob("real_*.pkl.gz"))}
    tokens = Vocabulary.load("gpu/vocab.json").tokens
    if smoke:
        budget = dict(samples=4 * bs)
        test, reals = {k: v[:8] for k, v in test.items()}, {d: {k: v[:8] for k, v in r.items()} for d, r in reals.items()}
    m = Im2LatexModule(tokens, model, lr, 0.01, 300, 1, 0.1)
    ema = tweak(m, t)
    m, ema = m.to(dev), ema.to(dev) if ema is not None else None
    opt = m.configure_optimizers()["optimizer"]
    for g in opt.param_groups:
        g["betas"] = (0.9, t.get("beta2", 0.999))
    sampler = BucketBatchSampler([i.shape for i in train["images"]], bs, True, 0, curriculum=10**6)
    pairs = list(zip(train["images"], train["ids"]))
    loader = torch.utils.data.DataLoader(pairs, batch_sampler=sampler, collate_fn=collate, num_workers=int(os.environ.get("WORKERS", "3")),
                                         persistent_workers=True, pin_memory=dev == "cuda")
    total_steps = budget.get("samples", 0) // bs
    seen, step, epoch, start, skipped = 0, 0, 0, time.time(), 0

    def progress():
        return step / total_steps if total_steps else (time.time() - start) / budget["seconds"]

    while progress() < 1:
        sampler.set_epoch(epoch)
        for b in loader:
            warm = min(1.0, (step + 1) / 300)
            for g in opt.param_groups:
                g["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * min(1.0, progress())))
            b = [t.to(dev, non_blocking=True) for t in b]
            with torch.autocast(dev, dtype=torch.bfloat16):
                loss, _ = m._loss(b, 0.1)
            loss.backward()
            if torch.isfinite(torch.nn.utils.clip_grad_norm_(m.parameters(), 5.0)):
                opt.step()
            else:
                skipped += 1
            opt.zero_grad(set_to_none=True)
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(list(ema.parameters()), list(m.net.parameters()), 1 - t["ema"])
                    for be, bm in zip(ema.buffers(), m.net.buffers()):
                        be.copy_(bm)
            seen += len(b[0]); step += 1
            if progress() >= 1:
                break
        epoch += 1
    seconds = time.time() - start
    if ema is not None:
        m.net = ema
    m.eval()
    with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16):
        accs = [m._loss([t.to(dev) for t in b], 0.0)[1].item() for b in batches(val, 64, False, 0)]
    score = lambda data, preds: round(corpus_bleu([[t.split()] for t in data["formulas"]], [p.split() for p in preds]), 4)
    r = {"name": name, "model": model, "tweaks": t, "batch": bs, "lr": lr, "samples": seen, "steps": step, "epochs": round(epoch, 1),
         "seconds": round(seconds, 1), "skipped_steps": skipped, "params": sum(p.numel() for p in m.parameters()),
         "val_token_acc": round(sum(accs) / len(accs), 4)}
    for d, data in [("synthetic_test", test)] + sorted(reals.items()):
        if os.environ.get("GREEDY", "1") == "1":
            r[f"{d}_greedy"] = score(data, decode_all(m.net, data["images"], tokens, dev))
        r[f"{d}_beam3"] = score(data, decode_all(m.net, data["images"], tokens, dev, width=3))
    print(json.dumps(r), flush=True)
    Path(out, f"{name}.json").write_text(json.dumps(r) + "\n")


def rate(names):
    """CPU training samples/s and steps/s of each variant's model at batch 12, bf16, on the same 40 batches."""
    tokens = Vocabulary.load("gpu/vocab.json").tokens
    data = list(batches(load("train"), 12, True, 1))[:43]
    for name in names:
        torch.manual_seed(0)
        model, _, _, _, *rest = VARIANTS[name]
        m = Im2LatexModule(tokens, model, 1e-3, 0.01, 300, 1000, 0.1).train()
        ema = tweak(m, rest[0] if rest else {})
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        for n, b in enumerate(data):
            if n == 3:  # the first steps warm up the allocator
                seen, start = 0, time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = m._loss(b, 0.1)[0]
            loss.backward(); opt.step(); opt.zero_grad()
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(list(ema.parameters()), list(m.net.parameters()), 0.001)
            seen = seen + len(b[0]) if n >= 3 else 0
        seconds = time.perf_counter() - start
        print(name, round(seen / seconds, 1), "samples/s", round((len(data) - 3) / seconds, 2), "steps/s", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", default=list(VARIANTS))
    p.add_argument("--rate", action="store_true", help="measure CPU samples/s instead")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    out, smoke = os.environ.get("OUT", "/tmp"), os.environ.get("SMOKE") == "1"
    if a.rate:
        return rate(a.names)
    if a.one:
        return run(a.names[0], out, smoke)
    procs = [subprocess.Popen([sys.executable, __file__, "--one", n], stdout=open(f"{out}/{n}.log", "w"), stderr=subprocess.STDOUT)
             for n in a.names]
    for proc in procs:
        proc.wait()
    results = [json.loads(Path(out, f"{n}.json").read_text()) for n in a.names if Path(out, f"{n}.json").exists()]
    Path(out, "limits.json").write_text(json.dumps(results, indent=1) + "\n")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
