"""Presets: overlays on params.yaml that hold only the keys they change. `apply_preset` writes the merged
params.yaml (comments and layout kept, with ruamel.yaml as DVC itself does); `exp_run_command` gives the
equivalent `dvc exp run -S key=value ...` line. Keys are read generically: a preset may set any key
params.yaml has, and no other."""
import math
import re
import shlex
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from im2latex import Im2LatexError


def find_preset(name: str, folder: str | Path) -> Path:
    """A preset given by name (`gpu` -> FOLDER/gpu.yaml) or by the path of a YAML file."""
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(folder) / f"{name}.yaml"
    if not path.is_file():
        choices = sorted(p.stem for p in Path(folder).glob("*.yaml"))
        raise Im2LatexError(f"no preset {name!r}: {path} is not a file (presets in {folder}/: {', '.join(choices) or 'none'})")
    return path


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: keeps comments, key order and the way each value was written
    yaml.indent(mapping=2, sequence=4, offset=2)  # params.yaml's own layout
    yaml.width = 4096
    yaml.preserve_quotes = True
    return yaml


def _read(path: Path) -> Any:
    try:
        return _yaml().load(path.read_text())
    except (OSError, YAMLError) as e:
        raise Im2LatexError(f"cannot read {path}: {e}".splitlines()[0]) from None


def preset_values(preset: Any, params: Any, where: str = "", source: str = "preset") -> dict[str, Any]:
    """{dotted key: value} of every value the preset sets; a key params.yaml lacks is an error."""
    if not isinstance(preset, dict) or not preset:
        raise Im2LatexError(f"{source}: {where or 'the file'} must be a non-empty mapping of params.yaml's keys")
    values = {}
    for key, value in preset.items():
        dotted = f"{where}.{key}" if where else str(key)
        if not isinstance(params, dict) or key not in params:
            raise Im2LatexError(f"{source}: unknown key {dotted} (params.yaml has no such key)")
        if isinstance(params[key], dict) != isinstance(value, dict):
            kind = "a section" if isinstance(params[key], dict) else "a value"
            raise Im2LatexError(f"{source}: {dotted} is {kind} in params.yaml, the preset gives {value!r}")
        values.update(preset_values(value, params[key], dotted, source) if isinstance(value, dict) else {dotted: value})
    return values


def read_preset(preset_path: str | Path, params_path: str | Path) -> tuple[Any, dict[str, Any]]:
    """params.yaml as a round-trip document, and the preset's {dotted key: value}, checked against it."""
    params = _read(Path(params_path))
    if not isinstance(params, dict):
        raise Im2LatexError(f"{params_path} is not a mapping of sections")
    return params, preset_values(_read(Path(preset_path)), params, source=str(preset_path))


def apply_preset(preset_path: str | Path, params_path: str | Path) -> dict[str, tuple[Any, Any]]:
    """Write the preset's values into params.yaml in place; returns {dotted key: (old, new)} of the changed ones."""
    params, values = read_preset(preset_path, params_path)
    changed = {}
    for dotted, value in values.items():
        *parents, key = dotted.split(".")
        section = params
        for parent in parents:
            section = section[parent]
        if section[key] != value:
            changed[dotted] = (section[key], value)
            section[key] = value
    if changed:
        with open(params_path, "w") as f:
            _yaml().dump(params, f)
    return changed


def _override_value(value: Any) -> str:
    """A value in Hydra's override grammar (what `dvc exp run -S` parses), typed as in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Im2LatexError(f"{value!r} has no place in params.yaml")
        text = repr(float(value))
        # a float without a dot (1e-05) would come back from DVC's YAML as a string to PyYAML
        return text if "." in text.split("e")[0] else text.replace("e", ".0e", 1)
    if isinstance(value, list):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-/]*", text) and text.lower() not in ("true", "false", "null", "nan", "inf"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def exp_run_command(preset_path: str | Path, params_path: str | Path) -> str:
    """The `dvc exp run -S key=value ...` line that runs the preset as an experiment on params.yaml."""
    _, values = read_preset(preset_path, params_path)
    return " ".join(["dvc exp run"] + [f"-S {shlex.quote(f'{key}={_override_value(v)}')}" for key, v in values.items()])
