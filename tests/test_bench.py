"""Every benchmark script starts: `--help` imports all it uses from the project, through bench/common.py (a renamed
or removed function fails here, not on the GPU machine an hour later) and prints its usage."""
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py") if p.name != "common.py")  # common: their shared module


@pytest.fixture(scope="module")
def started() -> Iterator[dict[str, subprocess.Popen]]:
    """Every script's `--help`, started at once: each spends its seconds importing torch, so together they take
    the time of a few rather than of all of them one after another."""
    runs = {script: subprocess.Popen([sys.executable, f"bench/{script}", "--help"], cwd=ROOT, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE) for script in SCRIPTS}
    yield runs
    for run in runs.values():
        run.kill()
        run.communicate()


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_starts(script, started):
    stdout, stderr = started[script].communicate(timeout=240)
    assert started[script].returncode == 0, stderr[-2000:]
    assert script in stdout  # its usage
