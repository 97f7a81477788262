"""Token vocabulary: special tokens first, then the training split's tokens in sorted order."""
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from im2latex import Im2LatexError
from im2latex.files import atomic_file
from im2latex.tokens import END, PAD, SPECIALS, START, UNK, strip_specials

class Vocabulary:
    def __init__(self, tokens: list[str]):
        if tokens[:len(SPECIALS)] != SPECIALS:
            raise Im2LatexError(f"vocabulary must start with {SPECIALS}")
        self.tokens = tokens
        self.index = {token: i for i, token in enumerate(tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.index.get(token, UNK) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of `ids` up to the first end token, special tokens left out (except <unk>)."""
        return [self.tokens[i] for i in strip_specials([int(i) for i in ids], END, [PAD, START])]

    def save(self, path: str | Path) -> None:
        with atomic_file(path, "w") as f:
            json.dump({"tokens": self.tokens}, f, ensure_ascii=False, indent=0)

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        try:
            return cls(json.loads(Path(path).read_text(encoding="utf-8"))["tokens"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise Im2LatexError(f"cannot read vocabulary {path}: {e}") from None


def build_vocabulary(formulas: Iterable[list[str]], min_freq: int) -> tuple[Vocabulary, Counter]:
    """Vocabulary of the tokens seen at least `min_freq` times; also returns the counts."""
    counts = Counter(token for tokens in formulas for token in tokens)
    kept = sorted(token for token, n in counts.items() if n >= min_freq and token not in SPECIALS)
    return Vocabulary(SPECIALS + kept), counts
