"""The Optuna study: create or resume it, run trials, keep the Pareto front on MLflow.

Resuming: `n_trials` counts COMPLETE trials over every run of the study, so re-running the same
command continues where the last stopped. An interrupted trial is marked FAIL and its
parameters are queued to run again:
- Ctrl-C or SIGTERM: by the interrupted process itself, before it exits;
- a crashed worker on this host (SIGKILL, power loss of the process): by the next worker to
  start, which finds the RUNNING trial's process gone;
- a crashed worker on another host: by Optuna's heartbeat, once the trial has not beaten for
  HEARTBEAT_GRACE_S.
"""

import collections
import dataclasses
import datetime
import logging
import os
import socket
import tempfile
import traceback
import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url
import torch
from optuna.trial import TrialState

from prunesearch import data as data_module
from prunesearch import dense as dense_module
from prunesearch import costs, export, interrupts, loop, models, report, space, studyfile
from prunesearch import workers
from prunesearch.errors import ExportError, StorageError, TrialsFailing, UsageError
from prunesearch.objectives import OBJECTIVES
from prunesearch.schedule import Choice, Schedule
from prunesearch.studyfile import StudySpec
from prunesearch.tracking import StudyTracker

log = logging.getLogger(__name__)
DEFAULT_STORAGE_FILE = "prunesearch.db"
HEARTBEAT_S = 60  # a running trial writes a heartbeat this often (seconds)
HEARTBEAT_GRACE_S = 180  # ...and another worker fails it after this long without one
MAX_FAILURES_IN_A_ROW = 3  # a worker stops when this many of its trials fail in a row


class TrialFailed(Exception):
    """A trial's training or pruning failed (e.g. diverged); Optuna marks it FAIL and the
    study goes on."""


class _OneLineTrialFailures(logging.Filter):
    """Optuna logs a failed trial with its traceback, then again with its value (None); for a
    TrialFailed the one-line reason is enough (the traceback is kept on the trial's MLflow
    run), and an interruption needs none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], (TrialFailed, KeyboardInterrupt)):
            record.exc_info = None
        return not record.getMessage().endswith("failed with value None.")


logging.getLogger("optuna.study._optimize").addFilter(_OneLineTrialFailures())


class _FailureGuard:
    """Stops this worker when MAX_FAILURES_IN_A_ROW of its trials fail in a row: by then it is
    not bad luck but a setting (or a bug) that would fail every trial, forever, as the budget
    counts only completed ones."""

    def __init__(self):
        self.in_a_row = 0

    def __call__(self, study: optuna.Study, trial) -> None:
        if trial.state == TrialState.COMPLETE:
            self.in_a_row = 0
        elif trial.state == TrialState.FAIL:
            self.in_a_row += 1
            if self.in_a_row >= MAX_FAILURES_IN_A_ROW:
                raise TrialsFailing(
                    f"{self.in_a_row} trials in a row failed, the last (trial {trial.number}) "
                    f"with {trial.user_attrs.get('fail_reason', 'no reason recorded')}; "
                    "each trial's traceback is on its MLflow run (tag prunesearch.fail_reason)")


def resolve_storage(storage: str | None) -> str:
    """--storage, else a SQLite file in the working directory (as an absolute URL)."""
    return storage or f"sqlite:///{Path(DEFAULT_STORAGE_FILE).resolve()}"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available; use --device cpu or auto")
    return torch.device(device)


def open_storage(url: str, *, must_exist: bool = False, on_stale=None
                 ) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage (SQLite, PostgreSQL, MySQL) with heartbeats on.

    With `must_exist`, a SQLite file that is not there is an error rather than created.
    """
    if must_exist and url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise StorageError(f"no study storage at {url} ({path.resolve()} does not exist); "
                               "run `prunesearch optimize` first or pass --storage")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_S, grace_period=HEARTBEAT_GRACE_S,
                heartbeat_stale_trial_callback=on_stale)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        raise _unusable(url, error) from None


def check_storage(url: str) -> None:
    """Refuse now what `open_storage` would, without creating anything: so that a bad
    --storage leaves no tracking store behind, nor a bad tracking URI a study storage."""
    try:
        engine = sqlalchemy.create_engine(url)  # parses the URL and imports the driver
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        raise _unusable(url, error) from None
    try:
        if engine.dialect.name == "sqlite":
            database = engine.url.database
            if database and database != ":memory:" and not Path(database).parent.is_dir():
                raise StorageError(f"storage {_shown(url)!r} cannot be used: the folder "
                                   f"{Path(database).parent} does not exist")
        else:
            with engine.connect():
                pass
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise _unusable(url, error) from None
    finally:
        engine.dispose()


def _shown(url: str) -> str:
    """`url` with its password masked: error messages end up in logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def _unusable(url: str, error: Exception) -> StorageError:
    reason = str(error).splitlines()[0]
    if url.startswith("postgresql") and isinstance(error, ImportError):
        reason = "no PostgreSQL driver: pip install 'prunesearch[postgres]'"
    return StorageError(f"storage {_shown(url)!r} cannot be used ({reason}); expected an "
                        "SQLAlchemy URL such as sqlite:///prunesearch.db or "
                        "postgresql://user:password@host/database")


def make_sampler(name: str, seed: int, space: dict) -> optuna.samplers.BaseSampler:
    """constant_liar keeps concurrent TPE workers from proposing the same point."""
    if name == "grid":
        return optuna.samplers.GridSampler(
            {key: list(param.choices) for key, param in space.items()
             if isinstance(param, Choice)}, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def load_study(spec_name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    try:
        return optuna.load_study(study_name=spec_name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise StorageError(f"no study {spec_name!r} in this storage; studies there: "
                           f"{', '.join(names) or 'none'}") from None


def trial_row(trial: optuna.trial.FrozenTrial, figures: dict | None = None) -> dict:
    """A trial's schedule and figures: its final ones, or those of one iteration."""
    figures = figures or trial.user_attrs["final"]
    return {"trial": trial.number, "iteration": figures["iteration"],
            "params": trial.user_attrs["schedule"],
            # Trials recorded before a figure existed show it as NaN.
            **{key: figures.get(key, float("nan")) for key in report.ROW_FIGURES},
            "mlflow_run_id": trial.user_attrs.get("mlflow_run_id")}


def pareto_rows(study: optuna.Study, *, every_trial: bool = False,
                per_iteration: bool = False) -> list[dict]:
    """The Pareto-optimal completed trials (or all of them), sparsest first; with
    `per_iteration`, one row per prune-retrain iteration instead of one per trial."""
    trials = completed(study) if every_trial else study.best_trials
    rows = [trial_row(trial, figures) for trial in trials
            for figures in (trial.user_attrs["curve"] if per_iteration else [None])]
    return sorted(rows, key=lambda row: (-row["sparsity"], row["trial"], row["iteration"]))


def progress(storage: optuna.storages.BaseStorage) -> list[dict]:
    """Every study in `storage` with its trial count per state, e.g. "COMPLETE": 12."""
    rows = []
    for name in sorted(optuna.get_all_study_names(storage)):
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        counts = collections.Counter(trial.state.name for trial in trials)
        rows.append({"study": name, **{state.name: counts[state.name] for state in TrialState}})
    return rows


@dataclasses.dataclass(frozen=True)
class Status:
    """Where a study stands, read from its storage alone."""

    budget: int | None  # completed trials the last `optimize` aimed for
    counts: dict  # trials per state name
    elapsed_s: float  # first trial's start to the last trial's end (or now, if running)
    left_s: float | None  # mean completed-trial time x trials left / workers running (>= 1)
    dense: dict | None
    front: list[dict]


def status(study: optuna.Study) -> Status:
    trials = study.get_trials(deepcopy=False)
    counts = collections.Counter(trial.state.name for trial in trials)
    budget = study.user_attrs.get("budget")
    starts = [t.datetime_start for t in trials if t.datetime_start]
    running = counts[TrialState.RUNNING.name]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    last = datetime.datetime.now() if running or not ends else max(ends)
    elapsed = (last - min(starts)).total_seconds() if starts else 0.0
    durations = [t.duration.total_seconds() for t in completed(study)]
    left = None
    if budget is not None and durations:
        remaining = max(budget - len(durations), 0)
        left = sum(durations) / len(durations) * remaining / max(running, 1)
    return Status(budget=budget, counts=dict(counts), elapsed_s=elapsed, left_s=left,
                  dense=study.user_attrs.get("dense"), front=pareto_rows(study))


def trial_model(study: optuna.Study, number: int, *, tracking_uri: str | None = None
                ) -> tuple[torch.nn.Module, optuna.trial.FrozenTrial]:
    """Complete trial `number` and its pruned model (masks folded), rebuilt from the weights
    stored on its MLflow run, so that any machine reaching the stores can have it."""
    trial = next((t for t in completed(study) if t.number == number), None)
    if trial is None:
        numbers = [t.number for t in completed(study)]
        raise ExportError(f"study {study.study_name!r} has no complete trial {number}; "
                          f"complete trials: {_ranges(numbers) or 'none'}")
    model_spec = study.user_attrs.get("model")
    if model_spec is None:
        raise ExportError(f"study {study.study_name!r} does not record its model; run "
                          "`prunesearch optimize` on it once with this version")
    tracker = StudyTracker(tracking_uri or study.user_attrs["mlflow_tracking_uri"])
    with tempfile.TemporaryDirectory() as folder:
        weights = tracker.download_weights(trial.user_attrs["mlflow_run_id"], Path(folder))
        model = models.build(model_spec["name"], width=model_spec["width"])
        model.load_state_dict(torch.load(weights, map_location="cpu"))
    return model, trial


def export_trial(study: optuna.Study, number: int, *, output_dir: Path, data_dir: Path,
                 tracking_uri: str | None) -> dict:
    """Trial `number`'s model shrunk, verified and written (see `export.write_package`)."""
    model, trial = trial_model(study, number, tracking_uri=tracking_uri)
    test = data_module.load_test(data_dir)
    final = trial.user_attrs["final"]
    return export.write_package(
        model, data_module.normalize(test.images[:1]), test,
        recorded_test_accuracy=final["test_accuracy"], output_dir=output_dir,
        info={"study": study.study_name, "trial": number, "model": study.user_attrs["model"],
              "schedule": trial.user_attrs["schedule"],
              "figures": {key: final[key] for key in report.ROW_FIGURES if key in final}})


def _ranges(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    spans = []
    for n in sorted(numbers):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def optimize(spec: StudySpec, *, n_trials: int | None, timeout: float | None,
             storage_url: str, tracking_uri: str, data_dir: Path, cache_dir: Path,
             device: str, allow_spec_change: bool = False, jobs: int = 1,
             worker_argv: list[str] | None = None) -> optuna.Study:
    """Run trials until the study has `n_trials` (default: the study file's) complete ones;
    with `jobs` > 1, in that many worker processes running `prunesearch *worker_argv`."""
    budget = n_trials or spec.n_trials
    torch_device = resolve_device(device)
    workers.limit_threads()
    # Everything that can fail on user input is checked before any store is written.
    data = data_module.load(data_dir=data_dir, val_size=spec.data.val_size,
                            train_subset=spec.data.train_subset, seed=spec.seed)
    check_storage(storage_url)
    tracker = StudyTracker(tracking_uri)
    with interrupts.held():  # creates the storage's tables on first use
        storage = open_storage(storage_url, on_stale=lambda study, trial: _interrupted(
            study, trial, tracker, reason="its worker stopped sending heartbeats"))
    # The parent run, once open, ends with this process, never RUNNING. A worker started by
    # --jobs leaves that to the process that started it.
    owner = workers.worker_label() is None
    try:
        with interrupts.held():
            study = _open_study(spec, storage, allow_spec_change=allow_spec_change)
            parent = tracker.open_study(
                study_name=spec.name, description=spec.description,
                parent_run_id=study.user_attrs.get("mlflow_parent_run_id"))
            study.set_user_attr("mlflow_parent_run_id", parent)
            study.set_user_attr("mlflow_tracking_uri", tracking_uri)
            study.set_user_attr("budget", budget)
            study.set_user_attr("model", dataclasses.asdict(spec.model))
            study.set_user_attr("spec", studyfile.fingerprint(spec))
        if jobs > 1:
            # Trained here, once, before any worker asks for it.
            dense_module.load_or_train(spec, data.to(torch_device), cache_dir=cache_dir,
                                       device=torch_device)
            workers.run(worker_argv, jobs)
        else:
            _run_trials(spec, study, storage, tracker, data, budget=budget, timeout=timeout,
                        cache_dir=cache_dir, device=torch_device)
    except KeyboardInterrupt:
        if owner:
            tracker.end_study("KILLED")
        raise
    except BaseException:
        if owner:
            tracker.end_study("FAILED")
        raise
    if owner:
        tracker.end_study("FINISHED")
    return study


def _open_study(spec: StudySpec, storage, *, allow_spec_change: bool) -> optuna.Study:
    """Create the study, or load it if its file still means what it meant."""
    directions = [OBJECTIVES[name].direction for name in spec.objectives]
    study = optuna.create_study(study_name=spec.name, storage=storage, directions=directions,
                                load_if_exists=True)
    _check_unchanged(study, spec, storage.url, allow_change=allow_spec_change)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(spec.objectives))
    return study


def _check_unchanged(study: optuna.Study, spec: StudySpec, storage_url: str, *,
                     allow_change: bool) -> None:
    """Refuse to resume a study whose file now means something else (before writing)."""
    stored = study.user_attrs.get("spec")
    if study.metric_names not in (None, list(spec.objectives)):
        stored = {**(stored or {}), "objectives": ", ".join(study.metric_names)}
    if stored is None:
        return  # a new study, or one recorded before fingerprints
    now = studyfile.fingerprint(spec)
    changed = [key for key in now if stored.get(key, now[key]) != now[key]]
    if not changed:
        return
    if allow_change and "objectives" not in changed:
        log.warning("study %s continues with changed settings: %s", spec.name, ", ".join(changed))
        return
    key = changed[0]
    more = f" (and {len(changed) - 1} more: {', '.join(changed[1:])})" if changed[1:] else ""
    fix = ("give the study a new name" if "objectives" in changed else
           "pass --allow-spec-change to continue it anyway, or give the study a new name")
    raise UsageError(f"study {spec.name!r} in {make_url(storage_url).render_as_string()} was run "
                     f"with {key} = {stored[key]}, but {spec.path} now says {now[key]}{more}; "
                     f"{fix}")


def _run_trials(spec: StudySpec, study: optuna.Study, storage, tracker: StudyTracker,
                data: data_module.CifarData, *, budget: int, timeout: float | None,
                cache_dir: Path, device: torch.device) -> None:
    """Optuna's writes happen held (see interrupts); only the trials' own work is released."""
    with interrupts.held():
        _reap_dead_local_trials(study, storage, tracker)
    done = len(completed(study))
    if done >= budget:
        log.info("study %s already has %d of %d trials complete", spec.name, done, budget)
        return
    log.info("study %s: %d of %d trials complete; storage %s, tracking %s, device %s",
             spec.name, done, budget,
             make_url(storage.url).render_as_string(hide_password=True),
             tracker.uri, device)

    data = data.to(device)
    checkpoint = dense_module.load_or_train(spec, data, cache_dir=cache_dir, device=device)
    dense_model = models.build(spec.model.name, width=spec.model.width)
    dense_model.load_state_dict(checkpoint.trained_state)
    dense_costs = costs.measure(dense_model, data_module.normalize(data.val.images[:1]).cpu())
    dense_point = {"iteration": 0, **dataclasses.asdict(dense_costs),
                   "macs_reduction": 0.0, "speedup_b1": 1.0, "speedup_b64": 1.0,
                   "val_accuracy": checkpoint.val_accuracy,
                   "test_accuracy": checkpoint.test_accuracy}
    with interrupts.held():
        study.set_user_attr("dense", dense_point)
    tracker.log_study_params({"dense_cache": checkpoint.path.name,
                              "dense_val_accuracy": checkpoint.val_accuracy,
                              "dense_test_accuracy": checkpoint.test_accuracy,
                              "study_file": str(spec.path), "seed": spec.seed,
                              "sampler": spec.sampler})
    # Reseeded with the history length, so a resumed run does not replay the first run's
    # random start-up points.
    study.sampler = make_sampler(spec.sampler, seed=spec.seed + len(study.trials),
                                 space=spec.space)
    objective = _Objective(spec, data, checkpoint, dense_point, tracker, device)
    interrupts.check()
    # Held: a stop request while Optuna creates a trial (ask) would leave it RUNNING for good,
    # one while it records the result would cut its SQL in two. The objective releases.
    with interrupts.held():
        study.optimize(
            objective, n_trials=None, timeout=timeout, gc_after_trial=False,
            catch=(TrialFailed,),
            callbacks=[optuna.study.MaxTrialsCallback(budget, states=(TrialState.COMPLETE,)),
                       lambda study, trial: _after_trial(study, trial, tracker, budget),
                       _FailureGuard(), interrupts.check])


class _Objective:
    """One trial: sample a schedule, prune the cached dense model, log, return objectives.

    Called by `study.optimize` inside `interrupts.held()`: a stop request waits while the trial
    is recorded as started, stops the pruning and retraining at once, and, once they are done,
    waits until Optuna has recorded the trial COMPLETE (a callback then stops the study).
    """

    def __init__(self, spec, data, checkpoint, dense_point, tracker, device):
        self.spec, self.data, self.checkpoint = spec, data, checkpoint
        self.dense_point, self.tracker, self.device = dense_point, tracker, device

    def __call__(self, trial: optuna.Trial) -> list[float]:
        """Whatever stops the trial, from its first step to its last, ends its MLflow run."""
        self.tracker.trial_run_id = None
        try:
            schedule, run_id = self._start(trial)
            with interrupts.released():
                model, result = self._prune(trial, schedule, run_id)
            return self._finish(trial, run_id, model, result)
        except KeyboardInterrupt:
            _interrupted(trial.study, trial, self.tracker, reason="interrupted (Ctrl-C/SIGTERM)",
                         run_id=self.tracker.trial_run_id)
            raise
        except Exception as error:
            # The trial fails, the study goes on (see _FailureGuard for when it stops).
            reason = f"{type(error).__name__}: {error}"
            trial.set_user_attr("fail_reason", reason)
            if self.tracker.trial_run_id:
                self.tracker.end_trial(self.tracker.trial_run_id, state="FAIL",
                                       reason=traceback.format_exc())
            raise TrialFailed(reason) from error

    def _start(self, trial: optuna.Trial) -> tuple[Schedule, str]:
        schedule = space.suggest(trial, self.spec.space)
        trial.set_user_attr("schedule", schedule.as_dict())
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        run_id = self.tracker.start_trial(study_name=self.spec.name, trial_number=trial.number,
                                          params=schedule.as_dict(), dense=self.dense_point)
        trial.set_user_attr("mlflow_run_id", run_id)
        log.info("trial %d: %s", trial.number, schedule.as_dict())
        return schedule, run_id

    def _prune(self, trial: optuna.Trial, schedule: Schedule, run_id: str
               ) -> tuple[torch.nn.Module, loop.Result]:
        spec = self.spec

        def on_iteration(result: loop.IterationResult) -> None:
            self.tracker.log_iteration(run_id, dataclasses.asdict(result))
            log.info("trial %d iteration %d/%d: sparsity %.1f%%, MACs -%.1f%%, speed-up %.2fx, "
                     "val %.1f%%, test %.1f%%", trial.number, result.iteration,
                     schedule.iterations, 100 * result.sparsity, 100 * result.macs_reduction,
                     result.speedup_b64, 100 * result.val_accuracy, 100 * result.test_accuracy)

        def on_epoch(iteration: int, epoch: int, loss: float) -> None:
            log.info("trial %d iteration %d/%d: retraining epoch %d/%d  loss %.3f",
                     trial.number, iteration, schedule.iterations, epoch,
                     schedule.retrain_epochs, loss)

        model = models.build(spec.model.name, width=spec.model.width)
        model.load_state_dict(self.checkpoint.trained_state)
        model.to(self.device)
        result = loop.run(
            schedule=schedule, model=model, data=self.data,
            rewind_state=self.checkpoint.rewind_state,
            fresh_state=lambda iteration: dense_module.initial_state(
                spec, seed=spec.seed + 1000 * iteration),
            optimizer=dense_module.optimizer_settings(spec),
            augmented=spec.data.augment, seed=spec.seed, on_iteration=on_iteration,
            on_epoch=on_epoch)
        return model, result

    def _finish(self, trial: optuna.Trial, run_id: str, model: torch.nn.Module,
                result: loop.Result) -> list[float]:
        spec = self.spec
        final = dataclasses.asdict(result.final)
        trial.set_user_attr("final", final)
        if spec.accuracy_floor is not None:
            trial.set_constraint("val_accuracy_floor", spec.accuracy_floor - final["val_accuracy"])
        trial.set_user_attr("curve", [dataclasses.asdict(i) for i in result.iterations])
        with tempfile.TemporaryDirectory() as folder:
            self.tracker.log_weights(run_id, export.save_weights(
                model, Path(folder) / f"{spec.model.name}-width{spec.model.width}.pt"))
        self.tracker.end_trial(run_id, state="COMPLETE", final=final)
        return [OBJECTIVES[name].value(result) for name in spec.objectives]


def _interrupted(study: optuna.Study, trial, tracker: StudyTracker, *, reason: str,
                 run_id: str | None = None) -> None:
    """Queue an interrupted trial's parameters to run again and end its MLflow run KILLED."""
    # A queued trial holds its parameters as fixed ones until it samples them.
    params = trial.params or study._storage.get_trial(trial._trial_id).system_attrs.get(
        "fixed_params")
    if params:  # interrupted before sampling anything: nothing to re-run
        study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
    run_id = run_id or trial.user_attrs.get("mlflow_run_id")
    if run_id:
        tracker.end_trial(run_id, state="INTERRUPTED", reason=reason)
    log.warning("trial %d %s; its parameters are queued to run again", trial.number, reason)


def _reap_dead_local_trials(study: optuna.Study, storage, tracker: StudyTracker) -> None:
    """Fail the RUNNING trials whose worker process on this host no longer exists."""
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker")
        if not worker or worker["host"] != host or not _process_gone(worker["pid"]):
            continue
        reason = f"its worker (pid {worker['pid']}) died"
        try:
            storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        _interrupted(study, trial, tracker, reason=reason)


def _process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child its parent has not reaped yet is a zombie: gone all the same
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _after_trial(study: optuna.Study, trial, tracker: StudyTracker, budget: int) -> None:
    done = completed(study)
    log.info("trial %d %s; %d of %d trials complete", trial.number, trial.state.name,
             len(done), budget)
    if trial.state != TrialState.COMPLETE:
        return
    front = pareto_rows(study)
    tracker.update_pareto(all_rows=[trial_row(t) for t in done], front=front,
                          dense=study.user_attrs.get("dense"),
                          previous_front_run_ids=set(study.user_attrs.get("pareto_run_ids", [])),
                          objectives=study.metric_names)
    study.set_user_attr("pareto_run_ids", [r["mlflow_run_id"] for r in front])
