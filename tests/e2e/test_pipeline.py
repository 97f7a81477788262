"""The real pipeline (`dvc repro`) on a tiny configuration, in a temporary copy of the repository."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


@pytest.fixture
def repo(tmp_path) -> Path:
    """A git + DVC repository with this project's pipeline and a tiny synthetic dataset."""
    repo = tmp_path / "repo"
    skip = {".venv", ".git", "data", "models", "metrics", "dvc.lock", "dvclive", "checkpoints"}
    shutil.copytree(REPO, repo, ignore=lambda folder, names: [n for n in names if Path(folder) == REPO and n in skip
                                                              or n in ("__pycache__", ".pytest_cache", "tmp")])
    sh("git", "init", "-q", cwd=repo)
    set_params(repo, data={"synthetic": {**yaml.safe_load((REPO / "params.yaml").read_text())["data"]["synthetic"],
                                         "train": 40, "validate": 8, "test": 8, "max_tokens": 60}},
               vocab={"min_freq": 1})
    return repo


def test_repro_builds_the_data_and_is_deterministic(repo):
    sh("dvc", "repro", cwd=repo)
    assert {p.name for p in (repo / "data" / "preprocessed").iterdir()} == {"train.pkl", "validate.pkl", "test.pkl"}
    assert (repo / "data" / "vocab.json").is_file() and (repo / "metrics" / "preprocess.json").is_file()
    lock = (repo / "dvc.lock").read_text()
    sh("dvc", "repro", "-f", cwd=repo)
    assert (repo / "dvc.lock").read_text() == lock  # byte-stable outputs
    dag = sh("dvc", "dag", "--dot", cwd=repo).stdout
    assert '"download" -> "vocabulary"' in dag and '"vocabulary" -> "preprocess"' in dag


def test_bad_source_ends_with_one_line_and_no_output(repo):
    set_params(repo, data={"source": "nowhere"})
    result = sh(sys.executable, "-m", "stages.download", "params.yaml", "data/raw", cwd=repo, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: data.source: unknown source 'nowhere'; choose one of synthetic, im2latex-100k, folder")
    assert "Traceback" not in result.stderr
    assert not (repo / "data" / "raw").exists() and not list((repo / "data").glob(".raw*"))
