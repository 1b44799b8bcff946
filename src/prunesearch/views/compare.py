"""Several studies' fronts side by side (`prunesearch compare`): each study's models (every
iteration of its finished trials) seen on the axes the studies share, its front recomputed
there, one plot and one table."""

from pathlib import Path

from prunesearch.foundation import pareto
from prunesearch.views import tables
from prunesearch.config.objectives import OBJECTIVES, Objective, plot_axis

COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown")


def common_axis(objective_lists: list[list[str]]) -> Objective:
    """What every study puts against validation accuracy, the first it shares; sparsity when
    they share none (every trial records it)."""
    shared = [name for name in objective_lists[0] if name != "val_accuracy"
              and all(name in objectives for objectives in objective_lists)]
    return OBJECTIVES[shared[0]] if shared else plot_axis([])


def front_on(rows: list[dict], axis: Objective) -> list[dict]:
    """The rows no other row beats on both validation accuracy and `axis`, highest axis
    first."""
    optimal = pareto.optimal([(row["val_accuracy"], row[axis.column]) for row in rows])
    return sorted((rows[i] for i in optimal), key=lambda r: (-r[axis.column], r["trial"]))


def plot(fronts: dict[str, list[dict]], axis: Objective, path: Path) -> None:
    """Each study's front as a joined line, in one PNG."""
    with tables.accuracy_plot(path, axis,
                              f"Pareto fronts: validation accuracy vs {axis.column}") as ax:
        for (name, optimal), colour in zip(fronts.items(), COLOURS * len(fronts)):
            ordered = sorted(optimal, key=lambda r: r[axis.column])
            ax.plot([axis.scale * r[axis.column] for r in ordered],
                    [100 * r["val_accuracy"] for r in ordered], "o-", color=colour, label=name)


def plot_html(fronts: dict[str, list[dict]], axis: Objective, path: Path) -> bool:
    """The same, interactive (hover: trial and schedule), if plotly is installed."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        return False
    figure = go.Figure([
        go.Scatter(x=[axis.scale * r[axis.column] for r in sorted(rows, key=_x(axis))],
                   y=[100 * r["val_accuracy"] for r in sorted(rows, key=_x(axis))],
                   text=[f"{name} trial {r['trial']}<br>"
                         + "<br>".join(f"{k}: {v}" for k, v in r["params"].items())
                         for r in sorted(rows, key=_x(axis))],
                   mode="lines+markers", name=name, hoverinfo="text+x+y")
        for name, rows in fronts.items()])
    figure.update_layout(title=f"Pareto fronts: validation accuracy vs {axis.column}",
                         xaxis_title=axis.label, yaxis_title="validation accuracy (%)")
    figure.write_html(path, include_plotlyjs=True)
    return True


def _x(axis: Objective):
    return lambda row: row[axis.column]
