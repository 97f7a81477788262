"""The special tokens and their ids: the one home of these, imported by the data, the network and the reader alike."""
from typing import List

PAD, START, END, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def strip_specials(ids: List[int], end: int, skip: List[int]) -> List[int]:
    """`ids` up to the first `end`, without the ids in `skip` (TorchScript compiles it into the exported file)."""
    kept: List[int] = []
    for i in ids:
        if i == end:
            break
        if i not in skip:
            kept.append(i)
    return kept
