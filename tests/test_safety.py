"""What a shared folder or a shared network can do to a user: a data file cannot run code, no
weights are unpickled beyond tensors, and a UI served beyond this machine says so."""

import ast
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from prunesearch.errors import DataError
from prunesearch.training import data
from prunesearch.training.sources import cifar
from prunesearch.testing import data as testing_data

SOURCE = Path(__file__).parents[1] / "src" / "prunesearch"


class _WritesAFile:
    """What a crafted batch does when unpickled by pickle.load: runs code (here, harmless)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_a_crafted_data_batch_is_refused_in_one_line_and_runs_nothing(tmp_path):
    folder = testing_data.cifar_folder(tmp_path / "data")
    marker = tmp_path / "code-ran"
    batch = folder / cifar.BATCHES_DIR / "data_batch_1"
    batch.write_bytes(pickle.dumps({"data": _WritesAFile(marker), "labels": [0]}))

    with pytest.raises(DataError) as refused:
        data.load(data_dir=folder, val_size=50, train_subset=None, seed=0)

    message = str(refused.value)
    assert "\n" not in message and str(batch) in message and "builtins.exec" in message
    assert not marker.exists()
    pickle.loads(batch.read_bytes())  # the same bytes, as pickle.load reads them: they run
    assert marker.read_text() == "ran"


def test_real_batches_of_every_pickle_protocol_still_load(tmp_path):
    for protocol in (2, 4, 5):
        folder = testing_data.cifar_folder(tmp_path / f"p{protocol}")
        for path in (folder / cifar.BATCHES_DIR).iterdir():  # written again at `protocol`
            path.write_bytes(pickle.dumps(pickle.loads(path.read_bytes()), protocol=protocol))
        loaded = data.load(data_dir=folder, val_size=50, train_subset=None, seed=0)
        assert len(loaded.train) == 200 and len(loaded.test) == 50


def torch_loads(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "load" and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "torch"]


def test_every_torch_load_unpickles_tensors_only():
    calls = {path: torch_loads(path) for path in SOURCE.rglob("*.py")}
    assert sum(map(len, calls.values())) >= 2  # the dense cache and a trial's weights
    for path, found in calls.items():
        for call in found:
            weights_only = [k.value for k in call.keywords if k.arg == "weights_only"]
            assert weights_only and isinstance(weights_only[0], ast.Constant) and \
                weights_only[0].value is True, f"{path}:{call.lineno}: torch.load without " \
                                               "weights_only=True"


@pytest.mark.slow
@pytest.mark.parametrize("host, warned", [("0.0.0.0", True), ("127.0.0.1", False)])
def test_the_ui_warns_when_served_beyond_this_machine(workdir, host, warned):
    """The warning comes before the server starts (here: on a port already taken, so that
    the server fails at once and the test needs no browser)."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "prunesearch", "ui", "--host", host,
                               "--port", str(port)], cwd=workdir, capture_output=True,
                              text=True, timeout=120, env=os.environ.copy())
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert bool(warnings) == warned, done.stderr
    if warned:
        assert len(warnings) == 1 and "no authentication" in warnings[0]
        assert "--app-name basic-auth" in warnings[0]
