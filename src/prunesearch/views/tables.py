"""What the commands print: a study file's resolved settings, and the Pareto front as a table,
JSON, CSV and a plot. Front rows are plain dicts built by `results`: {"trial", "params",
"mlflow_run_id"} and every name of loop.FIGURES; accuracies, sparsity and MACs reduction are
fractions in [0, 1], speed-ups ratios."""

import contextlib
import csv
import dataclasses
import io
import json
import math
from pathlib import Path

from prunesearch.pruning import costs
from prunesearch.pruning import methods
from prunesearch.config import studyfile
from prunesearch.pruning.loop import FIGURES
from prunesearch.config.objectives import OBJECTIVES, Objective
from prunesearch.pruning.schedule import SPACE_FIELDS
from prunesearch.foundation.fields import format_value



def study_summary(spec) -> str:
    """A validated StudySpec as the user should read it: every setting, defaults filled in,
    and the search space with each parameter's kind."""
    lines = [f"{spec.path}: valid",
             f"study {spec.name}: {spec.n_trials} trials, sampler {spec.sampler}, seed {spec.seed},"
             f" maximise {' and '.join(spec.objectives)}, "
             + ("latency not timed" if spec.latency_device == costs.NOT_TIMED
                else f"latency on {spec.latency_device}")
             + (f", validation accuracy >= {spec.accuracy_floor}"
                if spec.accuracy_floor is not None else "")]
    stopping = ("" if spec.early_stopping == "none" else
                f" (reduction_factor {spec.reduction_factor}, first_rung_epochs "
                f"{spec.first_rung_epochs}, rung_point {spec.rung_point})")
    lines.append(f"trials: early_stopping {spec.early_stopping}{stopping}, "
                 f"repeats {spec.repeats}")
    for section in ("data", "model", "dense"):
        values = dataclasses.asdict(getattr(spec, section))
        lines.append(f"{section}: " + ", ".join(f"{key} {format_value(value)}"
                                                 for key, value in values.items()))
    lines.append("search space:")
    width = max(len(name) for name in SPACE_FIELDS)
    for name, described in studyfile.describe_space(spec).items():
        readers = methods.readers(name)
        only = f"  (only with {', '.join(readers)})" if name in methods.OPTION_FIELDS else ""
        lines.append(f"  {name:<{width}}  {described}{only}")
    return "\n".join(lines)


def strict(value):
    """A figure that was not measured (NaN, e.g. train_loss without retraining or latency with
    latency_device "none") as null, which every JSON reader accepts (NaN is not JSON)."""
    return None if isinstance(value, float) and math.isnan(value) else value


def to_json(rows: list[dict]) -> str:
    return json.dumps([{key: strict(value) for key, value in row.items()} for row in rows],
                      indent=2, allow_nan=False)


def to_csv(rows: list[dict]) -> str:
    params = sorted({key for row in rows for key in row["params"]})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", "iteration", *FIGURES, *params])
    for row in rows:
        writer.writerow([row["trial"], row["iteration"], *(row[key] for key in FIGURES),
                         *(row["params"].get(p, "") for p in params)])
    return out.getvalue()


def to_table(rows: list[dict]) -> str:
    """Aligned columns for a terminal; fractions in percent, speed-up as a ratio; with
    repeats, accuracies as mean ± standard deviation. A trial stopped early is marked *."""
    params = list(dict.fromkeys(key for row in rows for key in row["params"]))
    header = ["trial", "iter", "sparsity %", "MACs cut %", "val acc %", "test acc %",
              "speedup b64", *params]
    body = [[str(row["trial"]) + ("*" if row.get("stopped") else ""), str(row["iteration"]),
             f"{100 * row['sparsity']:.2f}", f"{100 * row['macs_reduction']:.2f}",
             _accuracy(row, "val_accuracy"), _accuracy(row, "test_accuracy"),
             "-" if math.isnan(row["speedup_b64"]) else f"{row['speedup_b64']:.2f}x",
             *(short_value(row["params"].get(p, "-")) for p in params)]
            for row in rows]
    table = columns(header, body, align="right")
    if any(row.get("stopped") for row in rows):
        table += "\n* stopped early (its iterations so far are models of their own)"
    return table


def _accuracy(row: dict, key: str) -> str:
    spread = row.get(f"{key}_std", math.nan)
    shown = f"{100 * row[key]:.2f}"
    return shown if math.isnan(spread) else f"{shown}±{100 * spread:.2f}"


def status_text(name: str, status) -> str:
    """`prunesearch status`: progress, time, dense accuracy, then the front as a table."""
    counts = status.counts
    complete, stopped = counts.get("COMPLETE", 0), counts.get("STOPPED", 0)
    of = f" of {status.budget}" if status.budget is not None else ""
    lines = [f"study {name}: {complete + stopped}{of} trials finished ({complete} complete, "
             f"{stopped} stopped early), {counts.get('FAIL', 0)} failed, "
             f"{counts.get('RUNNING', 0)} running, {counts.get('WAITING', 0)} queued",
             f"elapsed {_duration(status.elapsed_s)}"
             + (f", about {_duration(status.left_s)} left" if status.left_s else "")]
    if status.dense:
        lines.append(f"dense model: val {100 * status.dense['val_accuracy']:.2f}%, "
                     f"test {100 * status.dense['test_accuracy']:.2f}%")
    if status.front:
        lines += ["Pareto front:", to_table(status.front)]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def plot_pareto_html(all_rows: list[dict], front: list[dict], dense: dict | None, path: Path,
                     x_axis: Objective = OBJECTIVES["sparsity"], joined: bool = True) -> bool:
    """The same plot, interactive (hover shows each trial's schedule), if plotly is
    installed; returns whether it was written."""
    try:
        import plotly.graph_objects as go
    except ImportError:
        return False

    def trace(rows, **style):
        return go.Scatter(
            x=[x_axis.scale * r[x_axis.column] for r in rows],
            y=[100 * r["val_accuracy"] for r in rows],
            text=[f"trial {r['trial']} iteration {r['iteration']}<br>"
                  f"test {100 * r['test_accuracy']:.2f}%<br>"
                  + "<br>".join(f"{k}: {short_value(v)}" for k, v in r["params"].items())
                  for r in rows], hoverinfo="text+x+y", **style)

    figure = go.Figure([
        trace(all_rows, mode="markers", name="trials", marker={"color": "#aaaaaa"}),
        trace(sorted(front, key=lambda r: r[x_axis.column]),
              mode="lines+markers" if joined else "markers",
              name="Pareto front", marker={"color": "crimson"})])
    if dense is not None:
        figure.add_trace(go.Scatter(x=[x_axis.scale * dense[x_axis.column]],
                                    y=[100 * dense["val_accuracy"]], mode="markers",
                                    name="dense model",
                                    marker={"symbol": "star", "size": 14, "color": "royalblue"}))
    figure.update_layout(title=f"Pareto front: validation accuracy vs {x_axis.column}",
                         xaxis_title=x_axis.label, yaxis_title="validation accuracy (%)")
    figure.write_html(path, include_plotlyjs=True)
    return True


def columns(header: list[str], body: list[list[str]], *, align: str = "left",
            indent: int = 0) -> str:
    """Cells in aligned columns, two spaces apart."""
    lines = [header, *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    pad = str.rjust if align == "right" else str.ljust
    return "\n".join(" " * indent + "  ".join(pad(cell, width) for cell, width in
                                              zip(line, widths)).rstrip()
                     for line in lines)


def label(row: dict) -> str:
    """A model as plots name it: trial.iteration, e.g. 7.2."""
    return f"{row['trial']}.{row['iteration']}"


def short_value(value) -> str:
    """A parameter as a table shows it: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot_pareto(all_rows: list[dict], front: list[dict], dense: dict | None, path: Path,
                x_axis: Objective = OBJECTIVES["sparsity"], joined: bool = True) -> None:
    """Validation accuracy against `x_axis`: every model (each iteration of each finished
    trial), the front highlighted (and joined when `joined`), labelled trial.iteration, the
    dense model as a reference point."""

    def x(row):
        return x_axis.scale * row[x_axis.column]

    def spread(rows):  # with repeats: error bars of one standard deviation
        values = [100 * r.get("val_accuracy_std", math.nan) for r in rows]
        return None if all(math.isnan(v) for v in values) else values

    title = f"Pareto front: validation accuracy vs {x_axis.column}"
    with accuracy_plot(path, x_axis, title) as ax:
        ax.errorbar([x(r) for r in all_rows], [100 * r["val_accuracy"] for r in all_rows],
                    yerr=spread(all_rows), fmt="o", markersize=4, color="0.65",
                    elinewidth=0.8, label="models (every iteration of every trial)")
        ordered = sorted(front, key=x)
        ax.errorbar([x(r) for r in ordered], [100 * r["val_accuracy"] for r in ordered],
                    yerr=spread(ordered), fmt="o-" if joined else "o", color="tab:red",
                    capsize=3, label="Pareto front")
        for row in ordered:
            ax.annotate(label(row), (x(row), 100 * row["val_accuracy"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
        if dense is not None:
            ax.scatter([x(dense)], [100 * dense["val_accuracy"]], marker="*", s=150,
                       color="tab:blue", label="dense model", zorder=3)


@contextlib.contextmanager
def accuracy_plot(path: Path, x_axis: Objective, title: str):
    """A PNG of validation accuracy (%) against `x_axis`: yields the axes to draw on, then
    labels and writes them, so every plot of fronts looks the same."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    try:
        yield ax
        ax.set_xlabel(x_axis.label)
        ax.set_ylabel("validation accuracy (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
