"""A worker killed mid-trial (real subprocess, SIGKILL or SIGTERM), then a rerun: no trial or
MLflow run left RUNNING, the interrupted trial's parameters re-run, the budget completed."""

import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import optuna
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from conftest import write_study
from prunesearch.foundation import interrupts
from prunesearch.search import recovery
from prunesearch.stores import tracking
from prunesearch.cli import main

RUNNING = optuna.trial.TrialState.RUNNING


def start_worker(workdir, study_path, n_trials: int, *options: str) -> subprocess.Popen:
    log = open(workdir / "worker.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "prunesearch", "optimize", "--study", str(study_path),
         "--n-trials", str(n_trials), *options],
        cwd=workdir, env=os.environ.copy(), stdout=log, stderr=log)


def wait_for_running_trial(workdir, worker: subprocess.Popen, timeout: float = 120,
                           storage: str | None = None, study_name: str = "tiny"):
    """The first trial that is RUNNING with its MLflow run opened, i.e. mid-trial.

    Waits for the worker's "trial N: {...}" line (logged once the run is open) before touching
    the storage: opening it while the worker creates it would race on its schema.
    """
    log = workdir / "worker.log"
    started = re.compile(r"trial \d+: \{")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.poll() is None, log.read_text()
        if started.search(log.read_text()):
            url = storage or f"sqlite:///{workdir / 'prunesearch.db'}"
            study = optuna.load_study(study_name=study_name, storage=url)
            running = [t for t in study.get_trials(states=(RUNNING,))
                       if "mlflow_run_id" in t.user_attrs]
            if running:
                return running[0]
        time.sleep(0.1)
    pytest.fail("no trial started in time")


def wait_for_line(workdir, worker: subprocess.Popen, text: str, timeout: float = 60) -> None:
    log = workdir / "worker.log"
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def assert_nothing_left_running(workdir, *, complete: int):
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{workdir / 'prunesearch.db'}")
    states = [t.state for t in study.trials]
    assert RUNNING not in states
    if complete is not None:
        assert states.count(optuna.trial.TrialState.COMPLETE) == complete
    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    assert all(run.info.status != "RUNNING" for run in runs)
    return study, {run.info.run_id: run for run in runs}


@pytest.fixture
def slow_study(workdir):
    """Trials long enough (several seconds) to be caught in the middle."""
    return write_study(workdir, retrain_epochs="12")


@pytest.mark.slow
def test_sigkill_mid_trial_then_rerun_completes_the_budget(workdir, slow_study):
    worker = start_worker(workdir, slow_study, n_trials=2)
    victim = wait_for_running_trial(workdir, worker)
    worker.send_signal(signal.SIGKILL)
    worker.wait()

    rerun = start_worker(workdir, slow_study, n_trials=2)
    assert rerun.wait(timeout=300) == 0, (workdir / "worker.log").read_text()

    study, runs = assert_nothing_left_running(workdir, complete=2)
    killed = study.trials[victim.number]
    assert killed.state == optuna.trial.TrialState.FAIL
    assert "died" in killed.user_attrs["fail_reason"]
    retry, = [t for t in study.trials if t.user_attrs.get("retry_of") == victim.number]
    assert retry.params == victim.params and retry.state == optuna.trial.TrialState.COMPLETE
    assert runs[victim.user_attrs["mlflow_run_id"]].info.status == "KILLED"


@pytest.mark.slow
def test_sigterm_ends_the_trial_cleanly_and_queues_it_again(workdir, slow_study):
    worker = start_worker(workdir, slow_study, n_trials=2)
    victim = wait_for_running_trial(workdir, worker)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 143

    study, runs = assert_nothing_left_running(workdir, complete=0)
    assert study.trials[victim.number].state == optuna.trial.TrialState.FAIL
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [victim.params]
    assert [t.user_attrs["retry_of"] for t in waiting] == [victim.number]
    assert runs[victim.user_attrs["mlflow_run_id"]].info.status == "KILLED"
    parent, = [r for r in runs.values() if r.data.tags.get("prunesearch.role") == "study"]
    assert parent.info.status == "KILLED"


@pytest.mark.slow
def test_sigterm_to_a_jobs_run_ends_every_worker_cleanly_then_a_rerun_completes(workdir,
                                                                              slow_study):
    coordinator = start_worker(workdir, slow_study, 2, "--jobs", "2")
    victim = wait_for_running_trial(workdir, coordinator)
    wait_for_line(workdir, coordinator, "[worker 1/2] study tiny")  # both workers are up
    wait_for_line(workdir, coordinator, "[worker 2/2] study tiny")
    coordinator.send_signal(signal.SIGTERM)
    assert coordinator.wait(timeout=120) == 143, (workdir / "worker.log").read_text()

    study, runs = assert_nothing_left_running(workdir, complete=0)
    assert study.trials[victim.number].state == optuna.trial.TrialState.FAIL
    parent, = [r for r in runs.values() if r.data.tags.get("prunesearch.role") == "study"]
    assert parent.info.status == "KILLED"

    rerun = start_worker(workdir, slow_study, 2)  # one process: 3 fewer imports of torch
    assert rerun.wait(timeout=600) == 0, (workdir / "worker.log").read_text()
    study, runs = assert_nothing_left_running(workdir, complete=2)
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == victim.number]
    assert retried and retried[0].params == victim.params


@pytest.mark.slow
def test_sigkill_of_one_of_three_jobs_workers_then_a_rerun_leaves_nothing_running(workdir,
                                                                                 slow_study):
    coordinator = start_worker(workdir, slow_study, 3, "--jobs", "3")
    victim = wait_for_running_trial(workdir, coordinator)
    os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)
    # The other two workers complete the budget; the lost worker makes the command fail.
    assert coordinator.wait(timeout=600) == 1, (workdir / "worker.log").read_text()
    assert "workers stopped with an error" in (workdir / "worker.log").read_text()

    rerun = start_worker(workdir, slow_study, 3, "--jobs", "3")
    assert rerun.wait(timeout=600) == 0, (workdir / "worker.log").read_text()
    study, runs = assert_nothing_left_running(workdir, complete=None)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 3 <= len(complete) <= 5  # the budget, give or take one per other worker
    killed = study.trials[victim.number]
    assert killed.state == optuna.trial.TrialState.FAIL and "died" in killed.user_attrs[
        "fail_reason"]
    assert runs[victim.user_attrs["mlflow_run_id"]].info.status == "KILLED"


@pytest.fixture
def sigterm_handled(monkeypatch):
    """SIGTERM handled as `prunesearch optimize` handles it, no stop requested yet; the
    handlers the test (or an in-process `optimize`) installs are put back after it."""
    monkeypatch.setattr(interrupts, "_requested", None)
    monkeypatch.setattr(interrupts, "_woken", threading.Event())
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, interrupts.handler)
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def request_stop():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)  # the Python-level handler runs at the next bytecode boundary


def test_a_stop_request_is_only_recorded_until_the_work_checks_for_it(sigterm_handled):
    request_stop()  # the handler returns: whatever was running goes on
    assert interrupts.requested()
    with pytest.raises(interrupts.StopRequested):
        interrupts.check()


def test_a_second_stop_request_stops_at_once(sigterm_handled):
    request_stop()
    with pytest.raises(interrupts.StopRequested, match="second SIGTERM"):
        request_stop()


def test_a_stop_request_while_a_trial_run_opens_lets_it_open_whole(sigterm_handled, tmp_path,
                                                                   monkeypatch):
    # Interrupted inside MLflow's SQL, the SQLite store stayed locked and the run RUNNING.
    tracker = tracking.StudyTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracker.open_study(study_name="s", parent_run_id=None, description="")
    log_batch = tracker.client.log_batch

    def interrupted_log_batch(*args, **kwargs):
        request_stop()
        return log_batch(*args, **kwargs)

    monkeypatch.setattr(tracker.client, "log_batch", interrupted_log_batch)
    schedule = {"method": "l1_unstructured", "amount": 0.5, "iterations": 2,
                "reinit": "rewind"}
    run_id = tracker.start_trial(study_name="s", trial_number=0, params=schedule,
                                 described="l1_unstructured 50% x2 rewind", timed_on="cpu")
    assert interrupts.requested()
    assert tracker.client.get_run(run_id).data.params == {k: str(v) for k, v in schedule.items()}
    tracker.end_trial(run_id, state="INTERRUPTED", reason="test")
    assert tracker.client.get_run(run_id).info.status == "KILLED"


def stop_requested_once_optuna_created_a_trial(monkeypatch):
    """SIGTERM arrives after Optuna wrote a new RUNNING trial (ask), before the objective runs
    (it arrived there in a CI run and left the trial RUNNING for good)."""
    ask = optuna.Study.ask
    asked = []

    def interrupted(self, *args, **kwargs):
        trial = ask(self, *args, **kwargs)
        asked.append(trial.number)
        if len(asked) == 1:
            request_stop()
        return trial

    monkeypatch.setattr(optuna.Study, "ask", interrupted)


def test_a_stop_request_while_a_trial_is_created_fails_it_and_queues_it_again(
        sigterm_handled, workdir, tiny_study, monkeypatch):
    stop_requested_once_optuna_created_a_trial(monkeypatch)
    result = CliRunner().invoke(main, ["optimize", "--study", str(tiny_study)])

    assert result.exit_code == 143, result.output
    study, runs = assert_nothing_left_running(workdir, complete=0)
    interrupted, again = study.trials
    assert interrupted.state == optuna.trial.TrialState.FAIL
    assert again.state == optuna.trial.TrialState.WAITING
    assert again.system_attrs["fixed_params"] == interrupted.params
    assert again.user_attrs["retry_of"] == interrupted.number
    assert runs[interrupted.user_attrs["mlflow_run_id"]].info.status == "KILLED"
    parent, = [r for r in runs.values() if r.data.tags.get("prunesearch.role") == "study"]
    assert parent.info.status == "KILLED"


def test_a_queued_retry_lost_before_it_sampled_is_queued_again(tmp_path):
    # E.g. its worker on another host died right after taking it; the heartbeat finds it.
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}")
    queued = {"amount": 0.3, "reinit": "rewind"}
    study.enqueue_trial(queued, user_attrs={"retry_of": 7})
    taken = study.ask()
    lost = study.trials[taken.number]
    assert lost.params == {}

    recovery.requeue(study, lost, tracker=None, reason="its worker stopped")
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [(t.system_attrs["fixed_params"], t.user_attrs["retry_of"]) for t in waiting] == [
        (queued, taken.number)]


@pytest.mark.slow
def test_a_stop_request_once_the_trial_has_trained_lets_it_complete(sigterm_handled, workdir,
                                                                    tiny_study, monkeypatch):
    end_trial = tracking.StudyTracker.end_trial

    def interrupted(self, *args, **kwargs):
        request_stop()
        return end_trial(self, *args, **kwargs)

    monkeypatch.setattr(tracking.StudyTracker, "end_trial", interrupted)
    result = CliRunner().invoke(main, ["optimize", "--study", str(tiny_study)])

    assert result.exit_code == 143, result.output
    study, runs = assert_nothing_left_running(workdir, complete=1)
    assert len(study.trials) == 1  # nothing queued again: the trial was done
    trial_run = runs[study.trials[0].user_attrs["mlflow_run_id"]]
    assert trial_run.info.status == "FINISHED"
    assert MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}").list_artifacts(
        trial_run.info.run_id)  # its weights


def test_a_stop_request_while_the_tracking_store_is_created_lets_its_tables_finish(
        sigterm_handled, tmp_path, monkeypatch):
    # Interrupted in the middle of MLflow's migrations, a new SQLite store was left unusable
    # ("table _alembic_tmp_experiments already exists").
    import mlflow.store.db.utils

    def schema_version(path):
        with sqlite3.connect(path) as db:
            return db.execute("select version_num from alembic_version").fetchall()

    tracking.StudyTracker(f"sqlite:///{tmp_path / 'whole.db'}").client.search_experiments()
    upgrade_db = mlflow.store.db.utils._upgrade_db

    def interrupted(engine):
        request_stop()
        return upgrade_db(engine)

    monkeypatch.setattr(mlflow.store.db.utils, "_upgrade_db", interrupted)
    tracking.StudyTracker(f"sqlite:///{tmp_path / 'interrupted.db'}")
    assert interrupts.requested()  # taken later, where the work checks
    assert schema_version(tmp_path / "interrupted.db") == schema_version(tmp_path / "whole.db")


def assert_stores_whole(workdir) -> None:
    """Both SQLite stores pass their integrity check, and nothing in them is RUNNING."""
    for name in ("prunesearch.db", "mlflow.db"):
        if (workdir / name).exists():
            with sqlite3.connect(workdir / name) as db:
                assert db.execute("pragma integrity_check").fetchall() == [("ok",)], name
    if (workdir / "prunesearch.db").exists():
        url = f"sqlite:///{workdir / 'prunesearch.db'}"
        if "tiny" in optuna.get_all_study_names(url):
            study = optuna.load_study(study_name="tiny", storage=url)
            assert RUNNING not in [t.state for t in study.trials]
    if (workdir / "mlflow.db").exists():
        client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("tiny")
        if experiment is not None:
            runs = client.search_runs([experiment.experiment_id])
            assert all(run.info.status != "RUNNING" for run in runs)


@pytest.mark.slow
def test_sigterm_at_random_moments_leaves_the_stores_whole_and_the_study_resumable(workdir):
    # Moments spread over a run's life: imports, creating the stores and their schemas,
    # dense training, trials, recording them. Seeded, so a failure can be replayed.
    study = write_study(workdir, retrain_epochs="1")
    (workdir / "mlflow.db").unlink()  # its creation and migrations are moments too
    moments = random.Random(20261125)
    for _ in range(3):
        worker = start_worker(workdir, study, n_trials=3)
        time.sleep(moments.uniform(1.0, 14.0))
        worker.send_signal(signal.SIGTERM)
        # 143: stopped; 0: it had finished; -SIGTERM: killed while still importing, before
        # its handler was installed and before it wrote anything.
        assert worker.wait(timeout=120) in (0, 143, -signal.SIGTERM), \
            (workdir / "worker.log").read_text()
        assert_stores_whole(workdir)
    rerun = start_worker(workdir, study, n_trials=3)
    assert rerun.wait(timeout=300) == 0, (workdir / "worker.log").read_text()
    assert_stores_whole(workdir)
    assert_nothing_left_running(workdir, complete=3)


@pytest.mark.parametrize("other_worker_alive", [True, False])
def test_a_worker_stops_once_finished_and_running_trials_make_n_trials(tmp_path,
                                                                       other_worker_alive):
    """n_trials counts the trials running on other workers too (so many workers do not
    overshoot it), but not one whose worker on this host died: that one is queued again and
    run."""
    from prunesearch.search.optimize import _Budget
    from prunesearch.stores import records, storage as storage_module

    storage = storage_module.open_storage(f"sqlite:///{tmp_path / 'o.db'}")
    study = optuna.create_study(study_name="budget", storage=storage)
    finished = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(finished, 1.0)
    elsewhere = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    gone = subprocess.Popen(["true"])
    gone.wait()
    records.save_trial(elsewhere, worker={"host": socket.gethostname(),
                                          "pid": os.getpid() if other_worker_alive
                                          else gone.pid})
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=5,
                   callbacks=[_Budget(3, storage, tracker=None)])

    states = [t.state for t in study.trials]
    if other_worker_alive:  # 1 finished + 1 running elsewhere + 1 here make 3
        assert states == [optuna.trial.TrialState.COMPLETE, RUNNING,
                          optuna.trial.TrialState.COMPLETE]
    else:  # found dead after the first trial here: failed, then re-run here
        assert states[1] == optuna.trial.TrialState.FAIL and RUNNING not in states
        assert states.count(optuna.trial.TrialState.COMPLETE) == 3
        assert study.trials[3].user_attrs["retry_of"] == 1
