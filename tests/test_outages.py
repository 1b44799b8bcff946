"""Outages of a service, as outages.call sees them: retried with a line each time while they
last, given up in one line past the wait, and a bad request never retried; and workers' writes
to the shared study run that race each other. The real services restarting under real
workers: test_distributed."""

import logging
import threading

import optuna
import pytest
import sqlalchemy.exc

from prunesearch.stores import outages
from prunesearch.stores import storage
from prunesearch.stores import tracking


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(outages, "BACKOFF_FIRST_S", 0.01)
    monkeypatch.setattr(outages, "BACKOFF_MAX_S", 0.05)
    monkeypatch.setattr(outages, "_given_up", set())


def refused() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("connect", {}, ConnectionRefusedError(
        "connection to server at 127.0.0.1 port 5432 failed: Connection refused"))


def flaky(failures: int, error=None):
    calls = []

    def function(value):
        calls.append(value)
        if len(calls) <= failures:
            raise error or refused()
        return value * 2

    return function, calls


def test_an_outage_shorter_than_the_wait_is_ridden_out_a_line_each_retry(caplog):
    function, calls = flaky(3)
    with caplog.at_level(logging.WARNING, logger="prunesearch.stores.outages"):
        assert outages.call("db", "get_trial", function, 21, wait_s=30,
                             is_transient=outages.database_transient) == 42
    assert calls == [21] * 4
    retrying = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retrying) == 3 and all("db unreachable during get_trial" in m for m in retrying)
    assert "Connection refused" in retrying[0]
    assert "reachable again" in caplog.records[-1].getMessage()


def test_past_the_wait_one_error_naming_the_service_and_later_calls_fail_at_once():
    function, calls = flaky(10**6)
    with pytest.raises(outages.ServiceUnavailable) as raised:
        outages.call("study database postgresql://u@h/db", "create_new_trial", function, 1,
                      wait_s=0.3, is_transient=outages.database_transient)
    message = str(raised.value)
    assert message.startswith("study database postgresql://u@h/db unreachable for 0 s")
    assert "create_new_trial" in message and "Connection refused" in message
    assert "\n" not in message and "run the same command" in message
    tried = len(calls)
    assert tried >= 2
    with pytest.raises(outages.ServiceUnavailable):
        outages.call("study database postgresql://u@h/db", "get_trial", function, 1,
                      wait_s=30, is_transient=outages.database_transient)
    assert len(calls) == tried  # not called again: it would only wait again


def test_a_bad_request_is_not_retried():
    function, calls = flaky(1, error=sqlalchemy.exc.IntegrityError("insert", {}, Exception()))
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        outages.call("db", "insert", function, 1, wait_s=30,
                      is_transient=outages.database_transient)
    assert len(calls) == 1


def test_mlflow_transient_means_unreachable_or_5xx_not_a_client_mistake():
    import requests
    from mlflow.exceptions import MlflowException, RestException

    try:
        try:
            raise requests.exceptions.ConnectionError("Connection refused")
        except requests.exceptions.ConnectionError as error:
            raise MlflowException(f"API request to http://h/api failed with exception {error}")
    except MlflowException as error:
        assert tracking.transient(error)
    assert tracking.transient(RestException(
        {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "restarting"}))
    assert not tracking.transient(RestException(
        {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such run"}))
    assert not tracking.transient(MlflowException("Invalid metric name"))


def test_workers_writing_the_study_run_at_the_same_moment_all_succeed(tmp_path):
    """MLflow's SQL store upserts a tag, a latest metric or a dataset by a read and then an
    insert: of writers that start together on a new key, all but one fail on the unique key
    (about 1 in 3 calls here) unless the lost race is retried."""
    from mlflow.entities import Metric

    tracker = tracking.StudyTracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = tracker.open_study(study_name="s", parent_run_id=None, description="")
    writers, rounds, errors = 4, 10, []

    def write(start: threading.Barrier, round_: int, writer: int) -> None:
        start.wait()
        try:
            tracker.client.set_tag(run_id, f"tag{round_}", "on front")
            tracker.client.log_batch(run_id, metrics=[Metric(f"metric{round_}", writer,
                                                             1000 * round_ + writer, round_)])
            tracker.log_dataset(run_id, name=f"data{round_}", digest=f"digest{round_}",
                                source=str(tmp_path), profile={"train": round_})
        except Exception as error:
            errors.append(error)

    for round_ in range(rounds):
        start = threading.Barrier(writers)
        threads = [threading.Thread(target=write, args=(start, round_, writer))
                   for writer in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    run = tracker.raw_client.get_run(run_id)
    assert all(run.data.tags[f"tag{r}"] == "on front" for r in range(rounds))
    assert all(len(tracker.raw_client.get_metric_history(run_id, f"metric{r}")) == writers
               for r in range(rounds))
    assert sorted(d.dataset.name for d in run.inputs.dataset_inputs) == sorted(
        f"data{r}" for r in range(rounds))


def test_a_lost_race_is_told_apart_from_other_bad_requests():
    from mlflow.exceptions import MlflowException, RestException

    assert outages.lost_write_race(sqlalchemy.exc.IntegrityError("insert", {}, Exception()))
    assert outages.lost_write_race(RestException({  # PostgreSQL behind a tracking server
        "error_code": "BAD_REQUEST", "message": "(psycopg2.errors.UniqueViolation) duplicate "
        "key value violates unique constraint \"tag_pk\""}))
    assert not outages.lost_write_race(MlflowException("Invalid metric name"))
    assert not outages.lost_write_race(refused())


def test_the_study_storage_retries_its_database_calls(tmp_path, monkeypatch):
    """Optuna's calls through the storage (here its cache's) are retried: two calls in a row
    that lose their connection, then the database answers."""
    opened = storage.open_storage(f"sqlite:///{tmp_path / 'o.db'}", outage_wait_s=30)
    study = optuna.create_study(study_name="s", storage=opened)
    original = optuna.storages.RDBStorage._create_new_trial
    failures = iter([refused(), refused()])

    def dropping(self, *args, **kwargs):
        error = next(failures, None)
        if error is not None:
            raise optuna.exceptions.StorageInternalError("commit failed") from error
        return original(self, *args, **kwargs)

    monkeypatch.setattr(optuna.storages.RDBStorage, "_create_new_trial", dropping)
    trial = study.ask()
    assert trial.number == 0 and len(study.trials) == 1
