"""Tiny CIFAR-format data and tiny study files, written by the tests themselves."""

import pickle
import socket
import textwrap
from pathlib import Path

import numpy as np
import pytest

TINY_STUDY = """
{settings}
name = "tiny"
description = "a test study"
seed = 0
n_trials = 2
sampler = "tpe"

[data]
val_size = 50

[model]
width = 4

[dense]
epochs = 3
batch_size = 32

[space]
method = "l1_unstructured"
amount = {{ low = 0.2, high = 0.5 }}
iterations = {{ low = 1, high = 2 }}
retrain_epochs = {retrain_epochs}
reinit = ["finetune", "rewind", "random"]
"""


def write_cifar(folder: Path, *, per_batch: int = 50, test: int = 50, seed: int = 0) -> Path:
    """A cifar-10-batches-py folder whose classes differ in mean colour, so they are learnable."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, size=(10, 3))
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)

    def batch(n: int) -> dict:
        labels = rng.permutation(np.arange(n) % 10)
        images = colours[labels][:, :, None, None] + rng.normal(0, 30, size=(n, 3, 32, 32))
        data = np.clip(images, 0, 255).astype(np.uint8).reshape(n, 3072)
        return {"data": data, "labels": labels.tolist()}

    for i in range(1, 6):
        (batches / f"data_batch_{i}").write_bytes(pickle.dumps(batch(per_batch)))
    (batches / "test_batch").write_bytes(pickle.dumps(batch(test)))
    (batches / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    return folder


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory) -> Path:
    return write_cifar(tmp_path_factory.mktemp("cifar"))


@pytest.fixture
def workdir(tmp_path, monkeypatch, cifar_dir) -> Path:
    """A fresh working directory (where the default stores go) with data and cache set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRUNESEARCH_DATA_DIR", str(cifar_dir))
    monkeypatch.setenv("PRUNESEARCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PRUNESEARCH_STORAGE", raising=False)
    return tmp_path


def write_study(folder: Path, *, retrain_epochs: str = "{ low = 0, high = 1 }",
                name: str = "tiny.toml", settings: str = "") -> Path:
    """The tiny study; `settings`: more top-level keys, one per line."""
    path = folder / name
    path.write_text(textwrap.dedent(TINY_STUDY.format(retrain_epochs=retrain_epochs,
                                                      settings=settings)))
    return path


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
