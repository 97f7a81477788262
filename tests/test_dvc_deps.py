"""dvc.yaml's deps cover every module a stage imports, so no code change leaves a stale output."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("im2latex", "stages")
# Imported by every stage, but how a stage logs and reports errors cannot change what it writes; a
# dependency on it would re-run the whole pipeline for a log format.
NO_EFFECT_ON_OUTPUTS = {Path("im2latex/console.py")}


def module_file(name: str) -> Path | None:
    """The file of a module of this project (`im2latex.data.vocab` -> im2latex/data/vocab.py), if it is one."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (lazy imports in functions included)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def import_closure(start: Path) -> set[Path]:
    """The project files `start` runs: itself and what it imports, recursively. Package __init__ files
    hold no pipeline logic (the exception class, docstrings) and are left out."""
    seen, todo = set(), [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_modules(path):
            found = module_file(name)
            if found and found not in seen:
                todo.append(found)
    return {p.relative_to(ROOT) for p in seen if p.name != "__init__.py"} - NO_EFFECT_ON_OUTPUTS


def stage_script(cmd: str) -> Path:
    words = cmd.split()
    return ROOT.joinpath(*words[words.index("-m") + 1].split(".")).with_suffix(".py")


def missing_deps(stages: dict) -> dict[str, list[str]]:
    missing = {}
    for name, stage in stages.items():
        deps = [Path(d) for d in stage.get("deps", [])]
        lacking = sorted(str(f) for f in import_closure(stage_script(stage["cmd"]))
                         if not any(f == d or d in f.parents for d in deps))
        if lacking:
            missing[name] = lacking
    return missing


def extra_deps(stages: dict) -> dict[str, list[str]]:
    """Code deps (modules or folders under im2latex/ or stages/) that cover no module the stage imports: editing them
    would re-run the stage for nothing (say, export re-run for a change to a metric). A data file that a module reads
    (im2latex/data/bigrams.tsv) is no code."""
    extra = {}
    for name, stage in stages.items():
        closure = import_closure(stage_script(stage["cmd"]))
        unused = sorted(d for d in map(Path, stage.get("deps", [])) if d.parts[0] in PACKAGES and d.suffix in (".py", "")
                        and not any(f == d or d in f.parents for f in closure))
        if unused:
            extra[name] = [str(d) for d in unused]
    return extra


def test_every_stage_depends_on_every_module_it_imports():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert missing_deps(stages) == {}


def test_no_stage_depends_on_code_it_does_not_import():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert extra_deps(stages) == {}
    stages["export"]["deps"].append("im2latex/metrics.py")
    assert extra_deps(stages) == {"export": ["im2latex/metrics.py"]}


def test_a_removed_dependency_is_caught():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    stages["preprocess"]["deps"] = [d for d in stages["preprocess"]["deps"] if d != "im2latex/model/inputs.py"]
    assert "im2latex/model/inputs.py" in missing_deps(stages)["preprocess"]


def sh(*args: str, cwd: Path) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_changing_inputs_py_makes_dvc_status_report_preprocess(tmp_path):
    """A real `dvc status` in a temporary git + DVC repository holding this pipeline's code, with
    stand-ins for preprocess's data, committed to dvc.lock as if the stage had run."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "im2latex", repo / "im2latex", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "stages", repo / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, repo / name)
    for folder in ("data/raw", "data/preprocessed", "metrics"):
        (repo / folder).mkdir(parents=True)
    (repo / "data/raw/formulas.lst").write_text("x\n")
    (repo / "data/vocab.json").write_text("{}\n")
    (repo / "data/preprocessed/test.pkl").write_bytes(b"stand-in")
    (repo / "metrics/preprocess.json").write_text("{}\n")
    dvc = [sys.executable, "-m", "dvc"]
    sh("git", "init", "-q", cwd=repo)
    sh(*dvc, "init", "-q", cwd=repo)
    sh(*dvc, "config", "core.autostage", "false", cwd=repo)
    sh(*dvc, "commit", "-f", "-q", "preprocess", cwd=repo)
    assert "up to date" in sh(*dvc, "status", "preprocess", cwd=repo).lower()
    inputs = repo / "im2latex/model/inputs.py"
    inputs.write_text(inputs.read_text() + "\n# a change to how images are prepared\n")
    status = sh(*dvc, "status", "preprocess", cwd=repo)
    assert "preprocess:" in status and "modified:" in status and "im2latex/model/inputs.py" in status, status
