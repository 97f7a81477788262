"""Plain LaTeX, as people write it, -> IM2LATEX-100K's normalised, space-separated form.

The dataset's authors parsed every formula with (a patched) KaTeX and re-emitted canonical tokens.
This is a small recursive-descent parser over the project's tokenizer that re-emits them the same
way, so that labels and predictions written by people score as the published labels do:

    x_1 \\over 2         -> \\frac { x _ { 1 } } { 2 }        scripts braced, sub before sup, \\over -> \\frac
    {\\rm d} x           -> \\mathrm { d } x                   ({\\rm ..} -> \\mathrm, \\mbox / \\text -> \\mathrm)
    f'(x) \\label{eq:3}  -> f ^ { \\prime } ( x )              primes, no \\label / \\nonumber / comments
    \\sin x, \\lim_n      -> \\operatorname { s i n } x, \\operatorname* { l i m } _ { n }
    \\pmatrix{a&b\\cr}    -> \\left( \\begin{matrix} { a } & { b } \\\\ \\end{matrix} \\right)

Everything else is kept token for token (group braces included: `{\\bf M}` -> `{ \\bf M }`).
Normalising a normalised formula gives it back unchanged.
"""
import logging
import re

from im2latex import Im2LatexError
from im2latex.data.tokenizer import _TOKEN, normalize as plain_tokens, tokenize

log = logging.getLogger(__name__)

_COMMENT = re.compile(r"(?<!\\)%[^\n]*")
_DOLLAR = re.compile(r"(?<!\\)\$")
_DROP = {"\\nonumber", "\\notag", "\\>", "\\limits", "\\nolimits"}   # nothing the reader of an image can see
_DROP_WITH_ARGUMENT = {"\\label"}
_TEXT = {"\\mbox", "\\hbox", "\\text"}                                 # KaTeX's text groups, printed as \mathrm
_RENAME = {"\\dfrac": "\\frac", "\\tfrac": "\\frac", "\\dbinom": "\\binom", "\\tbinom": "\\binom"}
_INFIX = {"\\over": "\\frac", "\\choose": "\\binom"}
_OPERATORS = {name: "\\operatorname" for name in (
    "arcsin arccos arctan arg cos cosh cot coth csc deg dim exp hom ker lg ln log sec sin sinh tan tanh").split()}
_OPERATORS.update({name: "\\operatorname*" for name in "det gcd inf lim liminf limsup max min Pr sup".split()})
_ACCENTS = {"\\hat", "\\bar", "\\vec", "\\dot", "\\ddot", "\\tilde", "\\check", "\\breve", "\\acute", "\\grave",
            "\\mathring", "\\widehat", "\\widetilde", "\\overrightarrow",
            "\\overleftarrow", "\\overleftrightarrow", "\\underbrace", "\\overbrace"}
_BARS = {"\\overline", "\\underline"}
# Commands whose arguments are printed as written (a braced argument keeps its braces, a single token stays bare).
_ARGUMENTS = {"\\frac": 2, "\\binom": 2, "\\stackrel": 2, "\\overset": 2, "\\underset": 2, "\\textcolor": 2,
              "\\sqrt": 1, "\\operatorname": 1, "\\operatorname*": 1, "\\hspace": 1, "\\vspace": 1,
              "\\phantom": 1, "\\hphantom": 1, "\\vphantom": 1, "\\fbox": 1, "\\boxed": 1, "\\color": 1}
_ARGUMENTS.update({f: 1 for f in ("\\mathrm \\mathbf \\mathit \\mathsf \\mathtt \\mathcal \\mathbb \\mathfrak "
                                  "\\mathscr \\boldsymbol \\bm \\pmb \\textrm \\textbf \\textit \\textsf \\texttt "
                                  "\\textup \\textnormal \\emph").split()})
# Plain-TeX matrices and the amsmath ones KaTeX builds as \left( \begin{matrix} .. \end{matrix} \right).
_PLAIN_MATRICES = {"\\matrix": (None, None), "\\pmatrix": ("\\left(", "\\right)"), "\\cases": ("\\left\\{", "\\right.")}
_DELIMITED = {"pmatrix": ("\\left(", "\\right)"), "bmatrix": ("\\left[", "\\right]"), "Bmatrix": ("\\left\\{", "\\right\\}"),
              "vmatrix": ("\\left|", "\\right|"), "Vmatrix": ("\\left\\|", "\\right\\|")}
_ROW_ENDS = {"\\\\", "\\cr"}


class LatexSyntaxError(Im2LatexError):
    """A formula the normaliser cannot parse (unbalanced braces, a missing argument, ...)."""


def strip_comments(latex: str) -> str:
    """Drop `% ...` comments; a leading `%` alone is dropped, as the dataset did (`%3.8G=...` -> `3.8G=...`)."""
    return _COMMENT.sub("", latex[1:] if latex.startswith("%") else latex)


def _is_delimiter(token: str, command: str) -> bool:
    """`\\left(` or `\\left\\langle`, but not `\\leftarrow`."""
    return token.startswith(command) and len(token) > len(command) and not token[len(command)].isalpha()


def normalise(latex: str) -> str:
    """IM2LATEX-100K's normalised form of `latex`; raises LatexSyntaxError where it cannot parse it."""
    latex = _DOLLAR.sub(" ", strip_comments(latex))
    tokens, spaced, end = tokenize(latex), [], 0
    for match in _TOKEN.finditer(latex):   # the pattern tokenize() uses: whitespace before each token, for \mbox{..}
        spaced.append(match.start() > end)
        end = match.end()
    # The dataset's quirk: a line break outside any environment became a thin space.
    if not any(word in latex for word in ("matrix", "cases", "array", "begin")):
        tokens = ["\\," if t == "\\\\" else t for t in tokens]
    return " ".join(_Parser(tokens, spaced).formula())


def normalise_all(formulas: list[str]) -> tuple[list[str], int]:
    """Normalise each formula; one that cannot be parsed is only split into tokens. Returns (formulas, fallbacks)."""
    out, fallbacks = [], 0
    for latex in formulas:
        try:
            out.append(normalise(latex))
        except LatexSyntaxError as e:
            log.debug("not normalised (%s): %s", e, latex)
            out.append(plain_tokens(strip_comments(latex)))
            fallbacks += 1
    if fallbacks:
        log.warning("%d of %d formulas could not be parsed and were only split into tokens", fallbacks, len(formulas))
    return out, fallbacks


class _Parser:
    def __init__(self, tokens: list[str], spaced: list[bool]):
        self.tokens, self.spaced, self.i = tokens, spaced, 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise LatexSyntaxError("formula ends too early")
        self.i += 1
        return token

    def expect(self, token: str) -> None:
        if self.take() != token:
            raise LatexSyntaxError(f"expected {token} at token {self.i}")

    def formula(self) -> list[str]:
        out = self.expression("top")
        if self.peek() is not None:
            raise LatexSyntaxError(f"unbalanced {self.peek()} at token {self.i}")
        return out

    def stops(self, token: str | None, mode: str) -> bool:
        """Whether `token` ends an expression parsed in `mode`; a closer that belongs to no open group is an error."""
        if token is None:
            if mode != "top":
                raise LatexSyntaxError("unclosed group")
            return True
        if token == "}":
            return mode in ("group", "cell")
        if _is_delimiter(token, "\\right"):
            return mode == "leftright"
        if token.startswith("\\end{"):
            return mode == "cell"
        if token == "&" or token in _ROW_ENDS:
            return mode == "cell"
        return token == "]" and mode == "bracket"

    def expression(self, mode: str) -> list[str]:
        """Atoms up to the end of the group; `a \\over b` becomes `\\frac { a } { b }`."""
        out: list[str] = []
        infix = numerator = None
        while not self.stops(token := self.peek(), mode):
            if token == "}" or token.startswith("\\end{") or _is_delimiter(token, "\\right"):
                raise LatexSyntaxError(f"unbalanced {token} at token {self.i}")
            if token in _INFIX:
                if infix:
                    raise LatexSyntaxError("two infix fractions in one group")
                self.i += 1
                infix, numerator, out = _INFIX[token], out, []
            elif token == "\\rm" and self.tokens[self.i + 1:self.i + 2] != ["{"]:
                self.i += 1   # `a \rm b c}`: the rest of the group is roman
                out += ["\\mathrm", "{", *self.expression(mode), "}"]
            else:
                out += self.atom()
        if infix:
            return [infix, "{", *numerator, "}", "{", *out, "}"]
        return out

    def atom(self) -> list[str]:
        """A base followed by its scripts, printed subscript first, each braced."""
        base = [] if self.peek() in ("_", "^", "'") else self.base()
        sub = sup = None
        while (token := self.peek()) in ("_", "^", "'", "\\limits", "\\nolimits"):
            self.i += 1
            if token in ("\\limits", "\\nolimits"):
                continue
            if token == "_":
                if sub is not None:
                    raise LatexSyntaxError("double subscript")
                sub = self.braced_argument()
                continue
            if sup is not None:
                raise LatexSyntaxError("double superscript")
            if token == "^":
                sup = self.braced_argument()
                continue
            primes = ["\\prime"]   # x'' -> x ^ { \prime \prime }; x'^2 -> x ^ { \prime 2 }
            while self.peek() == "'":
                self.i += 1
                primes.append("\\prime")
            if self.peek() == "^":
                self.i += 1
                primes += self.argument()[0]
            sup = ["{", *primes, "}"]
        if sub is not None:
            base += ["_", *sub]
        if sup is not None:
            base += ["^", *sup]
        return base

    def argument(self) -> tuple[list[str], bool]:
        """One argument: a braced group (True) or a single token with its own arguments (False)."""
        token = self.peek()
        if (token is None or token in ("}", "&", "_", "^") or token in _ROW_ENDS or token.startswith("\\end{")
                or _is_delimiter(token, "\\right")):
            raise LatexSyntaxError(f"missing argument at token {self.i}")
        if token == "{":
            self.i += 1
            return self.group()
        return self.base(), False

    def braced_argument(self) -> list[str]:
        tokens, grouped = self.argument()
        return tokens if grouped else ["{", *tokens, "}"]

    def group(self) -> tuple[list[str], bool]:
        """The rest of a group after its `{`; `{\\rm d}` is `\\mathrm { d }`, which is not a plain group."""
        if self.peek() == "\\rm":
            self.i += 1
            body = self.expression("group")
            self.expect("}")
            return ["\\mathrm", "{", *body, "}"], False
        body = self.expression("group")
        self.expect("}")
        return ["{", *body, "}"], True

    def base(self) -> list[str]:
        token = self.take()
        if token == "{":
            return self.group()[0]
        if token in _DROP:
            return []
        if token in _DROP_WITH_ARGUMENT:
            self.argument()
            return []
        if _is_delimiter(token, "\\left"):
            body = self.expression("leftright")
            return [token, *body, self.take()]
        if token.startswith("\\begin{"):
            return self.environment(token[len("\\begin{"):-1])
        if token in _PLAIN_MATRICES:
            self.expect("{")
            left, right = _PLAIN_MATRICES[token]
            name = "cases" if token == "\\cases" else "matrix"
            rows = self.rows("}")
            self.i += 1
            return self.delimited(left, [f"\\begin{{{name}}}", *rows, f"\\end{{{name}}}"], right)
        if token in _BARS:   # KaTeX's own node, always braced once more: \overline{A} -> \overline { { A } }
            tokens, grouped = self.argument()
            return [token, *(tokens if grouped and _is_one_group(tokens[1:-1]) else ["{", *tokens, "}"])]
        if token in _ACCENTS:
            return [token, *self.braced_argument()]
        if token in _TEXT:
            return ["\\mathrm", *self.text()]
        if token[1:] in _OPERATORS and token[0] == "\\":
            return [_OPERATORS[token[1:]], "{", *token[1:], "}"]
        if token == "\\rm":   # \rm{d}
            return ["\\mathrm", *self.argument()[0]]
        token = _RENAME.get(token, token)
        out = [token]
        if token == "\\sqrt" and self.peek() == "[":
            self.i += 1
            out += ["[", *self.expression("bracket"), "]"]
            self.expect("]")
        for _ in range(_ARGUMENTS.get(token, 0)):
            out += self.argument()[0]
        return out

    def text(self) -> list[str]:
        """The argument of \\mbox / \\text: characters as tokens, each run of spaces a `~`."""
        if self.peek() != "{":
            return ["{", self.take(), "}"]
        self.i += 1
        out, depth = ["{"], 0
        while True:
            token = self.take()
            if self.spaced[self.i - 1]:
                out.append("~")
            if token == "}" and depth == 0:
                return [*out, "}"]
            depth += (token == "{") - (token == "}")
            out.append(token)

    def environment(self, name: str) -> list[str]:
        out = [f"\\begin{{{'matrix' if name in _DELIMITED else name}}}"]
        if name in ("array", "tabular", "subarray"):
            if self.peek() == "[":   # vertical position: invisible here
                while self.take() != "]":
                    pass
            self.expect("{")
            out += self.group()[0]
        out += self.rows(f"\\end{{{name}}}")
        self.i += 1
        out.append(out[0].replace("\\begin", "\\end", 1))
        left, right = _DELIMITED.get(name, (None, None))
        return self.delimited(left, out, right)

    def rows(self, end: str) -> list[str]:
        """Rows up to (not past) `end`, as KaTeX printed them: every cell braced, every row ended by `\\\\`."""
        out = []
        while True:
            hlines = []
            while self.peek() in ("\\hline", "\\hdashline"):
                hlines.append(self.take())
            cells = [self.expression("cell")]
            while self.peek() == "&":
                self.i += 1
                cells.append(self.expression("cell"))
            out += hlines
            if len(cells) > 1 or cells[0]:
                for cell in cells:
                    # a cell that is one group already is not braced again, so normalised input stays as it is
                    out += [*(cell if _is_one_group(cell) else ["{", *cell, "}"]), "&"]
                out[-1] = "\\\\"
            token = self.peek()
            if token in _ROW_ENDS:
                self.i += 1
                if self.peek() == "[":   # \\[2pt]: extra row space
                    while self.take() != "]":
                        pass
                continue
            if token != end:
                raise LatexSyntaxError(f"expected {end} at token {self.i}, found {token}")
            return out

    @staticmethod
    def delimited(left: str | None, body: list[str], right: str | None) -> list[str]:
        return [left, *body, right] if left else body


def _is_one_group(tokens: list[str]) -> bool:
    """Whether `tokens` are exactly one `{ .. }` group (so re-normalising a normalised formula adds no braces)."""
    if tokens[:1] != ["{"]:
        return False
    depth = 0
    for i, token in enumerate(tokens):
        depth += (token == "{") - (token == "}")
        if depth == 0:
            return i == len(tokens) - 1
    return False
