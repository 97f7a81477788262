"""The exported TorchScript file depends on its inputs only, not on where the checkout lives."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import im2latex

EXPORT = """
import sys, torch
from im2latex.export import script
from im2latex.model.network import Im2LatexNet
tokens = ["<pad>", "<s>", "</s>", "<unk>", "x", "y", "+"]
torch.manual_seed(0)
net = Im2LatexNet(tokens, d_model=32, heads=2, layers=1, ff=64, dropout=0.0, encoder_channels=8, max_len=12)
torch.jit.save(script(net, tokens, 200, 4, [0.75], 1), sys.argv[1])
"""


def test_two_checkouts_at_different_paths_export_byte_identical_files(tmp_path):
    package = Path(im2latex.__file__).parent
    files = []
    for name in ("first-clone", "elsewhere/second"):
        root = tmp_path / name
        shutil.copytree(package, root / "im2latex", ignore=shutil.ignore_patterns("__pycache__"))
        out = root / "model.pt"
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(root)}
        subprocess.run([sys.executable, "-c", EXPORT, str(out)], cwd=root, env=env, check=True, timeout=300,
                       capture_output=True)
        files.append(out.read_bytes())
    assert files[0] == files[1]
    with zipfile.ZipFile(tmp_path / "first-clone" / "model.pt") as z:
        names = {n.split("/", 1)[1] for n in z.namelist()}
        content = b"".join(z.read(n) for n in z.namelist())
    assert "code/__torch__/im2latex/reader.py.debug_pkl" in names  # the debug info is kept, its paths relative
    for path in (str(tmp_path), sys.prefix, str(Path(im2latex.__file__).parents[1]), os.path.expanduser("~")):
        assert path.encode() not in content
    assert b"im2latex/reader.py" in content


def test_reading_sizes_are_the_training_size_times_each_scale_and_refuse_none():
    import pytest

    from im2latex import Im2LatexError
    from im2latex.reader import reading_sizes

    assert reading_sizes(13.0, [1.0, 1.5]) == [13.0, 19.5]
    for bad in ([], [1.2, 0.0], [-1.0]):
        with pytest.raises(Im2LatexError, match="read.read_scales must list one or more positive factors"):
            reading_sizes(13.0, bad)


def test_edit_distances_match_levenshtein_for_every_pair_scripted_too():
    import random

    import editdistance
    import torch

    from im2latex.reader import edit_distances

    scripted = torch.jit.script(edit_distances)
    rng = random.Random(0)
    for _ in range(100):
        sequences = [[rng.randrange(4) for _ in range(rng.randrange(9))] for _ in range(rng.randrange(1, 6))]
        expected = [[editdistance.eval(a, b) for b in sequences] for a in sequences]
        assert edit_distances(sequences).tolist() == expected == scripted(sequences).tolist()


def test_consensus_picks_the_reading_the_others_agree_with():
    from im2latex.reader import consensus

    agreed, other = [4, 5, 6, 7], [9, 9, 9, 9]
    readings = [other, agreed, [4, 5, 6], [4, 5, 6, 8]]  # three near-agreeing readings, one lone confident one
    confidences = [0.9, 0.8, 0.8, 0.8]
    assert consensus(readings, confidences, 1.0) == 1  # closest to all the others
    assert consensus(readings, confidences, 200.0) == 0  # a large agreement keeps the most confident
    assert consensus([other], [0.1], 16.0) == 0
    assert consensus([[], agreed, agreed], [0.9, 0.5, 0.5], 1.0) == 1  # empty readings are handled
    assert consensus([agreed, other, agreed], [0.5, 0.4, 0.7], 1.0) == 2  # of equal readings, the most confident
