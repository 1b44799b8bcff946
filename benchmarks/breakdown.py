"""Where a study's wall time goes, by part (issue 42): the work around the training steps, with
the training data at 1x and at 10x (each image repeated), so that what scales with the data
and what is fixed per iteration, per trial or per study shows.

One `prunesearch optimize` in this process per (study, data size), its dense model cached
first; each part timed where prunesearch calls it, exclusively (a part's time excludes the
parts it calls):

  data            reading the images (search.data.read)
  dense           the dense model from its cache (search.dense.load_or_train)
  tracker start   MLflow client and the study's experiment and run (StudyTracker)
  training        retraining steps (loop.train_epochs)
  evaluation      validation and test accuracy (loop.evaluate)
  costs           sparsity, parameters, MACs (costs.measure, less what it calls)
  timing          latency, paired rounds against the dense model (timing.time_against)
  tracing         torch-pruning's graph and the smaller model (couplings, export.shrink)
  pruning         the method's masks and the allocation's plan (Method.apply, loop._plan)
  tracking        MLflow calls of a trial (StudyTracker methods)
  storage         Optuna user attributes (records.save_trial, save_study)
  front           the front's plots and table after each trial (optimize._draw_front)
  other           the rest: Optuna's ask and tell, the sampler, Python between the parts

Then, for the first study, a fresh `prunesearch optimize` process with the dense model cached:
the seconds from its spawn to its first trial's start, against spawning `python -c "import
torch"`, in paired rounds (issue 42's target is about what it spends beyond that import).

    python -m benchmarks.breakdown --data-dir ../shared/data/cifar10-subset
        [--studies l1-iterative structured-filters] [--scales 1 10] [--trials 2]
        [--start-rounds 4]
    python -m benchmarks.breakdown --smoke   # both studies at 1x and 2x, tiny, dense not cached
"""

import contextlib
import dataclasses
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

from benchmarks import common
from prunesearch.config import studyfile
from prunesearch.pruning import costs, export, loop, methods
from prunesearch.pruning.schedule import Fixed
from prunesearch.search import data as study_data
from prunesearch.search import dense, optimize
from prunesearch.stores import records
from prunesearch.stores.tracking import StudyTracker
from prunesearch.testing import studies

TRACKER_CALLS = ("start_trial", "log_dataset", "log_iteration", "log_weights", "log_plan",
                 "end_trial", "update_story", "log_study_params", "share_view")
FIXED_PARTS = ("tracker start", "timing", "tracing", "tracking", "storage", "front")


class Clock:
    """Exclusive seconds per part: a timed call inside another is its own part's, not both."""

    def __init__(self):
        self.spent: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.inner = [0.0]  # per open call: seconds of the timed calls inside it

    def timed(self, part: str, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            self.inner.append(0.0)
            try:
                return function(*args, **kwargs)
            finally:
                took = time.perf_counter() - start
                inside = self.inner.pop()
                self.inner[-1] += took
                self.spent[part] = self.spent.get(part, 0.0) + took - inside
                self.calls[part] = self.calls.get(part, 0) + 1
        return wrapper


def patched(clock: Clock) -> contextlib.ExitStack:
    """Every part's function wrapped where prunesearch looks it up."""
    stack = contextlib.ExitStack()
    places = [(study_data, "read", "data"), (dense, "load_or_train", "dense"),
              (loop, "train_epochs", "training"), (loop, "evaluate", "evaluation"),
              (costs, "measure", "costs"), (costs, "time_against", "timing"),
              (loop, "couplings", "tracing"), (export, "shrink", "tracing"),
              (methods.Method, "apply", "pruning"), (loop, "_plan", "pruning"),
              (records, "save_trial", "storage"), (records, "save_study", "storage"),
              (optimize, "_draw_front", "front"),
              (StudyTracker, "__init__", "tracker start"),
              (StudyTracker, "open_study", "tracker start"),
              *((StudyTracker, name, "tracking") for name in TRACKER_CALLS)]
    for owner, name, part in places:
        stack.enter_context(mock.patch.object(owner, name, clock.timed(part, getattr(owner,
                                                                                        name))))
    return stack


def repeated(factor: int):
    """search.data.read with every training image repeated `factor` times."""
    read = study_data.read

    def read_repeated(*args, **kwargs):
        found = read(*args, **kwargs)
        train = found.train
        more = dataclasses.replace(train, images=train.images.repeat(factor, 1, 1, 1),
                                   labels=train.labels.repeat(factor))
        return dataclasses.replace(found, train=more)
    return read_repeated


def spec_for(name: str, trials: int, smoke: bool):
    """The shipped study `name`, its schedule fixed at 2 iterations of `amount` 0.5 (0.25 for
    channels) and 2 retraining epochs (1 with --smoke, tiny), latency_device as shipped."""
    spec = studyfile.load(name)
    fixed = {"amount": Fixed(0.25 if "structured" in str(spec.space["method"]) else 0.5),
             "iterations": Fixed(2), "retrain_epochs": Fixed(1 if smoke else 2)}
    if smoke:
        spec = common.smoke_sized(spec, n_trials=trials)
        return dataclasses.replace(spec, latency_device="auto", space={**spec.space, **fixed})
    return dataclasses.replace(spec, n_trials=trials, space={**spec.space, **fixed},
                               data=dataclasses.replace(spec.data, val_size=0.1,
                                                        train_subset=None))


def breakdown(spec, data_dir: Path, cache: Path, factor: int) -> dict:
    """One run of `spec` to its trials, its dense model already cached: seconds by part."""
    clock = Clock()
    with tempfile.TemporaryDirectory() as folder, \
            mock.patch.object(study_data, "read", repeated(factor)), patched(clock):
        start = time.perf_counter()
        study = common.run_study(spec, Path(folder), data_dir, cache_dir=cache)
        total = time.perf_counter() - start
    iterations = sum(len(records.TrialRecord.of(t).curve) for t in study.trials)
    spent = dict(clock.spent)
    spent["other"] = total - sum(spent.values())
    return {"total_s": total, "iterations": iterations, "trials": len(study.trials),
            "parts_s": spent, "calls": clock.calls,
            "training_share": spent.get("training", 0.0) / total,
            "fixed_per_iteration_s": sum(spent.get(part, 0.0) for part in FIXED_PARTS)
            / max(iterations, 1),
            "start_s": sum(spent.get(part, 0.0) for part in ("data", "dense", "tracker start"))}


def fresh_start(study: Path, data_dir: Path, cache: Path, rounds: int) -> dict:
    """Seconds from spawning `prunesearch optimize --study STUDY` (its dense model cached in
    `cache`) to its first trial's start, and from spawning `python -c "import torch"` to its
    end, `rounds` times in turn; each optimize is stopped by SIGTERM once its trial began."""
    import optuna

    name = studyfile.load(str(study)).name
    spawned, torch_s = [], []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        common.empty_mlflow_store(folder / "mlflow.db")
        storage = f"sqlite:///{folder / 'prunesearch.db'}"
        for _ in range(rounds):
            start = time.time()
            subprocess.run([sys.executable, "-c", "import torch"], check=True)
            torch_s.append(time.time() - start)
            start = time.time()
            worker = subprocess.Popen(
                [sys.executable, "-m", "prunesearch", "optimize", "--study", str(study),
                 "--n-trials", "1000", "--data-dir", str(data_dir), "--cache-dir", str(cache)],
                cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            first = None
            while first is None:
                if worker.poll() is not None:
                    raise RuntimeError(f"optimize exited {worker.returncode}: "
                                       f"{worker.stderr.read()[-2000:]}")
                time.sleep(0.1)
                try:
                    trials = optuna.load_study(study_name=name, storage=storage).trials
                except KeyError:  # not created yet
                    continue
                begun = [t.datetime_start.timestamp() for t in trials
                         if t.datetime_start and t.datetime_start.timestamp() > start]
                first = min(begun) if begun else None
            spawned.append(first - start)
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=60)
    beyond = [s - t for s, t in zip(spawned, torch_s)]
    return {"spawn_to_first_trial_s": spawned, "import_torch_s": torch_s,
            "beyond_torch_s": beyond, "median_beyond_torch_s": statistics.median(beyond)}


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--studies", nargs="+", default=["l1-iterative", "structured-filters"])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--start-rounds", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    scales = [1, 2] if args.smoke else args.scales
    torch.manual_seed(0)
    figures = {}
    with common.data_dir_for(args) as data_dir, tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        for name in args.studies:
            spec = spec_for(name, 1 if args.smoke else args.trials, args.smoke)
            if not args.smoke:  # the dense model trained and cached first
                warm = dataclasses.replace(spec, n_trials=1)
                common.run_study(warm, Path(tmp) / f"warm-{name}", data_dir, cache_dir=cache)
            for factor in scales:
                found = breakdown(spec, data_dir, cache, factor)
                figures[f"{name} x{factor}"] = found
                print(f"{name} x{factor}: {found['total_s']:.1f} s, {found['trials']} trials, "
                      f"{found['iterations']} iterations", file=sys.stderr, flush=True)
        # The first study as a file with the dense settings above (its cache is warm now)
        name = args.studies[0]
        study = studies.study_file(Path(tmp) / "start.toml", base=name, **(
            {"model": {"width": 4}, "dense": {"epochs": 1}, "data": {"val_size": 50},
             "latency_device": "none"} if args.smoke else {}))
        start = fresh_start(study, data_dir, cache, 1 if args.smoke else args.start_rounds)
    parts = ["data", "dense", "tracker start", "training", "evaluation", "costs", "timing",
             "tracing", "pruning", "tracking", "storage", "front", "other"]
    keys = list(figures)
    print("| part (s) | " + " | ".join(keys) + " |")
    print("| --- |" + " ---: |" * len(keys))
    for part in parts:
        print(f"| {part} | " + " | ".join(f"{figures[k]['parts_s'].get(part, 0.0):.2f}"
                                          for k in keys) + " |")
    for label, key, shown in (("total", "total_s", "{:.2f}"),
                              ("training share", "training_share", "{:.0%}"),
                              ("fixed work per iteration", "fixed_per_iteration_s", "{:.2f}"),
                              ("start before the first trial", "start_s", "{:.2f}")):
        print(f"| {label} | " + " | ".join(shown.format(figures[k][key]) for k in keys) + " |")
    print(f"\n{name}, a fresh process, dense model cached: spawn to first trial "
          + ", ".join(f"{x:.2f}" for x in start["spawn_to_first_trial_s"]) + " s; `import torch` "
          + ", ".join(f"{x:.2f}" for x in start["import_torch_s"]) + " s; beyond it, median "
          f"{start['median_beyond_torch_s']:.2f} s")
    if args.json:
        common.write_json(args.json, {**figures, "fresh_start": start})


if __name__ == "__main__":
    main()
