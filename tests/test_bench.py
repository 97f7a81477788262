"""Every benchmark script starts: `--help` imports all it uses from the project, through bench/common.py (a renamed
or removed function fails here, not on the GPU machine an hour later) and prints its usage."""
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py") if p.name != "common.py")  # common: their shared module


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_script_starts(script, monkeypatch, capsys):
    """Run in this process, as `python bench/SCRIPT --help` runs it: torch is imported once for all the scripts
    (eleven processes importing it at once took 105 s of the suite on 2 cores; in one process, 3 s)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", [f"bench/{script}", "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "bench" / script), run_name="__main__")
    assert done.value.code in (0, None)
    assert script in capsys.readouterr().out  # its usage
