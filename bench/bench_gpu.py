"""GPU benchmark, on the folder bench/gpu_pack.py writes (default gpu/): (1) `grid`: the CPU default's model
at two learning rates and a wider one, each for a fixed time, scored (greedy BLEU-4) on the synthetic test
split and on every packed folder of real images; (2) `preset`: the GPU preset's model and batch for 130 s:
samples/s in bf16, peak memory, validation token accuracy, BLEU-4, beam-search latency. Writes log.txt and
results.json to $OUT. WORKERS=N collates the batches in N data loader processes (default 0: in the loop).

    python bench/gpu_pack.py --out gpu --folder ../real/rendered ../real/official   # here
    OUT=out python bench/bench_gpu.py all                                          # on the GPU machine
    DEV=cpu SMOKE=1 OUT=/tmp python bench/bench_gpu.py all                          # a smoke test on CPU"""
import gzip, json, pickle, sys, time, os
from pathlib import Path
import torch
sys.path.insert(0, os.getcwd())
from im2latex.data.dataset import BucketBatchSampler, collate
from im2latex.data.vocab import Vocabulary
from im2latex.model.inputs import to_batch
from im2latex.training import Im2LatexModule
from nltk.translate.bleu_score import corpus_bleu
import warnings; warnings.simplefilter("ignore")

if {"-h", "--help"} & set(sys.argv[1:]):
    sys.exit(print(__doc__))
dev = os.environ.get("DEV", "cuda")
SMOKE = os.environ.get("SMOKE") == "1"
OUT = os.environ.get("OUT", "/tmp")
def load(name):
    with gzip.open(f"gpu/{name}.pkl.gz", "rb") as f:
        return pickle.load(f)
train, val, test = load("train"), load("validate"), load("test")
reals = {p.name[5:-7]: load(p.name[:-7]) for p in sorted(Path("gpu").glob("real_*.pkl.gz"))}
tokens = Vocabulary.load("gpu/vocab.json").tokens
if SMOKE:
    test = {k: v[:8] for k, v in test.items()}
    reals = {d: {k: v[:8] for k, v in r.items()} for d, r in reals.items()}
results = {"device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu", "torch": torch.__version__}
def log(*a):
    print(*a, flush=True)
    with open(f"{OUT}/log.txt", "a") as f: print(*a, file=f)

WORKERS = int(os.environ.get("WORKERS", "0"))  # data loader processes collating batches (6 trained no faster on an H200)

def batches(data, bs, shuffle, seed, epoch=0):
    s = BucketBatchSampler([i.shape for i in data["images"]], bs, shuffle, seed)
    s.set_epoch(epoch)
    pairs = list(zip(data["images"], data["ids"]))
    yield from torch.utils.data.DataLoader(pairs, batch_sampler=s, collate_fn=collate, num_workers=WORKERS,
                                           pin_memory=dev == "cuda", persistent_workers=False)

def decode_all(net, images, width, bs=64):
    order = sorted(range(len(images)), key=lambda i: images[i].shape)
    out = [""] * len(images)
    for k in range(0, len(order), bs):
        chunk = order[k:k + bs]
        x = to_batch([torch.from_numpy(images[i]) for i in chunk]).to(dev)
        with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16):
            ids = net.greedy(x) if width == 1 else net.beam_search(x, width)
        for i, row in zip(chunk, ids.tolist()):
            toks = []
            for t in row:
                if t == 2: break
                if t > 2: toks.append(tokens[t])
            out[i] = " ".join(toks)
    return out

def bleu(targets, preds):
    return corpus_bleu([[t.split()] for t in targets], [p.split() for p in preds])

def score_all(net, width):
    net.eval()
    r = {}
    r["synthetic_test"] = round(bleu(test["formulas"], decode_all(net, test["images"], width)), 4)
    for d, data in reals.items():
        r[d] = round(bleu(data["formulas"], decode_all(net, data["images"], width)), 4)
    net.train()
    return r

def run(name, model, lr, bs, samples, seconds, warmup=200, smoothing=0.1):
    torch.manual_seed(0)
    if SMOKE: samples, seconds = 64, 5
    steps = samples // bs
    m = Im2LatexModule(tokens, model, lr, 0.01, warmup, steps, smoothing).to(dev)
    opt_cfg = m.configure_optimizers(); opt, sched = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
    seen, step, start, epoch = 0, 0, time.time(), 0
    done = False
    while not done:
        for b in batches(train, bs, True, 0, epoch):
            b = [t.to(dev, non_blocking=True) for t in b]
            with torch.autocast(dev, dtype=torch.bfloat16):
                loss, acc = m._loss(b, smoothing)
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True); sched.step()
            seen += len(b[0]); step += 1
            if step >= steps or time.time() - start > seconds:
                done = True; break
        epoch += 1
    el = time.time() - start
    with torch.no_grad():
        vl = [m._loss([t.to(dev) for t in b], 0.0)[1].item() for b in batches(val, 64, False, 0)]
    r = {"samples": seen, "epochs": round(seen / len(train["images"]), 2), "seconds": round(el, 1),
         "samples_per_s": round(seen / el, 1), "val_token_acc": round(sum(vl) / len(vl), 4)}
    r["greedy"] = score_all(m.net, 1)
    log(name, json.dumps(r))
    results[name] = r
    return m

part = sys.argv[1] if len(sys.argv) > 1 else "all"
base = dict(d_model=128, heads=4, layers=2, ff=512, dropout=0.0, encoder_channels=16, max_len=160)
if part in ("all", "grid"):
    run("A_d128_lr1e-3_180k", base, 1e-3, 32, 180_000, 100)
    run("C_d128_lr2e-3_180k", base, 2e-3, 32, 180_000, 100)
    run("B_d192L3_lr1e-3_110k", dict(base, d_model=192, heads=6, ff=768, layers=3), 1e-3, 32, 110_000, 80)
    json.dump(results, open(f"{OUT}/grid.json", "w"), indent=1)
if part in ("all", "preset"):
    # the GPU preset's model and schedule (presets/gpu.yaml), bf16, for a fixed time
    if dev == "cuda": torch.cuda.reset_peak_memory_stats()
    gp = dict(d_model=512, heads=8, layers=6, ff=2048, dropout=0.0, encoder_channels=64, max_len=160)
    m = run("gpu_preset_bf16", gp, 5e-4, 64, 10_000_000, 130, warmup=500)
    results["gpu_preset_bf16"]["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if dev == "cuda" else 0
    m.net.eval()
    imgs = reals["rendered"]["images"][:50]
    for width in (1, 5):
        decode_all(m.net, imgs[:4], width, bs=1)
        dev == "cuda" and torch.cuda.synchronize(); t = time.time()
        decode_all(m.net, imgs, width, bs=1)
        dev == "cuda" and torch.cuda.synchronize()
        results["gpu_preset_bf16"][f"latency_ms_per_image_beam{width}_batch1"] = round(1000 * (time.time() - t) / len(imgs), 1)
    t = time.time(); decode_all(m.net, reals["rendered"]["images"], 5, bs=64); dev == "cuda" and torch.cuda.synchronize()
    results["gpu_preset_bf16"]["ms_per_image_beam5_batch64"] = round(1000 * (time.time() - t) / len(reals["rendered"]["images"]), 2)
    log("preset", json.dumps(results["gpu_preset_bf16"]))
json.dump(results, open(f"{OUT}/results.json", "w"), indent=1)
