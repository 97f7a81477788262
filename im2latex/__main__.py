"""The command line: python -m im2latex COMMAND (see --help)."""
import argparse
import json
import sys
from pathlib import Path

from im2latex import Im2LatexError
from im2latex.console import setup_logging

PREDICT_BATCH = 16  # images read at a time, sorted by size; a progress bar over more than one batch


def cmd_tokenize(args: argparse.Namespace) -> None:
    from im2latex.data.tokenizer import normalize

    for latex in args.latex or sys.stdin.read().splitlines():
        print(normalize(latex))


def cmd_normalise(args: argparse.Namespace) -> None:
    from im2latex.data.normalise import normalise_all

    formulas, fallbacks = normalise_all(args.latex or sys.stdin.read().splitlines())
    print("\n".join(formulas))
    if fallbacks:
        print(f"{fallbacks} of {len(formulas)} formulas could not be parsed and were only split into tokens", file=sys.stderr)


def cmd_data_report(args: argparse.Namespace) -> None:
    from im2latex.data.report import compare, describe

    if args.reference is None:
        print(json.dumps(describe(args.data), indent=1))
        return
    for path in (args.reference / "vocab_val_freq.tsv", args.reference / "stats.json"):
        if not path.is_file():
            raise Im2LatexError(f"{path}: missing (the reference folder needs vocab_val_freq.tsv and stats.json)")
    print(json.dumps(compare(args.data, args.reference), indent=1))


def reader_of(args: argparse.Namespace):
    from im2latex.runtimes import open_reader

    return open_reader(args.model, args.runtime, read_scales=args.read_scales, beam_width=args.beam_width)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from im2latex.evaluation import score_folder

    reader = reader_of(args)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    metrics = score_folder(reader, args.data, args.split, args.formulas, args.raw_labels, args.batch_size,
                           args.out and (args.out / "metrics.json", args.out / "predictions.tsv", args.out / "examples.png"))
    print(json.dumps(metrics, indent=2, sort_keys=True))


def cmd_predict(args: argparse.Namespace) -> None:
    from im2latex.data.images import load_image
    from im2latex.evaluation import predict_all

    reader = reader_of(args)
    images = [load_image(p) for p in args.images]  # every file checked before any is read
    texts = predict_all(reader, images, PREDICT_BATCH)
    for path, text in zip(args.images, texts):
        if not text:
            print(f"note: {path}: nothing read (a blank image, or no formula the reader recognises)", file=sys.stderr)
    if args.json:
        print(json.dumps([{"image": str(p), "latex": t} for p, t in zip(args.images, texts)], indent=2))
    else:
        for path, text in zip(args.images, texts):
            print(f"{path}\t{text}" if len(args.images) > 1 else text)


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from im2latex.config import ServeConfig, load_section
    from im2latex.runtimes import RUNTIMES
    from im2latex.serve.app import create_app

    model = args.model or RUNTIMES[args.runtime]
    if not model.exists():
        raise Im2LatexError(f"no model at {model}: train and export one first with `make repro` (or `dvc repro`)")
    cfg = load_section(args.params, "serve", ServeConfig)
    uvicorn.run(create_app(model, cfg, args.runtime), host=args.host, port=args.port, timeout_graceful_shutdown=30)


def cmd_preset(args: argparse.Namespace) -> None:
    from im2latex.presets import apply_preset, exp_run_command, find_preset

    preset = find_preset(args.name, args.presets)
    if args.print:
        print(exp_run_command(preset, args.params))
        return
    changed = apply_preset(preset, args.params)
    for key, (old, new) in changed.items():
        print(f"{key}: {old} -> {new}")
    print(f"{args.params}: {len(changed)} key(s) set from {preset}")


def add_model_arguments(p: argparse.ArgumentParser, reading: bool = True) -> None:
    p.add_argument("--runtime", choices=["torchscript", "onnx"], default="torchscript",
                   help="torchscript: models/model.pt (torch); onnx: models/onnx (ONNX Runtime, no torch, faster) "
                        "(default: %(default)s)")
    p.add_argument("--model", type=Path, help="the exported model (default: models/model.pt, or models/onnx for --runtime onnx)")
    if reading:
        p.add_argument("--read-scales", type=float, nargs="+", metavar="F", help="onnx only: read at these glyph sizes (factors of the "
                       "training size) instead of the exported ones; e.g. --read-scales 1.1 --beam-width 1 is the fast setting")
        p.add_argument("--beam-width", type=int, help="onnx only: beams per reading size instead of the exported one (1: greedy)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="im2latex", description="Image of a formula -> LaTeX. "
                                     "The pipeline itself runs with `dvc repro`; these are the tools around it.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("tokenize", help="print LaTeX in IM2LATEX-100K's normalised, space-separated form",
                            description="Tokenize LaTeX the way the model reads it, e.g. '\\frac{a}{b}' -> '\\frac { a } { b }'.")
    p.add_argument("latex", nargs="*", help="formulas (default: one per line on standard input)")
    p.set_defaults(run=cmd_tokenize)

    p = commands.add_parser("normalise", help="print plain LaTeX normalised as IM2LATEX-100K's formulas are",
                            description="Parse LaTeX as people write it and print it the way IM2LATEX-100K's labels are "
                                        "written, e.g. 'x_1 \\over 2' -> '\\frac { x _ { 1 } } { 2 }', '{\\rm d}' -> "
                                        "'\\mathrm { d }'; \\label, \\nonumber and comments are dropped. A formula it "
                                        "cannot parse is only tokenized (counted on standard error).")
    p.add_argument("latex", nargs="*", help="formulas (default: one per line on standard input)")
    p.set_defaults(run=cmd_normalise)

    p = commands.add_parser("data-report", help="what a dataset holds: formulas, lengths, renderer shares; coverage of IM2LATEX-100K",
                            description="Formulas, lengths and the share of each renderer (font, web look) of DATA "
                                        "(IM2LATEX-100K layout, e.g. data/raw); with --reference, also its token and "
                                        "bigram coverage and length histogram against the real dataset's statistics.")
    p.add_argument("data", type=Path, help="dataset folder, e.g. data/raw")
    p.add_argument("--reference", type=Path, help="folder with vocab_val_freq.tsv and stats.json of the real dataset")
    p.set_defaults(run=cmd_data_report)

    p = commands.add_parser("evaluate", help="score the exported model on a labelled dataset folder",
                            description="BLEU-4, edit score, exact match and render rate of the exported model on DIR: "
                                        "a dataset in IM2LATEX-100K layout (its --split), or a plain folder of N.png images "
                                        "whose label is line N (from 0) of formulas.lst / formulas.txt. Images may be any size, "
                                        "transparent backgrounds are put on white; labels may be plain LaTeX.")
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="labelled images")
    add_model_arguments(p)
    p.add_argument("--split", default="test", choices=["train", "validate", "test"], help="split of an IM2LATEX-100K layout (default: %(default)s)")
    p.add_argument("--formulas", type=Path, help="formula file of a plain folder (default: DIR/formulas.lst or .txt)")
    p.add_argument("--out", type=Path, help="also write metrics.json, predictions.tsv and examples.png here")
    p.add_argument("--batch-size", type=int, default=16, help="images decoded together (default: %(default)s)")
    p.add_argument("--raw-labels", action="store_true", help="a plain folder's labels (and the predictions) are only "
                   "split into tokens, not normalised as IM2LATEX-100K's were")
    p.set_defaults(run=cmd_evaluate)

    p = commands.add_parser("predict", help="print the LaTeX of formula images",
                            description="Read each image with the exported model and print its LaTeX (one line per image).")
    p.add_argument("images", type=Path, nargs="+", help="PNG/JPEG images of formulas")
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print a JSON list of {image, latex}")
    p.set_defaults(run=cmd_predict)

    p = commands.add_parser("serve", help="serve the exported model over HTTP (FastAPI)",
                            description="POST /v1/predict (multipart field 'file', or JSON base64), /healthz, /readyz, "
                                        "/metrics, OpenAPI at /docs. Limits come from the serve: section of PARAMS.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    add_model_arguments(p, reading=False)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="its serve: section sets the limits (default: %(default)s)")
    p.set_defaults(run=cmd_serve)

    p = commands.add_parser("preset", help="apply a preset (e.g. gpu) to params.yaml",
                            description="Write the keys of preset NAME (presets/NAME.yaml, or a YAML file) into PARAMS in place, "
                                        "keeping its comments; then run `dvc repro`. A preset holds only the keys it changes; "
                                        "a key PARAMS lacks is an error. --print shows the `dvc exp run -S ...` line instead, "
                                        "which runs the preset as an experiment and leaves PARAMS as it is.")
    p.add_argument("name", help="preset name (a file in --presets) or path to a YAML file")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="file to update (default: %(default)s)")
    p.add_argument("--presets", type=Path, default=Path("presets"), help="folder of presets (default: %(default)s)")
    p.add_argument("--print", action="store_true", help="print the equivalent `dvc exp run -S key=value ...` line; change nothing")
    p.set_defaults(run=cmd_preset)
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
