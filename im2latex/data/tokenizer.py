"""LaTeX tokenizer producing IM2LATEX-100K's normalised, space-separated token strings."""
import re

_TOKEN = re.compile(
    r"""
      \\(?:begin|end)\s*\{\s*[a-zA-Z*]+\s*\}     # \begin{array} is one token
    | \\(?:left|right)\s*(?:\\[a-zA-Z]+|\\.|[^\sa-zA-Z\\])   # \left( \right\} \left\langle
    | \\operatorname\*
    | \\[a-zA-Z]+                              # control word
    | \\.                                      # control symbol: \, \; \{ \\ and "\ "
    | ---|--
    | \S
    """,
    re.VERBOSE | re.DOTALL,
)
_SPACE = re.compile(r"\s+")


def tokenize(latex: str) -> list[str]:
    """Split normalised or plain LaTeX into tokens: `\\frac{a}{b}` -> [`\\frac`, `{`, `a`, `}`, `{`, `b`, `}`]."""
    tokens = []
    for match in _TOKEN.finditer(latex):
        token = match.group()
        if token.startswith(("\\begin", "\\end", "\\left", "\\right")):
            token = _SPACE.sub("", token)
        elif token[0] == "\\" and token[1:].isspace():
            token = "\\"  # the control space, written `\\` + the separating space as in the dataset: `0 \\ .`
        tokens.append(token)
    return tokens


def normalize(latex: str) -> str:
    """The space-separated form of `latex`, as IM2LATEX-100K's normalised formulas are written."""
    return " ".join(tokenize(latex))
