"""Read-only views of a study: its models (ModelRow), the Pareto front, progress, status, a
trial's model. Nothing here writes to the study's stores."""

import collections
import dataclasses
import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from prunesearch.config import budgets
from prunesearch.config.objectives import DEFAULT_OBJECTIVES, OBJECTIVES
from prunesearch.errors import ExportError
from prunesearch.foundation import pareto
from prunesearch.pruning.figures import IterationResult
from prunesearch.stores.records import StudyRecord, TrialRecord
from prunesearch.views.rows import ModelRow, last_model, models_of


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
"""What a study's n_trials counts: trials run to the end of their schedule, or stopped early.
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


def judged(study: optuna.Study, rows: list[ModelRow]) -> list[ModelRow]:
    """`rows` with the budgets each breaks (ModelRow.over_budget), under the budgets the
    study ran with (its recorded settings) against its dense model."""
    record = StudyRecord.of(study)
    limits = budgets.of_settings(record.spec or {})
    if not limits or record.dense is None:
        return rows
    dense = IterationResult.from_dict(record.dense)
    return [dataclasses.replace(row, over_budget=budgets.violations(row.figures, dense, limits))
            for row in rows]


def every_model(study: optuna.Study) -> list[ModelRow]:
    """One row per iteration of every finished trial (a stopped one included), judged
    against the study's budgets."""
    return judged(study, [row for trial in finished(study)
                          for row in models_of(study.study_name, trial)])


def candidates(study: optuna.Study, models: list[ModelRow] | None = None) -> list[ModelRow]:
    """Every model a study has produced that keeps its budgets: what the front is made of.
    `models`: `every_model(study)`, where the caller has read it already."""
    return [row for row in (every_model(study) if models is None else models)
            if not row.over_budget]


def pareto_rows(study: optuna.Study, *, every_trial: bool = False,
                per_iteration: bool = False,
                models: list[ModelRow] | None = None) -> list[ModelRow]:
    """The Pareto front over every iteration of every finished trial that keeps the budgets,
    in the study's objectives; or (`every_trial`) every finished trial's last iteration, or
    with `per_iteration` every iteration, those over budget included (marked). Sparsest
    first. `models`: `every_model(study)`, where the caller has read it already."""
    if every_trial and not per_iteration:
        rows = judged(study, [last_model(study.study_name, trial) for trial in finished(study)
                              if TrialRecord.of(trial).curve])
    elif every_trial:
        rows = every_model(study) if models is None else models
    else:
        rows = front(candidates(study, models), [OBJECTIVES[name] for name in
                                                 study.metric_names or DEFAULT_OBJECTIVES])
    return sorted(rows, key=lambda row: (-row.figures.sparsity, row.trial, row.iteration))


def front(rows: list[ModelRow], objectives) -> list[ModelRow]:
    """The rows no other row beats on every one of `objectives`, in their order."""
    points = [[objective.value(row.figures) * (1 if objective.direction == "maximize" else -1)
               for objective in objectives] for row in rows]
    return [rows[i] for i in pareto.optimal(points)]


@dataclasses.dataclass(frozen=True)
class Feasibility:
    """How a study's models stand against its budgets."""

    budgets: list  # config.budgets.Budget, as the study ran with them
    within: int  # models keeping every budget
    over: int  # models breaking one or more
    misses: list[str]  # with none within: per budget, who broke it and the nearest miss


def feasibility(study: optuna.Study, models: list[ModelRow] | None = None) -> Feasibility:
    """`models`: `every_model(study)`, where the caller has read it already."""
    record = StudyRecord.of(study)
    limits = budgets.of_settings(record.spec or {})
    models = every_model(study) if models is None else models
    over = [row for row in models if row.over_budget]
    misses = []
    if models and len(over) == len(models) and record.dense is not None:
        misses = budgets.closest_misses([row.figures for row in models],
                                        IterationResult.from_dict(record.dense), limits)
    return Feasibility(limits, len(models) - len(over), len(over), misses)


def best(study: optuna.Study, by: str) -> ModelRow | None:
    """The model a user would ship: among every model keeping the budgets, the one with the
    highest objective `by` (validation accuracy breaking ties, then the earlier model);
    selected on validation figures, never on test accuracy. None if no model keeps them."""
    objective = OBJECTIVES[by]
    sign = 1 if objective.direction == "maximize" else -1
    rows = [row for row in candidates(study) if not _unmeasured(objective.value(row.figures))]
    return max(rows, default=None, key=lambda row: (
        sign * objective.value(row.figures), row.figures.val_accuracy, -row.trial,
        -row.iteration))


def _unmeasured(value: float) -> bool:
    return isinstance(value, float) and value != value


def progress(storage: optuna.storages.BaseStorage) -> list[dict]:
    """Every study in `storage` with its trial count per outcome (see `counts`)."""
    return [{"study": name, **counts(optuna.load_study(study_name=name, storage=storage)
                                     .get_trials(deepcopy=False))}
            for name in sorted(optuna.get_all_study_names(storage))]


@dataclasses.dataclass(frozen=True)
class Status:
    """Where a study stands, read from its storage alone."""

    n_trials: int | None  # finished trials the last `optimize` aimed for
    counts: dict  # trials per outcome (see `counts`)
    elapsed_s: float  # first trial's start to the last trial's end (or now, if running)
    left_s: float | None  # mean finished-trial time x trials left / workers running (>= 1)
    dense: dict | None
    front: list[ModelRow]
    feasibility: Feasibility


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
    if record.n_trials is not None and durations:
        remaining = max(record.n_trials - len(durations), 0)
        left = sum(durations) / len(durations) * remaining / max(running, 1)
    return Status(n_trials=record.n_trials, counts=outcomes, elapsed_s=elapsed, left_s=left,
                  dense=record.dense, front=pareto_rows(study), feasibility=feasibility(study))


def finished_model(study: optuna.Study, number: int, iteration: int | None):
    """(Finished trial `number`, `iteration` or its last), refused in one line where the
    study has no such trial or the trial no such iteration."""
    trial = next((t for t in finished(study) if t.number == number), None)
    if trial is None:
        numbers = [t.number for t in finished(study)]
        raise ExportError(f"study {study.study_name!r} has no finished trial {number}; "
                          f"finished trials: {ranges(numbers) or 'none'}")
    done = [figures["iteration"] for figures in TrialRecord.of(trial).curve]
    iteration = done[-1] if iteration is None else iteration
    if iteration not in done:
        raise ExportError(f"trial {number} of {study.study_name!r} has no iteration "
                          f"{iteration}; its iterations: {ranges(done)}")
    return trial, iteration


def trial_model(study: optuna.Study, number: int, *, iteration: int | None = None,
                tracking_uri: str | None = None):
    """(Finished trial `number`'s pruned model after `iteration` (default: its last), an
    nn.Module with masks folded, rebuilt from the weights stored on its MLflow run, so that
    any machine reaching the stores can have it; that model's row). The only view that
    needs torch and MLflow: they are imported here, so that reading a study never does."""
    import tempfile

    import torch

    from prunesearch.stores.tracking import StudyTracker
    from prunesearch.training import models

    trial, iteration = finished_model(study, number, iteration)
    done = [figures["iteration"] for figures in TrialRecord.of(trial).curve]
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
