"""Every benchmark script starts: `--help` imports all it uses from the project (a renamed or removed function
fails here, not on the GPU machine an hour later) and prints its usage."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "bench").glob("*.py")))
def test_benchmark_script_starts(script):
    done = subprocess.run([sys.executable, f"bench/{script}", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert script in done.stdout  # its usage
