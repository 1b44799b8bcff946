"""An empty MLflow store at MLflow's schema, made once per process and copied after: creating
one runs every MLflow migration, about 2 s of CPU, which tests and benchmarks would otherwise
pay for every study they run (in the schedules benchmark at --smoke size, 13 of its 41 s)."""

import atexit
import functools
import shutil
import tempfile
from pathlib import Path


@functools.cache
def _template() -> Path:
    from prunesearch.stores.tracking import create_store

    folder = Path(tempfile.mkdtemp(prefix="prunesearch-mlflow-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "mlflow.db"
    create_store(f"sqlite:///{path}")
    return path


def empty_mlflow_store(path: Path) -> Path:
    """`path`: an MLflow SQLite store with no experiment but the default, unless one is
    there already."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(_template(), path)
    return path
