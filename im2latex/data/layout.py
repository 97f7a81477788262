"""The on-disk layout of IM2LATEX-100K, which every source writes and every later stage reads:

    im2latex_formulas.lst             one formula per line; lines end with "\\n" only
    im2latex_{train,validate,test}.lst  "<formula line index> <image name> <render type>" per line
    formula_images/<image name>.png
"""
import logging
from dataclasses import dataclass
from pathlib import Path

from im2latex import Im2LatexError

log = logging.getLogger(__name__)

FORMULAS = "im2latex_formulas.lst"
SPLITS = ("train", "validate", "test")
IMAGES = "formula_images"
RENDERERS = "renderers.tsv"  # "<image name>\t<renderer>" per line, written by the synthetic source


def split_file(split: str) -> str:
    return f"im2latex_{split}.lst"


@dataclass(frozen=True)
class Sample:
    formula: str
    image: Path


def decode_formulas(data: bytes, name: str) -> list[str]:
    """Formula lines of a formula file. The file is split on b"\\n" only: some real formulas hold a
    bare "\\r", which universal newlines would wrongly take for a line end. IM2LATEX-100K has a few
    dozen lines that are not UTF-8; those are read as Latin-1 (nothing is lost), but a file where
    many lines fail is in the wrong encoding and is refused."""
    if b"\x00" in data:
        raise Im2LatexError(f"{name}: holds NUL bytes; formula files must be UTF-8 text (is it UTF-16?)")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    formulas, bad = [], []
    for number, line in enumerate(lines, 1):
        try:
            formulas.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            bad.append(number)
            formulas.append(line.decode("latin-1"))
    if len(bad) > max(1, len(lines) // 100):
        raise Im2LatexError(f"{name}: {len(bad)} of {len(lines)} lines are not UTF-8 (first: line {bad[0]}); "
                            "re-save the file as UTF-8")
    if bad:
        log.warning("%s: %d lines are not UTF-8 and were read as Latin-1", name, len(bad))
    return formulas


def read_split(root: Path, split: str, formulas: list[str] | None = None) -> list[Sample]:
    """The samples of one split, each checked to name an existing formula and image."""
    root = Path(root)
    if formulas is None:
        formulas = read_formulas(root)
    path = root / split_file(split)
    if not path.is_file():
        raise Im2LatexError(f"{path}: missing split list (expected IM2LATEX-100K layout)")
    samples = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="strict").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2 or not fields[0].isdigit():
            raise Im2LatexError(f"{path}:{number}: expected '<formula index> <image name> [render type]', got {line!r}")
        index, name = int(fields[0]), fields[1]
        if index >= len(formulas):
            raise Im2LatexError(f"{path}:{number}: formula index {index} is past the end of {FORMULAS} ({len(formulas)} lines)")
        image = root / IMAGES / f"{name}.png"
        if not image.is_file():
            raise Im2LatexError(f"{path}:{number}: image {image} is missing")
        samples.append(Sample(formulas[index], image))
    return samples


def read_formulas(root: Path) -> list[str]:
    path = Path(root) / FORMULAS
    if not path.is_file():
        raise Im2LatexError(f"{path}: missing formula list (expected IM2LATEX-100K layout)")
    return decode_formulas(path.read_bytes(), str(path))


def validate(root: Path) -> dict[str, int]:
    """Check a dataset folder end to end; returns the number of samples per split."""
    formulas = read_formulas(root)
    counts = {split: len(read_split(root, split, formulas)) for split in SPLITS}
    if counts["train"] == 0:
        raise Im2LatexError(f"{root}: the train split is empty")
    return counts


def write_lists(root: Path, formulas: list[str], splits: dict[str, list[tuple[int, str]]]) -> None:
    """Write the formula list and the split lists ((formula index, image name) pairs)."""
    with open(Path(root) / FORMULAS, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(formula + "\n" for formula in formulas)
    for split in SPLITS:
        with open(Path(root) / split_file(split), "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{index} {name} basic\n" for index, name in splits[split])


def is_im2latex_layout(folder: Path, split: str, formulas: Path | None) -> bool:
    return formulas is None and (folder / FORMULAS).is_file() and (folder / split_file(split)).is_file()


def read_labelled_folder(folder: Path, split: str, formulas: Path | None) -> tuple[list[str], list[Path], list[str]]:
    """(names, image paths, formulas) of a dataset in IM2LATEX-100K layout, or of a plain folder of
    N.png images whose labels are line N (counting from 0) of a formula file."""
    if not folder.is_dir():
        raise Im2LatexError(f"{folder} is not a folder")
    if is_im2latex_layout(folder, split, formulas):
        samples = read_split(folder, split)
        return [s.image.stem for s in samples], [s.image for s in samples], [s.formula for s in samples]
    candidates = [formulas] if formulas else [p for p in (folder / "formulas.lst", folder / "formulas.txt",
                                                          folder / FORMULAS) if p.is_file()]
    if not candidates or not candidates[0].is_file():
        raise Im2LatexError(f"{folder}: neither IM2LATEX-100K layout nor N.png images with a formulas.lst/formulas.txt "
                            "(or pass --formulas FILE)")
    labels = decode_formulas(candidates[0].read_bytes(), str(candidates[0]))
    images = sorted((p for p in folder.glob("*.png") if p.stem.isdigit()), key=lambda p: int(p.stem))
    if not images:
        raise Im2LatexError(f"{folder}: no images named N.png")
    missing = [p.name for p in images if int(p.stem) >= len(labels)]
    if missing:
        raise Im2LatexError(f"{candidates[0]} has {len(labels)} lines, so {missing[0]} has no label")
    return [p.stem for p in images], images, [labels[int(p.stem)] for p in images]
