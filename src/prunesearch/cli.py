"""The `prunesearch` command. User errors become one line on stderr and a non-zero exit."""

import logging
import os
import signal
from pathlib import Path

import click

from prunesearch.config import studyfile
from prunesearch.config.objectives import OBJECTIVES
from prunesearch.pruning.methods import REGISTRY
from prunesearch.errors import PrunesearchError, StudyFileError
from prunesearch.stores import outages


class _Group(click.Group):
    """Turns PrunesearchError, and a bad option of a command, into one line and its exit code,
    never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            path = error.ctx.command_path.split(" ", 1) if error.ctx else []
            where = f"{path[1]}: " if len(path) == 2 else ""
            click.echo(f"error: {where}{error.format_message()}", err=True)
            ctx.exit(error.exit_code)
        except PrunesearchError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            from prunesearch.foundation import interrupts

            click.echo("interrupted: a trial that was running, if any, is marked failed and "
                       "queued to run again; run the same command to resume", err=True)
            ctx.exit(interrupts.exit_code())


@click.group(cls=_Group, epilog="""examples:

\b
  prunesearch optimize --study l1-iterative
  prunesearch status --study l1-iterative
  prunesearch pareto --study l1-iterative --plot front.png
  prunesearch export --study l1-iterative --trial 7 --output t7
  prunesearch ui --study l1-iterative

exit codes: 0 done, 1 runtime error (storage, data, export), 2 bad study file or option,
130 stopped by Ctrl-C, 143 by SIGTERM (run the same command again to resume).
""")
@click.version_option(package_name="prunesearch")
def main():
    """Search pruning schedules for a CIFAR-10 CNN with Optuna; review them in MLflow."""


def entry() -> None:
    """The `prunesearch` command as a process (the console script, `python -m prunesearch`).

    After a stop, once the command has ended its trial and its runs, the process leaves
    without the interpreter's teardown of torch and MLflow, which takes about a second on
    its own: a stop is honoured within one. Every store write is committed by then."""
    import sys

    from prunesearch.foundation import interrupts

    try:
        main()
    except SystemExit as end:
        if interrupts.requested() and end.code == interrupts.exit_code():
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(end.code)
        raise


class _EchoHandler(logging.Handler):
    """Log records to the current stderr (looked up at each record, as Click's test runner
    swaps streams)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _configure_logging(prefix: str = "") -> None:
    """Progress lines on stderr: one per dense epoch, per trial iteration and per trial;
    `prefix` tells apart the workers of --jobs."""
    logger = logging.getLogger("prunesearch")
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        handler = _EchoHandler()
        handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # we print our own trial lines


STUDY_HELP = "a study name (studies/NAME.toml here, else shipped) or a path to a .toml file"


def data_dir_option(purpose: str):
    """--data-dir, shared by the commands that read CIFAR-10; `purpose` says what for."""
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
        envvar="PRUNESEARCH_DATA_DIR", show_envvar=True,
        help=f"{purpose}  [default: ~/.cache/prunesearch/data]")


STORAGE_OPTION = click.option(
    "--storage", default=None, envvar="PRUNESEARCH_STORAGE", show_envvar=True,
    help="Optuna storage URL  [default: sqlite:///prunesearch.db in the working directory]")


def tracking_uri_option(what: str = "MLflow tracking URI",
                        default: str = "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the "
                                       "working directory"):
    """--tracking-uri, shared by the commands that reach MLflow; `what` and `default` as each
    reads it."""
    return click.option("--tracking-uri", default=None, help=f"{what}  [default: {default}]")


def device_option(purpose: str):
    """--device, shared by the commands that train or evaluate; `purpose` says what for."""
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                        show_default=True, help=purpose)


CACHE_DIR_OPTION = click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    envvar="PRUNESEARCH_CACHE_DIR", show_envvar=True,
    help="where trained dense models are cached  [default: ~/.cache/prunesearch/dense]")


@main.command(epilog="""examples:

\b
  prunesearch optimize --study l1-iterative
  prunesearch optimize --study smoke --data-dir ../shared/data/cifar10-subset
  prunesearch optimize --study my.toml --n-trials 50 --timeout 3600
""")
@click.option("--study", "study", required=True, help=STUDY_HELP)
@click.option("--n-trials", type=click.IntRange(min=1), default=None,
              help="completed trials to reach in total (overrides the study file's n_trials)")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="stop starting new trials after this many seconds")
@STORAGE_OPTION
@tracking_uri_option()
@data_dir_option("folder holding (or receiving) cifar-10-batches-py")
@CACHE_DIR_OPTION
@device_option("where to train")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="worker processes on this machine, the CPU cores split between them")
@click.option("--allow-spec-change", is_flag=True,
              help="resume the study even though its file's search space, data, model or "
                   "dense settings changed (objectives may not change)")
@click.option("--outage-wait", "outage_wait_s", type=click.FloatRange(min=0),
              default=outages.DEFAULT_WAIT_S,
              show_default=True, envvar="PRUNESEARCH_OUTAGE_WAIT", show_envvar=True,
              help="seconds to keep retrying an unreachable study database or MLflow server "
                   "before the worker stops")
def optimize(study, jobs, **options):
    """Run (or resume) a study until it has n_trials complete trials."""
    from prunesearch.config import preflight

    flight = preflight.run(studyfile.load(study))
    from prunesearch.search import workers

    label = workers.worker_label()
    _configure_logging(prefix=f"[worker {label}] " if label else "")
    from prunesearch.foundation import interrupts
    from prunesearch.views import tables
    from prunesearch.views import study_view
    from prunesearch.search import optimize as study_module

    interrupts.install()
    settings = run_settings(flight.spec, **options)
    rows = study_view.pareto_rows(study_module.optimize(flight, settings, jobs=jobs))
    if rows:
        click.echo(tables.to_table(rows))


def run_settings(spec, *, n_trials, timeout, storage, tracking_uri, data_dir, cache_dir,
                 device, allow_spec_change, outage_wait_s):
    """`optimize`'s options, defaults resolved, as the RunSettings its workers get too."""
    from prunesearch.training import data
    from prunesearch.search import dense
    from prunesearch.stores import storage as storage_module
    from prunesearch.stores import tracking
    from prunesearch.search.optimize import RunSettings

    return RunSettings(
        study=spec.path.resolve(), n_trials=n_trials or spec.n_trials, timeout=timeout,
        storage_url=storage_module.resolve(storage),
        tracking_uri=tracking.resolve_uri(tracking_uri),
        data_dir=(data_dir or data.default_data_dir()).resolve(),
        cache_dir=(cache_dir or dense.default_cache_dir()).resolve(), device=device,
        allow_spec_change=allow_spec_change, outage_wait_s=outage_wait_s)


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

    name = _study_name(study)
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

    name = _study_name(study)
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

    loaded = [storage_module.open_study(_study_name(study), storage) for study in studies]
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
  prunesearch sensitivity --study resnet56-filters
  prunesearch sensitivity --study l1-iterative --method global_l1 --amounts 0.5 0.9
""")
@click.option("--study", "study", required=True, help=STUDY_HELP)
@click.option("--method", default=None, type=click.Choice(sorted(REGISTRY)),
              help="the pruning method  [default: the study's; of a list, the first]")
@click.option("--amounts", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              multiple=True, default=(0.1, 0.3, 0.5, 0.7, 0.9), show_default=True,
              help="fractions of each unit pruned (repeat the option for several)")
@click.option("--output", "output_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="folder for sensitivity.txt, .json, .png and .html  "
                                 "[default: sensitivity-STUDY]")
@tracking_uri_option()
@data_dir_option("folder holding (or receiving) cifar-10-batches-py")
@CACHE_DIR_OPTION
@device_option("where to evaluate")
def sensitivity(study, method, amounts, output_dir, tracking_uri, data_dir, cache_dir, device):
    """Which layers tolerate pruning: from the study's dense model (trained and cached first
    if need be), each unit pruned alone, without retraining, to each amount and scored on the
    validation split; a unit is a layer for unstructured methods, a group of layers whose
    channels are one (a residual stage counts once) for structured ones. Most sensitive
    first; table, JSON and plots written and logged to the study's MLflow experiment."""
    from prunesearch.foundation import interrupts
    from prunesearch.pruning.schedule import Fixed
    from prunesearch.search import dense
    from prunesearch.search import sensitivity as sensitivity_module
    from prunesearch.stores import tracking
    from prunesearch.training import data
    from prunesearch.training.train import resolve_device

    from prunesearch.config import preflight

    spec = preflight.run(studyfile.load(study)).spec
    _configure_logging()
    interrupts.install()
    searched = spec.space["method"]
    method = method or (searched.value if isinstance(searched, Fixed) else searched.choices[0])
    report = sensitivity_module.run(
        spec, method=method, amounts=sorted(set(amounts)),
        data_dir=(data_dir or data.default_data_dir()).resolve(),
        cache_dir=(cache_dir or dense.default_cache_dir()).resolve(),
        device=resolve_device(device), output_dir=output_dir or Path(f"sensitivity-{spec.name}"),
        tracking_uri=tracking.resolve_uri(tracking_uri))
    click.echo(f"{spec.name}: {method}, each unit pruned alone, validation accuracy (%), most "
               "sensitive first")
    click.echo(report.table)
    click.echo(f"wrote {', '.join(str(path) for path in report.files)}; logged to MLflow run "
               f"{report.run_id}", err=True)


@main.command(epilog="""examples:

\b
  prunesearch validate --study l1-iterative
  prunesearch validate --study my-study.toml
""")
@click.option("--study", "study", required=True, help=STUDY_HELP)
def validate(study):
    """Check a study file and print its resolved settings and search space; exit 2 if bad."""
    from prunesearch.config import preflight
    from prunesearch.views import tables

    click.echo(tables.study_summary(preflight.run(studyfile.load(study))))


@main.command(epilog="""examples:

\b
  prunesearch status --study l1-iterative
  prunesearch status --study smoke --storage postgresql://user:pw@db/prunesearch
""")
@click.option("--study", "study", required=True,
              help=STUDY_HELP + ", or the name of a study in the storage")
@STORAGE_OPTION
def status(study, storage):
    """Show a study's progress (completed of budget, failed, running, elapsed, time left),
    the dense model's accuracy and the current Pareto front."""
    from prunesearch.views import tables
    from prunesearch.views import study_view
    from prunesearch.stores import storage as storage_module

    name = _study_name(study)
    click.echo(tables.status_text(name, study_view.status(storage_module.open_study(name, storage))))


@main.command(epilog="""examples:

\b
  prunesearch export --study structured-filters --trial 12 --output trial-12
  prunesearch export --study l1-iterative --trial 7 --iteration 2 --output t7-2
  prunesearch export --study l1-iterative --trial 3 --output /models/l1-t3 --data-dir /data/cifar10
  prunesearch export --study l1-iterative --trial 3 --output l1-t3 --register cifar-cnn-pruned
""")
@click.option("--study", "study", required=True,
              help=STUDY_HELP + ", or the name of a study in the storage")
@click.option("--trial", "number", type=click.IntRange(min=0), required=True,
              help="the trial's number (as `prunesearch pareto` lists them)")
@click.option("--iteration", type=click.IntRange(min=1), default=None,
              help="the model after this prune-retrain iteration (column iter of `prunesearch "
                   "pareto`)  [default: the trial's last]")
@click.option("--output", "output_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="folder to write the model, state_dict.pt and trial.json to")
@click.option("--format", "model_format", type=click.Choice(["pt2", "onnx"]), default="pt2",
              show_default=True,
              help="pt2: model.pt2 (torch.export); onnx: model.onnx, checked under ONNX "
                   "Runtime against PyTorch and timed against the dense model there")
@STORAGE_OPTION
@tracking_uri_option("MLflow tracking URI holding the trial's weights",
                     default="the one the study recorded")
@data_dir_option("CIFAR-10 folder, for the test-accuracy check")
@click.option("--register", "registered_name", default=None, metavar="NAME",
              help="also log the model as an MLflow PyTorch model on the trial's run and "
                   "register it as a new version of NAME in the Model Registry")
def export(study, number, iteration, output_dir, model_format, storage, tracking_uri, data_dir,
           registered_name):
    """Write trial N's pruned model (after its last iteration, or --iteration K), genuinely
    smaller when structured, loadable with plain torch; its test accuracy is checked against
    the recorded one first."""
    from prunesearch.search import shipping
    from prunesearch.stores import storage as storage_module
    from prunesearch.training import data
    from prunesearch.views import tables

    name = _study_name(study)
    shipped = shipping.ship(
        storage_module.open_study(name, storage), number, iteration=iteration,
        output_dir=output_dir, model_format=model_format, tracking_uri=tracking_uri,
        data_dir=data_dir or data.default_data_dir(), registered_name=registered_name)
    summary = shipped.summary
    layers = ", ".join(str(shape[0]) for shape in summary["layers"].values())
    click.echo(f"trial {number} iteration {shipped.iteration} of {name}: test accuracy "
               f"{summary['test_accuracy_measured']:.2%} (recorded "
               f"{summary['test_accuracy_recorded']:.2%}); output channels per layer {layers}; "
               f"written to {output_dir}/ (model.{model_format}, state_dict.pt, trial.json)")
    if summary.get("onnx"):
        click.echo(tables.onnx_text(summary["onnx"]))
    if shipped.registered:
        uri, version = shipped.registered
        click.echo(f"registered as version {version} of {registered_name!r} in {uri}; "
                   f"load it with mlflow.pytorch.load_model('models:/{registered_name}/{version}')")


@main.command(epilog="""examples:

\b
  prunesearch ui
  prunesearch ui --study l1-iterative --port 5001
  prunesearch ui --tracking-uri postgresql://user:pw@db/mlflow --host 0.0.0.0
""")
@click.option("--study", "study", default=None,
              help=STUDY_HELP + ", or a stored study name: open on its tracking store and "
                                "print the address of its run (the front, on its Overview)")
@STORAGE_OPTION
@tracking_uri_option(default="the study's, else $MLFLOW_TRACKING_URI, else "
                             "sqlite:///mlflow.db in the working directory")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (0.0.0.0: every interface)")
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
def ui(study, storage, tracking_uri, host, port):
    """Start the MLflow UI on a study's tracking store (Ctrl-C stops it)."""
    import subprocess
    import sys

    from prunesearch.foundation import interrupts
    from prunesearch.stores import storage as storage_module
    from prunesearch.stores import tracking
    from prunesearch.stores.records import StudyRecord
    from prunesearch.views import mlflow_pages

    base = f"http://{host}:{port}"
    pages = {"experiments": f"{base}/#/?{mlflow_pages.MODEL_TRAINING}"}
    if study is not None:
        loaded = storage_module.open_study(_study_name(study), storage)
        record = StudyRecord.of(loaded)
        tracking_uri = tracking_uri or record.mlflow_tracking_uri
        tracker = tracking.StudyTracker(tracking.resolve_uri(tracking_uri))
        experiment = tracker.experiment_id_of(loaded.study_name)
        if experiment is not None and record.mlflow_parent_run_id:
            # Studies run before the view existed get it here.
            tracker.share_view(experiment, mlflow_pages.VIEW_TAG, mlflow_pages.runs_view(
                parent_run_id=record.mlflow_parent_run_id,
                objectives=loaded.metric_names or ["val_accuracy", "sparsity"],
                params=sorted({name for trial in loaded.get_trials(deepcopy=False)
                               for name in trial.params})))
            pages = mlflow_pages.addresses(base, experiment, record.mlflow_parent_run_id)
    uri = tracking.resolve_uri(tracking_uri)
    if not _loopback(host):
        click.echo(f"warning: the MLflow UI on {host} has no authentication: anyone who can "
                   f"reach port {port} can read, delete and register this study's runs and "
                   "models; on a shared network, serve it with MLflow's basic-auth app "
                   f"instead (`mlflow server --app-name basic-auth --backend-store-uri {uri}`)"
                   " or behind a proxy that authenticates", err=True)
    click.echo(f"MLflow UI on {uri}; open", err=True)
    for what, address in pages.items():
        click.echo(f"  {what + ':':<13} {address}", err=True)
    if "front chart" in pages:
        click.echo("  the front's plot: the study run's Model metrics (image pareto_front), or "
                   "its artifacts pareto.html and pareto.png", err=True)
    server = tracking.start_ui(uri, host=host, port=port)
    # Both signals, explicitly: a command started in the background gets SIGINT ignored.
    interrupts.install()
    try:
        while server.poll() is None:
            interrupts.sleep(0.2)
        sys.exit(server.returncode)
    except KeyboardInterrupt:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=UI_STOP_S)
        except subprocess.TimeoutExpired:  # its workers still finishing requests
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        click.echo("MLflow UI stopped", err=True)
        sys.exit(interrupts.exit_code())


UI_STOP_S = 0.5  # what the MLflow server is given to stop before it is killed


def _loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _study_name(study: str) -> str:
    """The study's name: from its study file, or `study` itself taken as a stored name."""
    try:
        path = studyfile.resolve(study)
    except PrunesearchError:
        return study
    return studyfile.load(str(path)).name


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


if __name__ == "__main__":  # pragma: no cover
    main()
