"""The commands that read a study's results, and never build a network or import torch: pareto,
best, compare, status, studies."""

from pathlib import Path

import click

from prunesearch.cli import STORAGE_OPTION, STUDY_HELP, study_name, main
from prunesearch.config import studyfile
from prunesearch.config.objectives import OBJECTIVES
from prunesearch.errors import PrunesearchError, StudyFileError


@main.command(epilog="""examples:

\b
  prunesearch pareto --study l1-iterative
  prunesearch pareto --study l1-iterative --format json > front.json
  prunesearch pareto --study compare-methods --all --iterations --format csv
  prunesearch pareto --study structured-filters --plot front.png
  prunesearch pareto --study smoke --storage postgresql://user:pw@db/prunesearch --format csv
""")
@click.option("--study", "study", required=True,
              help=STUDY_HELP + ", or the name of a study in the storage")
@STORAGE_OPTION
@click.option("--format", "output_format", type=click.Choice(["table", "json", "csv"]),
              default="table", show_default=True)
@click.option("--all", "every_trial", is_flag=True,
              help="every finished trial (stopped ones too), not only the Pareto-optimal models")
@click.option("--iterations", "per_iteration", is_flag=True,
              help="with --all: one row per prune-retrain iteration of each trial, not only "
                   "its last one")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="also write the Pareto plot to this PNG file, and an "
                                 "interactive FILE.html next to it when plotly is installed")
def pareto(study, storage, output_format, every_trial, per_iteration, plot_path):
    """Print the study's Pareto front (validation accuracy vs sparsity), sparsest first: over
    every iteration of every finished trial, each a model of its own (column iter).

    JSON and CSV give accuracies, sparsity and MACs removed as fractions in [0, 1]; the table
    in percent. Test accuracy is shown, never selected on.
    """
    from prunesearch.views import tables
    from prunesearch.views import study_view
    from prunesearch.stores import storage as storage_module

    name = study_name(study)
    loaded = storage_module.open_study(name, storage)
    rows = study_view.pareto_rows(loaded, every_trial=every_trial, per_iteration=per_iteration)
    if plot_path is not None:
        _write_plots(loaded, plot_path)
    formatter = {"table": tables.to_table, "json": tables.to_json, "csv": tables.to_csv}
    budgets = tables.feasibility_text(study_view.feasibility(loaded))
    if budgets and output_format == "table":  # JSON and CSV carry over_budget per row
        click.echo(budgets, err=True)
    if output_format == "table" and not rows:
        click.echo(f"study {name!r} has no finished trial yet" if not budgets else
                   f"study {name!r} has no model within its budgets yet", err=True)
        return
    click.echo(formatter[output_format](rows).rstrip("\n"))


@main.command(epilog="""examples:

\b
  prunesearch best --study l1-iterative
  prunesearch best --study structured-filters --by speedup
  prunesearch best --study structured-filters --by val_accuracy --format json
""")
@click.option("--study", "study", required=True,
              help=STUDY_HELP + ", or the name of a study in the storage")
@STORAGE_OPTION
@click.option("--by", "by", type=click.Choice(sorted(OBJECTIVES)),
              default=None, help="what the model maximises among those within the budgets  "
                                 "[default: the study's first objective after validation "
                                 "accuracy]")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]),
              default="table", show_default=True)
def best(study, storage, by, output_format):
    """The one model to ship: of every model within the study's budgets (every iteration of
    every finished trial), the one with the highest --by, validation accuracy breaking ties.
    Selected on validation figures; test accuracy is shown, never used. Exit 1 if no model
    is within the budgets yet."""
    from prunesearch.errors import ExportError
    from prunesearch.stores import storage as storage_module
    from prunesearch.views import study_view, tables

    name = study_name(study)
    loaded = storage_module.open_study(name, storage)
    by = by or next((objective for objective in loaded.metric_names or []
                     if objective != "val_accuracy"), "sparsity")
    row = study_view.best(loaded, by)
    feasibility = study_view.feasibility(loaded)
    if row is None:
        why = "; ".join(feasibility.misses) or f"no finished model has {by} measured within "\
                                               "the budgets"
        raise ExportError(f"study {name!r} has no model within its budgets to ship yet: {why}")
    if output_format == "json":
        import json

        click.echo(json.dumps(row.as_dict(), indent=2, allow_nan=False))
        return
    click.echo(tables.best_text(row, by, feasibility))


def _write_plots(study, path: Path) -> None:
    from prunesearch.config.objectives import joined, plot_axis
    from prunesearch.pruning.figures import IterationResult
    from prunesearch.stores.records import StudyRecord
    from prunesearch.views import plots, study_view

    dense = StudyRecord.of(study).dense
    objectives = study.metric_names or []
    html = plots.draw(path, {"Pareto front": study_view.pareto_rows(study)},
                      plot_axis(objectives), models=study_view.candidates(study),
                      dense=IterationResult.from_dict(dense) if dense else None,
                      joined=joined(objectives))
    _say_plots_written(path, html)


def _say_plots_written(path: Path, html: Path | None) -> None:
    click.echo(f"wrote {path}" + (f" and {html}" if html else
                                  " (pip install plotly for an interactive HTML version)"),
               err=True)


@main.command(epilog="""examples:

\b
  prunesearch compare l1-iterative global-l1 structured-filters
  prunesearch compare l1-iterative global-l1 --plot fronts.png --log-run
  prunesearch compare smoke l1-iterative --format json > fronts.json
""")
@click.argument("studies", nargs=-1, required=True)
@STORAGE_OPTION
@click.option("--format", "output_format", type=click.Choice(["table", "json"]),
              default="table", show_default=True)
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="also draw the fronts in this PNG file, and an interactive "
                                 "FILE.html next to it when plotly is installed")
@click.option("--log-run", is_flag=True,
              help="also log the table and plots to MLflow, as a run of the experiment "
                   "'prunesearch-compare' on the first study's tracking store")
def compare(studies, storage, output_format, plot_path, log_run):
    """The fronts of several studies side by side: each study's models (every iteration of
    every finished trial) on the axes they share (validation accuracy and their first common
    objective), its front there."""
    import tempfile

    from prunesearch.stores import storage as storage_module
    from prunesearch.stores.records import StudyRecord
    from prunesearch.views import compare as compare_module
    from prunesearch.views import plots, tables

    loaded = [storage_module.open_study(study_name(study), storage) for study in studies]
    axis = compare_module.common_axis([study.metric_names or [] for study in loaded])
    fronts = compare_module.fronts(loaded, axis)
    rows = [row for front in fronts.values() for row in front]
    if output_format == "json":
        click.echo(tables.to_json(rows))
    else:
        click.echo(f"fronts on validation accuracy and {axis.column}:")
        click.echo(tables.compare_table(rows, axis))
    if plot_path is not None:
        _say_plots_written(plot_path, plots.draw(plot_path, fronts, axis))
    if log_run:
        from prunesearch.stores import tracking

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            plots.draw(folder / "fronts.png", fronts, axis)
            (folder / "fronts.json").write_text(tables.to_json(rows))
            tracker = tracking.StudyTracker(StudyRecord.of(loaded[0]).mlflow_tracking_uri)
            run_id = tracker.log_comparison(list(fronts), folder)
        click.echo(f"logged to MLflow {tracker.uri}: experiment prunesearch-compare, run "
                   f"{run_id}", err=True)


@main.command(epilog="""examples:

\b
  prunesearch status --study l1-iterative
  prunesearch status --study smoke --storage postgresql://user:pw@db/prunesearch
""")
@click.option("--study", "study", required=True,
              help=STUDY_HELP + ", or the name of a study in the storage")
@STORAGE_OPTION
def status(study, storage):
    """Show a study's progress (completed of n_trials, failed, running, elapsed, time left),
    the dense model's accuracy and the current Pareto front."""
    from prunesearch.views import tables
    from prunesearch.views import study_view
    from prunesearch.stores import storage as storage_module

    name = study_name(study)
    click.echo(tables.status_text(name, study_view.status(storage_module.open_study(name, storage))))


def _description(path: Path) -> str:
    """The file's description, or why it is invalid: one bad local file must not hide the rest."""
    try:
        return studyfile.load(str(path)).description
    except StudyFileError as error:
        return f"INVALID: {error}"


@main.command(epilog="""examples:

\b
  prunesearch studies
  prunesearch studies --storage postgresql://user:pw@db/prunesearch
""")
@STORAGE_OPTION
def studies(storage):
    """List the study files available by name, and the studies in the storage with their
    trial counts."""
    from prunesearch.views import tables
    from prunesearch.views import study_view
    from prunesearch.stores import storage as storage_module

    files = [(path.stem, str(path), _description(path)) for path in studyfile.available()]
    click.echo("study files (--study NAME):")
    click.echo(tables.columns(["name", "file", "description"], files, indent=2))
    url = storage_module.resolve(storage)
    try:
        rows = study_view.progress(storage_module.open_storage(url, must_exist=True))
    except PrunesearchError:
        if storage is not None:
            raise
        click.echo(f"no study storage at {url} yet")
        return
    click.echo(f"studies in {url}:")
    header = ["study", *study_view.OUTCOMES]
    click.echo(tables.columns([h.lower() for h in header],
                              [[str(row[key]) for key in header] for row in rows], indent=2)
               if rows else "  none")


@main.command(epilog="""examples:

\b
  prunesearch layers --study structured-filters --trial 7
  prunesearch layers --study structured-filters --trial 7 --iteration 2 --format json
""")
@click.option("--study", "study", required=True,
              help=STUDY_HELP + ", or the name of a study in the storage")
@STORAGE_OPTION
@click.option("--trial", "number", type=int, required=True, help="the trial's number")
@click.option("--iteration", type=int, default=None,
              help="the model after this iteration  [default: the trial's last]")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]),
              default="table", show_default=True)
def layers(study, storage, number, iteration, output_format):
    """What one model is made of: per unit (a layer, or the layers added together in a
    residual sum), the channels (structured methods) or weights it kept of its total, and
    the share of it its trial's allocation planned to prune by the schedule's end."""
    from prunesearch.errors import ExportError
    from prunesearch.stores import storage as storage_module
    from prunesearch.stores.records import TrialRecord
    from prunesearch.views import layers as view
    from prunesearch.views import study_view

    loaded = storage_module.open_study(study_name(study), storage)
    trial, iteration = study_view.finished_model(loaded, number, iteration)
    record = TrialRecord.of(trial)
    found = view.rows(record, iteration)
    if found is None:
        raise ExportError(f"trial {number} was run before prunesearch recorded what each "
                          "unit kept; `prunesearch export` writes its layers' shapes to "
                          "trial.json (shapes)")
    click.echo(view.to_json(found) if output_format == "json"
               else view.to_table(found, factor=record.allocation["factor"]))
