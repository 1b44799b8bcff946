"""What a study's MLflow run tells a reviewer at a glance: an overview in Markdown (what was
searched, the dense model, the current front and how to read it) and how the search goes as
metrics, at step = trials finished so far. Pure functions of the study's models (ModelRow);
tracking writes what they return."""

from prunesearch.config.objectives import Objective
from prunesearch.pruning.figures import unit
from prunesearch.views import tables
from prunesearch.views.rows import ModelRow

# Where "best validation accuracy at >= X" is read: fractions for sparsity and MACs
# reduction, ratios for the speed-up.
THRESHOLDS = {"fraction": (0.5, 0.8, 0.9, 0.95), "ratio": (1.5, 2.0, 3.0, 4.0)}


def hypervolume(front: list[ModelRow], axis: Objective, accuracy_from: float = 0.0) -> float:
    """The area the front dominates in (axis, validation accuracy), from (0, `accuracy_from`):
    one number that grows whenever the front gets better anywhere. Any rows will do: the
    dominated ones add nothing."""
    area, best = 0.0, accuracy_from
    for x, accuracy in sorted(((row.figure(axis.column), row.figures.val_accuracy)
                               for row in front), reverse=True):
        if accuracy > best:
            area += x * (accuracy - best)
            best = accuracy
    return area


def search_metrics(rows: list[ModelRow], front: list[ModelRow], counts: dict[str, int],
                   axis: Objective, feasibility=None) -> dict[str, float]:
    """The search's progress: trials by state, the front's size and hypervolume, models
    within and over the budgets (`feasibility`, study_view.Feasibility, where there are
    budgets), and the best validation accuracy among models reaching each threshold of the
    axis."""
    metrics = {"trials_complete": counts.get("COMPLETE", 0),
               "trials_stopped": counts.get("STOPPED", 0),
               "trials_failed": counts.get("FAIL", 0),
               "trials_queued": counts.get("WAITING", 0),
               "front_size": len(front), "front_hypervolume": hypervolume(front, axis)}
    if feasibility is not None and feasibility.budgets:
        metrics.update(models_within_budget=feasibility.within,
                       models_over_budget=feasibility.over)
    kind = unit(axis.column)
    for threshold in THRESHOLDS[kind]:
        reached = [row.figures.val_accuracy for row in rows
                   if row.figure(axis.column) >= threshold]
        if reached:
            shown = f"{threshold:g}x" if kind == "ratio" else f"{threshold:.0%}".rstrip("%")
            metrics[f"best_val_accuracy_{axis.column}_ge_{shown}"] = max(reached)
    return metrics


def overview(*, name: str, description: str, settings: dict[str, str], dense: dict | None,
             front: list[ModelRow], counts: dict[str, int], axis: Objective,
             feasibility=None) -> str:
    """The study run's description (MLflow shows it, as Markdown, on the run's Overview)."""
    lines = [f"**{name}**: {description}" if description else f"**{name}**", "",
             *(f"- {key}: {' '.join(value.split())}" for key, value in settings.items()), ""]
    if feasibility is not None and feasibility.budgets:
        stated = ", ".join(f"`{budget.describe()}`" for budget in feasibility.budgets)
        lines += [f"**Budgets** {stated}: {feasibility.within} models within, "
                  f"{feasibility.over} over; only models within enter the front.", ""]
        if feasibility.misses:
            lines += ["No model keeps every budget yet:", "",
                      *(f"- {miss}" for miss in feasibility.misses), ""]
    if dense:
        lines += [f"**Dense model**: validation {dense['val_accuracy']:.1%}, test "
                  f"{dense['test_accuracy']:.1%}, {dense['macs'] / 1e6:.1f} M MACs, "
                  f"{dense['params_remaining']:,} parameters.", ""]
    lines += [f"**Pareto front** after {counts.get('COMPLETE', 0)} complete trials "
              f"({counts.get('STOPPED', 0)} stopped early, {counts.get('FAIL', 0)} failed), "
              "over every iteration of every trial (each a model of its own, named "
              "trial.iteration): no other model has both a higher validation "
              f"accuracy and a higher {axis.column.replace('_', ' ')}. Models are selected on "
              "validation accuracy; "
              "test accuracy is reported, never selected on. Their runs carry the tag "
              "`prunesearch.pareto = true`; the plot is this run's image `pareto_front` (Model "
              "metrics), and the artifacts `pareto.html` (interactive) and `pareto.png`.", ""]
    if not front:
        return "\n".join(lines + ["No trial has finished yet."])
    return "\n".join(lines + [tables.overview_table(front, axis)])
