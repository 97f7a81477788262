"""A seeded generator of IM2LATEX-100K-style formulas: normalised, space-separated token strings.

Formulas are built from a small weighted grammar of what physics and maths papers write: equations
of sums of products, indexed symbols, function application, fractions, roots, accents, sums and
integrals with limits and measures, brackets, derivatives, bra-kets, font commands, arrays,
spacing, text between equations and trailing punctuation. The weights start from the token counts
of the real validation split and are tuned so that the generated token shares come near the real
ones (docs/experiments.md); formula lengths follow its length histogram (shared/im2latex). The
generator needs nothing but a seed."""
import bisect
import itertools
import random

# counts of the real validation split (shared/im2latex/vocab_val_freq.tsv), used as weights
LATIN = dict(zip("ixdanemkrptcAjsglbzfqNRTDMSBLFyHhuPCGoVIXJEQvKUWZwYO",
                 [5758, 4614, 1500, 3860, 3826, 2880, 2708, 2598, 2598, 2571, 2489, 2449, 2349, 2051, 2050, 1918,
                  1865, 1758, 1696, 1376, 1344, 1334, 1268, 1258, 1257, 1177, 1169, 1167, 1155, 1094, 1052, 1001,
                  930, 927, 905, 878, 864, 835, 829, 816, 804, 747, 718, 688, 622, 587, 547, 528, 455, 453, 267,
                  263]))
GREEK = dict(zip(r"\mu \alpha \nu \pi \phi \delta \lambda \beta \sigma \theta \gamma \psi \rho \omega \tau "
                 r"\epsilon \Phi \xi \eta \Gamma \Delta \Lambda \chi \varphi \Omega \kappa \Psi \varepsilon "
                 r"\Sigma \zeta \Pi \Theta \vartheta \varrho \iota \Xi \upsilon".split(),
                 [3626, 2210, 1827, 1701, 1646, 1435, 1347, 1309, 1163, 1094, 1032, 988, 951, 846, 839, 784, 711,
                  673, 667, 579, 537, 510, 499, 485, 471, 391, 385, 266, 259, 254, 164, 133, 47, 35, 20, 22, 8]))
DIGITS = dict(zip("2103456879", [14063, 10332, 5132, 2199, 1925, 513, 471, 410, 146, 125]))
SYMBOLS = {r"\partial": 300, r"\infty": 100, r"\hbar": 50, r"\ell": 65, r"\nabla": 60, r"\cdots": 80,
           r"\ldots": 75, r"\dots": 30, r"\dagger": 15, r"\prime": 100, r"\imath": 29, r"\wp": 24, r"\Re": 7,
           r"\star": 30, r"\triangle": 29, r"\bullet": 18, r"\forall": 41, r"\Upsilon": 6, r"\varpi": 6}
INDICES = {r"\mu": 12, r"\nu": 9, "i": 18, "j": 9, "k": 12, "n": 14, "a": 10, "b": 6, "0": 16, "1": 14, "2": 8,
           "3": 3, r"\alpha": 8, r"\beta": 4, "m": 8, "l": 6, "x": 5, "t": 4, "p": 4, "s": 3, "N": 3, "A": 3,
           "L": 2, "R": 3, "c": 2, "r": 2, "+": 3, "-": 3, r"\sigma": 2, r"\lambda": 2, "I": 2, "z": 2, "q": 2}
POWERS = {"2": 60, "-1": 8, r"\prime": 14, r"\prime\prime": 3, r"\dagger": 3, r"\dag": 1, r"\star": 1, "'": 2,
          "*": 3, "n": 6, "3": 6, "4": 3,
          r"\mu": 8, r"\nu": 4, "a": 3, "i": 3, "k": 2, "1/2": 3, "-2": 2, "T": 2, "N": 2, "d": 2, "D": 2,
          "+": 2, "-": 2, r"\alpha": 2, "(1)": 2, "(0)": 1, "2n": 1, "0": 2, "1": 2, "p": 1, "s": 1}
RELATIONS = {"=": 10465, r"\equiv": 888, r"\approx": 242, r"\sim": 415, r"\simeq": 160, r"\leq": 222, r"\geq": 170,
             r"\neq": 178, "<": 648, ">": 640, r"\to": 38, r"\rightarrow": 660, r"\propto": 85, r"\le": 78,
             r"\ge": 80, r"\in": 405, r"\longrightarrow": 112, r"\mapsto": 42, r"\ll": 28, r"\gg": 48,
             r"\subset": 42, r"\Rightarrow": 50, r"\cong": 18, r"\perp": 275, ": =": 215, ":": 150, r"\mid": 150,
             r"\not =": 50, r"\ne": 38, r"\leftrightarrow": 65, r"\parallel": 58, r"\Leftrightarrow": 18}
BINARY = {"+": 7006, "-": 6000, r"\pm": 481, r"\mp": 68, r"\times": 130, r"\cdot": 345, r"\otimes": 149,
          r"\wedge": 158, r"\oplus": 31, r"\ast": 104, "/": 500, r"\circ": 63, r"\cup": 13, r"\cap": 8}
SPACES = {r"\,": 2000, r"\;": 1600, r"\quad": 300, r"\qquad": 180, "~": 1100, r"\!": 433, r"\:": 184, "\\": 1500}  # "\\" is the control space "\\ "
ACCENTS = {r"\bar": 1222, r"\tilde": 922, r"\hat": 854, r"\vec": 563, r"\dot": 553, r"\overline": 341,
           r"\widetilde": 150, r"\underline": 100, r"\widehat": 71, r"\ddot": 48, r"\check": 25, r"\breve": 8}
FUNCTIONS = {"sin": 8, "cos": 8, "exp": 10, "log": 6, "ln": 4, "tan": 2, "det": 3, "tr": 4, "Tr": 4, "sinh": 2,
             "cosh": 2, "tanh": 1, "arctan": 1, "Re": 1, "Im": 1, "sgn": 1, "diag": 1}
STAR_FUNCTIONS = {"lim": 4, "max": 2, "min": 2, "sup": 1, "inf": 1}
WORDS = ["d", "i", "e", "T", "R", "L", "eff", "tot", "tr", "const", "Tr", "E", "A", "B", "c", "Im", "Re", "max",
         "cl", "ext", "int", "in", "out", "s", "F", "YM", "CS", "sym", "ij"]
# text between formulas, set in \mathrm with `~` for its spaces: `\mathrm { f o r ~ a l l }`
PHRASES = ["for", "for all", "and", "if", "with", "where", "otherwise", "for even", "for odd", "is a basis of",
           "on shell", "h.c.", "c.c.", "const.", "mod", "div", "and all", "as", "at", "for some", "i.e."]
BRACKETS = {("(", ")"): 60, (r"\left(", r"\right)"): 20, ("[", "]"): 8, (r"\left[", r"\right]"): 6,
            (r"\left\{", r"\right\}"): 3, ("|", "|"): 5, (r"\{", r"\}"): 6, (r"\langle", r"\rangle"): 4,
            (r"\left|", r"\right|"): 1, (r"\left\langle", r"\right\rangle"): 1, (r"\left.", r"\right|"): 0.5,
            (r"\Big (", r"\Big )"): 1, (r"\big (", r"\big )"): 1, (r"\Bigl (", r"\Bigr )"): 1,
            (r"\left\|", r"\right\|"): 0.3,
            (r"\bigl (", r"\bigr )"): 1, (r"\biggl (", r"\biggr )"): 1, (r"\bigg (", r"\bigg )"): 0.5,
            (r"\biggl [", r"\biggr ]"): 0.5, (r"\bigl [", r"\bigr ]"): 0.4, (r"\vert", r"\vert"): 0.9,
            (r"\left<", r"\right>"): 0.7, (r"\lbrack", r"\rbrack"): 0.6}
FONTS = {(r"{", r"\cal"): 1498, (r"{", r"\bf"): 742, (r"\mathrm", None): 150, (r"\mathcal", None): 195,
         (r"\mathbf", None): 152, (r"\mathsf", None): 28, (r"{", r"\it"): 20, (r"{", r"\sf"): 25}

# length histogram (bins of 10 tokens) of IM2LATEX-100K's validation split, from shared/im2latex/stats.json
LENGTH_HISTOGRAM = {0: 15, 10: 267, 20: 924, 30: 1395, 40: 1314, 50: 1123, 60: 924, 70: 719, 80: 566,
                    90: 472, 100: 276, 110: 181, 120: 147, 130: 96, 140: 51}


KINDS = ("scripted", "symbol", "number", "call", "operator", "bracket", "frac", "sqrt", "accent", "bigop", "partial",
         "font", "braket", "matrix", "wrapped", "factorial", "stackrel")


def draw(rng: random.Random, table: tuple[list, list]) -> object:
    """One of `table`'s options (options, cumulative weights), drawn as random.choices draws it."""
    options, cumulative = table
    return options[bisect.bisect_right(cumulative, rng.random() * (cumulative[-1] + 0.0), 0, len(options) - 1)]


class FormulaGenerator:
    """Draws formulas as token lists; equal seeds give equal formulas."""

    def __init__(self, seed: int, max_tokens: int):
        self.rng = random.Random(seed)
        self.max_tokens = max_tokens
        self._tables: dict = {}  # options and cumulative weights of each table pick() has drawn from

    def pick(self, weights: dict | tuple):
        """A key of a weights dict (one of this module's constant tables), or an option of (options, weights), drawn
        as random.choices draws it, with the cumulative weights summed once per table instead of at every draw."""
        key = id(weights) if isinstance(weights, dict) else weights
        if key not in self._tables:
            options, values = (weights, weights.values()) if isinstance(weights, dict) else weights
            self._tables[key] = (list(options), list(itertools.accumulate(values)))
        return draw(self.rng, self._tables[key])

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def space(self) -> list[str]:
        """A spacing command, sometimes repeated (`~ ~`, `\\; \\;`)."""
        space = self.pick(SPACES)
        return [space] * self.pick(((1, 2, 3), (80, 16, 4)))

    def formula(self) -> list[str]:
        """One formula whose length follows the real length histogram, at most max_tokens long."""
        bins = [b for b in LENGTH_HISTOGRAM if b < self.max_tokens]
        start = self.rng.choices(bins, weights=[LENGTH_HISTOGRAM[b] for b in bins])[0]
        target = max(1, min(self.max_tokens, self.rng.randint(start, start + 9)))
        for _ in range(50):
            tokens = self.equation(target)
            if len(tokens) <= self.max_tokens and abs(len(tokens) - target) <= max(4, target // 5):
                return tokens
        return tokens if len(tokens) <= self.max_tokens else self.symbol()

    def equation(self, target: int) -> list[str]:
        """Sides joined by relations; sometimes several equations in a row, and trailing punctuation."""
        tokens = self.expression(max(1, target // self.rng.choice([1, 2, 3, 3, 4])), 0)
        while len(tokens) < target - 2:
            r = self.rng.random()
            if r < 0.7:
                join = self.pick(RELATIONS).split()
                if self.chance(0.12):
                    join = self.space() + join + self.space()
            elif r < 0.88:  # `A = B , \qquad C = D`: the real data's most common use of wide spaces
                join = [","] + (self.space() if self.chance(0.5) else [])
                if self.chance(0.35):
                    length = self.rng.choice([["1", "c", "m"], ["5", "m", "m"], ["2", "e", "m"], ["0", ".", "5", "c", "m"],
                                              ["1", "0", "p", "t"]])
                    join = [","] + self.rng.choice([[r"\quad"], [r"\qquad"], [r"\quad"], [r"\hspace", "{"] + length + ["}"]])
            elif r < 0.91:  # `\quad \mathrm { f o r ~ a l l } \quad`
                words = self.rng.choice(PHRASES).replace(" ", "~")
                join = [self.rng.choice([r"\quad", r"\qquad", r"\,", "~"]), r"\mathrm", "{"] + list(words) + ["}"]
                join += [self.rng.choice([r"\quad", "~", r"\;"])]
            else:
                join = self.space()
            tokens += join + self.expression(max(1, min(target - len(tokens) - 1, target // 4)), 0)
        if self.chance(0.3):
            tokens += (self.space() if self.chance(0.4) else []) + [self.rng.choice([",", ".", ".", ";"])]
        return tokens

    def expression(self, budget: int, depth: int) -> list[str]:
        """Terms joined by binary operators until about `budget` tokens."""
        tokens = (["-"] if self.chance(0.1) else []) + self.term(budget, depth)
        while len(tokens) < budget:
            tokens += [self.pick(BINARY)] + self.term(budget - len(tokens), depth)
        return tokens

    def term(self, budget: int, depth: int) -> list[str]:
        """A product of factors, sometimes with a numeric coefficient or a space between factors."""
        tokens = [self.pick(DIGITS)] if self.chance(0.1) else []
        for _ in range(self.pick(((1, 2, 3, 4), (35, 30, 20, 15)))):
            if tokens and self.chance(0.14):
                tokens += self.space()
            tokens += self.factor(max(1, budget - len(tokens)), depth)
            if len(tokens) >= budget:
                break
        return tokens

    def symbol(self) -> list[str]:
        r = self.rng.random()
        if r < 0.6:
            return [self.pick(LATIN)]
        if r < 0.92:
            return [self.pick(GREEK)]
        return [self.pick(SYMBOLS)]

    def index(self) -> list[str]:
        """What goes inside _ { }: one or two indices, a small sum, a word."""
        r = self.rng.random()
        if r < 0.6:
            return [self.pick(INDICES)]
        if r < 0.75:
            return [self.pick(INDICES), self.pick(INDICES)]
        if r < 0.85:
            return [self.pick(INDICES), self.rng.choice(["+", "-", ","]), self.pick(INDICES)]
        if r < 0.93:
            return [r"\mathrm", "{"] + list(self.rng.choice(WORDS)) + ["}"]
        return self.symbol() + (["=", self.pick(DIGITS)] if self.chance(0.5) else [])

    def power(self, depth: int) -> list[str]:
        """What goes inside ^ { }."""
        if depth < 2 and self.chance(0.12):
            return self.expression(self.rng.randint(2, 6), depth + 2)
        p = self.pick(POWERS)
        if p == "1/2":
            return self.rng.choice([["1", "/", "2"], [r"\frac", "{", "1", "}", "{", "2", "}"]])
        if p == r"\prime\prime":
            return [r"\prime", r"\prime"]
        if p.startswith("(") and len(p) == 3:
            return ["(", p[1], ")"]
        if p[0] in "-2" and len(p) == 2:
            return [p[0], p[1]]
        return [p]

    def scripts(self, depth: int) -> list[str]:
        r = self.rng.random()
        if r < 0.4:
            return ["_", "{"] + self.index() + ["}"]
        if r < 0.75:
            return ["^", "{"] + self.power(depth) + ["}"]
        sub, sup = ["_", "{"] + self.index() + ["}"], ["^", "{"] + self.power(depth) + ["}"]
        return sub + sup  # the dataset's normalisation writes the subscript first

    def group(self, budget: int, depth: int) -> list[str]:
        return ["{"] + self.expression(max(1, budget), depth + 1) + ["}"]

    def factor(self, budget: int, depth: int) -> list[str]:
        r, deep = self.rng, depth >= 2
        big = budget >= 8 and not deep
        kind = self.pick((KINDS, (34, 20, 6, 7, 2, 14 if big else 4, 12 if big else 4, 1.2, 5, 4 if big else 0, 1.8, 4,
                              0.35, 5 if depth == 0 and budget >= 20 else 0, 2, 0.16, 0.4)))
        if kind == "scripted":
            return self.symbol() + self.scripts(depth)
        if kind == "symbol":
            return self.symbol()
        if kind == "number":
            digits = [self.pick(DIGITS) for _ in range(r.choice([1, 1, 2, 3]))]
            return digits + (["."] + [self.pick(DIGITS)] if r.random() < 0.15 else [])
        if kind == "call":  # f ( x , t )
            head = self.symbol() + (self.scripts(depth) if self.chance(0.3) else [])
            args = self.expression(min(budget, r.randint(1, 5)), depth + 1)
            while r.random() < 0.25:
                args += [","] + self.expression(r.randint(1, 3), depth + 1)
            return head + ["("] + args + [")"]
        if kind == "operator":
            if self.chance(0.9):
                name = [r"\operatorname", "{"] + list(self.pick(FUNCTIONS)) + ["}"]
            else:
                name = [r"\operatorname*", "{"] + list(self.pick(STAR_FUNCTIONS)) + ["}"]
                name += ["_", "{"] + self.symbol() + [r"\to", self.rng.choice(["0", r"\infty"])] + ["}"]
            if self.chance(0.3):
                name += ["^", "{"] + self.power(depth) + ["}"]
            return name + (self.factor(budget - 2, depth + 1) if self.chance(0.6) else
                           ["("] + self.expression(min(budget, r.randint(1, 6)), depth + 1) + [")"])
        if kind == "bracket":
            left, right = self.pick(BRACKETS)
            body = self.expression(max(1, min(budget - 2, r.randint(2, 14))), depth + 1)
            return left.split() + body + right.split() + (self.scripts(depth) if self.chance(0.25) else [])
        if kind == "frac":
            special = r.random()
            if special < 0.2:
                num, den = [self.pick(DIGITS)], [self.pick(DIGITS)]
                if self.chance(0.15):  # `\frac 1 2`, as written
                    return [r"\frac"] + num + den
                return [r"\frac", "{"] + num + ["}", "{"] + den + ["}"]
            if special < 0.3:
                d = r.choice(["d", r"\partial", r"\delta"])
                var = self.symbol() + (self.scripts(depth) if self.chance(0.3) else [])
                top = [d] + (self.symbol() if self.chance(0.5) else [])
                return [r"\frac", "{"] + top + ["}", "{", d] + var + ["}"]
            half = max(1, min(budget // 2, r.randint(1, 9)))
            head = r.choices([r"\frac", r"\binom"], weights=[99, 1])[0]
            frac = [head] + self.group(half, depth) + self.group(half, depth)
            if self.chance(0.04):  # `{ \displaystyle \frac { } { } }`
                return ["{", r.choice([r"\displaystyle", r"\displaystyle", r"\textstyle"])] + frac + ["}"]
            return ["{"] + frac + ["}"] if self.chance(0.15) else frac
        if kind == "sqrt":
            index = ["[", r.choice(["3", "4", "n"]), "]"] if r.random() < 0.1 else []
            return [r"\sqrt"] + index + self.group(min(budget, r.randint(1, 6)), depth)
        if kind == "accent":
            accent = self.pick(ACCENTS)
            wide = accent in (r"\overline", r"\underline", r"\widetilde", r"\widehat")
            body = self.group(r.randint(1, 4), depth) if wide else ["{"] + self.symbol() + ["}"]
            if accent in (r"\overline", r"\underline"):  # the dataset's normalisation doubles their braces
                body = ["{"] + body + ["}"]
            return [accent] + body + (self.scripts(depth) if self.chance(0.35) else [])
        if kind == "bigop":
            op = r.choices([r"\sum", r"\int", r"\prod", r"\oint"], weights=[978, 1239, 171, 59])[0]
            if op == r"\int":
                limits = r.choice([[], [], ["_", "{", "0", "}", "^", "{", r"\infty", "}"],
                                   ["_", "{", "-", r"\infty", "}", "^", "{", r"\infty", "}"],
                                   ["_", "{"] + self.symbol() + ["}", "^", "{"] + self.symbol() + ["}"],
                                   ["_", "{"] + self.symbol() + ["}"]])
                measure = ["d"] + ([ "^", "{", r.choice(["4", "3", "2", "D", "d"]), "}"] if self.chance(0.3) else [])
                measure += self.symbol() if self.chance(0.7) else [r.choice("xtkr")]
                before = self.chance(0.4)
                body = self.term(min(budget, r.randint(2, 10)), depth + 1)
                return [op] + limits + (measure + body if before else body + [r"\,"] * self.chance(0.3) + measure)
            i = self.pick(INDICES)
            limits = r.choice([["_", "{", i, "}"], ["_", "{", i, "=", r.choice(["0", "1"]), "}", "^", "{",
                                                    r.choice(["N", "n", r"\infty", "k", "L"]), "}"], []])
            return [op] + limits + self.term(min(budget, r.randint(2, 10)), depth + 1)
        if kind == "partial":
            d = r.choices([r"\partial", r"\nabla", r"\delta", "d"], weights=[6, 0.6, 1, 1.5])[0]
            return [d, "_", "{"] + self.index() + ["}"] + (self.symbol() if self.chance(0.5) else [])
        if kind == "font":
            opener, old = self.pick(FONTS)
            letters = list(self.rng.choice(WORDS)) if opener == r"\mathrm" else [self.pick(LATIN)]
            if opener in (r"\mathcal", "{") and old == r"\cal":
                letters = [letters[0].upper()]
            body = ([opener, old] + letters + ["}"]) if old else [opener, "{"] + letters + ["}"]
            return body + (self.scripts(depth) if self.chance(0.35) else [])
        if kind == "braket":
            inner = self.symbol() + (self.scripts(depth) if self.chance(0.3) else [])
            return r.choice([["|"] + inner + [r"\rangle"], [r"\langle"] + inner + ["|"],
                             [r"\langle"] + inner + ["|"] + self.symbol() + ["|"] + self.symbol() + [r"\rangle"]])
        if kind == "matrix":
            rows, cols = r.randint(2, 3), r.randint(2, 3)
            body = []
            for i in range(rows):  # the dataset's normalisation braces every cell
                for j in range(cols):
                    cell = self.expression(r.randint(1, 6), depth + 2)
                    body += ["{"] + cell + ["}"] + (["&"] if j < cols - 1 else [])
                body += [r"\\"]
            if self.chance(0.8):
                left, right = r.choices([(r"\left(", r"\right)"), (r"\left[", r"\right]"), (r"\left|", r"\right|"),
                                         (r"\left\{", r"\right.")], weights=[10, 2, 1, 3])[0]
                return [left, r"\begin{array}", "{"] + [r.choice("clr")] * cols + ["}"] + body + [r"\end{array}", right]
            return [r"\left(", r"\begin{matrix}"] + body + [r"\end{matrix}", r"\right)"]
        if kind == "factorial":
            if self.chance(0.5):
                return self.symbol() + ["!"]
            return ["("] + self.expression(r.randint(2, 5), depth + 1) + [")", "!"]
        if kind == "stackrel":  # `\stackrel { ( 1 ) } { \omega }`
            over = self.rng.choice([["(", self.pick(DIGITS), ")"], self.symbol(), ["\\circ"], ["*"]])
            return [r"\stackrel", "{"] + over + ["}", "{"] + self.symbol() + ["}"]
        return ["{"] + self.factor(budget - 2, depth + 1) + ["}"]  # redundant braces, common in the real data


def generate_formulas(count: int, seed: int, max_tokens: int) -> list[str]:
    """`count` distinct formulas, each a space-separated token string."""
    generator, seen, formulas = FormulaGenerator(seed, max_tokens), set(), []
    while len(formulas) < count:
        formula = " ".join(generator.formula())
        if formula not in seen:
            seen.add(formula)
            formulas.append(formula)
    return formulas
