"""A sensitivity scan (pruning.sensitivity) as a user reads it: a table, JSON, and a plot of
validation accuracy against the amount pruned, a line per unit (PNG, and HTML with plotly)."""

import json
from pathlib import Path

from prunesearch.views.plots import COLOURS
from prunesearch.views.tables import columns


def to_table(units, amounts, dense_accuracy: float, *, shares=None, overall: float = 0.5) -> str:
    """Most sensitive first: per unit, its weights, accuracy at each amount, mean drop; and
    with `shares`, what allocation `sensitivity` would prune of it where the network loses
    `overall`, the most and least pruned units marked."""
    header = ["unit", "weights", *(f"{amount:.0%}" for amount in amounts), "mean drop"]
    body = [[unit.name, f"{unit.weights:,}", *(f"{100 * a:.2f}" for a in unit.accuracy),
             f"{100 * unit.drop(dense_accuracy):.2f}"] for unit in units]
    if shares is not None:
        header.append(f"allocated at {overall:.0%}")
        most, least = max(shares), min(shares)
        for row, share in zip(body, shares):
            mark = "" if most == least else " (most)" if share == most \
                else " (least)" if share == least else ""
            row.append(f"{share:.0%}{mark}")
    return columns(header, body, align=["left"] + ["right"] * (len(header) - 1))


def to_json(units, amounts, dense_accuracy: float, *, study: str, method: str) -> str:
    return json.dumps({"study": study, "method": method, "dense_val_accuracy": dense_accuracy,
                       "amounts": list(amounts),
                       "units": [{"unit": unit.name, "layers": list(unit.layers),
                                  "weights": unit.weights,
                                  "val_accuracy": list(unit.accuracy),
                                  "mean_drop": unit.drop(dense_accuracy)} for unit in units]},
                      indent=2)


def draw(path: Path, units, amounts, dense_accuracy: float, *, title: str) -> Path | None:
    """The plot at `path` (PNG), and the HTML page beside it (returned) where plotly is
    installed; the dense model's accuracy as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    x = [100 * amount for amount in amounts]
    figure, axes = pyplot.subplots(figsize=(8, 5))
    for k, unit in enumerate(units):
        axes.plot(x, [100 * a for a in unit.accuracy], marker="o", label=unit.name,
                  color=COLOURS[k] if k < len(COLOURS) else None,
                  linewidth=2 if k < 3 else 1)
    axes.axhline(100 * dense_accuracy, color="grey", linestyle="--", label="dense")
    axes.set(xlabel="pruned alone, without retraining (% of the unit)",
             ylabel="validation accuracy (%)", title=title)
    axes.legend(fontsize=7, ncol=2 if len(units) > 12 else 1)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    try:
        import plotly.graph_objects as go
    except ImportError:
        return None
    html = go.Figure([go.Scatter(x=x, y=[100 * a for a in unit.accuracy], mode="lines+markers",
                                 name=unit.name, hovertext=", ".join(unit.layers))
                      for unit in units])
    html.add_hline(y=100 * dense_accuracy, line_dash="dash", annotation_text="dense")
    html.update_layout(title=title, xaxis_title="pruned alone (% of the unit)",
                       yaxis_title="validation accuracy (%)")
    page = path.with_suffix(".html")
    html.write_html(page, include_plotlyjs=True)
    return page
