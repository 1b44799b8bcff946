"""One study shared by separate workers through a real PostgreSQL server and a real MLflow
tracking server (backed by PostgreSQL), as on several machines: a worker SIGKILLed mid-trial,
both servers restarted at random moments under three workers, and each service gone for
longer than the workers wait; each time a rerun meets the budget with nothing left RUNNING,
nothing recorded twice.

The PostgreSQL server is a throwaway cluster (initdb) on a free loopback port; the tests are
skipped only where PostgreSQL's binaries are not installed.
"""

import glob
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna
import psycopg
import pytest
from mlflow.tracking import MlflowClient

from conftest import PortTaken, on_a_free_port, write_study
from test_interruptions import wait_for_running_trial

TrialState = optuna.trial.TrialState


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


@dataclass
class Server:
    """A service on a fixed loopback port that a test can stop and start again there."""

    url: str
    stop: Callable[[], None]
    start: Callable[[], None]

    def restart(self, down_s: float = 0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()


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

    def stop() -> None:  # "fast": every connection is cut, as when a server restarts
        subprocess.run(as_server_user([PG_CTL, "-D", str(folder / "data"), "-m", "fast",
                                       "stop"]), capture_output=True)

    port = on_a_free_port(start_server)
    url = f"postgresql://prunesearch@127.0.0.1:{port}"
    try:
        with psycopg.connect(f"{url}/postgres", autocommit=True) as connection:
            for database in ("optuna", "mlflow"):
                connection.execute(f"create database {database}")
        yield Server(url, stop, lambda: start_server(port))
    finally:
        stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """`mlflow server` on the PostgreSQL database `mlflow`, artifacts served from a folder."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    log = open(artifacts.parent / "mlflow-server.log", "ab")
    process = {}

    def start_server(port: int) -> int:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
             f"{postgres.url}/mlflow", "--artifacts-destination", str(artifacts),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=log, stderr=log, start_new_session=True,
            # no job runners (GenAI evaluation jobs): two processes nothing here uses
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    process["server"] = server
                    return port
            except OSError:
                if server.poll() is not None:
                    raise PortTaken("mlflow server exited")
                time.sleep(0.5)
        os.killpg(server.pid, signal.SIGTERM)
        pytest.fail("mlflow server did not start within two minutes")

    def stop() -> None:
        server = process.pop("server", None)
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=60)

    port = on_a_free_port(start_server)
    try:
        yield Server(f"http://127.0.0.1:{port}", stop, lambda: start_server(port))
    finally:
        stop()


def start(workdir, study_path, storage, tracking, n_trials, *options):
    log = open(workdir / "worker.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "prunesearch", "optimize", "--study", str(study_path),
         "--n-trials", str(n_trials), "--storage", storage, "--tracking-uri", tracking,
         *options], cwd=workdir, stdout=log, stderr=log)


def study_file(workdir, name: str, retrain_epochs: str = "4"):
    path = write_study(workdir, retrain_epochs=retrain_epochs, name=f"{name}.toml")
    path.write_text(path.read_text().replace('name = "tiny"', f'name = "{name}"'))
    return path


def error_lines(workdir) -> list[str]:
    return [line for line in (workdir / "worker.log").read_text().splitlines()
            if line.startswith("error:")]


def assert_whole(name: str, storage: str, tracking: str, budget: int) -> list:
    """Every trial COMPLETE, WAITING, or FAIL with its parameters queued again; the budget
    met; no trial and no MLflow run RUNNING; one MLflow run per trial, finished with its
    metrics and weights for each complete one. The complete trials."""
    study = optuna.load_study(study_name=name, storage=storage)
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.WAITING,
                                               TrialState.FAIL}
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= budget
    retried = {t.user_attrs.get("retry_of") for t in study.trials}
    for trial in study.trials:
        if trial.state == TrialState.FAIL and trial.params:
            assert trial.number in retried, trial.user_attrs
    client = MlflowClient(tracking_uri=tracking)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert all(run.info.status != "RUNNING" for run in runs)
    trial_runs = [int(r.data.tags["prunesearch.trial"]) for r in runs
                  if r.data.tags.get("prunesearch.role") == "trial"]
    assert len(trial_runs) == len(set(trial_runs))  # never recorded twice
    children = {int(r.data.tags["prunesearch.trial"]): r for r in runs
                if r.data.tags.get("prunesearch.role") == "trial"}
    for trial in complete:
        run = children[trial.number]
        assert run.info.status == "FINISHED" and "final_val_accuracy" in run.data.metrics
        assert [a.path for a in client.list_artifacts(run.info.run_id, "model")]
    return complete


@pytest.mark.slow
def test_three_workers_on_postgresql_and_an_mlflow_server_survive_a_sigkill(
        workdir, postgres, mlflow_server):
    storage, budget = f"{postgres.url}/optuna", 4
    study_path = write_study(workdir, retrain_epochs="4")
    # First start alone: it creates the study, the experiment and the dense model (cached),
    # as the README tells; the others then join.
    workers = [start(workdir, study_path, storage, mlflow_server.url, budget)]
    victim = wait_for_running_trial(workdir, workers[0], storage=storage)
    workers += [start(workdir, study_path, storage, mlflow_server.url, budget)
                for _ in range(2)]
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    restarted = start(workdir, study_path, storage, mlflow_server.url, budget)
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

    client = MlflowClient(tracking_uri=mlflow_server.url)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert all(run.info.status != "RUNNING" for run in runs)
    children = {int(r.data.tags["prunesearch.trial"]): r for r in runs
                if r.data.tags.get("prunesearch.role") == "trial"}
    for trial in complete:
        run = children[trial.number]
        assert run.info.status == "FINISHED" and "final_val_accuracy" in run.data.metrics
        assert [a.path for a in client.list_artifacts(run.info.run_id, "model")]
    assert children[victim.number].info.status == "KILLED"


@pytest.mark.slow
def test_both_servers_restarting_at_random_moments_under_three_workers_lose_nothing(
        workdir, postgres, mlflow_server):
    storage, budget, name = f"{postgres.url}/optuna", 6, "chaos"
    study_path = study_file(workdir, name, retrain_epochs="2")
    options = ("--outage-wait", "120")
    workers = [start(workdir, study_path, storage, mlflow_server.url, budget, *options)]
    wait_for_running_trial(workdir, workers[0], storage=storage, study_name=name)
    workers += [start(workdir, study_path, storage, mlflow_server.url, budget, *options)
                for _ in range(2)]
    chaos = random.Random(16)
    restarts = 0
    while any(worker.poll() is None for worker in workers) and restarts < 6:
        time.sleep(chaos.uniform(1, 4))
        server = postgres if restarts % 2 == 0 else mlflow_server
        server.restart(down_s=chaos.uniform(1, 3))
        restarts += 1
    codes = [worker.wait(timeout=600) for worker in workers]
    log = (workdir / "worker.log").read_text()
    assert "unreachable during" in log and "reachable again" in log  # the outages were met
    if any(codes):  # a worker that gave up: a rerun finishes the study
        assert start(workdir, study_path, storage, mlflow_server.url, budget).wait(600) == 0, log
    assert_whole(name, storage, mlflow_server.url, budget)


@pytest.mark.slow
def test_mlflow_gone_past_the_wait_stops_the_worker_in_one_line_and_a_rerun_finishes(
        workdir, postgres, mlflow_server):
    storage, budget, name = f"{postgres.url}/optuna", 2, "mlflow-away"
    study_path = study_file(workdir, name)
    worker = start(workdir, study_path, storage, mlflow_server.url, budget,
                   "--outage-wait", "4")
    victim = wait_for_running_trial(workdir, worker, storage=storage, study_name=name)
    mlflow_server.stop()
    try:
        assert worker.wait(timeout=300) == 1
    finally:
        mlflow_server.start()
    errors = error_lines(workdir)
    assert len(errors) == 1 and f"MLflow tracking server {mlflow_server.url} unreachable" \
        in errors[0] and "run the same command" in errors[0], errors
    study = optuna.load_study(study_name=name, storage=storage)
    failed = study.trials[victim.number]
    assert failed.state == TrialState.FAIL and "unreachable" in failed.user_attrs["fail_reason"]
    assert start(workdir, study_path, storage, mlflow_server.url, budget).wait(600) == 0
    assert_whole(name, storage, mlflow_server.url, budget)
    client = MlflowClient(tracking_uri=mlflow_server.url)
    assert client.get_run(failed.user_attrs["mlflow_run_id"]).info.status == "KILLED"


@pytest.mark.slow
def test_the_database_gone_past_the_wait_stops_the_worker_and_a_rerun_requeues_its_trial(
        workdir, postgres):
    storage, budget, name = f"{postgres.url}/optuna", 2, "database-away"
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    study_path = study_file(workdir, name)
    worker = start(workdir, study_path, storage, tracking, budget, "--outage-wait", "4")
    victim = wait_for_running_trial(workdir, worker, storage=storage, study_name=name)
    postgres.stop()
    try:
        assert worker.wait(timeout=300) == 1
    finally:
        postgres.start()
    errors = error_lines(workdir)
    assert len(errors) == 1 and "study database postgresql://prunesearch@127.0.0.1" \
        in errors[0] and "unreachable" in errors[0], errors
    assert start(workdir, study_path, storage, tracking, budget).wait(600) == 0
    assert_whole(name, storage, tracking, budget)
    study = optuna.load_study(study_name=name, storage=storage)
    assert study.trials[victim.number].state == TrialState.FAIL


@pytest.mark.parametrize("address, says", [
    ("{port}/no_such_database", 'database "no_such_database" does not exist'),
    ("{port}/optuna", 'role "nobody" does not exist'),
])
def test_a_database_server_that_refuses_this_process_is_a_wrong_address_said_at_once(
        workdir, postgres, address, says):
    """A server that answers, but not to these credentials or for this database: refused in
    one line at once, the password masked, not waited out as an outage."""
    port = postgres.url.rsplit(":", 1)[1]
    url = f"postgresql://nobody:secret@127.0.0.1:{address.format(port=port)}"
    if "no_such_database" in address:
        url = url.replace("nobody:secret", "prunesearch:secret")
    study_path = write_study(workdir, retrain_epochs="1")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "prunesearch", "optimize", "--study",
                           str(study_path), "--storage", url], cwd=workdir,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0] and "wrong address" in errors[0], done.stderr
    assert "secret" not in done.stderr and "***" in errors[0]
    assert time.monotonic() - started < 15 + 10  # 15 s, plus the interpreter's start
