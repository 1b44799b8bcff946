"""What the commands print: a study file's resolved settings, and models (ModelRow) as a
table, JSON and CSV. `write` is the one table writer: the Pareto front in a terminal, the
fronts `compare` puts side by side and the study run's Markdown overview are its columns.
JSON and CSV give fractions in [0, 1]; tables show each figure in its declared unit
(rows.shown)."""

import csv
import dataclasses
import io
import json
from collections.abc import Callable
from dataclasses import dataclass

from prunesearch.config import studyfile
from prunesearch.config.objectives import Objective
from prunesearch.foundation.fields import format_value
from prunesearch.pruning import methods
from prunesearch.pruning.figures import NOT_TIMED
from prunesearch.pruning.schedule import SPACE_FIELDS, structured_methods
from prunesearch.views.rows import ModelRow, short_value, shown


def study_summary(flight) -> str:
    """A study file checked by preflight (config.preflight.Preflight) as the user should read
    it: every setting, defaults filled in, the layers structured methods leave whole, how
    amounts are shared among units, and the search space with each parameter's kind."""
    spec = flight.spec
    lines = [f"{spec.path}: valid",
             f"study {spec.name}: {spec.n_trials} trials, sampler {spec.sampler}, seed {spec.seed},"
             f" maximise {' and '.join(spec.objectives)}, "
             + ("latency not timed" if studyfile.timed_device(spec) == NOT_TIMED
                else f"latency on {studyfile.timed_device(spec)} at batch "
                     f"{', '.join(map(str, spec.latency_batch_sizes))}")
             + (" (latency_device auto)" if spec.latency_device == "auto" else "")
             + "".join(f", {budget.describe()}" for budget in studyfile.study_budgets(spec))]
    stopping = ("" if spec.early_stopping == "none" else
                f" (reduction_factor {spec.reduction_factor}, first_rung_epochs "
                f"{spec.first_rung_epochs}, rung_point {spec.rung_point})")
    lines.append(f"trials: early_stopping {spec.early_stopping}{stopping}, "
                 f"repeats {spec.repeats}")
    for section in ("data", "model", "dense"):
        values = dataclasses.asdict(getattr(spec, section))
        lines.append(f"{section}: " + ", ".join(f"{key} {format_value(value)}"
                                                 for key, value in values.items()))
    lines.append(f"network: {flight.num_classes} classes, input 3 x {flight.image_size} x "
                 f"{flight.image_size}, {flight.dense_macs:,} MACs and {flight.dense_params:,} "
                 "parameters dense")
    structured = structured_methods(spec.space)
    if structured:
        unpruned = flight.unpruned
        lines.append(f"structured methods ({', '.join(structured)}): "
                     + (f"{len(unpruned)} of {flight.layers} layers left "
                        f"unpruned: {unpruned_text(unpruned)}" if unpruned else
                        "every conv and linear layer but the output layer can be pruned"))
    sharing = studyfile.allocations(spec)
    if sharing != ("uniform",) or spec.project_to_budget:
        stages = "" if not flight.stages else (
            f"; {flight.stages} stages" + (" by prefix" if spec.stages
                                            else " by spatial resolution")
            + ", each a stage_factor_K")
        lines.append(f"allocation: {', '.join(sharing)}{stages}; min_kept {spec.min_kept}; "
                     + ("each trial projected onto the size budget" if spec.project_to_budget
                        else "not projected"))
    lines.append("search space:")
    width = max(len(name) for name in SPACE_FIELDS)
    for name, described in studyfile.describe_space(spec).items():
        readers = methods.readers(name)
        only = f"  (only with {', '.join(readers)})" if name in methods.OPTION_FIELDS else ""
        lines.append(f"  {name:<{width}}  {described}{only}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[ModelRow], str]
    text: bool = False  # left-aligned words, not right-aligned figures


def write(rows: list[ModelRow], table: list[Column], *, markdown: bool = False) -> str:
    """`rows` in `table`'s columns: aligned for a terminal, or as a Markdown table."""
    header = [column.header for column in table]
    body = [[column.cell(row) for column in table] for row in rows]
    if markdown:
        return "\n".join(["| " + " | ".join(header) + " |",
                          "| " + " | ".join("---:" for _ in header[:-1]) + " | --- |",
                          *("| " + " | ".join(line) + " |" for line in body)])
    return columns(header, body, align=["left" if column.text else "right" for column in table])


def figure(name: str, header: str) -> Column:
    """A figure in its unit; with repeats, an accuracy as mean ± standard deviation."""
    def cell(row: ModelRow) -> str:
        value = shown(name, row.figure(name))
        spread = getattr(row.figures, f"{name}_std", None)
        return value if spread is None or shown(name, spread) == "-" else \
            f"{value}±{shown(name, spread)}"
    return Column(header, cell)


def axis_column(axis: Objective) -> Column:
    return figure(axis.column, f"{axis.column} {'%' if axis.scale == 100 else 'x'}")


MODEL = Column("model", lambda row: row.label)
VAL, TEST = figure("val_accuracy", "val acc %"), figure("test_accuracy", "test acc %")
SCHEDULE = Column("schedule", lambda row: " ".join(f"{k}={short_value(v)}"
                                                   for k, v in row.schedule.items()), text=True)


def to_table(rows: list[ModelRow]) -> str:
    """The front (or every model) for a terminal, a column per parameter; a trial stopped
    early is marked *."""
    params = list(dict.fromkeys(key for row in rows for key in row.schedule))
    batch = max((size for row in rows for size in row.figures.batch_sizes), default=None)
    table = write(rows, [
        Column("trial", lambda row: f"{row.trial}{'*' if row.stopped else ''}"),
        Column("iter", lambda row: str(row.iteration)),
        figure("sparsity", "sparsity %"), figure("macs_reduction", "MACs cut %"), VAL, TEST,
        figure("speedup", f"speedup b{batch}" if batch else "speedup"),
        *(Column(p, lambda row, p=p: short_value(row.schedule.get(p, "-"))) for p in params),
        *([Column("over budget", lambda row: ", ".join(row.over_budget) or "-", text=True)]
          if any(row.over_budget for row in rows) else [])])
    if any(row.stopped for row in rows):
        table += "\n* stopped early (its iterations so far are models of their own)"
    return table


def best_text(row: ModelRow, by: str, feasibility) -> str:
    """`prunesearch best`: the model, its figures, and the command that ships it."""
    within = (f" of {feasibility.within} models within budgets "
              f"{', '.join(budget.describe() for budget in feasibility.budgets)}"
              if feasibility.budgets else "")
    figures = ", ".join(f"{label} {shown(name, row.figure(name))}{unit}" for name, label, unit in (
        ("val_accuracy", "validation accuracy", "%"), ("test_accuracy", "test accuracy", "%"),
        ("sparsity", "sparsity", "%"), ("macs_reduction", "MACs removed", "%"),
        ("macs", "MACs", ""), ("params_remaining", "parameters", ""),
        ("speedup", f"speed-up at batch {max(row.figures.batch_sizes, default='-')}", ""),
        ("latency_ms", f"latency at batch {min(row.figures.batch_sizes, default='-')}", " ms"))
        if shown(name, row.figure(name)) != "-")
    return "\n".join([
        f"best by {by}{within}: trial {row.trial}, iteration {row.iteration} "
        f"({run_name(row.schedule)})",
        f"  {figures}",
        "  (selected on validation figures; test accuracy is reported, never selected on)",
        f"ship it: prunesearch export --study {row.study} --trial {row.trial} "
        f"--iteration {row.iteration} --format onnx --output {row.study}-{row.label}"])


def onnx_text(deployed: dict) -> str:
    """What `export --format onnx` proved, as trial.json's "onnx" records it."""
    return (f"ONNX (opset {deployed['opset']}): {deployed['bytes']:,} bytes (dense "
            f"{deployed['dense_bytes']:,}), {deployed['params']:,} parameters (dense "
            f"{deployed['dense_params']:,}); under ONNX Runtime test accuracy "
            f"{100 * deployed['test_accuracy']:.2f}%, logits within "
            f"{deployed['max_abs_difference_from_torch']:.1g} of PyTorch's; latency " +
            ", ".join(f"{deployed[f'latency_b{batch}_ms']:.3f} ms at batch {batch} "
                      f"({deployed[f'speedup_b{batch}']:.2f}x the dense model's)"
                      for batch in deployed["batch_sizes"]))


def feasibility_text(feasibility) -> str:
    """How many models keep the study's budgets; with none, what every model broke."""
    if not feasibility.budgets:
        return ""
    stated = ", ".join(budget.describe() for budget in feasibility.budgets)
    lines = [f"budgets {stated}: {feasibility.within} models within, {feasibility.over} over"]
    if feasibility.misses:
        lines += ["no model keeps every budget yet:", *(f"  {miss}" for miss in
                                                        feasibility.misses)]
    return "\n".join(lines)


def compare_table(rows: list[ModelRow], axis: Objective) -> str:
    """Several studies' fronts on their shared axis, one after the other."""
    return write(rows, [Column("study", lambda row: row.study, text=True), MODEL,
                        axis_column(axis), VAL,
                        TEST, SCHEDULE])


def overview_table(rows: list[ModelRow], axis: Objective) -> str:
    """The front in the study run's Markdown overview."""
    return write(rows, [MODEL, axis_column(axis), VAL, TEST,
                        Column("schedule", lambda row: run_name(row.schedule))], markdown=True)


def run_name(schedule: dict) -> str:
    """A trial's schedule in short, e.g. "l1_unstructured 35% x3 rewind", "gradual
    l1_unstructured to 80% over 10 ep" (with distillation, "... distil 0.5"): what a list of
    runs should say about each."""
    alpha = schedule.get("distill_alpha", 0)
    distilled = f" distil {alpha:.2g}" if alpha else ""
    if schedule.get("schedule") == "gradual":
        return (f"gradual {schedule['method']} to {float(schedule['final_sparsity']):.0%} "
                f"over {schedule['gradual_epochs']} ep{distilled}")
    return (f"{schedule['method']} {float(schedule['amount']):.0%} x{schedule['iterations']} "
            f"{schedule['reinit']}{distilled}")


def unpruned_text(unpruned: dict[str, str]) -> str:
    """Layers no structured method can prune, grouped by why."""
    reasons: dict[str, list[str]] = {}
    for name, reason in unpruned.items():
        reasons.setdefault(reason, []).append(name)
    return "; ".join(f"{', '.join(names)} ({reason})" for reason, names in reasons.items())


def to_json(rows: list[ModelRow]) -> str:
    return json.dumps([row.as_dict() for row in rows], indent=2, allow_nan=False)


def to_csv(rows: list[ModelRow]) -> str:
    params = sorted({key for row in rows for key in row.schedule})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = list(dict.fromkeys(name for row in rows for name in row.figures.names()))
    writer.writerow(["trial", "iteration", *names, *params, "over_budget"])
    for row in rows:
        writer.writerow([row.trial, row.iteration, *(row.figure(key) for key in names),
                         *(row.schedule.get(p, "") for p in params),
                         " ".join(row.over_budget)])
    return out.getvalue()


def status_text(name: str, status) -> str:
    """`prunesearch status`: progress, time, dense accuracy, then the front as a table."""
    counts = status.counts
    complete, stopped = counts.get("COMPLETE", 0), counts.get("STOPPED", 0)
    of = f" of {status.n_trials}" if status.n_trials is not None else ""
    lines = [f"study {name}: {complete + stopped}{of} trials finished ({complete} complete, "
             f"{stopped} stopped early), {counts.get('FAIL', 0)} failed, "
             f"{counts.get('RUNNING', 0)} running, {counts.get('WAITING', 0)} queued",
             f"elapsed {_duration(status.elapsed_s)}"
             + (f", about {_duration(status.left_s)} left" if status.left_s else "")]
    if status.dense:
        lines.append(f"dense model: val {shown('val_accuracy', status.dense['val_accuracy'])}%, "
                     f"test {shown('test_accuracy', status.dense['test_accuracy'])}%")
    if status.feasibility.budgets:
        lines.append(feasibility_text(status.feasibility))
    if status.front:
        lines += ["Pareto front:", to_table(status.front)]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def columns(header: list[str], body: list[list[str]], *, align: str | list[str] = "left",
            indent: int = 0) -> str:
    """Cells in aligned columns, two spaces apart; `align` "left" or "right", for all columns
    or each."""
    lines = [header, *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    aligns = [align] * len(header) if isinstance(align, str) else align
    pads = [str.rjust if a == "right" else str.ljust for a in aligns]
    return "\n".join(" " * indent + "  ".join(pad(cell, width) for cell, width, pad in
                                              zip(line, widths, pads)).rstrip()
                     for line in lines)
