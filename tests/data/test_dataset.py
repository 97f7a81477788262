"""Collation (teacher forcing) and size-bucketed batching."""
import numpy as np
import torch

from im2latex.data.dataset import BucketBatchSampler, collate
from im2latex.tokens import END, PAD, START


def test_collate_shifts_targets_against_inputs_and_pads():
    white = np.full((10, 20), 255, np.uint8)
    dark = np.zeros((6, 30), np.uint8)
    images, inputs, targets = collate([(white, np.array([7, 8, 9])), (dark, np.array([5]))])
    assert images.shape == (2, 1, 10, 30) and images.dtype == torch.float32
    assert images[0].max() == 0.0 and images[1, 0, :6, :30].min() == 1.0  # ink is 1, padding is background
    assert inputs.tolist() == [[START, 7, 8, 9], [START, 5, PAD, PAD]]
    assert targets.tolist() == [[7, 8, 9, END], [5, END, PAD, PAD]]


SHAPES = [(30, 100), (40, 300), (31, 90), (35, 310), (20, 60), (64, 640), (33, 120), (12, 50)] * 4


def test_batches_hold_one_bucket_each_and_cover_every_sample_once():
    sampler = BucketBatchSampler(SHAPES, batch_size=3, shuffle=True, seed=0)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(SHAPES)))
    for batch in batches:
        assert len(batch) <= 3 and len({(-(-SHAPES[i][0] // 32), -(-SHAPES[i][1] // 32)) for i in batch}) == 1
    assert len(sampler) == len(batches)


def test_order_is_seeded_and_changes_with_the_epoch():
    a, b = BucketBatchSampler(SHAPES, 3, True, seed=5), BucketBatchSampler(SHAPES, 3, True, seed=5)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(BucketBatchSampler(SHAPES, 3, False, 0)) == list(BucketBatchSampler(SHAPES, 3, False, 99))  # unshuffled


def test_curriculum_runs_its_epochs_from_narrow_to_wide_then_shuffles():
    plain = BucketBatchSampler(SHAPES, 3, True, seed=2)
    sampler = BucketBatchSampler(SHAPES, 3, True, seed=2, curriculum=2)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        plain.set_epoch(epoch)
        batches = list(sampler)
        widths = [SHAPES[b[0]][1] for b in batches]
        assert widths == sorted(widths) and widths[-1] > widths[0]
        assert sorted(map(sorted, batches)) == sorted(map(sorted, plain))  # the same batches, only reordered
    sampler.set_epoch(2)
    plain.set_epoch(2)
    later = [SHAPES[b[0]][1] for b in sampler]
    assert list(sampler) == list(plain) and later != sorted(later)  # later epochs are shuffled as usual


def test_a_thinned_epoch_keeps_its_share_of_batches_spread_over_every_width():
    sampler = BucketBatchSampler(SHAPES, 2, True, seed=4, curriculum=1)
    whole = list(sampler)
    sampler.keep = 0.25
    thinned = list(sampler)
    assert len(thinned) == len(sampler) == round(len(whole) / 4)
    assert all(batch in whole for batch in thinned)
    widths = [SHAPES[b[0]][1] for b in thinned]
    assert widths == sorted(widths)  # still narrow to wide, and reaching into the widest quarter
    assert widths[0] == SHAPES[whole[0][0]][1] and widths[-1] >= sorted(w for _, w in SHAPES)[3 * len(SHAPES) // 4]
    sampler.keep = 0.0
    assert len(list(sampler)) == 1  # never an empty epoch


def test_replicas_get_disjoint_equal_shares():
    shares = [list(BucketBatchSampler(SHAPES, 2, True, seed=3, replicas=2, rank=r)) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1])
    assert not {i for b in shares[0] for i in b} & {i for b in shares[1] for i in b}


def test_formula_dataset_serves_a_loaded_split(tmp_path):
    from im2latex.data.dataset import FormulaDataset
    from im2latex.data.preprocessing import load_split, save_split

    images = [np.full((4, 6), 255, np.uint8), np.zeros((5, 7), np.uint8)]
    ids = [np.array([4, 5], np.int32), np.array([6], np.int32)]
    save_split(tmp_path / "s.pkl", {"images": images, "ids": ids, "formulas": ["a b", "c"], "names": ["0", "1"]})
    split = load_split(tmp_path / "s.pkl")
    assert split.formulas == ["a b", "c"] and split.names == ["0", "1"]
    dataset = FormulaDataset(split)
    assert len(dataset) == 2
    image, tokens = dataset[1]
    assert image.shape == (5, 7) and tokens.tolist() == [6]
