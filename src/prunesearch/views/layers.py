"""What a model is made of: per unit (a layer, or layers added together), what it kept of its
channels (structured methods) or weights, and the share its trial's allocation planned to
prune. Read from the trial's records (TrialRecord.allocation and .kept), so it needs no torch:
`prunesearch layers`, export's trial.json, and the study run's keep-ratio plot."""

import json
from pathlib import Path

from prunesearch.views.plots import COLOURS
from prunesearch.views.tables import columns


def rows(record, iteration: int) -> list[dict] | None:
    """Per unit of a trial (its TrialRecord) after `iteration`: name, its layers, kept, total
    and `amount`, the share of it the plan prunes by the schedule's end; None for a trial
    recorded before units were (no allocation in its record)."""
    if not record.allocation or len(record.kept) < iteration:
        return None
    kept = record.kept[iteration - 1]
    return [{"name": unit["name"], "layers": unit["layers"], "kept": left,
             "total": unit["total"], "amount": unit["share"]}
            for unit, left in zip(record.allocation["units"], kept)]


def to_table(found: list[dict], *, factor: float) -> str:
    body = [[row["name"], f"{row['kept']:,} / {row['total']:,}",
             f"{100 * row['kept'] / row['total']:.1f}", f"{100 * row['amount']:.1f}"]
            for row in found]
    table = columns(["unit", "kept / total", "kept %", "planned pruned %"], body,
                    align=["left", "right", "right", "right"])
    return table + (f"\nprojected onto the size budget: amounts x {factor:.4g}"
                    if factor != 1.0 else "")


def to_json(found: list[dict]) -> str:
    return json.dumps(found, indent=2)


def draw(path: Path, models: dict[str, list[dict]], *, title: str) -> None:
    """Keep ratios per unit, in network order, a line per model (its label -> its rows): the
    picture the AMC and MetaPruning papers show."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(max(7, 0.25 * max(map(len, models.values()))), 5))
    try:
        for k, (label, found) in enumerate(models.items()):
            axes.plot(range(len(found)), [100 * row["kept"] / row["total"] for row in found],
                      marker="o", markersize=3, label=label,
                      color=COLOURS[k] if k < len(COLOURS) else None)
        names = [row["name"] for row in next(iter(models.values()))]
        axes.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        axes.set(ylabel="kept (% of the unit's channels or weights)", ylim=(0, 105),
                 title=title)
        axes.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(path, dpi=120)
    finally:
        pyplot.close(figure)
