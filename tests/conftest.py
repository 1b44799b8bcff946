"""Tiny CIFAR-format data and tiny study files, written by the tests themselves; and how the
suite runs in parallel (pytest-xdist, `-n auto` in pyproject.toml):

- one worker per core and one more, as many tests wait on subprocesses and servers;
- each worker, and every process a test starts, computes on one thread: N processes of all
  cores' threads each would spend the cores fighting over them (measured: the suite's CPU
  time grew from 22 to 39 minutes at three workers of two threads);
- the timed part of a timing-sensitive test (`with alone():`) runs with no other test
  beside it: every test holds a shared lock, the block trades it for an exclusive one, behind
  a turnstile that holds back new tests while it waits; the rest of that test (starting a
  worker, checking the stores afterwards) runs beside others;
- tests marked `slow` are handed out first, so that none starts last and runs on alone;
- a test's working directory starts with an empty MLflow store already at MLflow's schema
  (copied from one made per worker): making one runs every MLflow migration, 1.5 s of CPU
  each time. A test that is about the store's creation removes it first.
"""

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # before torch is imported, here and in subprocesses
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

from prunesearch.testing import data as testing_data
from prunesearch.testing import studies
from prunesearch.testing import stores as testing_stores
from prunesearch.testing.servers import PortTaken, on_a_free_port  # noqa: F401  (for tests)


def pytest_xdist_auto_num_workers(config) -> int:
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(config, items) -> None:
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: slow first


TURN = pytest.StashKey[tuple]()  # the test's open turnstile and room files


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Set-up, call and teardown of each test inside its turn (see the module docstring)."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:  # not under xdist: nothing runs beside it anyway
        yield
        return
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"prunesearch-tests-{run}"
    folder.mkdir(exist_ok=True)
    with open(folder / "turnstile", "a") as turnstile, open(folder / "room", "a") as room:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        fcntl.flock(room, fcntl.LOCK_SH)
        item.stash[TURN] = (turnstile, room)
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)


@pytest.fixture
def alone(request):
    """`with alone():` the block runs with no other test beside it (see the module docstring):
    for the part of a test that is timed."""
    @contextlib.contextmanager
    def block():
        turnstile, room = request.node.stash.get(TURN, (None, None))
        if room is None:  # not under xdist
            yield
            return
        fcntl.flock(room, fcntl.LOCK_UN)  # first: another test waiting to be alone holds one
        fcntl.flock(turnstile, fcntl.LOCK_EX)  # no new test starts
        fcntl.flock(room, fcntl.LOCK_EX)  # the running ones have ended
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_SH)
            fcntl.flock(turnstile, fcntl.LOCK_UN)

    return block


TINY_STUDY = {  # times no latency (3-4x the CPU of a tiny trial): tests about timing ask for it
    "name": "tiny", "description": "a test study", "seed": 0, "n_trials": 2, "sampler": "tpe",
    "latency_device": "none",
    "data": {"val_size": 50}, "model": {"width": 4}, "dense": {"epochs": 3, "batch_size": 32},
    "space": {"method": "l1_unstructured", "amount": {"low": 0.2, "high": 0.5},
              "iterations": {"low": 1, "high": 2}, "reinit": ["finetune", "rewind", "random"]},
}


@pytest.fixture(scope="session")
def cifar_dir(tmp_path_factory) -> Path:
    return testing_data.cifar_folder(tmp_path_factory.mktemp("cifar"))


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with no experiment but the default, at MLflow's schema."""
    return testing_stores.empty_mlflow_store(tmp_path_factory.mktemp("mlflow-template")
                                             / "mlflow.db")


@pytest.fixture
def workdir(tmp_path, monkeypatch, cifar_dir, empty_mlflow_store) -> Path:
    """A fresh working directory (where the default stores go) with data and cache set, and
    an empty MLflow store (see the module docstring)."""
    shutil.copy2(empty_mlflow_store, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PRUNESEARCH_DATA_DIR", str(cifar_dir))
    monkeypatch.setenv("PRUNESEARCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("PRUNESEARCH_STORAGE", raising=False)
    return tmp_path


def contents(folder: Path, *, ignore: str = "__pycache__") -> dict[str, tuple[int, int]]:
    """Each entry of `folder` (but `ignore`) with its size and modification time: what a test
    compares before and after a command that must write nothing (the MLflow store a working
    directory starts with included)."""
    return {entry.name: (entry.stat().st_size, entry.stat().st_mtime_ns)
            for entry in folder.iterdir() if entry.name != ignore}


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
    return studies.study_file(folder / name, base=None, **TINY_STUDY,
                             extra=f"{settings}\n[space]\nretrain_epochs = {retrain_epochs}")


@pytest.fixture
def tiny_study(workdir) -> Path:
    return write_study(workdir)


