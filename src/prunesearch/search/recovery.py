"""Trials whose work stopped before it was recorded: failed, their parameters queued again, their
MLflow run ended KILLED, so that no trial and no run stays RUNNING and n_trials are reached.

- Ctrl-C or SIGTERM: the interrupted process itself calls `requeue`, before it exits;
- a crashed worker on this host (SIGKILL, power loss of the process): the next worker to start
  finds the RUNNING trial's process gone (`reap_dead_local_trials`);
- a crashed worker on another host: Optuna's heartbeat, once the trial has not beaten for
  storage.HEARTBEAT_GRACE_S, calls `requeue` through the storage's stale-trial callback.
"""

import logging
import os
import socket
from pathlib import Path

import optuna
from optuna.trial import TrialState

from prunesearch.stores import records
from prunesearch.stores.records import TrialRecord

log = logging.getLogger(__name__)


def requeue(study: optuna.Study, trial, tracker, *, reason: str) -> None:
    """Queue an interrupted trial's parameters to run again and end its MLflow run KILLED."""
    # A queued trial holds its parameters as fixed ones until it samples them.
    stored = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
    params = stored.params or stored.system_attrs.get("fixed_params")
    if params:  # interrupted before sampling anything: nothing to re-run
        study.enqueue_trial(params, user_attrs=records.trial_attrs(retry_of=trial.number))
    run_id = TrialRecord.of(trial).mlflow_run_id
    if run_id and tracker is not None:
        tracker.end_trial(run_id, state="INTERRUPTED", reason=reason)
    log.warning("trial %d %s; its parameters are queued to run again", trial.number, reason)


def reap_dead_local_trials(study: optuna.Study, storage, tracker) -> None:
    """Fail the RUNNING trials whose worker process on this host no longer exists."""
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = TrialRecord.of(trial).worker
        if not worker or worker["host"] != host or not _process_gone(worker["pid"]):
            continue
        reason = f"its worker (pid {worker['pid']}) died"
        try:
            records.save_frozen_trial(storage, trial, fail_reason=reason)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        requeue(study, trial, tracker, reason=reason)


def _process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child its parent has not reaped yet is a zombie: gone all the same
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
