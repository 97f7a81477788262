"""Presets are overlays on params.yaml: applied, they give a params.yaml every stage and the server can load."""
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from im2latex import Im2LatexError
from im2latex.__main__ import main
from im2latex.config import (DataConfig, EvaluateConfig, ExportConfig, ModelConfig, PreprocessConfig, ReadConfig, ServeConfig,
                             TrainConfig, VocabConfig, load_section)
from im2latex.presets import apply_preset, exp_run_command

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted((REPO / "presets").glob("*.yaml"))
SECTIONS = {"data": DataConfig, "vocab": VocabConfig, "preprocess": PreprocessConfig, "model": ModelConfig,
            "train": TrainConfig, "read": ReadConfig, "evaluate": EvaluateConfig, "export": ExportConfig, "serve": ServeConfig}


def leaves(mapping: dict, where: str = "") -> dict:
    """{dotted key: value} of every value in nested mappings."""
    out = {}
    for key, value in mapping.items():
        dotted = f"{where}.{key}" if where else key
        out.update(leaves(value, dotted) if isinstance(value, dict) else {dotted: value})
    return out


def load_every_section(path: Path) -> None:
    sections = yaml.safe_load(path.read_text())
    assert set(sections) == set(SECTIONS), "a section of params.yaml has no dataclass here: add it to SECTIONS"
    for section, cls in SECTIONS.items():
        load_section(path, section, cls)


def test_there_is_a_gpu_preset():
    assert REPO / "presets" / "gpu.yaml" in PRESETS


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_a_preset_applied_loads_and_changes_only_its_keys(preset, tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    changed = apply_preset(preset, params)
    load_every_section(params)

    before, after = leaves(yaml.safe_load((REPO / "params.yaml").read_text())), leaves(yaml.safe_load(params.read_text()))
    overlay = leaves(yaml.safe_load(preset.read_text()))
    assert set(after) == set(before)
    assert {k for k in before if after[k] != before[k]} == set(changed) <= set(overlay)
    assert all(after[k] == v for k, v in overlay.items())
    comments = re.findall(r"#.*", (REPO / "params.yaml").read_text())
    assert re.findall(r"#.*", params.read_text()) == comments  # kept, in order
    assert apply_preset(preset, params) == {}  # applying it again changes nothing


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_the_printed_dvc_exp_run_line_sets_the_same_params(preset, tmp_path):
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` does to params.yaml

    ours, dvcs = tmp_path / "ours.yaml", tmp_path / "dvc.yaml"
    shutil.copy(REPO / "params.yaml", ours)
    shutil.copy(REPO / "params.yaml", dvcs)
    words = shlex.split(exp_run_command(preset, ours))
    assert words[:3] == ["dvc", "exp", "run"] and set(words[3::2]) == {"-S"}
    apply_overrides(dvcs, words[4::2])
    apply_preset(preset, ours)
    assert yaml.safe_load(dvcs.read_text()) == yaml.safe_load(ours.read_text())


def test_the_printed_line_quotes_awkward_values(tmp_path):
    from dvc.utils.hydra import apply_overrides

    preset = tmp_path / "awkward.yaml"
    preset.write_text("data: {folder: \"my data/it's \\\"here\\\"\", mirrors: [http://a.example/x, 'b c', 'true'], seed: 3}\n"
                      "train: {lr: 2.5e-4, precision: '16'}\nserve: {allow_image_url: true, url_hosts: [], url_timeout_s: 2.5}\n")
    ours, dvcs = tmp_path / "ours.yaml", tmp_path / "dvc.yaml"
    shutil.copy(REPO / "params.yaml", ours)
    shutil.copy(REPO / "params.yaml", dvcs)
    apply_overrides(dvcs, shlex.split(exp_run_command(preset, ours))[4::2])
    apply_preset(preset, ours)
    assert yaml.safe_load(dvcs.read_text()) == yaml.safe_load(ours.read_text())
    assert yaml.safe_load(ours.read_text())["data"]["folder"] == 'my data/it\'s "here"'


@pytest.mark.parametrize("text, message", [
    ("train: {foo: 1}", r"unknown key train\.foo \(params.yaml has no such key\)"),
    ("nosection: {a: 1}", r"unknown key nosection "),
    ("data: {synthetic: {train: 5, colour: red}}", r"unknown key data\.synthetic\.colour "),
    ("data: {synthetic: 5}", r"data\.synthetic is a section in params.yaml"),
    ("train: {seed: {a: 1}}", r"train\.seed is a value in params.yaml"),
    ("", "must be a non-empty mapping"),
    ("train: [", "cannot read"),
])
def test_a_bad_preset_fails_with_one_line_and_leaves_params_alone(tmp_path, text, message):
    params, preset = tmp_path / "params.yaml", tmp_path / "bad.yaml"
    shutil.copy(REPO / "params.yaml", params)
    preset.write_text(text)
    with pytest.raises(Im2LatexError, match=message) as e:
        apply_preset(preset, params)
    assert "\n" not in str(e.value)
    assert params.read_text() == (REPO / "params.yaml").read_text()


def test_the_command_applies_a_preset_by_name_or_says_which_exist(tmp_path, monkeypatch, capsys):
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(REPO / "presets", tmp_path / "presets")
    monkeypatch.chdir(tmp_path)
    main(["preset", "gpu"])
    assert "train.accelerator: auto -> gpu" in capsys.readouterr().out
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["train"]["accelerator"] == "gpu"
    main(["preset", "gpu", "--print"])
    assert capsys.readouterr().out.startswith("dvc exp run -S ")
    with pytest.raises(SystemExit, match=r"^error: no preset 'cpu': presets/cpu\.yaml is not a file \(presets in presets/: .*gpu"):
        main(["preset", "cpu"])


@pytest.mark.slow
@pytest.mark.parametrize("preset", [p.stem for p in PRESETS])
def test_a_preset_runs_the_pipeline_on_cpu_at_tiny_size(preset, tiny_dataset, tmp_path, monkeypatch):
    """The README's preset path: apply the preset, then train, evaluate, export, and the server's limits load; only
    the accelerator, the sizes and the step plan are overridden (precision, workers, beam width, the rest kept)."""
    from stages import evaluate, export, preprocess, train, vocabulary

    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(REPO / "presets", tmp_path / "presets")
    monkeypatch.chdir(tmp_path)
    main(["preset", preset])
    params = yaml.safe_load(Path("params.yaml").read_text())
    overlay = leaves(yaml.safe_load((REPO / "presets" / f"{preset}.yaml").read_text()))
    assert all(leaves(params)[key] == value for key, value in overlay.items())
    params["train"].update(accelerator="cpu", batch_size=8, max_epochs=1, warmup_steps=5)
    params["model"].update(d_model=32, heads=2, layers=1, ff=64, encoder_channels=8, max_len=50)
    params["preprocess"].update(max_tokens=48)
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    # the download stage would fetch IM2LATEX-100K: the tiny rendered dataset stands in for data/raw
    vocabulary.main("params.yaml", str(tiny_dataset), "data/vocab.json")
    preprocess.main("params.yaml", str(tiny_dataset), "data/vocab.json", "data/preprocessed", "metrics/preprocess.json")
    train.main("params.yaml", "data/preprocessed", "data/vocab.json", "models/weights.pt", "metrics/train", "checkpoints")
    export.main("params.yaml", "data/preprocessed/test.pkl", "models/weights.pt", "models/model.pt", "models/onnx")
    evaluate.main("params.yaml", str(tiny_dataset), "models/model.pt", "metrics/evaluate.json",
                  "metrics/predictions.tsv", "metrics/examples.png", "metrics/folders.json")
    assert Path("metrics/train/metrics.json").is_file() and Path("metrics/evaluate.json").is_file()
    assert Path("models/model.pt").is_file() and Path("models/onnx/reader.json").is_file()
    load_every_section(Path("params.yaml"))  # `python -m im2latex serve` reads its serve: section
