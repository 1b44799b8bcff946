"""Study files for tests and benchmarks: a shipped study (or nothing) plus changes, as TOML."""

import json
import sys
from pathlib import Path

from prunesearch.config import studyfile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def study_file(path: Path, *, base: str | None = "smoke", extra: str = "", **changes) -> Path:
    """A study file at `path`: the shipped study `base` (or nothing), with `changes` merged in
    (a table such as `data={"train_subset": 500}` updates that table's keys) and `extra`, more
    TOML, merged last. Returns `path`."""
    study = tomllib.loads((studyfile.SHIPPED_DIR / f"{base}.toml").read_text()) if base else {}
    for more in (changes, tomllib.loads(extra)):
        for key, value in more.items():
            if isinstance(value, dict) and isinstance(study.get(key), dict):
                study[key] = {**study[key], **value}
            else:
                study[key] = value
    path.write_text(to_toml(study))
    return path


def to_toml(study: dict) -> str:
    """A study as TOML: top-level keys, then one table per section (ranges inline)."""
    scalars = [f"{key} = {_value(value)}" for key, value in study.items()
               if not isinstance(value, dict)]
    tables = [f"\n[{key}]\n" + "\n".join(f"{k} = {_value(v)}" for k, v in value.items())
              for key, value in study.items() if isinstance(value, dict)]
    return "\n".join(scalars) + "\n" + "\n".join(tables) + "\n"


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for what study files hold
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} to a study file")
