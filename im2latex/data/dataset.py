"""Torch side of the data: a Dataset over a preprocessed split, batching by image size, collation."""
import math
import random
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from im2latex.data.preprocessing import Split
from im2latex.tokens import END, PAD, START
from im2latex.model.inputs import to_batch
from im2latex.model.network import teacher_forcing


class FormulaDataset(Dataset):
    """Samples of a split loaded with load_split: (image, token ids)."""

    def __init__(self, split: Split):
        self.images, self.ids = split.images, split.ids

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.images[i], self.ids[i]


def collate(samples: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (B, 1, H, W), decoder inputs <s> + ids, targets ids + </s>; both padded with <pad>."""
    inputs, targets = teacher_forcing([torch.from_numpy(ids.astype(np.int64)) for _, ids in samples], PAD, START, END)
    return to_batch([torch.from_numpy(image) for image, _ in samples]), inputs, targets


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of images of one bucket size (height and width rounded up to `step` pixels), so little
    of a batch is padding. Shuffled per epoch from `seed`; with several replicas each gets its share.
    In the first `curriculum` epochs the batches run from the narrowest images (short formulas) to the widest:
    the decoder learns to follow the image on short formulas first, and training leaves its plateau sooner.
    `keep` below 1 thins an epoch to that share of its batches, spread evenly over the order (so over all widths):
    set by the training budget (EpochPlan) when the planned epochs would not fit in time."""

    def __init__(self, shapes: list[tuple[int, int]], batch_size: int, shuffle: bool, seed: int,
                 step: int = 32, replicas: int = 1, rank: int = 0, curriculum: int = 0):
        self.batch_size, self.shuffle, self.seed, self.replicas, self.rank = batch_size, shuffle, seed, replicas, rank
        self.epoch, self.curriculum, self.widths = 0, curriculum, [w for _, w in shapes]
        self.keep = 1.0
        buckets = defaultdict(list)
        for i, (h, w) in enumerate(shapes):
            buckets[(math.ceil(h / step), math.ceil(w / step))].append(i)
        self.buckets = [buckets[key] for key in sorted(buckets)]

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this each epoch (also after resuming), giving every replica the same new order."""
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        batches = []
        for bucket in self.buckets:
            bucket = list(bucket)
            if self.shuffle:
                rng.shuffle(bucket)
            batches += [bucket[i:i + self.batch_size] for i in range(0, len(bucket), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        if self.epoch < self.curriculum:
            batches.sort(key=lambda batch: self.widths[batch[0]])  # stable: equal widths keep the shuffled order
        if self.keep < 1.0:
            n = max(1, round(len(batches) * self.keep))
            batches = [batches[i * len(batches) // n] for i in range(n)]
        usable = len(batches) - len(batches) % self.replicas if self.replicas > 1 else len(batches)
        return batches[self.rank:usable:self.replicas]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        return len(self._batches())
