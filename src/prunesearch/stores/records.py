"""The one place that names what a study and its trials store in Optuna (user attributes).

Read with `StudyRecord.of(study)` / `TrialRecord.of(trial)`; write with `save_study(study,
field=value, ...)` / `save_trial(trial, ...)`, which refuse a name that is not a field, so a
typo cannot store a second, silently unread attribute.
"""

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class StudyRecord:
    """Set by `optimize` (or `prepare`) when a run starts, read by every command."""

    mlflow_parent_run_id: str | None = None  # the study's MLflow run
    mlflow_tracking_uri: str | None = None
    n_trials: int | None = None  # completed trials the last `optimize` aimed for
    model: dict | None = None  # ModelSpec as a dict, with num_classes: what `export` rebuilds
    data: dict | None = None  # search.data.described: source, image size, mean, std, classes
    spec: dict | None = None  # studyfile.fingerprint: refuses a changed study file
    dense: dict | None = None  # the dense model's IterationResult (iteration 0) as a dict
    pareto_run_ids: tuple = ()  # MLflow runs tagged as on the front
    pareto_drawn_at: float | None = None  # when the front's plots and table were last drawn
    sensitivity: dict | None = None  # method -> its scan of the dense model (allocation)
    prepared: dict | None = None  # by `prunesearch prepare`: search.preparation.record

    @classmethod
    def of(cls, study) -> "StudyRecord":
        attrs = dict(study.user_attrs)
        if "budget" in attrs:  # the trial count's name before 2026-12-07
            attrs.setdefault("n_trials", attrs.pop("budget"))
        return _read(cls, attrs)


@dataclass(frozen=True)
class TrialRecord:
    """Set by the objective as the trial goes, and by recovery when it is interrupted."""

    schedule: dict | None = None  # Schedule.as_dict()
    worker: dict | None = None  # {"host", "pid"}: finds trials whose process died
    mlflow_run_id: str | None = None
    timed_on: str | None = None  # trial.Latency.where(): where its latency figures were timed
    final: dict | None = None  # the last IterationResult as a dict
    curve: tuple = ()  # every IterationResult (iteration >= 1) as dicts, kept as they come
    repeat_curves: tuple = ()  # with repeats > 1: each repeat's curve (curve holds the means)
    rungs: dict | None = None  # early stopping: {rung epochs as str: the trial's point there}
    stopped: str | None = None  # why early stopping ended the trial (see results.FINISHED)
    fail_reason: str | None = None
    retry_of: int | None = None  # the interrupted trial whose parameters this one re-runs
    allocation: dict | None = None  # allocation.Plan.as_dict(): each unit's share, the factor
    kept: tuple = ()  # per iteration (>= 1), what each unit of `allocation` has left

    @classmethod
    def of(cls, trial) -> "TrialRecord":
        return _read(cls, trial.user_attrs)


def _read(cls, attrs: dict):
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{name: value for name, value in attrs.items() if name in names})


def save_study(study, **values) -> None:
    _save(StudyRecord, study.set_user_attr, values)


def save_trial(trial, **values) -> None:
    _save(TrialRecord, trial.set_user_attr, values)


def save_frozen_trial(storage, trial, **values) -> None:
    """On a trial this process does not run (found RUNNING, its worker dead)."""
    _save(TrialRecord, lambda key, value: storage.set_trial_user_attr(
        trial._trial_id, key, value), values)


def trial_attrs(**values) -> dict:
    """`values` checked as TrialRecord fields: user attributes for a trial not yet created
    (`study.enqueue_trial(..., user_attrs=...)`)."""
    return _checked(TrialRecord, values)


def _save(cls, set_user_attr, values: dict) -> None:
    for name, value in _checked(cls, values).items():
        set_user_attr(name, value)


def _checked(cls, values: dict) -> dict:
    names = {field.name for field in dataclasses.fields(cls)}
    for name in values:
        if name not in names:
            raise TypeError(f"{cls.__name__} has no field {name!r}")
    return values
