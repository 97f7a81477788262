"""The real pipeline (`dvc repro`) on a tiny configuration, in a temporary copy of the repository."""
import json
import os
import warnings
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from im2latex.data.rendering import RENDERERS

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def sh(*cmd: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert not check or result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def set_params(repo: Path, **sections) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))


LABELS = [r"x^2+1", r"\frac{a}{b}", r"y_i"]  # plain LaTeX, as a person labels their own images


@pytest.fixture
def repo(tmp_path) -> Path:
    """A git + DVC repository with this project's pipeline and a tiny synthetic dataset, and one
    extra labelled folder (N.png + formulas.lst) for the evaluate stage to score."""
    from im2latex.data.rendering import RenderStyle, render_formulas

    folder = tmp_path / "own images"
    folder.mkdir()
    assert render_formulas(LABELS, [folder / f"{n}.png" for n in range(len(LABELS))], seed=0,
                           style=RenderStyle((200, 200), (30, 30), 0.0), chunk=3, workers=1) == [True] * 3
    (folder / "formulas.lst").write_text("\n".join(LABELS) + "\n")
    repo = tmp_path / "repo"
    skip = {".venv", ".git", "data", "models", "metrics", "dvc.lock", "dvclive", "checkpoints"}
    shutil.copytree(REPO, repo, ignore=lambda folder, names: [n for n in names if Path(folder) == REPO and n in skip
                                                              or n in ("__pycache__", ".pytest_cache", "tmp")])
    sh("git", "init", "-q", cwd=repo)
    sh("git", "config", "user.email", "test@example.com", cwd=repo)
    sh("git", "config", "user.name", "test", cwd=repo)
    set_params(repo, data={"synthetic": {**yaml.safe_load((REPO / "params.yaml").read_text())["data"]["synthetic"],
                                         "train": 40, "validate": 8, "test": 8, "max_tokens": 20, "chunk": 4,
                                         "eval_chunk": 2, "tinted": 0.2, "dark": 0.2,  # every renderer and look
                                         "renderers": {r: 1.0 for r in RENDERERS}}},
               vocab={"min_freq": 1},
               model={"d_model": 32, "heads": 2, "layers": 1, "ff": 64, "encoder_channels": 8, "max_len": 30},
               train={"max_epochs": 2, "batch_size": 8, "warmup_steps": 5},
               read={"beam_width": 2}, evaluate={"batch_size": 8, "examples": 2, "folders": [str(folder)]},
               export={"parity_samples": 8})
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "tiny pipeline", cwd=repo)  # DVCLive and dvc exp need a commit
    return repo


def test_repro_then_an_experiment_then_metrics_diff(repo):
    sh("dvc", "repro", cwd=repo)
    assert {p.name for p in (repo / "data" / "preprocessed").iterdir()} == {"train.pkl", "validate.pkl", "test.pkl"}
    assert (repo / "data" / "vocab.json").is_file() and (repo / "metrics" / "preprocess.json").is_file()
    report = json.loads(sh(sys.executable, "-m", "im2latex", "data-report", "data/raw", cwd=repo).stdout)
    assert set(report["renderers"]) == set(RENDERERS), report  # the tiny data drew from every renderer
    metrics = json.loads((repo / "metrics" / "evaluate.json").read_text())
    assert set(metrics) == {"bleu4", "edit_score", "exact_match", "render_rate", "samples"} and metrics["samples"] == 8
    assert (repo / "metrics" / "train" / "metrics.json").is_file() and (repo / "metrics" / "examples.png").is_file()
    folders = json.loads((repo / "metrics" / "folders.json").read_text())
    (folder,) = folders  # the extra folder of evaluate.folders, scored with its labels normalised
    assert folders[folder]["samples"] == 3 and 0 <= folders[folder]["bleu4"] <= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = torch.jit.load(str(repo / "models" / "model.pt"))  # plain torch, no project code needed
    assert isinstance(reader([torch.full((30, 60), 255, dtype=torch.uint8)]), list)
    # the stage reads the test split's images with the file that ships, as `evaluate --data` reads anyone's
    cli = sh(sys.executable, "-m", "im2latex", "evaluate", "--data", "data/raw", "--split", "test", "--batch-size", "8",
             cwd=repo).stdout
    assert json.loads(cli) == metrics

    lock = (repo / "dvc.lock").read_text()
    sh("dvc", "repro", "-f", cwd=repo)
    assert (repo / "dvc.lock").read_text() == lock  # byte-stable outputs, training included (it resumes its finished run)
    dag = sh("dvc", "dag", "--dot", cwd=repo).stdout
    for a, b in [("download", "vocabulary"), ("vocabulary", "preprocess"), ("preprocess", "train"),
                 ("train", "export"), ("export", "evaluate")]:
        assert f'"{a}" -> "{b}"' in dag

    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-qm", "baseline", cwd=repo)
    sh("dvc", "exp", "run", "-S", "model.d_model=48", cwd=repo)
    diff = sh("dvc", "metrics", "diff", "--all", "--json", cwd=repo).stdout
    assert {"bleu4", "edit_score", "exact_match"} <= set(json.loads(diff)["metrics/evaluate.json"])
    assert any(key.endswith(".bleu4") for key in json.loads(diff)["metrics/folders.json"])  # real images compared too
    params = sh("dvc", "params", "diff", "--json", cwd=repo).stdout
    assert json.loads(params)["params.yaml"]["model.d_model"]["new"] == 48


def test_bad_source_ends_with_one_line_and_no_output(repo):
    set_params(repo, data={"source": "nowhere"})
    result = sh(sys.executable, "-m", "stages.download", "params.yaml", "data/raw", cwd=repo, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: data.source: unknown source 'nowhere'; choose one of synthetic, im2latex-100k, folder")
    assert "Traceback" not in result.stderr
    assert not (repo / "data" / "raw").exists() and not list((repo / "data").glob(".raw*"))
