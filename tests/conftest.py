"""Tiny CIFAR-format data and tiny study files, written by the tests themselves."""

import contextlib
import socket
from pathlib import Path

import pytest

from benchmarks import common

TINY_STUDY = {
    "name": "tiny", "description": "a test study", "seed": 0, "n_trials": 2, "sampler": "tpe",
    "data": {"val_size": 50}, "model": {"width": 4}, "dense": {"epochs": 3, "batch_size": 32},
    "space": {"method": "l1_unstructured", "amount": {"low": 0.2, "high": 0.5},
              "iterations": {"low": 1, "high": 2}, "reinit": ["finetune", "rewind", "random"]},
}


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory) -> Path:
    return common.cifar_folder(tmp_path_factory.mktemp("cifar"))


@pytest.fixture
def workdir(tmp_path, monkeypatch, cifar_dir) -> Path:
    """A fresh working directory (where the default stores go) with data and cache set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRUNESEARCH_DATA_DIR", str(cifar_dir))
    monkeypatch.setenv("PRUNESEARCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PRUNESEARCH_STORAGE", raising=False)
    return tmp_path


@contextlib.contextmanager
def working_in(folder: Path, cifar_dir: Path):
    """`folder` as the working directory where the default stores go, data and cache set (for
    a module-scoped study, which cannot use `workdir`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("PRUNESEARCH_DATA_DIR", str(cifar_dir))
        patch.setenv("PRUNESEARCH_CACHE_DIR", str(folder / "cache"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("PRUNESEARCH_STORAGE", raising=False)
        yield


def write_study(folder: Path, *, retrain_epochs: str = "{ low = 0, high = 1 }",
                name: str = "tiny.toml", settings: str = "") -> Path:
    """The tiny study; `retrain_epochs` as TOML; `settings`: more top-level keys, one per
    line."""
    return common.study_file(folder / name, base=None, **TINY_STUDY,
                             extra=f"{settings}\n[space]\nretrain_epochs = {retrain_epochs}")


@pytest.fixture
def tiny_study(workdir) -> Path:
    return write_study(workdir)


class PortTaken(Exception):
    """The server could not start on the port it was given."""


def on_a_free_port(start, attempts: int = 5):
    """`start(port)` on a port that was free a moment ago; should another process take it in
    between (`start` raises PortTaken), again on another."""
    for attempt in range(attempts):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            return start(port)
        except PortTaken:
            if attempt == attempts - 1:
                raise
