"""The commands that take a study's models away or serve them: export, ui."""

import os
import signal
from pathlib import Path

import click

from prunesearch.cli import CACHE_DIR_OPTION, STORAGE_OPTION, STUDY_HELP, study_name, data_dir_option, main, \
    tracking_uri_option


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
@data_dir_option("CIFAR folder, for the test-accuracy check (other sources: where the study "
                 "recorded)")
@CACHE_DIR_OPTION
@click.option("--register", "registered_name", default=None, metavar="NAME",
              help="also log the model as an MLflow PyTorch model on the trial's run and "
                   "register it as a new version of NAME in the Model Registry")
def export(study, number, iteration, output_dir, model_format, storage, tracking_uri, data_dir,
           cache_dir, registered_name):
    """Write trial N's pruned model (after its last iteration, or --iteration K), genuinely
    smaller when structured, loadable with plain torch; its test accuracy is checked against
    the recorded one first."""
    from prunesearch.search import dense, shipping
    from prunesearch.stores import storage as storage_module
    from prunesearch.training import data
    from prunesearch.views import tables

    name = study_name(study)
    shipped = shipping.ship(
        storage_module.open_study(name, storage), number, iteration=iteration,
        output_dir=output_dir, model_format=model_format, tracking_uri=tracking_uri,
        data_dir=data_dir or data.default_data_dir(),
        cache_dir=cache_dir or dense.default_cache_dir(), registered_name=registered_name)
    summary = shipped.summary
    layers = ", ".join(str(shape[0]) for shape in summary["shapes"].values())
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
        loaded = storage_module.open_study(study_name(study), storage)
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
