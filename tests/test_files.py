"""Outputs are replaced whole or not at all."""
import pytest

from im2latex.files import atomic_dir, atomic_file


def test_atomic_file_replaces_the_target_on_success(tmp_path):
    target = tmp_path / "deep" / "out.txt"
    with atomic_file(target, "w") as f:
        f.write("new")
        assert not target.exists()  # nothing is visible until the block ends
    assert target.read_text() == "new" and [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_file_keeps_the_old_target_and_no_temporary_on_error(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as f:
            f.write(b"partial")
            raise RuntimeError("stage failed")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_atomic_dir_replaces_a_folder_or_a_file_on_success(tmp_path):
    target = tmp_path / "outs"
    target.mkdir()
    (target / "stale.txt").write_text("stale")
    with atomic_dir(target) as tmp:
        assert list(tmp.iterdir()) == []
        (tmp / "a.txt").write_text("a")
    assert [p.name for p in target.iterdir()] == ["a.txt"] and oct(target.stat().st_mode & 0o777) == "0o755"
    assert list(tmp_path.iterdir()) == [target]
    target_file = tmp_path / "was-a-file"
    target_file.write_text("x")
    with atomic_dir(target_file) as tmp:
        (tmp / "b.txt").write_text("b")
    assert (target_file / "b.txt").read_text() == "b"


def test_atomic_dir_leaves_the_old_folder_on_error(tmp_path):
    target = tmp_path / "outs"
    target.mkdir()
    (target / "kept.txt").write_text("kept")
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise ValueError("bad input")
    assert [p.name for p in target.iterdir()] == ["kept.txt"] and list(tmp_path.iterdir()) == [target]
