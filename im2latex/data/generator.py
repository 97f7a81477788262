"""A seeded generator of IM2LATEX-100K-style formulas: normalised, space-separated token strings.

The constructs and their rough frequencies follow the real dataset's validation split (token counts
and the length histogram in shared/im2latex); the generator needs nothing but a seed."""
import random

LATIN = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
FREQUENT = list("ixdanemkrptcjsgl") + ["A", "N", "R", "T", "D", "M", "S", "B", "L"]
DIGITS = list("0123456789")
GREEK = (r"\alpha \beta \gamma \delta \epsilon \varepsilon \zeta \eta \theta \vartheta \iota \kappa \lambda "
         r"\mu \nu \xi \pi \varpi \rho \varrho \sigma \tau \upsilon \phi \varphi \chi \psi \omega "
         r"\Gamma \Delta \Theta \Lambda \Xi \Pi \Sigma \Upsilon \Phi \Psi \Omega").split()
SYMBOLS = r"\partial \infty \nabla \hbar \ell \prime \dagger \cdots \ldots \imath \aleph \emptyset".split()
RELATIONS = r"= = = = \equiv \approx \sim \simeq \leq \geq \neq \le \ge \propto \to \rightarrow \in \subset \mapsto \cong".split()
BINARY = r"+ + + - - - , , \cdot \times \pm \mp \otimes \oplus \wedge \cup \cap \ast".split()
SPACES = [r"\,", r"\,", r"\;", r"\quad", r"\qquad", "~", r"\!", r"\:"]
ACCENTS = r"\hat \bar \tilde \dot \ddot \vec \widetilde \widehat \check \breve".split()
BIG_OPS = r"\sum \sum \int \int \int \prod \oint \bigcup \bigoplus".split()
DELIMITERS = [(r"\left(", r"\right)"), (r"\left[", r"\right]"), (r"\left\{", r"\right\}"),
              (r"\left|", r"\right|"), (r"\left\langle", r"\right\rangle"), (r"\left.", r"\right|"),
              (r"\left\|", r"\right\|"), (r"\left(", r"\right.")]
PLAIN_DELIMITERS = [("(", ")"), ("(", ")"), ("[", "]"), ("|", "|"), (r"\{", r"\}"), (r"\langle", r"\rangle")]
FONTS = [r"\mathrm", r"\mathrm", r"\mathbf", r"\mathcal", r"\mathit", r"\mathsf"]
OLD_FONTS = [r"\cal", r"\bf", r"\it", r"\sf"]  # used as { \cal L }
OPERATOR_NAMES = ["sin", "cos", "exp", "log", "tr", "det", "lim", "Re", "Im", "max", "sup", "Tr"]

# length histogram (bins of 10 tokens) of IM2LATEX-100K's validation split, from shared/im2latex/stats.json
LENGTH_HISTOGRAM = {0: 15, 10: 267, 20: 924, 30: 1395, 40: 1314, 50: 1123, 60: 924, 70: 719, 80: 566,
                    90: 472, 100: 276, 110: 181, 120: 147, 130: 96, 140: 51}


class FormulaGenerator:
    """Draws formulas as token lists; equal seeds give equal formulas."""

    def __init__(self, seed: int, max_tokens: int):
        self.rng = random.Random(seed)
        self.max_tokens = max_tokens

    def formula(self) -> list[str]:
        """One formula whose length follows the real length histogram, at most max_tokens long."""
        r = self.rng
        bins = [b for b in LENGTH_HISTOGRAM if b < self.max_tokens]
        start = r.choices(bins, weights=[LENGTH_HISTOGRAM[b] for b in bins])[0]
        target = max(1, min(self.max_tokens, r.randint(start, start + 9)))
        while True:
            tokens = self.term(depth=0)
            while len(tokens) < target:
                nxt = self.joiner() + self.term(depth=0)
                # stop where the length lands closest to the target
                if len(tokens) + len(nxt) > self.max_tokens or len(tokens) + len(nxt) - target > target - len(tokens):
                    break
                tokens += nxt
            if len(tokens) <= self.max_tokens:
                return tokens

    def joiner(self) -> list[str]:
        r = self.rng.random()
        if r < 0.25:
            return [self.rng.choice(RELATIONS)]
        if r < 0.55:
            return [self.rng.choice(BINARY)]
        if r < 0.65:
            return [self.rng.choice(SPACES)]
        return []

    def symbol(self) -> list[str]:
        r = self.rng.random()
        if r < 0.45:
            return [self.rng.choice(FREQUENT if self.rng.random() < 0.6 else LATIN)]
        if r < 0.65:
            return [self.rng.choice(DIGITS)]
        if r < 0.9:
            return [self.rng.choice(GREEK)]
        return [self.rng.choice(SYMBOLS)]

    def group(self, depth: int, terms: int = 2) -> list[str]:
        """A braced argument: { ... } holding a short expression."""
        tokens = self.term(depth + 1)
        for _ in range(self.rng.randint(0, terms - 1)):
            tokens += self.joiner() + self.term(depth + 1)
        return ["{"] + tokens + ["}"]

    def script(self, depth: int) -> list[str]:
        r = self.rng.random()
        small = lambda: ["{"] + (self.symbol() if self.rng.random() < 0.7 else self.term(depth + 1)) + ["}"]
        if r < 0.4:
            return ["_"] + small()
        if r < 0.7:
            return ["^"] + (["{", r"\prime", "}"] if self.rng.random() < 0.15 else small())
        return ["_"] + small() + ["^"] + small()

    def term(self, depth: int) -> list[str]:
        r, deep = self.rng, depth >= 2
        kind = r.choices(
            ["symbol", "script", "frac", "sqrt", "accent", "bigop", "delim", "font", "oldfont",
             "operator", "matrix", "plain"],
            weights=[30, 30, 8, 3, 5, 0 if deep else 4, 0 if deep else 6, 4, 2, 2, 0 if depth else 1, 0 if deep else 5],
        )[0]
        if kind == "symbol":
            return self.symbol()
        if kind == "script":
            return self.symbol() + self.script(depth)
        if kind == "frac":
            return [r"\frac"] + self.group(depth) + self.group(depth)
        if kind == "sqrt":
            index = ["[", r.choice(DIGITS[2:] + ["n"]), "]"] if r.random() < 0.3 else []
            return [r"\sqrt"] + index + self.group(depth)
        if kind == "accent":
            accent = r.choice(ACCENTS + [r"\overline", r"\underline"])
            body = self.group(depth) if accent in (r"\overline", r"\underline", r"\widetilde", r"\widehat") else ["{"] + self.symbol() + ["}"]
            return [accent] + body
        if kind == "bigop":
            op = r.choice(BIG_OPS)
            index = r.choice(LATIN[8:14])
            limits = (["_", "{", index, "=", r.choice(DIGITS[:2]), "}", "^", "{", r.choice(["N", "n", r"\infty"]), "}"]
                      if op != r"\int" else ["_", "{"] + r.choice([["0"], ["-", r"\infty"]]) + ["}", "^", "{", r"\infty", "}"])
            if r.random() < 0.3:
                limits = []
            body = self.term(depth + 1) + self.joiner() + self.term(depth + 1)
            return [op] + limits + body + ([r"d", r.choice("xtkr")] if op in (r"\int", r"\oint") else [])
        if kind == "delim":
            left, right = r.choice(DELIMITERS)
            return [left] + self.group(depth, terms=3)[1:-1] + [right]
        if kind == "plain":
            left, right = r.choice(PLAIN_DELIMITERS)
            return [left] + self.group(depth, terms=3)[1:-1] + [right]
        if kind == "font":
            letters = r.sample(LATIN, r.randint(1, 3))
            return [r.choice(FONTS), "{"] + letters + ["}"]
        if kind == "oldfont":
            return ["{", r.choice(OLD_FONTS), r.choice(LATIN[26:]), "}"]
        if kind == "operator":
            return [r"\operatorname", "{"] + list(r.choice(OPERATOR_NAMES)) + ["}"]
        rows, cols = r.randint(2, 3), r.randint(2, 3)
        body = []
        for i in range(rows):
            for j in range(cols):
                body += self.term(depth + 2) + (["&"] if j < cols - 1 else [])
            body += [r"\\"] if i < rows - 1 else []
        if r.random() < 0.5:
            left, right = r.choice(DELIMITERS[:4])
            return [left, r"\begin{array}", "{"] + ["c"] * cols + ["}"] + body + [r"\end{array}", right]
        return [r"\left(", r"\begin{matrix}"] + body + [r"\end{matrix}", r"\right)"]


def generate_formulas(count: int, seed: int, max_tokens: int) -> list[str]:
    """`count` distinct formulas, each a space-separated token string."""
    generator, seen, formulas = FormulaGenerator(seed, max_tokens), set(), []
    while len(formulas) < count:
        formula = " ".join(generator.formula())
        if formula not in seen:
            seen.add(formula)
            formulas.append(formula)
    return formulas
