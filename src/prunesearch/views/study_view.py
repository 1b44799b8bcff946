"""Read-only views of a study: its models (ModelRow), the Pareto front, progress, status, a
trial's model. Nothing here writes to the study's stores."""

import collections
import dataclasses
import datetime
import tempfile
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from prunesearch.config.objectives import DEFAULT_OBJECTIVES, OBJECTIVES
from prunesearch.errors import ExportError
from prunesearch.foundation import pareto
from prunesearch.stores.records import StudyRecord, TrialRecord
from prunesearch.stores.tracking import StudyTracker
from prunesearch.training import models
from prunesearch.views.rows import ModelRow, last_model, models_of


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
"""What a study's budget counts: trials run to the end of their schedule, or stopped early.
A trial early stopping ends is COMPLETE with the objectives of its last iteration, not
PRUNED: Optuna's TPE (5.0, `_split_trials`) fills the good tenth of a multi-objective study's
trials from complete ones first, so it would learn a stopped schedule as the worst, though its
iterations may be on the front. Earlier versions recorded it PRUNED; both count as stopped."""
OUTCOMES = ("COMPLETE", "STOPPED", "FAIL", "RUNNING", "WAITING")


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def is_stopped(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether early stopping ended the trial (see FINISHED for its Optuna state)."""
    return trial.state in FINISHED and (trial.state == TrialState.PRUNED
                                        or TrialRecord.of(trial).stopped is not None)


def counts(trials: list[optuna.trial.FrozenTrial]) -> dict[str, int]:
    """Trials per outcome: COMPLETE (run to the end of their schedule), STOPPED (early),
    FAIL, RUNNING, WAITING (queued)."""
    tally = collections.Counter("STOPPED" if is_stopped(trial) else trial.state.name
                                for trial in trials)
    return {outcome: tally[outcome] for outcome in OUTCOMES}


def candidates(study: optuna.Study) -> list[ModelRow]:
    """Every model a study has produced: one row per iteration of every finished trial (a
    stopped one included), those under the study's accuracy floor left out."""
    floor = _accuracy_floor(study)
    return [row for trial in finished(study) for row in models_of(study.study_name, trial)
            if floor is None or row.figures.val_accuracy >= floor]


def pareto_rows(study: optuna.Study, *, every_trial: bool = False,
                per_iteration: bool = False) -> list[ModelRow]:
    """The Pareto front over every iteration of every finished trial, in the study's
    objectives; or (`every_trial`) every finished trial's last iteration, or with
    `per_iteration` every iteration. Sparsest first."""
    rows = candidates(study)
    if every_trial and not per_iteration:
        rows = [last_model(study.study_name, trial) for trial in finished(study)
                if TrialRecord.of(trial).curve]
    elif not every_trial:
        rows = front(rows, [OBJECTIVES[name] for name in
                            study.metric_names or DEFAULT_OBJECTIVES])
    return sorted(rows, key=lambda row: (-row.figures.sparsity, row.trial, row.iteration))


def front(rows: list[ModelRow], objectives) -> list[ModelRow]:
    """The rows no other row beats on every one of `objectives`, in their order."""
    points = [[objective.value(row.figures) * (1 if objective.direction == "maximize" else -1)
               for objective in objectives] for row in rows]
    return [rows[i] for i in pareto.optimal(points)]


def _accuracy_floor(study: optuna.Study) -> float | None:
    """The study file's accuracy_floor, as recorded with its settings."""
    floor = (StudyRecord.of(study).spec or {}).get("accuracy_floor", "unset")
    return None if floor == "unset" else float(floor)


def progress(storage: optuna.storages.BaseStorage) -> list[dict]:
    """Every study in `storage` with its trial count per outcome (see `counts`)."""
    return [{"study": name, **counts(optuna.load_study(study_name=name, storage=storage)
                                     .get_trials(deepcopy=False))}
            for name in sorted(optuna.get_all_study_names(storage))]


@dataclasses.dataclass(frozen=True)
class Status:
    """Where a study stands, read from its storage alone."""

    budget: int | None  # finished trials the last `optimize` aimed for
    counts: dict  # trials per outcome (see `counts`)
    elapsed_s: float  # first trial's start to the last trial's end (or now, if running)
    left_s: float | None  # mean finished-trial time x trials left / workers running (>= 1)
    dense: dict | None
    front: list[ModelRow]


def status(study: optuna.Study) -> Status:
    trials = study.get_trials(deepcopy=False)
    outcomes = counts(trials)
    record = StudyRecord.of(study)
    starts = [t.datetime_start for t in trials if t.datetime_start]
    running = outcomes["RUNNING"]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    last = datetime.datetime.now() if running or not ends else max(ends)
    elapsed = (last - min(starts)).total_seconds() if starts else 0.0
    durations = [t.duration.total_seconds() for t in finished(study)]
    left = None
    if record.budget is not None and durations:
        remaining = max(record.budget - len(durations), 0)
        left = sum(durations) / len(durations) * remaining / max(running, 1)
    return Status(budget=record.budget, counts=outcomes, elapsed_s=elapsed, left_s=left,
                  dense=record.dense, front=pareto_rows(study))


def trial_model(study: optuna.Study, number: int, *, iteration: int | None = None,
                tracking_uri: str | None = None) -> tuple[torch.nn.Module, ModelRow]:
    """Finished trial `number`'s pruned model after `iteration` (default: its last), masks
    folded, rebuilt from the weights stored on its MLflow run, so that any machine reaching
    the stores can have it; and that model's row."""
    trial = next((t for t in finished(study) if t.number == number), None)
    if trial is None:
        numbers = [t.number for t in finished(study)]
        raise ExportError(f"study {study.study_name!r} has no finished trial {number}; "
                          f"finished trials: {ranges(numbers) or 'none'}")
    curve = TrialRecord.of(trial).curve
    done = [figures["iteration"] for figures in curve]
    iteration = done[-1] if iteration is None else iteration
    if iteration not in done:
        raise ExportError(f"trial {number} of {study.study_name!r} has no iteration "
                          f"{iteration}; its iterations: {ranges(done)}")
    record = StudyRecord.of(study)
    if record.model is None:
        raise ExportError(f"study {study.study_name!r} does not record its model; run "
                          "`prunesearch optimize` on it once with this version")
    tracker = StudyTracker(tracking_uri or record.mlflow_tracking_uri)
    with tempfile.TemporaryDirectory() as folder:
        weights = tracker.download_weights(TrialRecord.of(trial).mlflow_run_id, Path(folder),
                                           iteration=iteration, final=iteration == done[-1])
        model = models.from_spec(record.model)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model, models_of(study.study_name, trial)[done.index(iteration)]


def kept_test_accuracy(study: optuna.Study, number: int, iteration: int) -> float:
    """The test accuracy of the model trial `number` kept after `iteration`: with repeats,
    repeat 0's (the one whose weights are stored), not the mean."""
    trial = next(t for t in finished(study) if t.number == number)
    record = TrialRecord.of(trial)
    curve = record.repeat_curves[0] if record.repeat_curves else record.curve
    return next(f["test_accuracy"] for f in curve if f["iteration"] == iteration)


def ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    spans = []
    for n in sorted(numbers):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)
