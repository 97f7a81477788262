"""Plain LaTeX -> IM2LATEX-100K's normalised form, on pairs written from the dataset's conventions."""
import pytest

from im2latex.data.normalise import LatexSyntaxError, normalise, normalise_all

PAIRS = [
    # scripts: always braced, subscript before superscript, primes as \prime superscripts
    ("x_1", "x _ { 1 }"),
    ("x^2_i", "x _ { i } ^ { 2 }"),
    ("e^{-l\\zeta}", "e ^ { - l \\zeta }"),
    ("\\int_0^\\infty", "\\int _ { 0 } ^ { \\infty }"),
    ("f'(x)", "f ^ { \\prime } ( x )"),
    ("\\delta''(l)", "\\delta ^ { \\prime \\prime } ( l )"),
    ("x'^2", "x ^ { \\prime 2 }"),
    ("l'_1", "l _ { 1 } ^ { \\prime }"),
    ("\\sum\\limits_{i=1}^n", "\\sum _ { i = 1 } ^ { n }"),
    ("{}^{3}He", "{ } ^ { 3 } H e"),
    # fractions: \over and \choose become \frac and \binom; the group's own braces stay
    ("x_1 \\over 2", "\\frac { x _ { 1 } } { 2 }"),
    ("{1\\over L^2}", "{ \\frac { 1 } { L ^ { 2 } } }"),
    ("a+{n \\choose k}", "a + { \\binom { n } { k } }"),
    ("\\frac{a}{b}", "\\frac { a } { b }"),
    ("\\frac12", "\\frac 1 2"),
    ("\\dfrac{a}{b}", "\\frac { a } { b }"),
    ("\\left( a \\over b \\right)", "\\left( \\frac { a } { b } \\right)"),
    # fonts: {\rm ..} and \mbox are \mathrm; \bf, \cal keep their group
    ("{\\rm d} x", "\\mathrm { d } x"),
    ("{\\rm Tr}(M)", "\\mathrm { T r } ( M )"),
    ("V_{\\rm eff}", "V _ { \\mathrm { e f f } }"),
    ("\\hat{\\rm P}", "\\hat { \\mathrm { P } }"),
    ("{\\bf M}_+", "{ \\bf M } _ { + }"),
    ("{\\cal C}_i", "{ \\cal C } _ { i }"),
    ("\\mathcal J", "\\mathcal J"),
    ("\\mathrm{S}", "\\mathrm { S }"),
    ("a\\,\\mbox{or}\\,b", "a \\, \\mathrm { o r } \\, b"),
    ("\\mbox{ if }x>0", "\\mathrm { ~ i f ~ } x > 0"),
    ("\\text{for all}", "\\mathrm { f o r ~ a l l }"),
    # named operators, as KaTeX built them
    ("\\tan(\\beta\\varphi)", "\\operatorname { t a n } ( \\beta \\varphi )"),
    ("\\lim_{t \\rightarrow 0}", "\\operatorname* { l i m } _ { t \\rightarrow 0 }"),
    ("\\operatorname{Tr} A", "\\operatorname { T r } A"),
    # accents always braced; \overline braced once more
    ("\\bar g_{ij}", "\\bar { g } _ { i j }"),
    ("\\vec x", "\\vec { x }"),
    ("{\\bar{K}}^{-}_a", "{ \\bar { K } } _ { a } ^ { - }"),
    ("\\overline{\\psi}", "\\overline { { \\psi } }"),
    ("\\sqrt{N}", "\\sqrt { N }"),
    ("\\sqrt[3]{x}", "\\sqrt [ 3 ] { x }"),
    ("\\hspace{1cm}\\psi", "\\hspace { 1 c m } \\psi"),
    # invisible: labels, \nonumber, comments
    ("a=b.\\label{eq:3}", "a = b ."),
    ("\\label{block}{e}", "{ e }"),
    ("a \\nonumber", "a"),
    ("a+b % the sum", "a + b"),
    ("100\\% + \\{ x \\}", "1 0 0 \\% + \\{ x \\}"),
    # spacing and delimiters as written; a line break outside an environment is a thin space
    ("0\\ .", "0 \\ ."),
    ("x,~~y", "x , ~ ~ y"),
    ("\\left\\{ x \\right.", "\\left\\{ x \\right."),
    ("\\Big( x \\Big)", "\\Big ( x \\Big )"),
    ("a \\\\ b", "a \\, b"),
    # environments: every cell braced, every row ended by \\
    ("\\left( \\begin{array}{c}  0\\\\ \\phi_{0}  \\end{array} \\right)",
     "\\left( \\begin{array} { c } { 0 } \\\\ { \\phi _ { 0 } } \\\\ \\end{array} \\right)"),
    ("\\begin{pmatrix} a & b \\\\ c & d \\end{pmatrix}",
     "\\left( \\begin{matrix} { a } & { b } \\\\ { c } & { d } \\\\ \\end{matrix} \\right)"),
    ("\\pmatrix{e &   0  \\cr0&  f \\cr}", "\\left( \\begin{matrix} { e } & { 0 } \\\\ { 0 } & { f } \\\\ \\end{matrix} \\right)"),
    ("\\begin{array}{cc} & x\\\\ \\end{array}", "\\begin{array} { c c } { } & { x } \\\\ \\end{array}"),
]


@pytest.mark.parametrize("latex, expected", PAIRS)
def test_known_pairs(latex, expected):
    assert normalise(latex) == expected


@pytest.mark.parametrize("expected", [e for _, e in PAIRS])
def test_normalised_formulas_come_back_unchanged(expected):
    assert normalise(expected) == expected


@pytest.mark.parametrize("latex", ["{a", "a}", "\\frac{a}", "x^", "x_1_2", "\\left( a", "a \\over b \\over c",
                                   "\\begin{array}{c} a \\end{matrix}", "\\sqrt[3"])
def test_unparsable_formulas_raise(latex):
    with pytest.raises(LatexSyntaxError):
        normalise(latex)


def test_unparsable_formulas_fall_back_to_tokens_and_are_counted():
    formulas, fallbacks = normalise_all(["x_1", "{a_1", "\\frac{a}", "a}%c"])
    assert formulas == ["x _ { 1 }", "{ a _ 1", "\\frac { a }", "a }"]
    assert fallbacks == 3


def test_empty_formulas_and_the_datasets_leading_percent():
    # IM2LATEX-100K dropped a leading "%" and kept the rest: "%3.8G= ..." was labelled "3 . 8 G = ..."
    assert normalise_all(["", "  ", "%3.8G=x"]) == (["", "", "3 . 8 G = x"], 0)


def test_folder_source_normalises_its_labels(tmp_path):
    from im2latex.data import layout
    from im2latex.data.sources import copy_folder

    folder, out = tmp_path / "mine", tmp_path / "out"
    (folder / layout.IMAGES).mkdir(parents=True)
    out.mkdir()
    (folder / layout.IMAGES / "a.png").write_bytes(b"png")
    (folder / layout.FORMULAS).write_text("{\\rm d} x_1\n\\frac { a } { b }\n")
    for split in layout.SPLITS:
        (folder / layout.split_file(split)).write_text("0 a basic\n1 a basic\n")
    assert copy_folder(out, folder) == {"train": 2, "validate": 2, "test": 2}
    assert layout.read_formulas(out) == ["\\mathrm { d } x _ { 1 }", "\\frac { a } { b }"]
