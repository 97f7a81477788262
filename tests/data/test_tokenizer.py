from im2latex.data.tokenizer import normalize, tokenize


def test_plain_latex_is_split_like_the_normalised_dataset():
    assert normalize(r"\frac{a}{b}") == r"\frac { a } { b }"
    assert normalize(r"x_i^{2}+\alpha_{12}") == r"x _ i ^ { 2 } + \alpha _ { 1 2 }"


def test_normalised_formula_round_trips():
    formula = r"\left( \begin{array} { c c } a & b \\ c & d \end{array} \right) \, \quad ~ \sqrt [ 3 ] { x }"
    assert normalize(formula) == formula


def test_multi_character_tokens():
    assert tokenize(r"\left ( x \right\} \operatorname*{lim} a--b \ c \{") == [
        r"\left(", "x", r"\right\}", r"\operatorname*", "{", "l", "i", "m", "}", "a", "--", "b", "\\", "c", r"\{"]
    assert tokenize(r"\begin {matrix} 1 \end{matrix}") == [r"\begin{matrix}", "1", r"\end{matrix}"]


def test_whitespace_only_gives_no_tokens():
    assert tokenize("  \n\t ") == []
