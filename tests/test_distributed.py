"""One study shared by separate workers through a real PostgreSQL server and a real MLflow
tracking server (backed by PostgreSQL), as on several machines: a worker SIGKILLed mid-trial,
both servers restarted at random moments under three workers, and each service gone for
longer than the workers wait; each time a rerun meets the budget with nothing left RUNNING,
nothing recorded twice.

The PostgreSQL server is a throwaway cluster (initdb) on a free loopback port; the tests are
skipped only where PostgreSQL's binaries are not installed.
"""

import random
import signal
import subprocess
import sys
import time

import optuna
import pytest
from mlflow.tracking import MlflowClient

from conftest import write_study
from prunesearch.testing import servers
from test_interruptions import wait_for_running_trial

TrialState = optuna.trial.TrialState


pytestmark = pytest.mark.skipif(servers.INITDB is None or servers.PG_CTL is None,
                                reason="PostgreSQL server binaries (initdb, pg_ctl) not installed")


@pytest.fixture(scope="module")
def postgres():
    """A fresh PostgreSQL cluster with databases `optuna` and `mlflow`; its base URL."""
    with servers.postgres() as server:
        yield server


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """`mlflow server` on the PostgreSQL database `mlflow`, artifacts served from a folder."""
    artifacts = tmp_path_factory.mktemp("artifacts")
    with servers.mlflow_server(f"{postgres.url}/mlflow", artifacts,
                               log=artifacts.parent / "mlflow-server.log") as server:
        yield server


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


# On a cluster (docs/operations.md): `prunesearch prepare`, then workers started together.
WORKERS = 8


def start_workers(workdir, study_path, storage, tracking, budget) -> list[subprocess.Popen]:
    """WORKERS `optimize --wait-for-prepare` processes started in the same instant, each with
    a log of its own (worker-K.log), sharing one dense cache folder."""
    command = [sys.executable, "-m", "prunesearch", "optimize", "--study", str(study_path),
               "--n-trials", str(budget), "--storage", storage, "--tracking-uri", tracking,
               "--cache-dir", str(workdir / "cache"), "--wait-for-prepare", "300"]
    return [subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
            for k in range(WORKERS) for log in [open(workdir / f"worker-{k}.log", "wb")]]


def prepare(workdir, study_path, storage, tracking) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prunesearch", "prepare", "--study",
                           str(study_path), "--storage", storage, "--tracking-uri", tracking,
                           "--cache-dir", str(workdir / "cache")],
                          cwd=workdir, capture_output=True, text=True, timeout=300)


def assert_prepared_once(workdir, workers, prepared, name, storage, tracking, budget) -> None:
    """Every worker finished without preparing anything; the dense model trained by
    `prepare` alone; the study whole (assert_whole) with one study run."""
    logs = []
    for k, worker in enumerate(workers):
        assert worker.wait(timeout=600) == 0, (workdir / f"worker-{k}.log").read_text()
        logs.append((workdir / f"worker-{k}.log").read_text())
    assert prepared.returncode == 0, prepared.stderr
    assert "dense model trained" in prepared.stderr
    assert not any("dense epoch" in log or "dense model trained" in log for log in logs)
    assert all("dense model from cache" in log for log in logs)
    assert "--wait-for-prepare" in prepared.stdout and f"--storage {storage}" in prepared.stdout
    complete = assert_whole(name, storage, tracking, budget)
    assert len(complete) <= budget + WORKERS - 1  # at most one extra per other worker
    client = MlflowClient(tracking_uri=tracking)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert [r.data.tags.get("prunesearch.role") for r in runs].count("study") == 1


@pytest.mark.slow
def test_workers_started_together_before_prepare_wait_then_work_and_never_prepare(
        workdir, postgres, mlflow_server):
    """The cluster recipe's race, in one study (the suite's time: 8 workers cost about 80 s of
    CPU): WORKERS workers started in the same instant on a study not yet prepared all wait;
    `prepare` prepares it; they then start on the prepared study within a second of each
    other. `prepare` again only checks; a worker started after it finds the study prepared at
    once; one whose study file changed is refused."""
    storage, budget, name = f"{postgres.url}/optuna", WORKERS, "cluster"
    study_path = study_file(workdir, name, retrain_epochs="1")
    workers = start_workers(workdir, study_path, storage, mlflow_server.url, budget)
    deadline = time.monotonic() + 120
    while not all("not prepared yet" in (workdir / f"worker-{k}.log").read_text()
                  for k in range(WORKERS)):
        assert all(w.poll() is None for w in workers) and time.monotonic() < deadline
        time.sleep(0.2)
    prepared = prepare(workdir, study_path, storage, mlflow_server.url)
    assert_prepared_once(workdir, workers, prepared, name, storage, mlflow_server.url, budget)

    again = prepare(workdir, study_path, storage, mlflow_server.url)
    assert again.returncode == 0 and "prepared already" in again.stderr, again.stderr
    assert again.stdout == prepared.stdout and "dense epoch" not in again.stderr
    complete = [t for t in optuna.load_study(study_name=name, storage=storage).trials
                if t.state == TrialState.COMPLETE]
    late = subprocess.run(  # one more trial
        [sys.executable, "-m", "prunesearch", "optimize", "--study", str(study_path),
         "--n-trials", str(len(complete) + 1), "--storage", storage, "--tracking-uri",
         mlflow_server.url, "--cache-dir", str(workdir / "cache"), "--wait-for-prepare", "30"],
        cwd=workdir, capture_output=True, text=True, timeout=300)
    assert late.returncode == 0 and "not prepared yet" not in late.stderr, late.stderr
    assert "dense model from cache" in late.stderr
    (workdir / "other").mkdir()
    changed = study_file(workdir / "other", name, retrain_epochs="3")
    refused = subprocess.run(
        [sys.executable, "-m", "prunesearch", "optimize", "--study", str(changed),
         "--storage", storage, "--tracking-uri", mlflow_server.url,
         "--cache-dir", str(workdir / "cache"), "--wait-for-prepare", "30"],
        cwd=workdir, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "space.retrain_epochs" in errors[0], refused.stderr
