"""The one plot of fronts, validation accuracy against a study's other objective: a PNG
(matplotlib) and, where plotly is installed, an interactive HTML page beside it whose hover
names each model's schedule. `pareto --plot`, `compare --plot` and the study run's artifacts
all draw it."""

import math
from pathlib import Path

from prunesearch.config.objectives import Objective
from prunesearch.views.rows import ModelRow, scale, short_value

COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown")
HTML_COLOURS = ("crimson", "royalblue", "seagreen", "darkorange", "purple", "saddlebrown")


def draw(path: Path, fronts: dict[str, list[ModelRow]], axis: Objective, *,
         models: list[ModelRow] = (), dense=None, joined: bool = True) -> Path | None:
    """Each front in `fronts` (its legend label -> its rows) in its own colour, joined when
    `joined` (only when the plot shows every objective), each point labelled trial.iteration
    when there is one front; `models` (every candidate) in grey behind; the dense model (its
    IterationResult) as a star. Writes `path` (PNG) and returns the HTML page written next to
    it, or None without plotly."""
    title = (f"Pareto front{'s' if len(fronts) > 1 else ''}: validation accuracy vs "
             f"{axis.column}")
    _png(path, fronts, axis, models, dense, joined, title)
    return _html(path.with_suffix(".html"), fronts, axis, models, dense, joined, title)


def _x(axis: Objective):
    """Where a model is on the x axis, from its figures (an IterationResult)."""
    return lambda figures: scale(axis.column) * figures.figure(axis.column)


def _y(row: ModelRow) -> float:
    return 100 * row.figures.val_accuracy


def _spread(rows: list[ModelRow]) -> list[float] | None:
    """With repeats, error bars of one standard deviation of the validation accuracy."""
    values = [100 * row.figures.val_accuracy_std for row in rows]
    return None if all(math.isnan(v) for v in values) else values


def _png(path, fronts, axis, models, dense, joined, title) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    on_axis = _x(axis)
    x = lambda row: on_axis(row.figures)  # noqa: E731
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    try:
        if models:
            ax.errorbar([x(r) for r in models], [_y(r) for r in models],
                        yerr=_spread(models), fmt="o", markersize=4, color="0.65",
                        elinewidth=0.8, label="models (every iteration of every trial)")
        for (label, rows), colour in zip(fronts.items(), COLOURS * len(fronts)):
            ordered = sorted(rows, key=x)
            ax.errorbar([x(r) for r in ordered], [_y(r) for r in ordered],
                        yerr=_spread(ordered), fmt="o-" if joined else "o", color=colour,
                        capsize=3, label=label)
            if len(fronts) == 1:
                for row in ordered:
                    ax.annotate(row.label, (x(row), _y(row)), textcoords="offset points",
                                xytext=(4, 4), fontsize=7)
        if dense is not None:
            ax.scatter([on_axis(dense)], [100 * dense.val_accuracy], marker="*", s=150,
                       color="tab:blue", label="dense model", zorder=3)
        ax.set_xlabel(axis.label)
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def _html(path, fronts, axis, models, dense, joined, title) -> Path | None:
    try:
        import plotly.graph_objects as go
    except ImportError:
        return None
    on_axis = _x(axis)
    x = lambda row: on_axis(row.figures)  # noqa: E731

    def trace(rows, **style):
        return go.Scatter(
            x=[x(r) for r in rows], y=[_y(r) for r in rows], hoverinfo="text+x+y",
            text=[f"{r.study} model {r.label}<br>test {100 * r.figures.test_accuracy:.2f}%<br>"
                  + "<br>".join(f"{k}: {short_value(v)}" for k, v in r.schedule.items())
                  for r in rows], **style)

    traces = [trace(list(models), mode="markers", name="models",
                    marker={"color": "#aaaaaa"})] if models else []
    traces += [trace(sorted(rows, key=x), mode="lines+markers" if joined else "markers",
                     name=label, marker={"color": colour})
               for (label, rows), colour in zip(fronts.items(), HTML_COLOURS * len(fronts))]
    if dense is not None:
        traces.append(go.Scatter(x=[on_axis(dense)], y=[100 * dense.val_accuracy],
                                 mode="markers", name="dense model",
                                 marker={"symbol": "star", "size": 14, "color": "royalblue"}))
    figure = go.Figure(traces)
    figure.update_layout(title=title, xaxis_title=axis.label,
                         yaxis_title="validation accuracy (%)")
    figure.write_html(path, include_plotlyjs=True)
    return path
