"""A stop is a stop: one Ctrl-C (SIGINT) or SIGTERM ends `prunesearch` within a second wherever
it is (training, waiting out an outage, serving the UI), with exit code 130 or 143, and
leaves nothing RUNNING. A service that never answered is a wrong address, said at once."""

import http.server
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import optuna
import pytest
from mlflow.tracking import MlflowClient

from conftest import on_a_free_port, write_study
from test_interruptions import start_worker, wait_for_line, wait_for_running_trial

# What a stop may take, signal to exit. Measured on an idle 2-core machine: 0.06-0.11 s
# during training (docs/operations.md); the rest is margin for a loaded CI machine.
STOP_S = 1.0
EXIT_CODE = {signal.SIGINT: 130, signal.SIGTERM: 143}
RUNNING = optuna.trial.TrialState.RUNNING


def stop_and_time(process: subprocess.Popen, signum: int) -> tuple[int, float]:
    """Send `signum`; the exit code and the seconds until the process was gone."""
    sent = time.monotonic()
    process.send_signal(signum)
    code = process.wait(timeout=60)
    return code, time.monotonic() - sent


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """A tracking server that answered once (/health) and is now restarting: 503 to all else."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()
        self.wfile.write(b"OK" if self.path == "/health" else b"restarting")

    do_POST = do_PATCH = do_DELETE = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.fixture
def restarting_tracking_server():
    """The address of a tracking server that is away (503) after answering its health check."""
    def start(port: int):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Unavailable)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    server = on_a_free_port(start)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("seed, signum", [(1, signal.SIGINT), (2, signal.SIGTERM),
                                          (3, signal.SIGINT)])
def test_a_stop_while_waiting_out_an_outage_ends_the_wait_at_once(
        workdir, restarting_tracking_server, alone, seed, signum):
    study = write_study(workdir, retrain_epochs="1", settings='latency_device = "none"')
    worker = start_worker(workdir, study, 1, "--tracking-uri", restarting_tracking_server)
    wait_for_line(workdir, worker, "unreachable during", timeout=120)  # in its backoff now
    with alone():  # the worker waits meanwhile: its backoff goes on to 30 s a try
        time.sleep(random.Random(seed).uniform(0.1, 3.0))  # somewhere in a wait of 1-30 s
        code, took = stop_and_time(worker, signum)

    log = (workdir / "worker.log").read_text()
    assert code == EXIT_CODE[signum], log
    assert took < STOP_S, f"stopped {took:.2f} s after the signal"
    # The next run, with a tracking store that works, finds nothing RUNNING and finishes.
    rerun = start_worker(workdir, study, 1, "--tracking-uri", f"sqlite:///{workdir / 'm.db'}")
    assert rerun.wait(timeout=300) == 0, (workdir / "worker.log").read_text()
    trials = optuna.load_study(study_name="tiny",
                               storage=f"sqlite:///{workdir / 'prunesearch.db'}").trials
    assert RUNNING not in [t.state for t in trials]
    client = MlflowClient(f"sqlite:///{workdir / 'm.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert runs and all(run.info.status != "RUNNING" for run in runs)


@pytest.mark.slow
@pytest.mark.parametrize("seed, signum", [(4, signal.SIGINT), (5, signal.SIGTERM)])
def test_a_stop_while_training_ends_the_trial_and_the_process_at_once(workdir, alone, seed,
                                                                      signum):
    study = write_study(workdir, retrain_epochs="12", settings='latency_device = "none"')
    with alone():  # from the start: the trial must still be training when the signal comes
        worker = start_worker(workdir, study, 2)
        wait_for_running_trial(workdir, worker)
        time.sleep(random.Random(seed).uniform(0.0, 2.0))  # somewhere in its retraining
        code, took = stop_and_time(worker, signum)

    assert code == EXIT_CODE[signum], (workdir / "worker.log").read_text()
    assert took < STOP_S, f"stopped {took:.2f} s after the signal"
    trials = optuna.load_study(study_name="tiny",
                               storage=f"sqlite:///{workdir / 'prunesearch.db'}").trials
    assert RUNNING not in [t.state for t in trials]  # failed and queued again, already
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert all(run.info.status != "RUNNING" for run in runs)


@pytest.mark.slow
def test_the_ui_and_its_server_stop_on_one_sigint_to_the_command_alone(workdir, tiny_study):
    """SIGINT to `prunesearch ui` itself (not its process group, as a terminal's Ctrl-C
    would), and to a command started in the background, where SIGINT comes ignored."""
    port = on_a_free_port(lambda port: port)
    ui = subprocess.Popen(
        [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, "
         "signal.SIG_IGN); from prunesearch.cli import entry; "
         f"sys.argv = ['prunesearch', 'ui', '--port', '{port}']; entry()"],
        cwd=workdir, env=os.environ.copy(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while True:  # serving
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                break
        except OSError:
            assert ui.poll() is None and time.monotonic() < deadline, ui.stdout.read()
            time.sleep(0.5)
    code, took = stop_and_time(ui, signal.SIGINT)

    assert code == 130, ui.stdout.read()
    assert took < STOP_S, f"stopped {took:.2f} s after the signal"
    with pytest.raises(OSError):  # the MLflow server went with it
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)


@pytest.mark.parametrize("address, says", [
    ("--storage=postgresql://someone:secret@127.0.0.1:1/optuna",
     "study database postgresql://someone:***@127.0.0.1:1/optuna cannot be reached"),
    ("--storage=postgresql://someone:secret@no-such-host.invalid/optuna",
     "study database postgresql://someone:***@no-such-host.invalid/optuna cannot be reached"),
    ("--tracking-uri=http://127.0.0.1:1",
     "MLflow tracking server http://127.0.0.1:1 cannot be reached"),
])
def test_a_service_that_never_answered_is_a_wrong_address_said_at_once(workdir, tiny_study,
                                                                       address, says):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "prunesearch", "optimize", "--study",
                           str(tiny_study), address], cwd=workdir, capture_output=True,
                          text=True, timeout=120)
    took = time.monotonic() - started

    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0], done.stderr
    assert "wrong address" in errors[0] and "--outage-wait" in errors[0]
    assert "secret" not in done.stderr and "Traceback" not in done.stderr
    assert "retrying" not in done.stderr
    assert took < 15 + 10  # the 15 s, plus the interpreter's start on a busy machine
