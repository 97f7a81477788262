"""Shared start-up for the stage scripts and the command line: logging, and user errors as one line."""
import logging
import sys
from collections.abc import Callable

from im2latex import Im2LatexError


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def run_stage(main: Callable[..., None], usage: str) -> None:
    """Call `main(*paths)` with the command-line paths; a user error ends with one line and exit code 1."""
    args = sys.argv[1:]
    if len(args) != usage.count(" ") or any(a in ("-h", "--help") for a in args):
        sys.exit(f"usage: python -m {usage}")
    setup_logging()
    try:
        main(*args)
    except Im2LatexError as e:
        sys.exit(f"error: {e}")
