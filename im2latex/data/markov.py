"""Formulas drawn token by token from the real split's adjacent-token counts (bigrams.tsv): a first-order Markov
chain, held to what LaTeX sets. The grammar of generator.py writes formulas as a physicist would; this chain writes
them with the dataset's own local habits (where its authors put braces, spaces and brackets), though with no plan
beyond the last token. Both feed the training split (data.synthetic.markov is this chain's share).

The chain keeps groups and \\left/\\right pairs balanced, puts a brace after every `_` and `^` and after a command
that always takes one, gives \\frac its two arguments, never sets two subscripts or two superscripts on one base, and
leaves out what only a text or tabular context allows (arrays, \\hspace, \\mbox, \\over...)."""
import itertools
import random
from pathlib import Path

from im2latex.data.generator import LENGTH_HISTOGRAM, draw

BIGRAMS = Path(__file__).with_name("bigrams.tsv")
EXCLUDED_PREFIXES = ("\\begin", "\\end", "\\hspace", "\\vspace", "\\hphantom", "\\vphantom", "\\phantom", "\\label",
                     "\\raise", "\\rule", "\\kern", "\\mbox", "\\hbox", "\\makebox", "\\fbox", "\\framebox", "\\text",
                     "\\put", "\\circle", "\\unitlength", "\\setlength", "\\thicklines", "\\linethickness", "\\protect",
                     "\\nonumber", "\\boldmath", "\\hline", "\\hfill", "\\smallskip", "\\emph", "\\lefteqn", "\\rlap",
                     "\\llap", "\\smash", "\\buildrel", "\\tiny", "\\scriptsize", "\\footnotesize", "\\small",
                     "\\Large", "\\LARGE", "\\sp", "\\sb")
EXCLUDED = {"&", "\\\\", "\\over", "\\atop", "\\choose", "\\above", "[object Object]", "\\l", "\\L", "\\o", "\\O",
            "\\i", "\\j", "\\ae", "\\AA", "\\d", "\\b", "\\'", "\\*", "\\-", "\\P", "\\S", "--", "---", "@", "\\_",
            "\\mathord", "\\mathrel", "\\mathbin", "\\textup", "\\textnormal", "\\slash"}
TWO_ARGUMENTS = {"\\frac", "\\binom", "\\stackrel", "\\overset", "\\underset"}
# mean tokens in a group beyond its first: scripts hold an index or two, a fraction's parts a few more
GROUP_LENGTH = {"script": 1.5, "first": 4.0, "group": 3.0}
# delimiter sizes, which need the delimiter that follows them
SIZES = {"\\big", "\\Big", "\\bigg", "\\Bigg", "\\bigl", "\\bigr", "\\Bigl", "\\Bigr", "\\biggl", "\\biggr", "\\Biggl",
         "\\Biggr"}
CLOSING = {"\\left(": "\\right)", "\\left[": "\\right]", "\\left\\{": "\\right\\}", "\\left|": "\\right|",
           "\\left\\|": "\\right\\|", "\\left<": "\\right>", "\\left\\langle": "\\right\\rangle"}


def _closer(group: list) -> str:
    """The token that closes an open group of MarkovFormulas.formula's stack."""
    return "}" if group[0] == "{" else "]" if group[0] == "[" else CLOSING.get(group[1], "\\right.")


def _usable(token: str) -> bool:
    return token not in EXCLUDED and not token.startswith(EXCLUDED_PREFIXES)


def load_bigrams(path: Path = BIGRAMS) -> dict[str, tuple[list[str], list[int]]]:
    """Each token's successors with their cumulative counts, usable tokens only."""
    successors: dict[str, list[tuple[str, int]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if line.startswith("#") or len(parts) != 3 or not parts[2].isdigit():
            continue
        first, second, count = parts
        if _usable(first) and _usable(second):
            successors.setdefault(first, []).append((second, int(count)))
    return {t: ([s for s, _ in pairs], list(itertools.accumulate(n for _, n in pairs))) for t, pairs in successors.items()}


class MarkovFormulas:
    """Draws formulas from the chain; equal seeds give equal formulas."""

    def __init__(self, seed: int, max_tokens: int, bigrams: dict | None = None):
        self.rng = random.Random(seed)
        self.max_tokens = max_tokens
        self.next = bigrams or load_bigrams()
        # a command that is followed by `{` in nine cases of ten always takes an argument
        self.takes_argument = {t for t, (succ, cum) in self.next.items()
                               if "{" in succ and self._count(t, "{") >= 0.9 * cum[-1] or t.startswith(("\\math", "\\operatorname"))}
        counts = {}
        for succ, cum in self.next.values():
            for s, n in zip(succ, (b - a for a, b in zip([0] + cum, cum))):
                counts[s] = counts.get(s, 0) + n
        starts = [t for t in counts if t in self.next and t not in ("}", "_", "^") and not t.startswith("\\right")]
        self.starts = (starts, list(itertools.accumulate(counts[t] for t in starts)))

    def _count(self, first: str, second: str) -> int:
        succ, cum = self.next[first]
        i = succ.index(second)
        return cum[i] - (cum[i - 1] if i else 0)

    def formula(self) -> list[str]:
        """One formula of a length drawn from the real length histogram, plus the tokens that close what is open;
        empty when that passes max_tokens."""
        bins = [b for b in LENGTH_HISTOGRAM if b < self.max_tokens]
        start = self.rng.choices(bins, weights=[LENGTH_HISTOGRAM[b] for b in bins])[0]
        target = max(2, min(self.max_tokens - 12, self.rng.randint(start, start + 9)))
        # open groups, innermost last: ["{", role, end] (role "script", "first" for \frac's first argument, or
        # "group"; end: the length at which the chain closes it), ["\left", token], or ["[", ""] for \sqrt's
        # optional argument. scripts[i]: the scripts already set on the current base at depth i
        tokens, stack, scripts = [], [], [set()]
        token = draw(self.rng, self.starts)
        while True:
            force = self._open(token, tokens, stack, scripts)
            tokens.append(token)
            if len(tokens) > self.max_tokens:
                return []
            top = stack[-1] if stack else None
            if force:
                token = "{"
            elif top and (len(tokens) >= target or top[0] == "{" and len(tokens) >= top[2]) and tokens[-1] not in SIZES:
                token = _closer(top)
            elif len(tokens) >= target and tokens[-1] not in SIZES:
                return tokens
            else:
                token = self._next(tokens[-1], stack, scripts)
                if token is None:  # nowhere to go from here: close what is open and stop
                    if top is None:
                        return tokens
                    target, token = 0, _closer(top)

    def _next(self, prev: str, stack: list, scripts: list) -> str | None:
        """A successor of `prev` drawn by its count that keeps the formula settable, or None after 20 tries."""
        if prev not in self.next:
            return None
        top = stack[-1][0] if stack else None
        for _ in range(20):
            token = draw(self.rng, self.next[prev])
            if token == "}" and top != "{" or token.startswith("\\right") and top != "\\left":
                continue
            if token in ("_", "^") and token in scripts[-1] or token == "'" and "^" in scripts[-1]:
                continue
            return token
        return None

    def _open(self, token: str, tokens: list[str], stack: list, scripts: list) -> bool:
        """Track the open groups and the scripts of the current base after `token`; True when a `{` must follow."""
        prev = tokens[-1] if tokens else None
        if token == "{":
            role = "script" if prev in ("_", "^") else "first" if prev in TWO_ARGUMENTS else "group"
            # the chain alone knows no context and would let a subscript run on for twenty tokens: each group gets a
            # length, drawn around what the real split writes, at which it is closed (if the chain has not closed it)
            stack.append(["{", role, len(tokens) + 2 + int(self.rng.expovariate(1 / GROUP_LENGTH[role]))])
            if role != "script":
                scripts[-1] = set()
            scripts.append(set())
            return False
        if token == "}":
            role = stack.pop()[1]
            scripts.pop()
            return role == "first"  # \frac's second argument
        if token in ("_", "^", "'"):
            scripts[-1].add("^" if token == "'" else token)
            return token != "'"
        if token.startswith("\\left") and token != "\\left":
            stack.append(["\\left", token])
        elif token.startswith("\\right") and stack and stack[-1][0] == "\\left":
            stack.pop()
        elif token == "[" and prev == "\\sqrt":
            stack.append(["[", ""])
        elif token == "]" and stack and stack[-1][0] == "[":
            stack.pop()
        scripts[-1] = set()
        return token in self.takes_argument or token in TWO_ARGUMENTS


def markov_formulas(count: int, seed: int, max_tokens: int) -> list[str]:
    """`count` distinct formulas from the chain, each a space-separated token string."""
    chain, seen, formulas = MarkovFormulas(seed, max_tokens), set(), []
    while len(formulas) < count:
        tokens = chain.formula()
        formula = " ".join(tokens)
        if tokens and formula not in seen:
            seen.add(formula)
            formulas.append(formula)
    return formulas
