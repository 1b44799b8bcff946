"""The main flow: optimize -> run trials -> objective -> after trial.

`n_trials` counts finished trials (complete, or stopped early: see early_stopping) over every
run of the study, so re-running the same command continues where the last stopped. A stop
request (Ctrl-C, SIGTERM) is taken between training steps, evaluation batches, iterations and
trials (see interrupts); the trial it stops is failed and its parameters queued again (see
recovery).
"""

import contextlib
import dataclasses
import logging
import math
import os
import socket
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from prunesearch.config import space, studyfile
from prunesearch.config.preflight import Preflight
from prunesearch.errors import DiskFull, PrunesearchError, StorageError, UsageError
from prunesearch.foundation import diskspace, interrupts
from prunesearch.pruning import allocation, export, loop, methods
from prunesearch.pruning.figures import IterationResult
from prunesearch.pruning.schedule import FAMILY_KEYS
from prunesearch.search import dense as dense_module
from prunesearch.search import data as study_data
from prunesearch.search import early_stopping, preparation, recovery, trials, workers
from prunesearch.search import sensitivity as study_sensitivity
from prunesearch.stores import outages, records
from prunesearch.stores import storage as storage_module
from prunesearch.training import data as data_module
from prunesearch.training import models
from prunesearch.views import mlflow_pages, overview, plots, study_view, tables
from prunesearch.views import layers as layer_view
from prunesearch.search.failures import (ONE_LINE_TRIAL_FAILURES, FailureGuard, TrialAbandoned,
                                  TrialFailed, release_memory)
from prunesearch.config.objectives import OBJECTIVES, joined, plot_axis
from prunesearch.stores.records import StudyRecord, TrialRecord
from prunesearch.config.studyfile import StudySpec
from prunesearch.stores.tracking import StudyTracker
from prunesearch.training.train import resolve_device

log = logging.getLogger(__name__)
FRONT_DRAWN_EVERY_S = 30.0  # at most this often the front's plots are redrawn, and at the end
CONSTRAINT_NAMES = {"accuracy_floor": "val_accuracy_floor"}  # Optuna's names, where they differ
SOURCE_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagefolder": "images"}
BROKEN_BEYOND_MEASURE = 1e6  # the constraint of a budget on a figure that was not measured


@dataclass(frozen=True)
class RunSettings:
    """How one `prunesearch optimize` runs a study; `to_argv` gives the command line that runs
    it the same way (the workers of --jobs are started with it)."""

    study: Path  # the study file
    n_trials: int  # finished trials to reach in total
    storage_url: str
    tracking_uri: str
    data_dir: Path
    cache_dir: Path
    device: str = "auto"  # auto, cpu or cuda
    timeout: float | None = None  # seconds after which no new trial starts
    allow_spec_change: bool = False
    outage_wait_s: float = outages.DEFAULT_WAIT_S  # how long to wait out a service outage
    wait_for_prepare: float | None = None  # seconds to wait for `prunesearch prepare`; None:
    # this process prepares the study itself

    def to_argv(self) -> list[str]:
        return ["optimize", "--study", str(self.study), "--n-trials", str(self.n_trials),
                "--storage", self.storage_url, "--tracking-uri", self.tracking_uri,
                "--data-dir", str(self.data_dir), "--cache-dir", str(self.cache_dir),
                "--device", self.device,
                *(["--timeout", repr(self.timeout)] if self.timeout is not None else []),
                "--outage-wait", repr(self.outage_wait_s),
                *(["--allow-spec-change"] if self.allow_spec_change else []),
                *(["--wait-for-prepare", repr(self.wait_for_prepare)]
                  if self.wait_for_prepare is not None else [])]


def optimize(flight: Preflight, settings: RunSettings, *, jobs: int = 1) -> optuna.Study:
    """Run trials of the study `flight` checked until it has `settings.n_trials` complete
    ones; with `jobs` > 1, in that many worker processes, each a `prunesearch` run of
    `settings.to_argv()`. With `settings.wait_for_prepare`, `prunesearch prepare` does what
    comes before the first trial: this waits for it, then only runs trials."""
    spec = flight.spec
    device = _device(spec, settings)
    # A worker of --jobs joins services its starter reached: it waits out an outage from the
    # first call. Any other process refuses at once a service that never answered it.
    reached_before = workers.worker_label() is not None
    storage_module.check(settings.storage_url, outage_wait_s=settings.outage_wait_s,
                         reached_before=reached_before)
    if settings.wait_for_prepare is not None:
        preparation.wait(spec.name, settings.storage_url, settings.wait_for_prepare)
    # Everything that can fail on user input is checked before any store is written.
    data = study_data.read(spec, data_dir=settings.data_dir, cache_dir=settings.cache_dir)
    tracker, storage = _services(settings, reached_before=reached_before)
    # The study run, once open, ends with this process, never RUNNING. A worker started by
    # --jobs leaves that to the process that started it.
    with _study_run(tracker, owner=workers.worker_label() is None):
        study, data, checkpoint, curves = _ready(
            flight, settings, storage, tracker, data, device,
            fetched=settings.wait_for_prepare is not None)
        if jobs > 1:  # the dense model is cached now: no worker waits for another to train it
            workers.run(settings.to_argv(), jobs)
        else:
            _run_trials(flight, study, storage, tracker, data, checkpoint, curves, settings,
                        device)
    return study


def prepare(flight: Preflight, settings: RunSettings) -> tuple[dict, bool]:
    """Everything study `flight` needs before its first trial, done once for many workers
    (see preparation): its `prepared` record, and whether it was prepared already (then
    only the study file is checked against it)."""
    spec = flight.spec
    device = _device(spec, settings)
    storage_module.check(settings.storage_url, outage_wait_s=settings.outage_wait_s)
    found = preparation.prepared(spec.name, settings.storage_url)
    if found is not None:
        storage = storage_module.open_storage(settings.storage_url,
                                              outage_wait_s=settings.outage_wait_s)
        _check_unchanged(storage_module.load_study(spec.name, storage), spec, storage.url,
                         allow_change=settings.allow_spec_change)
        return found, True
    data = study_data.read(spec, data_dir=settings.data_dir, cache_dir=settings.cache_dir)
    tracker, storage = _services(settings, reached_before=False)
    with _study_run(tracker, owner=True):
        study, _, checkpoint, _ = _ready(flight, settings, storage, tracker, data, device,
                                         fetched=False)
        # For workers whose cache folder is not this one: fetched rather than trained again.
        tracker.log_study_file(checkpoint.path, folder=preparation.DENSE_FOLDER)
        made = preparation.record(checkpoint.path.name, checkpoint.val_accuracy)
        records.save_study(study, prepared=made)
    return made, False


def _device(spec: StudySpec, settings: RunSettings) -> torch.device:
    device = resolve_device(settings.device)
    if spec.latency_device == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{spec.path}: latency_device = 'cuda' but no CUDA device is "
                         "available; use 'cpu' or run on a machine with a GPU")
    workers.limit_threads()
    logging.getLogger("optuna.study._optimize").addFilter(ONE_LINE_TRIAL_FAILURES)
    return device


def _services(settings: RunSettings, *, reached_before: bool):
    """The MLflow tracker and the Optuna storage (its stale trials queued again)."""
    tracker = StudyTracker(settings.tracking_uri, outage_wait_s=settings.outage_wait_s,
                           reached_before=reached_before)
    storage = storage_module.open_storage(
        settings.storage_url, outage_wait_s=settings.outage_wait_s,
        on_stale=lambda study, trial: recovery.requeue(
            study, trial, tracker, reason="its worker stopped sending heartbeats"))
    return tracker, storage


@contextlib.contextmanager
def _study_run(tracker: StudyTracker, *, owner: bool):
    """The study run ended as the work inside ends (KILLED, FAILED or FINISHED) by its
    `owner`."""
    try:
        yield
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


def _ready(flight: Preflight, settings: RunSettings, storage, tracker: StudyTracker,
           data: data_module.ImageData, device: torch.device, *, fetched: bool):
    """The study, its MLflow experiment, study run and runs view, the data on `device`, the
    dense checkpoint (`fetched`: from the study run if not cached, never trained) and the
    sensitivity scans the allocation needs, as (study, data, checkpoint, curves)."""
    spec = flight.spec
    study = _open_study(spec, storage, allow_spec_change=settings.allow_spec_change)
    parent = tracker.open_study(study_name=spec.name, description=spec.description,
                                parent_run_id=StudyRecord.of(study).mlflow_parent_run_id)
    records.save_study(study, mlflow_parent_run_id=parent,
                       mlflow_tracking_uri=settings.tracking_uri, n_trials=settings.n_trials,
                       model={**dataclasses.asdict(spec.model),
                              "num_classes": data.num_classes},
                       data=study_data.described(spec, data),
                       spec=studyfile.fingerprint(spec))
    tracker.share_view(tracker.experiment_id, mlflow_pages.VIEW_TAG, mlflow_pages.runs_view(
        parent_run_id=parent, objectives=list(spec.objectives),
        params=space.searched(spec.space)))
    data = data.to(device)
    checkpoint = dense_module.load_or_train(
        spec, data, cache_dir=settings.cache_dir, device=device,
        fetch=(lambda path: _fetch_dense(spec, tracker, path)) if fetched else None)
    # Before the workers start: they read the scans back rather than each scanning.
    curves = study_sensitivity.study_curves(study, spec, data, checkpoint, device, tracker)
    return study, data, checkpoint, curves


def _fetch_dense(spec: StudySpec, tracker: StudyTracker, path: Path) -> None:
    """The dense checkpoint `prepare` logged to the study run, put at `path` (a cache file)."""
    with tempfile.TemporaryDirectory(dir=path.parent) as folder:
        fetched = tracker.download_study_file(path.name, folder=preparation.DENSE_FOLDER,
                                              into=Path(folder))
        if fetched is None:
            raise StorageError(
                f"study {spec.name!r} was prepared, but neither --cache-dir {path.parent} nor "
                f"its MLflow study run holds {path.name}: this worker's data or study file "
                "differs from what `prunesearch prepare` read (the dense cache key covers both)")
        os.replace(fetched, path)


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
    stored = StudyRecord.of(study).spec
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
    raise UsageError(f"study {spec.name!r} in {storage_module.shown(storage_url)} was run "
                     f"with {key} = {stored[key]}, but {spec.path} now says {now[key]}{more}; "
                     f"{fix}")


def _run_trials(flight: Preflight, study: optuna.Study, storage, tracker: StudyTracker,
                data: data_module.ImageData, checkpoint: dense_module.DenseCheckpoint,
                curves: dict, settings: RunSettings, device: torch.device) -> None:
    spec = flight.spec
    recovery.reap_dead_local_trials(study, storage, tracker)
    tracker.end_orphan_trial_runs({t.number for t in study.get_trials(
        deepcopy=False, states=(TrialState.FAIL,))})
    done = len(study_view.finished(study))
    if done >= settings.n_trials:
        log.info("study %s already has %d of %d trials finished", spec.name, done,
                 settings.n_trials)
        return
    log.info("study %s: %d of %d trials finished; storage %s, tracking %s, device %s",
             spec.name, done, settings.n_trials, storage_module.shown(storage.url),
             tracker.uri, device)
    tracker.log_study_params({"layers_left_unpruned": tables.unpruned_text(flight.unpruned)
                              or "none",
                              "dense_cache": checkpoint.path.name,
                              "dense_checkpoint": spec.dense.checkpoint or "none (trained)",
                              "data": f"{spec.data.source}: {data.where}, "
                                      f"{data.num_classes} classes, {data.image_size} px",
                              "dense_val_accuracy": checkpoint.val_accuracy,
                              "dense_test_accuracy": checkpoint.test_accuracy,
                              "study_file": str(spec.path), "seed": spec.seed,
                              "sampler": spec.sampler})
    dataset = _dataset(data, settings.data_dir, spec)
    tracker.log_dataset(tracker.parent_run_id, **dataset)
    # Reseeded with the history length, so a resumed run does not replay the first run's
    # random start-up points.
    study.sampler = space.make_sampler(spec.sampler, seed=spec.seed + len(study.trials),
                                       space=spec.space)
    interrupts.check()
    try:
        study.optimize(
            _Objective(flight, data, checkpoint, curves, tracker, device, dataset),
            n_trials=None,
            timeout=settings.timeout, gc_after_trial=False, catch=(TrialFailed,),
            callbacks=[_Budget(settings.n_trials, storage, tracker),
                       lambda study, trial: _after_trial(study, trial, tracker, spec,
                                                         settings.n_trials),
                       FailureGuard(), interrupts.check])
    except TrialAbandoned as abandoned:
        raise abandoned.stop from None
    if _front_outdated(study):  # stopped by --timeout between two drawings
        _draw_front(study, tracker, study_view.candidates(study), study_view.pareto_rows(study),
                    StudyRecord.of(study))


class _Budget:
    """After each trial: stop this worker once the study's finished trials and those running
    on other workers make n_trials. Counting the running ones, a study that many workers share
    ends at n_trials (and the few that start in the same instant), not one extra per worker.
    A trial whose worker on this host died is failed and queued again first, so that it is
    not counted as running (one on another host: once its heartbeat stops)."""

    def __init__(self, n_trials: int, storage, tracker: StudyTracker):
        self.n_trials, self.storage, self.tracker = n_trials, storage, tracker

    def __call__(self, study: optuna.Study, trial) -> None:
        recovery.reap_dead_local_trials(study, self.storage, self.tracker)
        counted = study.get_trials(deepcopy=False,
                                   states=(*study_view.FINISHED, TrialState.RUNNING))
        if len(counted) >= self.n_trials:
            study.stop()


def _dataset(data: data_module.ImageData, data_dir: Path, spec: StudySpec) -> dict:
    """The data as MLflow records a dataset input: name, fingerprint, where it was read, split
    sizes, class count and image size."""
    where = Path(data.where)
    return {"name": f"{SOURCE_NAMES.get(spec.data.source, spec.data.source)} ({where.name})",
            "digest": data.fingerprint[:16], "source": str(where),
            "profile": {"source": spec.data.source, "train": len(data.train),
                        "val": len(data.val), "test": len(data.test),
                        "classes": data.num_classes, "image_size": data.image_size,
                        "augment": spec.data.augment}}


class _Objective:
    """One trial: sample a schedule, prune the cached dense model, log, return objectives.

    A trial early stopping ends returns the objectives of the last iteration it ran, so the
    sampler learns what its schedule reached (study_view.FINISHED says why it is not Optuna's
    PRUNED), and its records say it stopped, where and why.

    Whatever stops the trial after its MLflow run opened ends that run: a stop request
    (the trial is queued again) or an error (the trial fails, the study goes on; out of GPU
    memory says so, and the memory is freed for the next). A service that stays away or a
    full disk stops the worker, the trial queued again (see _stopping).
    """

    def __init__(self, flight: Preflight, data, checkpoint, curves: dict, tracker, device,
                 dataset: dict):
        self.spec, self.stages, self.checkpoint = flight.spec, flight.stages, checkpoint
        self.tracker, self.device, self.dataset = tracker, device, dataset
        self.trials = trials.settings(self.spec, data, checkpoint, device, curves=curves)
        self.timed_on = self.trials.latency.where()

    def __call__(self, trial: optuna.Trial) -> list[float]:
        run_id = None
        try:
            schedule = space.suggest(trial, self.spec.space, self.stages)
            records.save_trial(trial, schedule=schedule.as_dict(),
                               worker={"host": socket.gethostname(), "pid": os.getpid()},
                               timed_on=self.timed_on)
            run_id = self.tracker.start_trial(study_name=self.spec.name,
                                              trial_number=trial.number,
                                              params=schedule.as_dict(),
                                              described=tables.run_name(schedule.as_dict()),
                                              timed_on=self.timed_on)
            records.save_trial(trial, mlflow_run_id=run_id)
            self.tracker.log_dataset(run_id, **self.dataset)
            log.info("trial %d: %s", trial.number, schedule.as_dict())
            dense, figures, stopped = self._prune(trial, schedule, run_id)
            return self._finish(trial, run_id, dense, figures, stopped)
        except KeyboardInterrupt:
            recovery.requeue(trial.study, trial, self.tracker,
                             reason="interrupted (Ctrl-C/SIGTERM)")
            raise
        except (outages.ServiceUnavailable, DiskFull) as stop:
            raise self._stopping(trial, run_id, stop) from None
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            if isinstance(error, torch.cuda.OutOfMemoryError):
                reason = (f"out of GPU memory with model {self.spec.model.name}, batch size "
                          f"{self.spec.dense.batch_size}, schedule {trial.params}")
            records.save_trial(trial, fail_reason=reason)
            if run_id is not None:
                self.tracker.end_trial(run_id, state="FAIL", reason=traceback.format_exc())
            release_memory(error)
            raise TrialFailed(reason) from None

    def _stopping(self, trial: optuna.Trial, run_id: str | None,
                  stop: PrunesearchError) -> BaseException:
        """What stops the worker when a service stays away or a disk is full: the trial failed
        and queued again, where what is needed for that still answers; else abandoned."""
        try:
            records.save_trial(trial, fail_reason=str(stop))
            unreachable = getattr(stop, "service", None) == self.tracker.service
            recovery.requeue(trial.study, trial, None if unreachable else self.tracker,
                             reason=f"could not be recorded ({stop})")
            return stop  # Optuna records the trial failed and lets it through
        except (outages.ServiceUnavailable, DiskFull) as also:
            return TrialAbandoned(also)

    def _prune(self, trial: optuna.Trial, schedule, run_id: str
               ) -> tuple[IterationResult, IterationResult, str | None]:
        """Run the schedule; after each iteration its figures (the repeats' means) and repeat
        0's weights are recorded, a candidate for the front whether or not the trial ends,
        and early stopping may end it. Returns the dense model's figures, the last
        iteration's and why early stopping ended the trial there (None: it ran to the end)."""
        spec = self.spec
        rule = early_stopping.rule_of(spec)
        curve, each_curve, dense, kept = [], [], [], []
        structured = methods.get(schedule.method).structured
        model = models.from_spec(dataclasses.asdict(spec.model),
                                 num_classes=self.trials.data.num_classes)

        def on_iteration(result: IterationResult, each) -> None:
            self.tracker.log_iteration(run_id, result.as_dict())
            if result.iteration == 0:
                records.save_study(trial.study, dense=result.as_dict())
                dense.append(result)
                return
            log.info("trial %d iteration %d/%d: sparsity %.1f%%, MACs -%.1f%%, %s"
                     "val %.1f%%, test %.1f%%", trial.number, result.iteration,
                     schedule.rounds, 100 * result.sparsity, 100 * result.macs_reduction,
                     "" if math.isnan(result.speedup)
                     else f"speed-up {result.speedup:.2f}x, ",
                     100 * result.val_accuracy, 100 * result.test_accuracy)
            with tempfile.TemporaryDirectory() as folder:
                with diskspace.writing(folder, "the trial's weights"):
                    weights = export.save_weights(model, Path(folder) / "weights.pt")
                self.tracker.log_weights(run_id, weights, iteration=result.iteration)
            curve.append(result.as_dict())
            kept.append(allocation.kept(model, plans[0].units, structured))
            each_curve.append([r.as_dict() for r in each])
            records.save_trial(trial, curve=curve, kept=kept,
                               repeat_curves=[list(c) for c in zip(*each_curve)]
                               if len(each) > 1 else [])
            if rule is not None:
                early_stopping.check(trial, result, schedule, spec.objectives, rule)

        plans = []

        def on_plan(plan: allocation.Plan) -> None:
            plans.append(plan)
            records.save_trial(trial, allocation=plan.as_dict())
            if schedule.allocation != "uniform" or self.trials.sharing.projection:
                self.tracker.log_plan(run_id, plan.as_dict())

        def on_epoch(iteration: int, epoch: int, loss: float) -> None:
            log.info("trial %d iteration %d/%d: retraining epoch %d/%d  loss %.3f",
                     trial.number, iteration, schedule.rounds, epoch,
                     schedule.epochs_per_round, loss)

        model.load_state_dict(self.checkpoint.trained_state)
        model.to(self.device)
        try:
            final = loop.run(self.trials, schedule, model, on_iteration=on_iteration,
                             on_epoch=on_epoch, on_plan=on_plan).final
            return dense[0], final, None
        except early_stopping.StoppedEarly as stopped:
            records.save_trial(trial, stopped=str(stopped))
            log.info("trial %d %s", trial.number, stopped)
            return dense[0], stopped.figures, str(stopped)

    def _finish(self, trial: optuna.Trial, run_id: str, dense: IterationResult,
                figures: IterationResult, stopped: str | None) -> list[float]:
        """The trial's objectives: those of its last iteration, `figures`, with how far it is
        past each budget as an Optuna constraint (`dense`: the dense model's figures);
        `stopped`: why early stopping ended it there."""
        spec = self.spec
        final = figures.as_dict()
        records.save_trial(trial, final=final)
        for budget in studyfile.study_budgets(spec):
            excess = budget.excess(figures, dense)
            trial.set_constraint(CONSTRAINT_NAMES.get(budget.key, budget.key),
                                 min(excess, BROKEN_BEYOND_MEASURE))
        self.tracker.end_trial(run_id, state="STOPPED" if stopped else "COMPLETE",
                               reason=stopped, final=final)
        return [OBJECTIVES[name].value(figures) for name in spec.objectives]


def _after_trial(study: optuna.Study, trial, tracker: StudyTracker, spec: StudySpec,
                 n_trials: int) -> None:
    """After every trial: the study run's overview and progress metrics; after a finished one,
    the front's plots and table too, unless drawn less than FRONT_DRAWN_EVERY_S ago (with many
    workers, every trial would redraw it) and n_trials are not yet finished."""
    done = study_view.finished(study)
    failed = TrialRecord.of(trial).fail_reason if trial.state == TrialState.FAIL else None
    log.info("trial %d %s%s; %d of %d trials finished", trial.number,
             "STOPPED" if study_view.is_stopped(trial) else trial.state.name,
             f" ({failed.splitlines()[0]})" if failed else "", len(done), n_trials)
    models = study_view.every_model(study)  # read once: the front, counts and budgets share it
    rows = study_view.candidates(study, models)
    front = study_view.pareto_rows(study, models=models)
    record = StudyRecord.of(study)
    counts = study_view.counts(study.get_trials(deepcopy=False))
    axis = plot_axis(study.metric_names)
    feasibility = study_view.feasibility(study, models)
    tracker.update_story(
        overview=overview.overview(name=spec.name, description=spec.description,
                                   settings=_overview_settings(spec, n_trials),
                                   dense=record.dense, front=front, counts=counts, axis=axis,
                                   feasibility=feasibility),
        metrics=overview.search_metrics(rows, front, counts, axis, feasibility),
        step=len(done))
    drawn = record.pareto_drawn_at
    due = drawn is None or time.time() - drawn >= FRONT_DRAWN_EVERY_S
    if trial.state in study_view.FINISHED and (due or len(done) >= n_trials):
        _draw_front(study, tracker, rows, front, record)


def _draw_front(study: optuna.Study, tracker: StudyTracker, rows: list, front: list,
                record: StudyRecord) -> None:
    """The front's plots and table, rendered here, uploaded to the study run (`rows`: every
    candidate); its trial runs tagged."""
    objectives = study.metric_names
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plots.draw(folder / "pareto.png", {"Pareto front": front}, plot_axis(objectives),
                   models=rows, joined=joined(objectives),
                   dense=IterationResult.from_dict(record.dense) if record.dense else None)
        _draw_layers(study, front, folder / "layers.png")
        (folder / "pareto.json").write_text(tables.to_json(front))
        (folder / "pareto.csv").write_text(tables.to_csv(front))
        tracker.upload_front(folder, front=[(row.trial, row.mlflow_run_id) for row in front],
                             previous_front_run_ids=set(record.pareto_run_ids))
        tracker.log_image(tracker.parent_run_id, folder / "pareto.png",
                          key=mlflow_pages.FRONT_IMAGE_KEY, step=0)
    records.save_study(study, pareto_run_ids=[row.mlflow_run_id for row in front],
                       pareto_drawn_at=time.time())


def _draw_layers(study: optuna.Study, front: list, path: Path) -> None:
    """The keep ratio of every unit of the front's models (those with the first one's units:
    a front may mix methods), a line each."""
    trials = {trial.number: trial for trial in study.get_trials(deepcopy=False)}
    found = {f"trial {row.trial}.{row.iteration}": rows for row in front
             for rows in [layer_view.rows(TrialRecord.of(trials[row.trial]), row.iteration)]
             if rows}
    units = [row["name"] for row in next(iter(found.values()), [])]
    alike = {label: rows for label, rows in found.items()
             if [row["name"] for row in rows] == units}
    if alike:
        layer_view.draw(path, alike, title=f"{study.study_name}: what the front's models kept")


def _front_outdated(study: optuna.Study) -> bool:
    """A trial finished after the front was last drawn."""
    drawn = StudyRecord.of(study).pareto_drawn_at
    ends = [t.datetime_complete.timestamp() for t in study_view.finished(study)]
    return bool(ends) and (drawn is None or max(ends) > drawn)


def _overview_settings(spec: StudySpec, n_trials: int) -> dict[str, str]:
    """What the overview says was searched: the study file's main settings, the space's
    main parameters as `prunesearch validate` describes them."""
    space = studyfile.describe_space(spec)
    shown = ["method", "schedule", *(key for keys in FAMILY_KEYS.values() for key in keys
                                     if key in spec.space), "reinit"]
    return {"objectives": ", ".join(spec.objectives), "trials": str(n_trials),
            "sampler": spec.sampler, "seed": str(spec.seed),
            "model": f"{spec.model.name} (width {spec.model.width})",
            "data": spec.data.source + (f" {spec.data.path}" if spec.data.path else "")
            + (f", {spec.data.image_size} px" if spec.data.image_size else ""),
            "dense model": f"from {spec.dense.checkpoint}" if spec.dense.checkpoint else
            f"torchvision {spec.model.weights} weights" if spec.model.weights else "trained",
            **{name: space[name] for name in shown}}
