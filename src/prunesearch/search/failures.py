"""The failure policy: a trial that fails is recorded and the study goes on, until failures
repeat; Optuna's log says so in one line. A trial that cannot even be recorded is abandoned."""

import gc
import logging
import traceback

import optuna
import torch
from optuna.trial import TrialState

from prunesearch.errors import PrunesearchError, TrialsFailing
from prunesearch.stores.records import TrialRecord

MAX_FAILURES_IN_A_ROW = 3  # a worker stops when this many of its trials fail in a row


class TrialFailed(Exception):
    """A trial's training or pruning failed (e.g. diverged); Optuna marks it FAIL and the
    study goes on."""


class _OneLineTrialFailures(logging.Filter):
    """Optuna logs a failed trial with its traceback and its empty parameters, then again
    with its value (None). For a TrialFailed, a stop request, an outage or a full disk
    (PrunesearchError) prunesearch has said it in its own line already, so Optuna's two are
    dropped (a TrialFailed's traceback is kept on the trial's MLflow run); any other failure
    keeps Optuna's first line, with its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        said = record.exc_info and isinstance(record.exc_info[1], (
            TrialFailed, KeyboardInterrupt, PrunesearchError))
        return not said and not record.getMessage().endswith("failed with value None.")


ONE_LINE_TRIAL_FAILURES = _OneLineTrialFailures()  # one instance: added once however often


class FailureGuard:
    """Stops this worker when MAX_FAILURES_IN_A_ROW of its trials fail in a row: by then it is
    not bad luck but a setting (or a bug) that would fail every trial, forever, as n_trials
    counts only finished ones."""

    def __init__(self):
        self.in_a_row = 0

    def __call__(self, study: optuna.Study, trial) -> None:
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            self.in_a_row = 0
        elif trial.state == TrialState.FAIL:
            self.in_a_row += 1
            if self.in_a_row >= MAX_FAILURES_IN_A_ROW:
                raise TrialsFailing(
                    f"{self.in_a_row} trials in a row failed, the last (trial {trial.number}) "
                    f"with {TrialRecord.of(trial).fail_reason or 'no reason recorded'}; "
                    "each trial's traceback is on its MLflow run (tag prunesearch.fail_reason)")


class TrialAbandoned(BaseException):
    """The study's database is away or its disk full: the trial cannot be recorded as failed,
    so it is left RUNNING (for the next worker to fail and queue again, see recovery), and
    Optuna, which would try to record it, is left at once (a BaseException passes its
    handlers)."""

    def __init__(self, stop: PrunesearchError):
        self.stop = stop


def release_memory(error: BaseException) -> None:
    """Let go of what a failed trial's frames hold (its model, its batches), so that the next
    trial has the memory back: after running out of GPU memory, it needs it."""
    traceback.clear_frames(error.__traceback__)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
