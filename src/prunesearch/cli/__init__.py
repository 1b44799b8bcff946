"""The `prunesearch` command: the group, its error handling and the options its commands share.
User errors become one line on stderr and a non-zero exit. The commands are in this package's
modules, by what they do: running (optimize, sensitivity, validate), reading (pareto, best,
compare, status, studies) and serving (export, ui); each registers itself on `main`."""

import logging
import os
from pathlib import Path

import click

from prunesearch.config import studyfile
from prunesearch.errors import PrunesearchError


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


def configure_logging(prefix: str = "") -> None:
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
    help="where trained dense models and decoded image folders are cached  [default: "
         "~/.cache/prunesearch/dense]")


def study_name(study: str) -> str:
    """The study's name: from its study file, or `study` itself taken as a stored name."""
    try:
        path = studyfile.resolve(study)
    except PrunesearchError:
        return study
    return studyfile.load(str(path)).name


from prunesearch.cli import reading, running, serving  # noqa: E402,F401  (registers them)
