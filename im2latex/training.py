"""Lightning glue: the DataModule over the preprocessed pickles, the LightningModule, and `train`."""
import dataclasses
import datetime
import hashlib
import json
import logging
import math
import shutil
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Timer
import torch.nn.functional as F
from torch.utils.data import DataLoader

from im2latex import Im2LatexError
from im2latex.config import ModelConfig, TrainConfig
from im2latex.data.dataset import BucketBatchSampler, FormulaDataset, collate
from im2latex.data.preprocessing import load_split
from im2latex.data.vocab import Vocabulary
from im2latex.tokens import PAD
from im2latex.model.network import Im2LatexNet, save_model

log = logging.getLogger(__name__)
# knobs that change how fast training runs, not what it computes: a checkpoint stays valid across them
RUNTIME_ONLY = ("accelerator", "workers")
# the code a run's checkpoints depend on: a change to it (say, to the batch order) must not resume an old run
TRAINING_CODE = [Path(__file__), Path(__file__).parent / "data" / "dataset.py",
                 *sorted((Path(__file__).parent / "model").glob("*.py"))]


def native_bf16(gpu: bool) -> bool:
    """Whether the device computes in bf16 natively: a GPU that supports it, or a CPU whose oneDNN has bf16 kernels
    (AVX-512 and newer; with AVX2 alone, bf16 is emulated)."""
    if gpu:
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, accelerator: str) -> str:
    """train.precision as Lightning takes it. "auto" is bf16-mixed where the device computes bf16 natively, else
    32-true: on a 2-core CPU with AVX2 alone, bf16 autocast made the quality preset's step 10x slower than float32
    (0.65 against 6-7 steps/s), where a CPU with AVX-512 ran it faster than float32."""
    if precision != "auto":
        return precision
    gpu = accelerator in ("gpu", "cuda") or accelerator == "auto" and torch.cuda.is_available()
    chosen = "bf16-mixed" if native_bf16(gpu) else "32-true"
    log.info("train.precision auto: %s (%s)", chosen, "a GPU" if gpu else f"CPU with {torch.backends.cpu.get_cpu_capability()}")
    return chosen


class FormulaDataModule(pl.LightningDataModule):
    def __init__(self, folder: str | Path, batch_size: int, seed: int, workers: int, curriculum: int = 0):
        super().__init__()
        self.folder, self.batch_size, self.seed, self.workers = Path(folder), batch_size, seed, workers
        self.curriculum = curriculum
        self.splits: dict[str, FormulaDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "validate"):
            self.splits.setdefault(split, FormulaDataset(load_split(self.folder / f"{split}.pkl")))

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.splits[split]
        trainer = self.trainer
        sampler = BucketBatchSampler([image.shape for image in data.images], self.batch_size, shuffle, self.seed,
                                     replicas=trainer.world_size if trainer else 1, rank=trainer.global_rank if trainer else 0,
                                     curriculum=self.curriculum if shuffle else 0)
        return DataLoader(data, batch_sampler=sampler, collate_fn=collate, num_workers=self.workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validate", shuffle=False)


class Im2LatexModule(pl.LightningModule):
    """Teacher-forced training of Im2LatexNet: label-smoothed cross-entropy, AdamW, warm-up then cosine decay."""

    def __init__(self, tokens: list[str], model: dict, lr: float, weight_decay: float, warmup_steps: int,
                 total_steps: int, label_smoothing: float):
        super().__init__()
        self.save_hyperparameters(ignore=["tokens"])  # the vocabulary is saved with the weights
        self.net = Im2LatexNet(tokens, **model)
        # channels-last convolutions: a quarter more steps/s on CPU. Under 16 channels, oneDNN's backward corrupts the heap
        # on some CPUs (an AMD EPYC with AVX512-BF16: the tiny test networks crashed), so those keep the default layout
        self.memory_format = torch.channels_last if model["encoder_channels"] >= 16 else torch.contiguous_format
        self.net.encoder.to(memory_format=self.memory_format)
        self.time_progress = 0.0  # share of train.max_minutes spent, 0 without a budget
        self.planned_steps = total_steps  # lowered by EpochPlan where the budget thins the epochs

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)
        remaining = timer.time_remaining() if timer else None
        if remaining is not None:
            elapsed = timer.time_elapsed()
            self.time_progress = elapsed / max(elapsed + remaining, 1e-9)

    def loss_and_accuracy(self, batch, smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced cross-entropy (label-smoothed by `smoothing`) and token accuracy of a collated batch."""
        images, inputs, targets = batch
        logits = self.net(images.contiguous(memory_format=self.memory_format), inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD, label_smoothing=smoothing)
        mask = targets != PAD
        accuracy = ((logits.argmax(-1) == targets) & mask).sum() / mask.sum()
        return loss, accuracy

    def training_step(self, batch, batch_idx: int) -> torch.Tensor | None:
        loss, accuracy = self.loss_and_accuracy(batch, self.hparams.label_smoothing)
        if not torch.isfinite(loss):  # a rare bad step in bf16 must not poison the weights: skip it
            log.warning("step %d: non-finite loss, batch skipped", self.global_step)
            return None
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch[0]))
        self.log("train/token_accuracy", accuracy, batch_size=len(batch[0]))
        return loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip the total gradient norm at train.grad_clip, and skip a step whose norm is not finite (AdamW leaves
        parameters without a gradient alone): one such step would turn every weight into NaN for the rest of the run."""
        norm = torch.nn.utils.clip_grad_norm_(self.parameters(), gradient_clip_val or math.inf)
        if not torch.isfinite(norm):
            log.warning("step %d: non-finite gradient, step skipped", self.global_step)
            optimizer.zero_grad(set_to_none=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, accuracy = self.loss_and_accuracy(batch, 0.0)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(batch[0]))
        self.log("val/token_accuracy", accuracy, prog_bar=True, sync_dist=True, batch_size=len(batch[0]))

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2 and "embed" not in n]
        rest = [p for n, p in self.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
        # fused: one kernel for all parameters instead of a dozen small ops per tensor (3% of a CPU step)
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay},
                                       {"params": rest, "weight_decay": 0.0}], lr=self.hparams.lr,
                                      fused=self.device.type in ("cpu", "cuda"))
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(
            step, self.hparams.warmup_steps, self.planned_steps, self.time_progress))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def lr_factor(step: int, warmup: int, total: int, time_progress: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 0 over whichever runs out first: the steps or the time budget
    (`time_progress`, the share of train.max_minutes spent). Where the machine keeps up with the budget this is
    the plain step schedule; where it is slower, the decay speeds up so that the run still ends annealed."""
    if step < warmup:
        return (step + 1) / warmup
    progress = max((step - warmup) / max(total - warmup, 1), time_progress)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def epoch_share(elapsed: float, remaining: float, steps_done: int, epoch_steps: int, epochs_left: int,
                margin: float = 0.97) -> float:
    """The share of its batches each of the `epochs_left` epochs may keep for the run to end inside the time budget,
    at the pace of the steps so far (validation included), less a margin: 1 while the plan fits."""
    if steps_done == 0 or epochs_left <= 0:
        return 1.0
    feasible = margin * remaining * steps_done / max(elapsed, 1e-9)
    return min(1.0, feasible / max(epoch_steps * epochs_left, 1))


class EpochPlan(pl.Callback):
    """At the start of each epoch:
    - gives the batch sampler its epoch: Lightning sets it on a data loader's sampler, not on its batch sampler, and
      without this every epoch would repeat the first one's order (and its curriculum);
    - under train.max_minutes, where the planned epochs would not fit in time, thins this and the later epochs evenly
      (epoch_share) and plans the learning rate's decay over the steps left. A slow machine then still runs every
      epoch over every formula length and ends annealed on a whole epoch, instead of stopping inside the last one
      after only its short formulas (the curriculum sorts each epoch narrow to wide)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, module: Im2LatexModule) -> None:
        sampler = trainer.train_dataloader.batch_sampler
        sampler.set_epoch(trainer.current_epoch)
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        remaining = timer.time_remaining() if timer else None
        if remaining is None:
            return
        sampler.keep = 1.0
        whole, epochs_left = len(sampler), trainer.max_epochs - trainer.current_epoch
        share = epoch_share(timer.time_elapsed(), remaining, trainer.global_step, whole, epochs_left)
        sampler.keep = trainer.strategy.broadcast(share)  # every replica must thin alike
        trainer.fit_loop.max_batches = len(sampler)  # the progress bar's total (this callback runs before the bar's)
        trainer.val_check_batch = len(sampler)  # validation after the epoch's last batch, as when it is whole
        module.planned_steps = trainer.global_step + epochs_left * len(sampler)
        if sampler.keep < 1.0:
            log.info("epoch %d thinned to %d of its %d batches to fit train.max_minutes", trainer.current_epoch,
                     len(sampler), whole)


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_key(model: ModelConfig, train: TrainConfig, vocab: Vocabulary, data: Path) -> str:
    """Checkpoints of runs with this key are interchangeable: same model, schedule, vocabulary, data and code."""
    settings = {k: v for k, v in dataclasses.asdict(train).items() if k not in RUNTIME_ONLY}
    fingerprint = {"model": dataclasses.asdict(model), "train": settings, "tokens": vocab.tokens,
                   "data": [(p.name, file_md5(p)) for p in sorted(data.glob("*.pkl"))],
                   "code": [file_md5(p) for p in TRAINING_CODE]}
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def train(data: str | Path, vocab_path: str | Path, model: ModelConfig, cfg: TrainConfig, out: str | Path,
          live_dir: str | Path, checkpoints: str | Path, callbacks: list | None = None) -> Im2LatexNet:
    """Train on data/{train,validate}.pkl, resuming from the last checkpoint of a run with the same key,
    log curves to `live_dir` with DVCLive, and save the weights to `out`."""
    from dvclive.lightning import DVCLiveLogger

    pl.seed_everything(cfg.seed, workers=True)
    data, vocab = Path(data), Vocabulary.load(vocab_path)
    folder = Path(checkpoints) / checkpoint_key(model, cfg, vocab, data)
    datamodule = FormulaDataModule(data, cfg.batch_size, cfg.seed, cfg.workers, cfg.curriculum)
    datamodule.setup()
    shapes = [image.shape for image in datamodule.splits["train"].images]
    steps_per_epoch = len(BucketBatchSampler(shapes, cfg.batch_size, True, cfg.seed, replicas=cfg.devices))
    module = Im2LatexModule(vocab.tokens, dataclasses.asdict(model), cfg.lr, cfg.weight_decay, cfg.warmup_steps,
                            steps_per_epoch * cfg.max_epochs, cfg.label_smoothing)
    last = folder / "ckpt" / "last.ckpt"
    trainer = pl.Trainer(
        max_epochs=cfg.max_epochs,
        max_time=datetime.timedelta(minutes=cfg.max_minutes) if cfg.max_minutes > 0 else None,
        accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
        precision=resolve_precision(cfg.precision, cfg.accelerator),
        gradient_clip_val=cfg.grad_clip or None,
        # curves live beside the checkpoints so that a resumed run continues them; copied to live_dir at the end
        logger=DVCLiveLogger(dir=str(folder / "dvclive"), resume=True, dvcyaml=None, save_dvc_exp=False, report=None),
        callbacks=[EpochPlan(), pl.callbacks.ModelCheckpoint(dirpath=folder / "ckpt", save_last=True, save_top_k=1)]
        + (callbacks or []),
        use_distributed_sampler=False, num_sanity_val_steps=0, log_every_n_steps=max(1, min(10, steps_per_epoch)), enable_model_summary=False,
    )
    if last.exists():
        log.info("resuming from %s", last)
    trainer.fit(module, datamodule=datamodule, ckpt_path=last if last.exists() else None)
    planned = steps_per_epoch * cfg.max_epochs
    if cfg.max_minutes > 0 and trainer.global_step < planned and not trainer.interrupted:
        # info, not a warning: the default plans more epochs than a 2-core hour fits, so the clock decides the steps
        log.info("train.max_minutes (%g) left time for %d of %d planned steps: the epochs were thinned and the learning "
                 "rate decayed to fit (0 lifts the budget: every step, whatever the time)", cfg.max_minutes,
                 trainer.global_step, planned)
    if not all(torch.isfinite(p).all() for p in module.parameters()):
        raise Im2LatexError(f"training diverged: the weights are not finite (checkpoints in {folder}); lower train.lr")
    if trainer.is_global_zero:
        save_model(module.net, vocab.tokens, dataclasses.asdict(model), out)
        shutil.rmtree(live_dir, ignore_errors=True)
        shutil.copytree(folder / "dvclive", live_dir)
    return module.net
