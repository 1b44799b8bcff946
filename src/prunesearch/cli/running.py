"""The commands that run a study or check it: optimize, prepare, sensitivity, validate."""

from pathlib import Path

import click

from prunesearch.cli import (CACHE_DIR_OPTION, STORAGE_OPTION, STUDY_HELP, configure_logging,
                             data_dir_option, device_option, main, tracking_uri_option)
from prunesearch.config import studyfile
from prunesearch.pruning.methods import REGISTRY
from prunesearch.stores import outages


def _study_options(command):
    """The options of the commands that run a study (optimize, prepare): where its stores,
    data and dense models are, where it trains."""
    for option in reversed([
            STORAGE_OPTION, tracking_uri_option(),
            data_dir_option("folder holding (or receiving) cifar-10-batches-py or "
                            "cifar-100-python; image folders are where the study file says"),
            CACHE_DIR_OPTION, device_option("where to train"),
            click.option("--allow-spec-change", is_flag=True,
                         help="resume the study even though its file's search space, data, "
                              "model or dense settings changed (objectives may not change)"),
            click.option("--outage-wait", "outage_wait_s", type=click.FloatRange(min=0),
                         default=outages.DEFAULT_WAIT_S, show_default=True,
                         envvar="PRUNESEARCH_OUTAGE_WAIT", show_envvar=True,
                         help="seconds to keep retrying an unreachable study database or "
                              "MLflow server before the worker stops")]):
        command = option(command)
    return command


@main.command(epilog="""examples:

\b
  prunesearch optimize --study l1-iterative
  prunesearch optimize --study smoke --data-dir ../shared/data/cifar10-subset
  prunesearch optimize --study my.toml --n-trials 50 --timeout 3600
  prunesearch optimize --study my.toml --storage postgresql://... --wait-for-prepare 3600
""")
@click.option("--study", "study", required=True, help=STUDY_HELP)
@click.option("--n-trials", type=click.IntRange(min=1), default=None,
              help="completed trials to reach in total (overrides the study file's n_trials)")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="stop starting new trials after this many seconds")
@_study_options
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="worker processes on this machine, the CPU cores split between them")
@click.option("--wait-for-prepare", type=click.FloatRange(min=0), default=None,
              envvar="PRUNESEARCH_WAIT_FOR_PREPARE", show_envvar=True,
              help="a worker of a study `prunesearch prepare` prepares: wait up to this many "
                   "seconds for it, then only run trials  [default: prepare the study here]")
def optimize(study, jobs, **options):
    """Run (or resume) a study until it has n_trials complete trials."""
    from prunesearch.config import preflight

    flight = preflight.run(studyfile.load(study))
    from prunesearch.search import workers

    label = workers.worker_label()
    configure_logging(prefix=f"[worker {label}] " if label else "")
    from prunesearch.foundation import interrupts
    from prunesearch.views import tables
    from prunesearch.views import study_view
    from prunesearch.search import optimize as study_module

    interrupts.install()
    settings = run_settings(flight.spec, **options)
    rows = study_view.pareto_rows(study_module.optimize(flight, settings, jobs=jobs))
    if rows:
        click.echo(tables.to_table(rows))


@main.command(epilog="""examples:

\b
  prunesearch prepare --study my.toml --storage postgresql://... --tracking-uri http://mlflow:5000
  PRUNESEARCH_STORAGE=postgresql://... prunesearch prepare --study my.toml
""")
@click.option("--study", "study", required=True, help=STUDY_HELP)
@_study_options
def prepare(study, **options):
    """Prepare a study for many workers: check its file, create the study and its MLflow
    experiment, study run and runs view, read the data, train (or evaluate) and cache the
    dense model; then print the command its workers run. On a prepared study, only check."""
    from prunesearch.config import preflight
    from prunesearch.foundation import interrupts
    from prunesearch.search import optimize as study_module
    from prunesearch.search import preparation

    flight = preflight.run(studyfile.load(study))
    configure_logging()
    interrupts.install()
    settings = run_settings(flight.spec, n_trials=None, timeout=None, wait_for_prepare=None,
                            **options)
    record, already = study_module.prepare(flight, settings)
    said = preparation.described(record)
    click.echo(f"study {flight.spec.name} is prepared already ({said}); nothing done"
               if already else f"study {flight.spec.name} prepared ({said}); its workers run:",
               err=True)
    click.echo(preparation.worker_command(settings))


def run_settings(spec, *, n_trials, timeout, storage, tracking_uri, data_dir, cache_dir,
                 device, allow_spec_change, outage_wait_s, wait_for_prepare):
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
        allow_spec_change=allow_spec_change, outage_wait_s=outage_wait_s,
        wait_for_prepare=wait_for_prepare)


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
@data_dir_option("folder holding (or receiving) cifar-10-batches-py or cifar-100-python; "
                 "image folders are where the study file says")
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
    configure_logging()
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
