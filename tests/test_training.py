"""Training end to end on tiny data: it learns, it resumes, and the export matches it."""
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml

from im2latex.config import ModelConfig, SyntheticConfig, TrainConfig
from im2latex.data import layout
from im2latex.data.preprocessing import load_image, load_split, preprocess_split, save_split, tensor_images
from im2latex.data.sources import build_synthetic
from im2latex.data.tokenizer import tokenize
from im2latex.data.vocab import build_vocabulary
from im2latex.export import check_parity, script
from im2latex.reader import FormulaReader
from im2latex.model.inputs import prepare, to_batch
from im2latex.model.network import load_model
from im2latex.training import resolve_precision, train
from tests.conftest import PREPROCESS

MODEL = ModelConfig(d_model=64, heads=4, layers=2, ff=128, dropout=0.0, encoder_channels=8, max_len=16, encoder_positions=64,
                    encoder_layers=1)
TRAIN = TrainConfig(seed=0, batch_size=4, lr=5.0e-3, weight_decay=0.0, warmup_steps=10, label_smoothing=0.0,
                    max_epochs=60, curriculum=1, grad_clip=1.0, max_minutes=0.0, precision="32-true", accelerator="cpu", devices=1,
                    strategy="auto", workers=0)


@pytest.fixture(scope="module")
def handful(tmp_path_factory):
    """Four short rendered formulas, preprocessed; the same four serve as train, validate and test."""
    root = tmp_path_factory.mktemp("handful")
    cfg = SyntheticConfig(train=4, validate=0, test=0, max_tokens=6, dpi=(100, 100), pad=(4, 4), noise=0.0, font_sizes=[12],
                          downsample=(1.0, 1.0), bold=0.0, blur=0.0, binarise=0.0, jpeg=0.0, chunk=4, eval_chunk=4,
                          renderers={"latex": 1.0}, tinted=0.0, dark=0.0)
    (root / "raw").mkdir()
    build_synthetic(root / "raw", cfg, seed=8)  # four formulas of 4-6 tokens that look unlike each other
    samples = layout.read_split(root / "raw", "train")
    vocab, _ = build_vocabulary([tokenize(s.formula) for s in samples], min_freq=1)
    vocab.save(root / "vocab.json")
    data, _ = preprocess_split(samples, vocab, PREPROCESS, workers=1)
    (root / "pre").mkdir()
    for split in ("train", "validate", "test"):
        save_split(root / "pre" / f"{split}.pkl", data)
    return root


def test_tiny_model_overfits_a_handful_to_exact_match(handful, tmp_path):
    train(handful / "pre", handful / "vocab.json", MODEL, TRAIN, tmp_path / "w.pt", tmp_path / "live", tmp_path / "ck")
    net, tokens = load_model(tmp_path / "w.pt")
    data = load_split(handful / "pre" / "test.pkl")
    reader = FormulaReader(net, tokens, 0, 0, [1.0], 1)
    predictions = [reader.to_text(ids) for ids in reader.decode(to_batch(tensor_images(data.images)), 1)]
    assert predictions == data.formulas
    assert (tmp_path / "live" / "metrics.json").is_file()  # DVCLive curves

    # the TorchScript file reads the raw rendered PNGs (its own cropping and padding) to the same formulas
    scripted = script(net, tokens, PREPROCESS.threshold, PREPROCESS.pad, [PREPROCESS.glyph_height], beam_width=2)
    scripted.save(str(tmp_path / "model.pt"))
    loaded = torch.jit.load(str(tmp_path / "model.pt"))
    raw = [torch.from_numpy(load_image(handful / "raw" / layout.IMAGES / f"{n}.png")) for n in data.names]
    assert loaded(raw) == data.formulas
    texts, scores = loaded.read(raw + [torch.full((20, 20), 255, dtype=torch.uint8)])
    assert texts == data.formulas + [""] and min(scores[:4]) > 0.5 and scores[4] == 0.0  # confident; blank
    assert check_parity(net, loaded, [to_batch(tensor_images(data.images))], beam_width=2) == 4

    # read at several sizes, the readings agree: a size that garbles every formula changes nothing
    garbled, low = script(net, tokens, PREPROCESS.threshold, PREPROCESS.pad, [3.0], 2).read(raw)
    assert garbled != data.formulas and max(low) < min(scores[:4])
    for sizes in ([3.0, PREPROCESS.glyph_height], [PREPROCESS.glyph_height, 3.0]):
        assert script(net, tokens, PREPROCESS.threshold, PREPROCESS.pad, sizes, 2).read(raw) == (data.formulas, scores[:4])


def test_only_training_batches_follow_the_curriculum(handful):
    from im2latex.training import FormulaDataModule

    datamodule = FormulaDataModule(handful / "pre", 1, 0, 0, curriculum=1)
    datamodule.setup()
    train_batches, val_batches = datamodule.train_dataloader().batch_sampler, datamodule.val_dataloader().batch_sampler
    assert train_batches.curriculum and not val_batches.curriculum
    widths = [datamodule.splits["train"].images[b[0]].shape[1] for b in train_batches]
    assert widths == sorted(widths) and len(set(widths)) > 1


class PoisonGradient(pl.Callback):
    def on_after_backward(self, trainer, module):
        if trainer.global_step == 3:
            next(module.parameters()).grad.fill_(float("nan"))  # as a bf16 overflow would


def test_a_non_finite_gradient_skips_its_step_instead_of_poisoning_the_weights(handful, tmp_path, caplog):
    cfg = dataclasses.replace(TRAIN, max_epochs=3)
    train(handful / "pre", handful / "vocab.json", MODEL, cfg, tmp_path / "w.pt", tmp_path / "live", tmp_path / "ck",
          callbacks=[PoisonGradient()])
    net, _ = load_model(tmp_path / "w.pt")
    assert all(torch.isfinite(p).all() for p in net.parameters())
    assert "step 3: non-finite gradient, step skipped" in caplog.text


class BatchWidths(pl.Callback):
    def __init__(self):
        self.epochs: list[list[int]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == 0:
            self.epochs.append([])
        self.epochs[-1].append(batch[0].shape[-1])


def test_each_epoch_draws_a_new_order_and_only_the_first_follows_the_curriculum(handful, tmp_path):
    """Lightning sets the epoch of a sampler, not of a batch sampler: the module must, or every epoch repeats."""
    widths = BatchWidths()
    cfg = dataclasses.replace(TRAIN, batch_size=1, max_epochs=3)
    train(handful / "pre", handful / "vocab.json", MODEL, cfg, tmp_path / "w.pt", tmp_path / "live", tmp_path / "ck",
          callbacks=[widths])
    first, second, third = widths.epochs
    assert first == sorted(first) and second != sorted(second) and second != third
    assert sorted(first) == sorted(second) == sorted(third)


class Interrupt(pl.Callback):
    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 2:
            raise KeyboardInterrupt  # as if the run were killed


class FirstEpoch(pl.Callback):
    first = None

    def on_train_epoch_start(self, trainer, module):
        FirstEpoch.first = trainer.current_epoch if FirstEpoch.first is None else FirstEpoch.first


def test_interrupted_training_resumes_from_its_checkpoint(handful, tmp_path):
    cfg = dataclasses.replace(TRAIN, max_epochs=4)
    args = (handful / "pre", handful / "vocab.json", MODEL, cfg, tmp_path / "w.pt", tmp_path / "live", tmp_path / "ck")
    with pytest.raises(SystemExit):  # Lightning's reaction to an interrupt
        train(*args, callbacks=[Interrupt()])
    assert not (tmp_path / "w.pt").exists()
    train(*args, callbacks=[FirstEpoch()])
    assert FirstEpoch.first == 2
    # other params never resume that checkpoint
    FirstEpoch.first = None
    train(handful / "pre", handful / "vocab.json", MODEL, dataclasses.replace(cfg, lr=1.0e-3), tmp_path / "w2.pt",
          tmp_path / "live2", tmp_path / "ck", callbacks=[FirstEpoch()])
    assert FirstEpoch.first == 0
    assert len(list((tmp_path / "ck").iterdir())) == 2


def test_prepare_matches_preprocessing(handful):
    """The exported model's input normalisation is the one the training images went through."""
    from im2latex.data.preprocessing import prepare_image

    image = load_image(next((handful / "raw" / layout.IMAGES).iterdir()))
    assert (prepare(torch.from_numpy(image), 200, 4, 8.0).numpy() ==
            prepare_image(image, dataclasses.replace(PREPROCESS, glyph_height=8.0))).all()


def run_train_stage(handful: Path, out: Path, train_keys: dict, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m stages.train` in a process of its own on the handful, with TRAIN changed by `train_keys`; it writes
    out/w.pt, out/live and out/ck."""
    out.mkdir(exist_ok=True)
    params = {"model": dataclasses.asdict(MODEL), "train": {**dataclasses.asdict(TRAIN), **train_keys}}
    (out / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [sys.executable, "-m", "stages.train", str(out / "params.yaml"), str(handful / "pre"), str(handful / "vocab.json"),
         str(out / "w.pt"), str(out / "live"), str(out / "ck")],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1], env=env)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(handful, tmp_path):
    """strategy: ddp with devices: 2 on CPU (gloo): the stage script is relaunched once per rank."""
    result = run_train_stage(handful, tmp_path, {"max_epochs": 2, "strategy": "ddp", "devices": 2, "batch_size": 2})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout and "All distributed processes registered" in result.stderr + result.stdout
    load_model(tmp_path / "w.pt")
    (checkpoint,) = (tmp_path / "ck").glob("*/ckpt/last.ckpt")
    assert torch.load(checkpoint, weights_only=False)["global_step"] == 2  # 4 samples, 2 per batch, 2 ranks: 1 step an epoch


def test_checkpoint_key_follows_the_data_content_not_its_size_and_the_code(tmp_path, monkeypatch):
    from im2latex.config import ModelConfig, TrainConfig
    from im2latex.data.vocab import Vocabulary
    from im2latex.tokens import SPECIALS
    from im2latex.training import checkpoint_key

    model = ModelConfig(d_model=32, heads=2, layers=1, ff=64, dropout=0.0, encoder_channels=8, max_len=12,
                        encoder_positions=64, encoder_layers=0)
    cfg = TrainConfig(seed=0, batch_size=4, lr=1e-3, weight_decay=0.0, warmup_steps=1, label_smoothing=0.0, max_epochs=1,
                      curriculum=0, grad_clip=0.0, max_minutes=0.0, precision="32-true", accelerator="cpu", devices=1, strategy="auto", workers=0)
    vocab = Vocabulary(SPECIALS + ["x"])
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, content in ((a, b"0123456789"), (b, b"9876543210")):  # same names and sizes, other bytes
        folder.mkdir()
        (folder / "train.pkl").write_bytes(content)
    assert checkpoint_key(model, cfg, vocab, a) != checkpoint_key(model, cfg, vocab, b)
    assert checkpoint_key(model, cfg, vocab, a) == checkpoint_key(model, cfg, vocab, a)
    code = tmp_path / "training.py"  # a run whose training code changed must not resume the old run's checkpoints
    monkeypatch.setattr("im2latex.training.TRAINING_CODE", [code])
    code.write_text("order = 'same'\n")
    before = checkpoint_key(model, cfg, vocab, a)
    code.write_text("order = 'new'\n")
    assert checkpoint_key(model, cfg, vocab, a) != before


def test_the_schedule_decays_over_whichever_runs_out_first_steps_or_time():
    from im2latex.training import lr_factor

    assert [lr_factor(s, 4, 104) for s in (0, 3)] == [0.25, 1.0]  # warm-up
    steps_only = [lr_factor(s, 4, 104) for s in range(4, 105)]
    assert steps_only[0] == 1.0 and steps_only[50] == pytest.approx(0.5) and steps_only[-1] == 0.0
    assert all(a >= b for a, b in zip(steps_only, steps_only[1:]))
    assert lr_factor(54, 4, 104, time_progress=0.2) == steps_only[50]  # on time: the step schedule, unchanged
    assert lr_factor(54, 4, 104, time_progress=0.75) == pytest.approx(lr_factor(79, 4, 104))  # late: decays faster
    assert lr_factor(54, 4, 104, time_progress=1.0) == 0.0


def test_the_epochs_left_are_thinned_to_the_pace_of_the_steps_so_far():
    from im2latex.training import epoch_share

    assert epoch_share(elapsed=60, remaining=600, steps_done=100, epoch_steps=100, epochs_left=3) == 1.0  # on time
    assert epoch_share(elapsed=60, remaining=0, steps_done=100, epoch_steps=100, epochs_left=3) == 0.0
    # 10 s a step and 300 s left: 30 steps, less the margin, over two epochs of 50
    assert epoch_share(10 * 20, 300, 20, 50, 2, margin=0.9) == pytest.approx(27 / 100)
    assert epoch_share(0, 600, 0, 100, 3) == 1.0  # no pace yet: the first epoch runs whole


class LearningRates(pl.Callback):
    def __init__(self):
        self.rates: list[float] = []
        self.epochs: list[int] = []  # the epoch of each step
        self.validated: list[int] = []  # the epoch of each validation

    def on_validation_epoch_end(self, trainer, module):
        self.validated.append(trainer.current_epoch)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])
        self.epochs.append(trainer.current_epoch)


def test_a_time_budget_ends_training_in_time_with_the_learning_rate_decayed(handful, tmp_path, caplog):
    caplog.set_level("INFO", logger="im2latex.training")
    rates, budget_s = LearningRates(), 4.0
    cfg = dataclasses.replace(TRAIN, batch_size=1, max_epochs=100_000, max_minutes=budget_s / 60)
    start = time.perf_counter()
    train(handful / "pre", handful / "vocab.json", MODEL, cfg, tmp_path / "w.pt", tmp_path / "live", tmp_path / "ck",
          callbacks=[rates])
    assert time.perf_counter() - start < budget_s + 20  # the budget, plus start-up and saving
    steps = len(rates.rates)
    assert cfg.warmup_steps < steps < 4 * cfg.max_epochs and f"time for {steps} of 400000 planned steps" in caplog.text
    # the first epoch ran whole (4 formulas, batch 1), then the clock's pace thinned the later ones to a batch each
    per_epoch = [rates.epochs.count(e) for e in range(rates.epochs[-1] + 1)]
    assert per_epoch[0] == 4 and len(per_epoch) > 2 and set(per_epoch[1:]) == {1} and "thinned to 1 of its 4 batches" in caplog.text
    assert rates.validated[:len(per_epoch) - 1] == list(range(len(per_epoch) - 1))  # a thinned epoch is validated too
    after_warmup = rates.rates[cfg.warmup_steps:]
    assert max(rates.rates) == pytest.approx(cfg.lr, rel=0.05)  # peaked, then decayed to about zero in time
    assert all(a >= b for a, b in zip(after_warmup, after_warmup[1:])) and after_warmup[-1] < 0.05 * cfg.lr
    net, _ = load_model(tmp_path / "w.pt")
    assert all(torch.isfinite(p).all() for p in net.parameters())


class SlowMachine(pl.Callback):
    """Every step takes longer, as on a busy hour."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        time.sleep(0.05)


@pytest.mark.slow
def test_the_train_stage_writes_the_same_weights_with_tcmalloc_preloaded_as_without(handful, tmp_path):
    """`make repro` runs the pipeline with tcmalloc preloaded (a faster CPU step): the weights must not depend on it."""
    import ctypes.util

    lib = ctypes.util.find_library("tcmalloc_minimal")
    assert lib, "tcmalloc is missing: `make test` installs libtcmalloc-minimal4 (Debian/Ubuntu, as root)"
    make = subprocess.run(["make", "-n", "repro"], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert f"LD_PRELOAD={lib} dvc repro" in make.stdout
    weights = {}
    for name, preload in (("glibc", ""), ("tcmalloc", lib)):
        env = {**os.environ, "LD_PRELOAD": preload}
        maps = subprocess.run([sys.executable, "-c", "print(open('/proc/self/maps').read())"], capture_output=True,
                              text=True, env=env).stdout
        assert ("libtcmalloc_minimal" in maps) == bool(preload)
        result = run_train_stage(handful, tmp_path / name, {"max_epochs": 3, "batch_size": 2}, env)
        assert result.returncode == 0, result.stderr[-3000:]
        weights[name] = torch.load(tmp_path / name / "w.pt", weights_only=True)["state_dict"]
    glibc, tcmalloc = weights["glibc"], weights["tcmalloc"]
    assert glibc.keys() == tcmalloc.keys() and all(torch.equal(glibc[k], tcmalloc[k]) for k in glibc)


def test_without_a_time_budget_the_clock_changes_neither_the_steps_nor_the_weights(handful, tmp_path):
    """max_minutes 0 (the default): two clones train the same steps to the same weights, however busy the machine."""
    cfg = dataclasses.replace(TRAIN, batch_size=1, max_epochs=3)
    runs = []
    for name, callbacks in (("fast", []), ("slow", [SlowMachine()])):
        rates = LearningRates()
        train(handful / "pre", handful / "vocab.json", MODEL, cfg, tmp_path / f"{name}.pt", tmp_path / f"live-{name}",
              tmp_path / f"ck-{name}", callbacks=[rates, *callbacks])
        runs.append((rates.rates, torch.load(tmp_path / f"{name}.pt", weights_only=True)["state_dict"]))
    (fast_rates, fast), (slow_rates, slow) = runs
    assert len(fast_rates) == len(slow_rates) == 4 * cfg.max_epochs  # every planned step: 4 formulas, batch 1
    assert fast_rates == slow_rates
    assert fast.keys() == slow.keys() and all(torch.equal(fast[k], slow[k]) for k in fast)


class Precision(pl.Callback):
    def on_train_start(self, trainer, module):
        self.precision = trainer.precision


@pytest.mark.parametrize("native, expected", [(False, "32-true"), (True, "bf16-mixed")])
def test_auto_precision_trains_in_bf16_only_where_the_device_has_it_natively(handful, tmp_path, monkeypatch, native, expected):
    """With AVX2 alone a CPU emulates bf16 (10x slower than float32): there `auto` trains in float32."""
    monkeypatch.setattr("im2latex.training.native_bf16", lambda gpu: native)
    seen = Precision()
    train(handful / "pre", handful / "vocab.json", MODEL, dataclasses.replace(TRAIN, max_epochs=1, precision="auto"),
          tmp_path / "w.pt", tmp_path / "live", tmp_path / "ck", callbacks=[seen])
    assert seen.precision == expected
    assert resolve_precision("16-mixed", "cpu") == "16-mixed"  # a named precision is taken as it is
