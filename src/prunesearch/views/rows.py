"""One model a study produced, as every view reads it: a `ModelRow` (which trial, which
iteration, its schedule, its figures, its MLflow run), built here and only here from what a
trial stores; and how a figure is shown, read from the unit declared with it
(pruning.figures.unit)."""

import math
from dataclasses import dataclass, field

from prunesearch.pruning.figures import IterationResult, unit
from prunesearch.stores.records import TrialRecord


@dataclass(frozen=True)
class ModelRow:
    """Trial `trial`'s model after `iteration` (each iteration is a model of its own)."""

    study: str
    trial: int
    iteration: int
    schedule: dict  # the trial's Schedule as a dict: its sampled and fixed parameters
    figures: IterationResult
    mlflow_run_id: str | None
    stopped: bool  # early stopping ended the trial (its iterations so far are models)
    timed_on: str | None = None  # where its latency was timed (None: recorded before 2026-12)
    over_budget: dict = field(default_factory=dict)  # budget key -> excess (config.budgets)

    @property
    def label(self) -> str:
        """The model as plots and tables name it: trial.iteration, e.g. 7.2."""
        return f"{self.trial}.{self.iteration}"

    def figure(self, name: str) -> float:
        return self.figures.figure(name)

    def as_dict(self) -> dict:
        """The row as `pareto --format json` writes it (fractions in [0, 1], an unmeasured
        figure as None)."""
        return {"study": self.study, "trial": self.trial, "iteration": self.iteration,
                "params": self.schedule,
                **{name: _strict(self.figure(name)) for name in self.figures.names()},
                "timed_on": self.timed_on, "mlflow_run_id": self.mlflow_run_id,
                "stopped": self.stopped,
                "over_budget": {key: _strict(excess) for key, excess in self.over_budget.items()}}


def models_of(study_name: str, trial) -> list[ModelRow]:
    """Every model a finished trial produced: one row per iteration."""
    record = TrialRecord.of(trial)
    return [_row(study_name, trial, record, figures) for figures in record.curve]


def last_model(study_name: str, trial) -> ModelRow:
    """A finished trial's last model (the end of its schedule, or where it was stopped)."""
    record = TrialRecord.of(trial)
    return _row(study_name, trial, record, record.final or record.curve[-1])


def _row(study_name: str, trial, record: TrialRecord, figures: dict) -> ModelRow:
    return ModelRow(study=study_name, trial=trial.number, iteration=figures["iteration"],
                    schedule=record.schedule, figures=IterationResult.from_dict(figures),
                    mlflow_run_id=record.mlflow_run_id, stopped=record.stopped is not None,
                    timed_on=record.timed_on)


def scale(name: str) -> float:
    """What a figure is multiplied by to be shown: fractions in percent, the rest as is."""
    return 100.0 if unit(name) == "fraction" else 1.0


def shown(name: str, value: float, *, digits: int = 2) -> str:
    """A figure as tables show it: a fraction in percent without the sign ("61.23"), a ratio
    with an x ("1.52x"), a count with thousands separators; "-" if it was not measured."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    kind = unit(name)
    if kind == "fraction":
        return f"{100 * value:.{digits}f}"
    if kind == "ratio":
        return f"{value:.{digits}f}x"
    if kind == "count":
        return f"{round(value):,}"
    return f"{value:.{digits}f}"


def short_value(value) -> str:
    """A parameter as a table or a hover shows it: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _strict(value):
    """NaN (not measured), or an infinite excess over a budget on a figure not measured, as
    None, which every JSON reader accepts."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
