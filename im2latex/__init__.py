"""im2latex: image of a formula -> its LaTeX source."""


class Im2LatexError(Exception):
    """An error the user can cause and fix; its message is one line that names the problem."""
