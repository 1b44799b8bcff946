"""Read-only views of a study: report rows, the Pareto front, progress, status, a trial's
model. Nothing here writes to the study's stores."""

import collections
import dataclasses
import datetime
import tempfile
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from prunesearch import models
from prunesearch.errors import ExportError
from prunesearch.loop import FIGURES
from prunesearch.records import StudyRecord, TrialRecord
from prunesearch.tracking import StudyTracker


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def trial_row(trial: optuna.trial.FrozenTrial, figures: dict | None = None) -> dict:
    """A trial's schedule and figures: its final ones, or those of one iteration."""
    record = TrialRecord.of(trial)
    figures = figures or record.final
    return {"trial": trial.number, "iteration": figures["iteration"],
            "params": record.schedule,
            # Trials recorded before a figure existed show it as NaN.
            **{key: figures.get(key, float("nan")) for key in FIGURES},
            "mlflow_run_id": record.mlflow_run_id}


def pareto_rows(study: optuna.Study, *, every_trial: bool = False,
                per_iteration: bool = False) -> list[dict]:
    """The Pareto-optimal completed trials (or all of them), sparsest first; with
    `per_iteration`, one row per prune-retrain iteration instead of one per trial."""
    trials = completed(study) if every_trial else study.best_trials
    rows = [trial_row(trial, figures) for trial in trials
            for figures in (TrialRecord.of(trial).curve if per_iteration else [None])]
    return sorted(rows, key=lambda row: (-row["sparsity"], row["trial"], row["iteration"]))


def progress(storage: optuna.storages.BaseStorage) -> list[dict]:
    """Every study in `storage` with its trial count per state, e.g. "COMPLETE": 12."""
    rows = []
    for name in sorted(optuna.get_all_study_names(storage)):
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        counts = collections.Counter(trial.state.name for trial in trials)
        rows.append({"study": name, **{state.name: counts[state.name] for state in TrialState}})
    return rows


@dataclasses.dataclass(frozen=True)
class Status:
    """Where a study stands, read from its storage alone."""

    budget: int | None  # completed trials the last `optimize` aimed for
    counts: dict  # trials per state name
    elapsed_s: float  # first trial's start to the last trial's end (or now, if running)
    left_s: float | None  # mean completed-trial time x trials left / workers running (>= 1)
    dense: dict | None
    front: list[dict]


def status(study: optuna.Study) -> Status:
    trials = study.get_trials(deepcopy=False)
    counts = collections.Counter(trial.state.name for trial in trials)
    record = StudyRecord.of(study)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    running = counts[TrialState.RUNNING.name]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    last = datetime.datetime.now() if running or not ends else max(ends)
    elapsed = (last - min(starts)).total_seconds() if starts else 0.0
    durations = [t.duration.total_seconds() for t in completed(study)]
    left = None
    if record.budget is not None and durations:
        remaining = max(record.budget - len(durations), 0)
        left = sum(durations) / len(durations) * remaining / max(running, 1)
    return Status(budget=record.budget, counts=dict(counts), elapsed_s=elapsed, left_s=left,
                  dense=record.dense, front=pareto_rows(study))


def trial_model(study: optuna.Study, number: int, *, tracking_uri: str | None = None
                ) -> tuple[torch.nn.Module, optuna.trial.FrozenTrial]:
    """Complete trial `number` and its pruned model (masks folded), rebuilt from the weights
    stored on its MLflow run, so that any machine reaching the stores can have it."""
    trial = next((t for t in completed(study) if t.number == number), None)
    if trial is None:
        numbers = [t.number for t in completed(study)]
        raise ExportError(f"study {study.study_name!r} has no complete trial {number}; "
                          f"complete trials: {ranges(numbers) or 'none'}")
    record = StudyRecord.of(study)
    if record.model is None:
        raise ExportError(f"study {study.study_name!r} does not record its model; run "
                          "`prunesearch optimize` on it once with this version")
    tracker = StudyTracker(tracking_uri or record.mlflow_tracking_uri)
    with tempfile.TemporaryDirectory() as folder:
        weights = tracker.download_weights(TrialRecord.of(trial).mlflow_run_id, Path(folder))
        model = models.from_spec(record.model)
        model.load_state_dict(torch.load(weights, map_location="cpu"))
    return model, trial


def ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    spans = []
    for n in sorted(numbers):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)
