"""The command line, on a real TorchScript file made from a small untrained network."""
import csv
import io
import json
import shutil
import subprocess
import sys

import pytest
import torch
from PIL import Image

from im2latex.__main__ import main
from im2latex.data import layout
from im2latex.data.preprocessing import load_image
from im2latex.data.normalise import normalise


def test_evaluate_on_an_im2latex_layout(tiny_dataset, model_file, tmp_path, capsys):
    main(["evaluate", "--data", str(tiny_dataset), "--model", str(model_file), "--out", str(tmp_path)])
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["samples"] == 4 and 0 <= metrics["bleu4"] <= 1 and 0 <= metrics["render_rate"] <= 1
    rows = list(csv.DictReader((tmp_path / "predictions.tsv").open(), delimiter="\t"))
    assert [r["target"] for r in rows] == [s.formula for s in layout.read_split(tiny_dataset, "test")]
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert (tmp_path / "examples.png").stat().st_size > 0


def test_evaluate_on_a_plain_folder_with_plain_latex_labels(tiny_dataset, model_file, tmp_path, capsys):
    samples = layout.read_split(tiny_dataset, "validate")
    for n, sample in enumerate(samples):
        shutil.copy(sample.image, tmp_path / f"{n}.png")
    labels = [s.formula.replace(" ", "") if "\\" not in s.formula else s.formula for s in samples]
    (tmp_path / "formulas.txt").write_text("\n".join(labels) + "\n")
    main(["evaluate", "--data", str(tmp_path), "--model", str(model_file), "--out", str(tmp_path / "out")])
    assert json.loads(capsys.readouterr().out)["samples"] == len(samples)
    rows = list(csv.DictReader((tmp_path / "out" / "predictions.tsv").open(), delimiter="\t"))
    assert [r["target"] for r in rows] == [normalise(label) for label in labels]


def test_evaluate_can_keep_plain_labels_as_written(tiny_dataset, model_file, tmp_path, capsys):
    shutil.copy(next((tiny_dataset / layout.IMAGES).iterdir()), tmp_path / "0.png")
    (tmp_path / "formulas.lst").write_text("{\\rm d}x_1\n")
    for flag, target in (([], "\\mathrm { d } x _ { 1 }"), (["--raw-labels"], "{ \\rm d } x _ 1")):
        main(["evaluate", "--data", str(tmp_path), "--model", str(model_file), "--out", str(tmp_path / "out")] + flag)
        capsys.readouterr()
        rows = list(csv.DictReader((tmp_path / "out" / "predictions.tsv").open(), delimiter="\t"))
        assert rows[0]["target"] == target


def test_normalise_command(capsys, monkeypatch):
    main(["normalise", "x_1 \\over 2", "{\\rm d} x \\label{eq:3}"])
    assert capsys.readouterr().out == "\\frac { x _ { 1 } } { 2 }\n\\mathrm { d } x\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("a^b_c\n{x\n"))
    main(["normalise"])
    out, err = capsys.readouterr()
    assert out == "a _ { c } ^ { b }\n{ x\n" and "1 of 2 formulas could not be parsed" in err


@pytest.mark.parametrize("runtime", ["torchscript", "onnx"])
def test_predict_matches_the_model(tiny_dataset, model_file, onnx_model, runtime, capsys):
    images = sorted((tiny_dataset / layout.IMAGES).iterdir())[:2]
    model = model_file if runtime == "torchscript" else onnx_model
    main(["predict", "--json", "--runtime", runtime, "--model", str(model)] + [str(p) for p in images])
    answers = json.loads(capsys.readouterr().out)
    reader = torch.jit.load(str(model_file))  # the same network, read the same way
    assert [a["latex"] for a in answers] == reader([torch.from_numpy(load_image(p)) for p in images])


def test_predict_reads_batches_in_input_order(tiny_dataset, model_file, monkeypatch, capsys):
    monkeypatch.setattr("im2latex.__main__.PREDICT_BATCH", 1)  # each image its own batch, read in order of size
    images = sorted((tiny_dataset / layout.IMAGES).iterdir())[:3]
    main(["predict", "--json", "--model", str(model_file)] + [str(p) for p in images])
    answers = json.loads(capsys.readouterr().out)
    reader = torch.jit.load(str(model_file))
    assert [a["image"] for a in answers] == [str(p) for p in images]
    assert [a["latex"] for a in answers] == [reader([torch.from_numpy(load_image(p))])[0] for p in images]


def test_predict_says_when_an_image_reads_as_nothing(tiny_dataset, model_file, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.new("L", (200, 60), 255).save(blank)
    image = next((tiny_dataset / layout.IMAGES).iterdir())
    main(["predict", "--model", str(model_file), str(blank), str(image)])
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == f"{blank}\t" and out.splitlines()[1].startswith(f"{image}\t")
    assert f"note: {blank}: nothing read" in err and str(image) not in err


def test_predict_loads_neither_the_network_code_nor_the_training_stack(tiny_dataset, model_file):
    """`predict` needs torch and the TorchScript file alone: torchvision (through the network's code), Lightning and
    nltk cost a fresh process seconds of imports (docs/experiments.md, sixteenth session)."""
    image = next((tiny_dataset / layout.IMAGES).iterdir())
    code = ("import sys, json; from im2latex.__main__ import main; main(sys.argv[1:]); "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} | {m for m in sys.modules if m.startswith('im2latex')})))")
    result = subprocess.run([sys.executable, "-c", code, "predict", "--model", str(model_file), str(image)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert "torch" in loaded and "im2latex.runtimes" in loaded  # it did read the image
    assert not loaded & {"torchvision", "pytorch_lightning", "lightning_fabric", "nltk", "im2latex.model.network"}



@pytest.mark.parametrize("args, message", [
    (["predict", "--model", "nope.pt", "x.png"], "no model at nope.pt: train and export one first"),
    (["serve", "--model", "nope.pt"], "no model at nope.pt"),
    (["serve", "--runtime", "onnx", "--model", "nope"], "no model at nope"),
    (["predict", "--runtime", "onnx", "--model", "MODEL", "x.png"], "cannot load ONNX model"),
    (["predict", "x.png", "--model", "MODEL", "--read-scales", "1.1"], "other reading sizes or beams need --runtime onnx"),
    (["evaluate", "--data", "/nonexistent", "--model", "MODEL"], "is not a folder"),
])
def test_user_errors_are_one_line(model_file, args, message, capsys):
    args = [str(model_file) if a == "MODEL" else a for a in args]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unlabelled_image_is_named(tiny_dataset, model_file, tmp_path):
    shutil.copy(next((tiny_dataset / layout.IMAGES).iterdir()), tmp_path / "3.png")
    (tmp_path / "formulas.lst").write_text("x\ny\n")
    with pytest.raises(SystemExit, match="3.png has no label"):
        main(["evaluate", "--data", str(tmp_path), "--model", str(model_file)])
