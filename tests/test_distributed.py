"""One study shared by separate workers through a real PostgreSQL server and a real MLflow
tracking server (backed by PostgreSQL), as on several machines: a worker SIGKILLed mid-trial,
a restart, and the budget met with nothing left RUNNING.

The PostgreSQL server is a throwaway cluster (initdb) on a free loopback port; the test is
skipped only where PostgreSQL's binaries are not installed.
"""

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna
import psycopg
import pytest
from mlflow.tracking import MlflowClient

from conftest import PortTaken, on_a_free_port, write_study
from test_interruptions import wait_for_running_trial

def server_binary(name: str) -> str | None:
    """On PATH, or where Debian's postgresql package puts it."""
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


INITDB, PG_CTL = server_binary("initdb"), server_binary("pg_ctl")
pytestmark = pytest.mark.skipif(INITDB is None or PG_CTL is None,
                                reason="PostgreSQL server binaries (initdb, pg_ctl) not installed")


def as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres():
    """A fresh PostgreSQL cluster with databases `optuna` and `mlflow`; its base URL."""
    # Not under pytest's temporary folder, which the `postgres` user may not enter.
    folder = Path(tempfile.mkdtemp(prefix="prunesearch-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    subprocess.run(as_server_user([INITDB, "-D", str(folder / "data"), "-A", "trust",
                                   "-U", "prunesearch"]), check=True, capture_output=True)

    def start_server(port: int) -> int:
        started = subprocess.run(as_server_user(
            [PG_CTL, "-D", str(folder / "data"), "-l", str(folder / "log"), "-w", "start", "-o",
             f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200"]),
            capture_output=True)
        if started.returncode != 0:
            raise PortTaken((folder / "log").read_text(errors="replace")[-2000:])
        return port

    url = f"postgresql://prunesearch@127.0.0.1:{on_a_free_port(start_server)}"
    try:
        with psycopg.connect(f"{url}/postgres", autocommit=True) as connection:
            for database in ("optuna", "mlflow"):
                connection.execute(f"create database {database}")
        yield url
    finally:
        subprocess.run(as_server_user([PG_CTL, "-D", str(folder / "data"), "-m", "fast",
                                       "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """`mlflow server` on the PostgreSQL database `mlflow`, artifacts served from a folder."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    log = open(artifacts.parent / "mlflow-server.log", "wb")

    def start_server(port: int):
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
             f"{postgres}/mlflow", "--artifacts-destination", str(artifacts),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=log, stderr=log, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    return server, url
            except OSError:
                if server.poll() is not None:
                    raise PortTaken("mlflow server exited")
                time.sleep(0.5)
        os.killpg(server.pid, signal.SIGTERM)
        pytest.fail("mlflow server did not start within two minutes")

    server, url = on_a_free_port(start_server)
    try:
        yield url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


def start(workdir, study_path, storage, tracking, n_trials):
    log = open(workdir / "worker.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "prunesearch", "optimize", "--study", str(study_path),
         "--n-trials", str(n_trials), "--storage", storage, "--tracking-uri", tracking],
        cwd=workdir, stdout=log, stderr=log)


def test_three_workers_on_postgresql_and_an_mlflow_server_survive_a_sigkill(
        workdir, postgres, mlflow_server):
    storage, budget = f"{postgres}/optuna", 4
    study_path = write_study(workdir, retrain_epochs="4")
    # First start alone: it creates the study, the experiment and the dense model (cached),
    # as the README tells; the others then join.
    workers = [start(workdir, study_path, storage, mlflow_server, budget)]
    victim = wait_for_running_trial(workdir, workers[0], storage=storage)
    workers += [start(workdir, study_path, storage, mlflow_server, budget) for _ in range(2)]
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    restarted = start(workdir, study_path, storage, mlflow_server, budget)
    for worker in [*workers[1:], restarted]:
        assert worker.wait(timeout=600) == 0, (workdir / "worker.log").read_text()

    study = optuna.load_study(study_name="tiny", storage=storage)
    states = [t.state for t in study.trials]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert optuna.trial.TrialState.RUNNING not in states
    assert budget <= len(complete) <= budget + 2  # give or take one per other worker
    assert len({t.number for t in study.trials}) == len(study.trials)
    killed = study.trials[victim.number]
    assert killed.state == optuna.trial.TrialState.FAIL and "died" in killed.user_attrs[
        "fail_reason"]
    assert any(t.user_attrs.get("retry_of") == victim.number for t in study.trials)

    client = MlflowClient(tracking_uri=mlflow_server)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert all(run.info.status != "RUNNING" for run in runs)
    children = {int(r.data.tags["prunesearch.trial"]): r for r in runs
                if r.data.tags.get("prunesearch.role") == "trial"}
    for trial in complete:
        run = children[trial.number]
        assert run.info.status == "FINISHED" and "final_val_accuracy" in run.data.metrics
        assert [a.path for a in client.list_artifacts(run.info.run_id, "model")]
    assert children[victim.number].info.status == "KILLED"
