"""The Pareto front as a table, JSON, CSV and a plot. Rows are plain dicts built by `study`:
{"trial", "params", "val_accuracy", "test_accuracy", "sparsity", "weights_remaining"},
accuracies and sparsity as fractions in [0, 1]."""

import csv
import io
import json
from pathlib import Path

FIGURES = ("sparsity", "val_accuracy", "test_accuracy")


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2)


def to_csv(rows: list[dict]) -> str:
    params = sorted({key for row in rows for key in row["params"]})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", *FIGURES, "weights_remaining", *params])
    for row in rows:
        writer.writerow([row["trial"], *(row[key] for key in FIGURES),
                         row["weights_remaining"], *(row["params"].get(p, "") for p in params)])
    return out.getvalue()


def to_table(rows: list[dict]) -> str:
    """Aligned columns for a terminal; figures in percent."""
    params = [key for key in rows[0]["params"]] if rows else []
    header = ["trial", "sparsity %", "val acc %", "test acc %", *params]
    body = [[str(row["trial"]), *(f"{100 * row[key]:.2f}" for key in FIGURES),
             *(_short(row["params"].get(p)) for p in params)] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths))
                     for line in [header, *body])


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def plot_pareto(all_rows: list[dict], front: list[dict], dense: dict | None, path: Path) -> None:
    """Validation accuracy against sparsity: every completed trial, the front highlighted and
    joined, the dense model as a reference point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    ax.scatter([100 * r["sparsity"] for r in all_rows], [100 * r["val_accuracy"] for r in all_rows],
               s=20, color="0.65", label="trials")
    ordered = sorted(front, key=lambda r: r["sparsity"])
    ax.plot([100 * r["sparsity"] for r in ordered], [100 * r["val_accuracy"] for r in ordered],
            "o-", color="tab:red", label="Pareto front")
    for row in ordered:
        ax.annotate(str(row["trial"]), (100 * row["sparsity"], 100 * row["val_accuracy"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=7)
    if dense is not None:
        ax.scatter([0], [100 * dense["val_accuracy"]], marker="*", s=150, color="tab:blue",
                   label="dense model", zorder=3)
    ax.set_xlabel("weight sparsity (% of conv + linear weights at zero)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Pareto front: validation accuracy vs sparsity")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
