import shutil

import pytest

from im2latex import Im2LatexError
from im2latex.config import DataConfig
from im2latex.data import layout
from im2latex.data.sources import fetch_dataset
from tests.conftest import TINY


def test_formula_file_splits_on_newline_only():
    assert layout.decode_formulas(b"a \\r b\nc\r\nd\n", "f") == ["a \\r b", "c\r", "d"]
    assert layout.decode_formulas("x\ny\r z".encode(), "f") == ["x", "y\r z"]


def test_a_few_latin1_lines_are_kept_but_a_wrong_encoding_is_refused():
    lines = [b"x"] * 200 + [b"caf\xe9"]
    assert layout.decode_formulas(b"\n".join(lines), "f")[-1] == "café"
    with pytest.raises(Im2LatexError, match="not UTF-8"):
        layout.decode_formulas("é\n".encode("latin-1") * 50, "f")
    with pytest.raises(Im2LatexError, match="UTF-16"):
        layout.decode_formulas("x\ny\n".encode("utf-16"), "f")


def _folder_config(folder) -> DataConfig:
    return DataConfig(source="folder", seed=0, folder=str(folder), mirrors=[], manifest="", synthetic=TINY)


def test_folder_source_copies_a_valid_dataset(tiny_dataset, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert fetch_dataset(out, _folder_config(tiny_dataset)) == {"train": 16, "validate": 4, "test": 4}
    assert (out / layout.FORMULAS).read_bytes() == (tiny_dataset / layout.FORMULAS).read_bytes()


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "formula_images" / "0000003.png").unlink(), "0000003.png is missing"),
    (lambda root: (root / "im2latex_test.lst").unlink(), "missing split list"),
    (lambda root: (root / "im2latex_train.lst").write_text("99999 0000001 basic\n"), "past the end"),
    (lambda root: (root / "im2latex_train.lst").write_text("oops\n"), "expected '<formula index>"),
])
def test_folder_source_names_the_problem(tiny_dataset, tmp_path, damage, message):
    folder = tmp_path / "user"
    shutil.copytree(tiny_dataset, folder)
    damage(folder)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(Im2LatexError, match=message):
        fetch_dataset(out, _folder_config(folder))


def test_unknown_source_is_refused(tmp_path):
    cfg = DataConfig(source="mnist", seed=0, folder="", mirrors=[], manifest="", synthetic=TINY)
    with pytest.raises(Im2LatexError, match="unknown source 'mnist'"):
        fetch_dataset(tmp_path, cfg)
