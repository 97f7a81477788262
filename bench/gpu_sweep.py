"""Model shapes at equal CPU time, trained on a GPU: each variant gets the number of samples that the 2-core
CPU trains in the default run's time (its CPU samples/s relative to the default's, measured here with
`python bench/gpu_sweep.py --rate NAME...`), then is scored with greedy decoding on the synthetic test split
and on every labelled folder that bench/gpu_pack.py packed. One variant per process, several at once:

    python bench/gpu_pack.py --out gpu --folder DIR...            # here
    python bench/gpu_sweep.py --rate A B C                        # here: CPU samples/s of each variant
    OUT=out python bench/gpu_sweep.py A B C ...                   # on the GPU machine (one process each)"""
import argparse, gzip, json, os, pickle, subprocess, sys, time
from pathlib import Path

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

sys.path.insert(0, os.getcwd())
from im2latex.data.dataset import BucketBatchSampler, collate
from im2latex.data.vocab import Vocabulary
from im2latex.model.inputs import to_batch
from im2latex.training import Im2LatexModule

BASE = dict(d_model=128, heads=4, layers=2, ff=512, dropout=0.0, encoder_channels=16, max_len=160)
DEFAULT_SAMPLES = 112_000  # the default run: 4 epochs of 28,000


def layer(cin, cout, stride, n=2):
    down = None if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    return nn.Sequential(BasicBlock(cin, cout, stride, down), *[BasicBlock(cout, cout) for _ in range(n - 1)])


def cnn(c, d, stem2=False, extra8=0, c4=None):
    c4 = c4 or 2 * c
    stem = [nn.Conv2d(1, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)] if stem2 else \
           [nn.Conv2d(1, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    return nn.Sequential(*stem, layer(c, c, 1), layer(c, c4, 2), layer(c4, d, 2, 2 + extra8))


# name: (changes, CPU samples/s relative to the default, measured with --rate)
VARIANTS = {
    "A_base": (dict(), 1.0),
    "B_x8": (dict(enc=dict(c=16, extra8=2)), 0.89),
    "C_s2c32": (dict(enc=dict(c=32, stem2=True)), 0.87),
    "D_s2c32x8": (dict(enc=dict(c=32, stem2=True, extra8=2)), 0.79),
    "E_s2c16x8": (dict(enc=dict(c=16, stem2=True, extra8=2)), 0.94),
    "F_L3": (dict(model=dict(layers=3)), 0.81),
    "G_s2c32x8L3": (dict(enc=dict(c=32, stem2=True, extra8=2), model=dict(layers=3)), 0.70),
    "H_lr3e-3": (dict(lr=3e-3), 1.0),
    # second round: distinct samples, learning rate, batch, a cheaper stem, smoothing
    "I_7k": (dict(train_n=7000), 1.0),
    "J_lr4e-3": (dict(lr=4e-3), 1.0),
    "K_lr6e-3": (dict(lr=6e-3), 1.0),
    "L_bs16_lr2e-3": (dict(bs=16), 0.85),
    "M_s2c16_lr3e-3": (dict(enc=dict(c=16, stem2=True), lr=3e-3), 1.1),
    "N_ls0_lr3e-3": (dict(smoothing=0.0, lr=3e-3), 1.0),
    "O_warm1000_lr4e-3": (dict(warmup=1000, lr=4e-3), 1.0),
    "P_3k": (dict(train_n=3500), 1.0),
    # third round: smaller batches (more optimiser steps for the same CPU time), a curriculum, noise
    "Q_bs16_seed1": (dict(bs=16, seed=1), 0.87),
    "R_bs8_lr1e-3": (dict(bs=8, lr=1e-3), 0.52),
    "S_bs8_lr2e-3": (dict(bs=8), 0.52),
    "T_bs16_lr3e-3": (dict(bs=16, lr=3e-3), 0.87),
    "U_bs16_lr1e-3": (dict(bs=16, lr=1e-3), 0.87),
    "V_bs16_curriculum": (dict(bs=16, curriculum=1), 0.87),
    "W_bs16_s2c16": (dict(bs=16, enc=dict(c=16, stem2=True)), 0.9),
    "X_bs24": (dict(bs=24), 0.92),
}


def build(tokens, name, total_steps):
    v = VARIANTS[name][0]
    model = dict(BASE, **v.get("model", {}))
    m = Im2LatexModule(tokens, model, v.get("lr", 2e-3), 0.01, v.get("warmup", 300), total_steps, v.get("smoothing", 0.1))
    if "enc" in v:
        m.net.encoder.cnn = cnn(d=model["d_model"], **v["enc"]).to(memory_format=torch.channels_last)
    return m


def load(name):
    with gzip.open(f"gpu/{name}.pkl.gz", "rb") as f:
        return pickle.load(f)


def batches(data, bs, shuffle, seed, epoch=0, curriculum=0):
    s = BucketBatchSampler([i.shape for i in data["images"]], bs, shuffle, seed, curriculum=curriculum)
    s.set_epoch(epoch)
    for b in s:
        yield collate([(data["images"][i], data["ids"][i]) for i in b])


def decode_all(net, images, tokens, dev, bs=64, width=1):
    order = sorted(range(len(images)), key=lambda i: images[i].shape)
    out = [""] * len(images)
    for k in range(0, len(order), bs):
        chunk = order[k:k + bs]
        x = to_batch([torch.from_numpy(images[i]) for i in chunk]).to(dev)
        with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16):
            ids = net.greedy(x) if width == 1 else net.beam_search(x, width)
        for i, row in zip(chunk, ids.tolist()):
            out[i] = " ".join(tokens[t] for t in row[:row.index(2)] if t > 2) if 2 in row else " ".join(tokens[t] for t in row if t > 2)
    return out


def sweep(name, out, smoke):
    from nltk.translate.bleu_score import corpus_bleu
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(2)
    train, val, test = load("train"), load("validate"), load("test")
    reals = {p.name[5:-7]: load(p.name[:-7]) for p in sorted(Path("gpu").glob("real_*.pkl.gz"))}
    tokens = Vocabulary.load("gpu/vocab.json").tokens
    samples = 64 if smoke else int(DEFAULT_SAMPLES * VARIANTS[name][1])
    if smoke:
        test, reals = {k: v[:8] for k, v in test.items()}, {d: {k: v[:8] for k, v in r.items()} for d, r in reals.items()}
    v = VARIANTS[name][0]
    torch.manual_seed(v.get("seed", 0))
    bs = v.get("bs", 32)
    train = {k: x[:v.get("train_n", len(x))] for k, x in train.items()}
    steps = samples // bs
    m = build(tokens, name, steps).to(dev)
    cfg = m.configure_optimizers()
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    seen, step, epoch, start = 0, 0, 0, time.time()
    max_s = float(os.environ.get("MAX_S", "inf"))  # a cap on the training time: a capped run reports fewer samples
    while step < steps:
        for b in batches(train, bs, True, v.get("seed", 0), epoch, v.get("curriculum", 0)):
            b = [t.to(dev, non_blocking=True) for t in b]
            with torch.autocast(dev, dtype=torch.bfloat16):
                loss, _ = m._loss(b, v.get("smoothing", 0.1))
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True); sched.step()
            seen += len(b[0]); step += 1
            if step >= steps or time.time() - start > max_s:
                break
        if time.time() - start > max_s:
            break
        epoch += 1
    seconds = time.time() - start
    m.eval()
    with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16):
        accs = [m._loss([t.to(dev) for t in b], 0.0)[1].item() for b in batches(val, 64, False, 0)]
    bleu = lambda data: round(corpus_bleu([[t.split()] for t in data["formulas"]],
                                          [p.split() for p in decode_all(m.net, data["images"], tokens, dev)]), 4)
    r = {"name": name, "samples": seen, "seconds": round(seconds, 1), "val_token_acc": round(sum(accs) / len(accs), 4),
         "params": sum(p.numel() for p in m.parameters()), "synthetic_test": bleu(test)}
    r.update({d: bleu(data) for d, data in reals.items()})
    print(json.dumps(r), flush=True)
    Path(out, f"{name}.json").write_text(json.dumps(r) + "\n")


def rate(names):
    """CPU samples/s of each variant on the first 30 batches of the packed training split."""
    tokens = Vocabulary.load("gpu/vocab.json").tokens
    for name in names:
        bs = list(batches(load("train"), VARIANTS[name][0].get("bs", 32), True, 1))[:33]
        torch.manual_seed(0)
        m = build(tokens, name, 1000).train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        for n, b in enumerate(bs):
            if n == 3:
                seen, start = 0, time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = m._loss(b, 0.1)[0]
            loss.backward(); opt.step(); opt.zero_grad()
            seen = seen + len(b[0]) if n >= 3 else 0
        print(name, round(seen / (time.perf_counter() - start), 1), "samples/s", flush=True)


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
        return sweep(a.names[0], out, smoke)
    procs = [subprocess.Popen([sys.executable, __file__, "--one", n], stdout=open(f"{out}/{n}.log", "w"), stderr=subprocess.STDOUT)
             for n in a.names]
    for proc in procs:
        proc.wait()
    results = [json.loads(Path(out, f"{n}.json").read_text()) for n in a.names if Path(out, f"{n}.json").exists()]
    Path(out, "sweep.json").write_text(json.dumps(results, indent=1) + "\n")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
