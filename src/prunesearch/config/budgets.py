"""Budgets: limits a model must keep to count, stated in the study file.

A user rarely wants the whole front: they want "the sparsest model at most a point below the
dense one" or "the most accurate one under 20 M MACs". Each budget is a limit on one figure
of a model (an iteration of a trial, `pruning.figures.IterationResult`), absolute or relative to
the dense model's figure. A model that breaks one is infeasible: it never enters the front,
and the trial whose last model breaks one carries an Optuna constraint violation
(`trial.set_constraint`), which the TPE, NSGA-II and GP samplers learn from.
"""

import math
import re
from dataclasses import dataclass

from prunesearch.pruning.figures import unit

PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class Budget:
    """`key` (the study file's) limits `column` of a model to `limit`, or to `limit` x the
    dense model's figure when `relative`. `kind` says how a model is compared:
    "max" (at most), "min" (at least) or "drop" (at most this far below the dense figure)."""

    key: str
    column: str
    kind: str
    limit: float
    relative: bool = False

    def bound(self, dense) -> float:
        """The limit in the figure's own unit, for a study whose dense model is `dense`."""
        if self.kind == "drop":
            return dense.figure(self.column) - self.limit
        return self.limit * dense.figure(self.column) if self.relative else self.limit

    def excess(self, figures, dense) -> float:
        """How far `figures` is past the limit, as a fraction of the dense model's figure for
        counts and times (fractions as they are): <= 0 keeps the budget. NaN, an unmeasured
        figure, breaks it (validation refuses budgets on figures a study does not measure)."""
        value = figures.figure(self.column)
        if value is None or math.isnan(value):
            return math.inf
        over = (value - self.bound(dense)) if self.kind == "max" else (self.bound(dense) - value)
        scale = dense.figure(self.column) \
            if self.kind == "max" and unit(self.column) != "fraction" else 1.0
        return over / scale if scale else over

    def describe(self) -> str:
        """The budget as the study file says it, e.g. "max_macs = 50%"."""
        shown = f"{100 * self.limit:g}%" if self.relative else f"{self.limit:g}"
        return f"{self.key} = {shown}"


# key -> (figure it limits, how)
KEYS = {"accuracy_floor": ("val_accuracy", "min"),
        "max_accuracy_drop": ("val_accuracy", "drop"),
        "max_macs": ("macs", "max"),
        "max_params": ("params_remaining", "max"),
        "max_latency_ms": ("latency_ms", "max"),
        "max_speedup_noise": ("speedup_noise", "max")}
DEFAULT_SPEEDUP_NOISE = 0.5
"""max_speedup_noise of a study with the speedup objective that sets none. Measured on an idle
2-core CPU, a network timed against its own copy (benchmarks.latency noise, docs/performance.md)
comes to a median of 0.10-0.15 and at most 0.27 (CIFAR CNN, ConvNeXt-T; batch 1 and 64); the
erratic timings on record are near 1.0 (a DenseNet timed while the machine was disturbed, ONNX
Runtime with thread spinning on). Half way between: honest timings pass, erratic ones not."""


def make(key: str, value) -> Budget:
    """The budget `key = value` of a study file, already type-checked: a number, or for
    max_macs and max_params a percentage string of the dense model's figure."""
    column, kind = KEYS[key]
    if isinstance(value, str):
        return Budget(key, column, kind, float(PERCENT.match(value).group(1)) / 100,
                      relative=True)
    return Budget(key, column, kind, float(value))


def is_percent(value: str) -> bool:
    match = PERCENT.match(value)
    return bool(match) and 0 < float(match.group(1)) < 100


def of_settings(settings: dict[str, str]) -> list[Budget]:
    """The budgets of a study as its recorded settings (`studyfile.fingerprint`) spell them,
    so that every command reads the budgets the study ran under, not today's file."""
    found = []
    for key in KEYS:
        value = settings.get(key, "unset")
        if value != "unset":
            found.append(make(key, value if value.endswith("%") else float(value)))
    return found


def violations(figures, dense, budgets: list[Budget]) -> dict[str, float]:
    """The budgets `figures` breaks, each with its excess (see Budget.excess)."""
    found = {}
    for budget in budgets:
        excess = budget.excess(figures, dense)
        if excess > 0:
            found[budget.key] = excess
    return found


def closest_misses(models: list, dense, budgets: list[Budget]) -> list[str]:
    """For a study where no model keeps every budget: per budget, how many models broke it
    and the nearest one's figure against the limit (what to relax, and by how much)."""
    lines = []
    for budget in budgets:
        broke = [m for m in models if budget.excess(m, dense) > 0]
        if not broke:
            continue
        nearest = min(broke, key=lambda m: budget.excess(m, dense))
        lines.append(f"{budget.describe()}: {len(broke)} of {len(models)} models broke it; "
                     f"the nearest has {budget.column} {_shown(nearest.figure(budget.column))}"
                     f" against a limit of {_shown(budget.bound(dense))}")
    return lines


def _shown(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
