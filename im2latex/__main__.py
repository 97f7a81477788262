"""The command line: python -m im2latex COMMAND (see --help)."""
import argparse
import json
import sys
from pathlib import Path

from im2latex import Im2LatexError
from im2latex.console import setup_logging


def cmd_tokenize(args: argparse.Namespace) -> None:
    from im2latex.data.tokenizer import normalize

    for latex in args.latex or sys.stdin.read().splitlines():
        print(normalize(latex))


def cmd_data_report(args: argparse.Namespace) -> None:
    from im2latex.data.report import compare

    for path in (args.reference / "vocab_val_freq.tsv", args.reference / "stats.json"):
        if not path.is_file():
            raise Im2LatexError(f"{path}: missing (the reference folder needs vocab_val_freq.tsv and stats.json)")
    print(json.dumps(compare(args.data, args.reference), indent=1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="im2latex", description="Image of a formula -> LaTeX. "
                                     "The pipeline itself runs with `dvc repro`; these are the tools around it.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("tokenize", help="print LaTeX in IM2LATEX-100K's normalised, space-separated form",
                            description="Tokenize LaTeX the way the model reads it, e.g. '\\frac{a}{b}' -> '\\frac { a } { b }'.")
    p.add_argument("latex", nargs="*", help="formulas (default: one per line on standard input)")
    p.set_defaults(run=cmd_tokenize)

    p = commands.add_parser("data-report", help="compare a dataset's formulas with IM2LATEX-100K's statistics",
                            description="Token coverage and length histogram of DATA (IM2LATEX-100K layout, e.g. data/raw) "
                                        "against a folder holding vocab_val_freq.tsv and stats.json of the real dataset.")
    p.add_argument("data", type=Path, help="dataset folder, e.g. data/raw")
    p.add_argument("--reference", type=Path, required=True, help="folder with vocab_val_freq.tsv and stats.json")
    p.set_defaults(run=cmd_data_report)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        args.run(args)
    except Im2LatexError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
