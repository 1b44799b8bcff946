"""How fast prunesearch trains and prunes, against the usual way and against the hardware.

Measures in one run, on this machine, and prints a table (and writes JSON):
  a) training throughput (images/s) of prunesearch's training loop and data pipeline on the
     default model (cifar_cnn, width 32), vs a torch DataLoader + torchvision transforms
     pipeline on the same model and data, and vs the compute ceiling (forward+backward+step on
     a batch already prepared in memory): whole epochs, taking turns;
  b) the same on the PyTorch tutorial's small CIFAR CNN, where data handling dominates;
  c) a trial with the dense cache cold (dense training included) vs warm;
  d) the smoke study's and a shortened l1-iterative's wall time vs a reference loop written
     the way a notebook would (DataLoader + transforms, the dense model retrained for every
     trial), same trials and settings;
  e) structured pruning: measured CPU latency ratio dense/pruned vs MACs ratio;
  f) peak resident memory of a worker on a full-size (50,000-image) CIFAR-shaped data set;
  h) the layout (channels_last) and evaluation batch size prunesearch uses vs the others.
(g, torch.compile, was measured not to pay and is gone: docs/performance.md.)

    python -m benchmarks.speed --data-dir ../shared/data/cifar10-subset [--json speed.json]
    python -m benchmarks.speed --smoke     # every section on tiny generated data, in seconds

What a GPU gives is measured by benchmarks/gpu.py.
"""

import dataclasses
import functools
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch
from torch import nn
from torch.nn.utils import prune

from benchmarks import common
from benchmarks.common import BATCH, sgd, step, take_turns, train_on
from prunesearch.config import studyfile
from prunesearch.pruning import costs, loop, methods, timing
from prunesearch.pruning.figures import BATCH_SIZES
from prunesearch.pruning.export import shrink
from prunesearch.pruning.graph.channels import couplings
from prunesearch.pruning.methods.base import Context
from prunesearch.pruning.schedule import Schedule
from prunesearch.search import dense, trials
from prunesearch.stores.records import TrialRecord
from prunesearch.training import data as data_module
from prunesearch.training import models, train
from prunesearch.training.data import train_batches
from prunesearch.testing import data as testing_data
from prunesearch.testing import studies
from prunesearch.views import study_view


class TutorialNet(nn.Module):
    """The CIFAR-10 CNN of the PyTorch "Training a classifier" tutorial (62 k parameters)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 6, 5), nn.Conv2d(6, 16, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc3(torch.relu(self.fc2(x)))


@dataclasses.dataclass(frozen=True)
class Scale:
    """How big each section runs: the real measurement, or --smoke (every code path, tiny)."""

    rounds: int = 3  # training epochs timed per pipeline on the default model
    loader_workers: int = 2  # the notebook DataLoader's, as the tutorial writes it
    l1_trials: int = 2
    l1_train_images: int = 300
    latency_rounds: int = timing.LATENCY_ROUNDS
    timing_rounds: int = 5  # of (h)
    memory_images: int = 60_000  # (f): a full-size CIFAR-10, training and test
    memory_width: int = 32  # of the model (f)'s worker trains
    smoke: bool = False

    def study(self, spec):
        """`spec` as this scale runs it: as it is, or at smoke size (common.smoke_sized)."""
        return common.smoke_sized(spec) if self.smoke else spec


SMOKE = Scale(rounds=1, loader_workers=0, l1_trials=1, latency_rounds=1, timing_rounds=1,
              memory_images=2_000, memory_width=4, smoke=True)


def throughput(build, split, rounds: int, scale: Scale) -> dict:
    """prunesearch's training loop and data pipeline vs DataLoader + transforms vs prepared
    batches, each training its own copy of one model for one epoch per round.

    The three take turns (`take_turns`); ratios are the medians of the per-round ratios. prunesearch
    runs its real loop (`train.train_epochs`: progress bar, interrupt check, lr schedule); the
    others the bare step. Also the data pipelines alone, without a model.
    """
    generator = torch.Generator().manual_seed(0)
    prepared = next(train_batches(split, batch_size=BATCH, generator=generator, augmented=True))
    full_batches = len(split) // BATCH
    loader = common.notebook_loader(split, augmented=True, workers=scale.loader_workers)
    settings = train.OptimizerSettings(lr=0.01, batch_size=BATCH, momentum=0.9, weight_decay=0)

    trained = {name: build() for name in ("prunesearch", "dataloader", "ceiling")}
    optimizers = {name: sgd(model) for name, model in trained.items()}
    for name in trained:  # warm-up: oneDNN builds its kernels for the batch shape once
        train_on(trained[name], optimizers[name], itertools.repeat(prepared, 3))
    seconds = take_turns({
        "prunesearch": lambda: train.train_epochs(trained["prunesearch"], split, epochs=1,
                                                  settings=settings, generator=generator),
        "dataloader": lambda: train_on(trained["dataloader"], optimizers["dataloader"], loader),
        "ceiling": lambda: train_on(trained["ceiling"], optimizers["ceiling"],
                                    itertools.repeat(prepared, full_batches)),
    }, rounds)
    images = {"prunesearch": len(split), "dataloader": len(split),
              "ceiling": full_batches * BATCH}
    rates = {name: [images[name] / s for s in times] for name, times in seconds.items()}
    ratio = functools.partial(common.median_ratio, rates)
    return {
        "prunesearch_img_s": statistics.median(rates["prunesearch"]),
        "dataloader_img_s": statistics.median(rates["dataloader"]),
        "ceiling_img_s": statistics.median(rates["ceiling"]),
        "vs_dataloader": ratio("prunesearch", "dataloader"),
        "of_ceiling": ratio("prunesearch", "ceiling"),
        "dataloader_of_ceiling": ratio("dataloader", "ceiling"),
        "data_only_prunesearch_img_s": data_only_rate(
            lambda: train_batches(split, batch_size=BATCH, generator=generator, augmented=True)),
        "data_only_dataloader_img_s": data_only_rate(lambda: loader),
    }


def data_only_rate(make_epoch) -> float:
    """Images per second a pipeline delivers with no model to feed: its own cost."""
    start, seen = time.perf_counter(), 0
    for _, labels in make_epoch():
        seen += len(labels)
    return seen / (time.perf_counter() - start)


def shortened(name: str, *, n_trials: int, train_images: int):
    """A shipped study as it is, but for its trial budget and its training images."""
    spec = studyfile.load(name)
    return dataclasses.replace(spec, n_trials=n_trials, data=dataclasses.replace(
        spec.data, train_subset=train_images))


def trial_cold_vs_warm(data_dir: Path, scale: Scale) -> dict:
    """One smoke-sized trial with an empty dense cache, then again with the cache filled."""
    spec = scale.study(studyfile.load("smoke"))
    data = common.load_data(spec, data_dir)
    schedule = Schedule(method="l1_unstructured", amount=0.5, iterations=1, retrain_epochs=1,
                        reinit="finetune")
    timings = {}
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold", "warm"):
            start = time.perf_counter()
            checkpoint = dense.load_or_train(spec, data, cache_dir=Path(cache),
                                             device=torch.device("cpu"))
            dense_s = time.perf_counter() - start
            model = models.from_spec(dataclasses.asdict(spec.model))
            model.load_state_dict(checkpoint.trained_state)
            loop.run(trials.settings(spec, data, checkpoint, torch.device("cpu")), schedule,
                     model)  # the trial optimize runs
            timings[f"{label}_s"] = time.perf_counter() - start
            timings[f"{label}_dense_s"] = dense_s
    return timings


def study_vs_notebook(spec, data_dir: Path, scale: Scale) -> dict:
    """A study through prunesearch, then the same trials the notebook way."""
    data = common.load_data(spec, data_dir)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        study = common.run_study(spec, Path(folder), data_dir)
        ours = time.perf_counter() - start
        schedules = [Schedule.from_dict(TrialRecord.of(t).schedule)
                     for t in study_view.finished(study)]
    start = time.perf_counter()
    dense_s = sum(notebook_trial(spec, data, schedule, scale) for schedule in schedules)
    notebook = time.perf_counter() - start
    epochs = spec.dense.epochs + sum(s.iterations * s.retrain_epochs for s in schedules)
    return {"trials": len(schedules), "prunesearch_s": ours, "notebook_s": notebook,
            "speedup": notebook / ours, "notebook_dense_s": dense_s,
            "prunesearch_trained_images": epochs * len(data.train),
            # What caching the dense model alone could give: the notebook without its
            # repeated dense trainings, everything else equal.
            "caching_bound": notebook / (notebook - dense_s * (len(schedules) - 1)
                                         / len(schedules))}


def notebook_trial(spec, data, schedule: Schedule, scale: Scale) -> float:
    """A trial as a notebook writes it: train the dense model, prune, retrain, evaluate;
    returns the seconds its dense training took. (Re-initialising costs no measurable time and
    is left out.)"""
    torch.manual_seed(spec.seed)
    model = models.from_spec(dataclasses.asdict(spec.model))
    train_loader = common.notebook_loader(data.train, augmented=True,
                                          workers=scale.loader_workers)
    start = time.perf_counter()
    common.notebook_epochs(model, train_loader, spec.dense.epochs, spec.dense.lr)
    dense_s = time.perf_counter() - start
    for _ in range(schedule.iterations):
        for _, module in costs.prunable_modules(model):
            prune.l1_unstructured(module, "weight", amount=schedule.amount)
        common.notebook_epochs(model, train_loader, schedule.retrain_epochs,
                               schedule.retrain_lr)
        for split in (data.val, data.test):
            common.notebook_accuracy(model, common.notebook_loader(
                split, augmented=False, shuffle=False, workers=scale.loader_workers))
    return dense_s


def structured_latency(scale: Scale) -> list[dict]:
    """ln_structured at several amounts on the default model: latency ratio vs MACs ratio."""
    example = torch.zeros(1, 3, 32, 32)
    rows = []
    for amount in (0.25, 0.5, 0.75):
        torch.manual_seed(0)
        model = models.build("cifar_cnn", width=32)
        dense_model = models.build("cifar_cnn", width=32).eval()
        targets = loop.prunable_targets(model, include_classifier=False)
        context = Context(options=methods.get("ln_structured").Options(norm=1),
                                  couplings=couplings(model, targets, example))
        methods.get("ln_structured").apply(model, targets, amount, context)
        slim = shrink(model, example).eval()
        macs_ratio = costs.macs(dense_model, example) / costs.macs(slim, example)
        latency_ratio = timing.time_against(slim, dense_model, example, BATCH_SIZES[-1],
                                           rounds=scale.latency_rounds).speedup
        rows.append({"amount": amount, "macs_ratio": macs_ratio, "latency_ratio": latency_ratio,
                     "latency_of_macs": latency_ratio / macs_ratio})
    return rows


def masked_default_model():
    """The default model as a trial retrains it: half its weights pruned, masks as hooks."""
    torch.manual_seed(0)
    model = models.build("cifar_cnn", width=32)
    for _, module in costs.prunable_modules(model):
        prune.l1_unstructured(module, "weight", amount=0.5)
    return model


def layout_and_eval_batch(split, scale: Scale) -> dict:
    """The choices data.normalize and train.evaluate make: channels_last vs NCHW inputs (a
    training step; evaluating the split), and the evaluation batch size."""
    model = masked_default_model()
    optimizer = sgd(model)
    images, labels = next(train_batches(split, batch_size=BATCH,
                                        generator=torch.Generator().manual_seed(0),
                                        augmented=True))
    nchw = images.contiguous()
    train_ms = common.median_ms({
        "channels_last": lambda: step(model, optimizer, images, labels),
        "nchw": lambda: step(model, optimizer, nchw, labels),
    }, scale.timing_rounds)
    model.eval()
    evaluated = split.images[:1024]

    def evaluate(batch_size: int, layout: torch.memory_format):
        with torch.inference_mode():
            for start in range(0, len(evaluated), batch_size):
                model(data_module.normalize(evaluated[start:start + batch_size])
                      .contiguous(memory_format=layout))

    sizes = (train.EVAL_BATCH_SIZE, 4 * train.EVAL_BATCH_SIZE)
    eval_ms = common.median_ms({
        **{f"channels_last_{size}": lambda size=size: evaluate(size, torch.channels_last)
           for size in sizes},
        f"nchw_{sizes[0]}": lambda: evaluate(sizes[0], torch.contiguous_format),
    }, scale.timing_rounds)
    return {"train_step_nchw_over_channels_last": train_ms["nchw"] / train_ms["channels_last"],
            "eval_nchw_over_channels_last": eval_ms[f"nchw_{sizes[0]}"]
            / eval_ms[f"channels_last_{sizes[0]}"],
            "eval_batch_sizes": list(sizes),
            "eval_bigger_batch_over_default": eval_ms[f"channels_last_{sizes[1]}"]
            / eval_ms[f"channels_last_{sizes[0]}"]}


def peak_memory_full_size(scale: Scale) -> dict:
    """Peak RSS of `prunesearch optimize` (1 short trial) on a full-size data set of random
    images (50,000 training + 10,000 test; fewer with --smoke)."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        test = scale.memory_images // 6
        testing_data.random_cifar_folder(folder / "data", train=scale.memory_images - test, test=test)
        studies.study_file(folder / "study.toml", base=None, name="memory", n_trials=1,
                          latency_device="none" if scale.smoke else "cpu",
                          data={"val_size": min(5000, test), "train_subset": 1000},
                          model={"width": scale.memory_width}, dense={"epochs": 1},
                          space={"method": "l1_unstructured", "amount": 0.5, "iterations": 1,
                                 "retrain_epochs": 1, "reinit": "finetune"})
        # The worker reports its own peak: the benchmark's other children (DataLoader
        # workers) must not count, nor the benchmark itself, whose peak Linux hands on to
        # a child's getrusage() across exec; /proc's VmHWM is the worker's own.
        worker = subprocess.run([sys.executable, "-c", MEASURED_WORKER], cwd=folder,
                                check=True, capture_output=True, text=True)
    peak_kib = int(worker.stdout.split()[-1])
    return {"images": scale.memory_images, "peak_rss_gib": peak_kib / 2**20}


MEASURED_WORKER = """
import re
from pathlib import Path
from prunesearch.cli import main
try:
    main(["optimize", "--study", "study.toml", "--data-dir", "data", "--cache-dir", "cache"])
except SystemExit as end:
    assert not end.code, end.code
print(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
"""


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=data_module.default_data_dir())
    parser.add_argument("--json", type=Path, default=Path("speed.json"))
    parser.add_argument("--rounds", type=int, default=Scale.rounds,
                        help="training epochs timed per pipeline on the default model "
                             "(the tutorial model gets twice as many)")
    parser.add_argument("--l1-trials", type=int, default=Scale.l1_trials,
                        help="trials of l1-iterative in (d)")
    parser.add_argument("--l1-train-images", type=int, default=Scale.l1_train_images,
                        help="training images of l1-iterative in (d), to fit the 10 minutes")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    scale = SMOKE if args.smoke else Scale(rounds=args.rounds, l1_trials=args.l1_trials,
                                           l1_train_images=args.l1_train_images)
    with common.data_dir_for(args) as data_dir:
        figures = measure(data_dir, scale)
    common.write_json(args.json, figures)
    print_table(figures)


def measure(data_dir: Path, scale: Scale) -> dict:
    """Every section, in order, each printed to stderr as it ends."""
    split = data_module.load(data_dir=data_dir, val_size=0.1, train_subset=None, seed=0).train
    l1 = shortened("l1-iterative", n_trials=scale.l1_trials,
                   train_images=scale.l1_train_images)
    figures = {"torch": torch.__version__, "threads": torch.get_num_threads(),
               "train_images": len(split), "smoke": scale.smoke}
    sections = [
        ("a_default_model", lambda: throughput(lambda: models.build("cifar_cnn", width=32),
                                               split, scale.rounds, scale)),
        ("b_tutorial_model", lambda: throughput(TutorialNet, split, 2 * scale.rounds, scale)),
        ("c_trial_cache", lambda: trial_cold_vs_warm(data_dir, scale)),
        ("d_smoke_study", lambda: study_vs_notebook(
            scale.study(studyfile.load("smoke")), data_dir, scale)),
        ("d_l1_iterative_study", lambda: study_vs_notebook(
            scale.study(l1), data_dir, scale)),
        ("e_structured_latency", lambda: structured_latency(scale)),
        ("f_memory", lambda: peak_memory_full_size(scale)),
        ("h_layout_and_eval_batch", lambda: layout_and_eval_batch(split, scale)),
    ]
    common.run_sections(figures, sections)
    # l1-iterative trains the default model: at the compute ceiling of (a), its training
    # steps alone take this long, so no pipeline can beat the notebook by more than this.
    l1 = figures["d_l1_iterative_study"]
    l1["compute_floor_s"] = (l1["prunesearch_trained_images"]
                             / figures["a_default_model"]["ceiling_img_s"])
    l1["best_possible"] = l1["notebook_s"] / l1["compute_floor_s"]
    return figures


def print_table(r: dict) -> None:
    a, b, c, f, h = (r[k] for k in ("a_default_model", "b_tutorial_model", "c_trial_cache",
                                    "f_memory", "h_layout_and_eval_batch"))
    print(f"torch {r['torch']}, {r['threads']} threads, {r['train_images']} training images"
          + (" (--smoke: these figures mean nothing)" if r["smoke"] else ""))
    print("| measure | figure | target |")
    print("| --- | ---: | --- |")
    for label, t in (("a) default model", a), ("b) tutorial model", b)):
        print(f"| {label}: prunesearch / DataLoader+transforms / ceiling (img/s) | "
              f"{t['prunesearch_img_s']:.0f} / {t['dataloader_img_s']:.0f} / "
              f"{t['ceiling_img_s']:.0f} | |")
        print(f"| {label}: vs DataLoader | {t['vs_dataloader']:.2f}x | "
              f"{'>= 1.2x' if label.startswith('a') else '>= 2.5x'} |")
        print(f"| {label}: of compute ceiling, prunesearch / DataLoader | "
              f"{t['of_ceiling']:.2f} / {t['dataloader_of_ceiling']:.2f} | "
              f"{'>= 0.9' if label.startswith('a') else ''} |")
        print(f"| {label}: data alone, prunesearch / DataLoader (img/s) | "
              f"{t['data_only_prunesearch_img_s']:,.0f} / {t['data_only_dataloader_img_s']:,.0f}"
              " | |")
    print(f"| c) trial, dense cache cold / warm (s) | {c['cold_s']:.1f} / {c['warm_s']:.1f} "
          f"(dense {c['cold_dense_s']:.1f} / {c['warm_dense_s']:.2f}) | warm: no dense training |")
    for key, label in (("d_smoke_study", "smoke"), ("d_l1_iterative_study", "l1-iterative")):
        d = r[key]
        print(f"| d) {label}, {d['trials']} trials: notebook / prunesearch (s) | "
              f"{d['notebook_s']:.0f} / {d['prunesearch_s']:.0f} = {d['speedup']:.1f}x "
              f"(caching alone could give {d['caching_bound']:.1f}x) | >= 5x |")
    l1 = r["d_l1_iterative_study"]
    print(f"| d) l1-iterative: its training steps alone at the ceiling of (a) (s); best "
          f"possible ratio | {l1['compute_floor_s']:.0f}; {l1['best_possible']:.1f}x | |")
    for row in r["e_structured_latency"]:
        print(f"| e) ln_structured {row['amount']}: latency ratio / MACs ratio | "
              f"{row['latency_ratio']:.2f} / {row['macs_ratio']:.2f} = "
              f"{row['latency_of_macs']:.2f} | >= 0.7 |")
    print(f"| f) peak RSS, {f['images']:,} images (GiB) | {f['peak_rss_gib']:.2f} | <= 1.5 |")
    print(f"| h) NCHW time / channels_last time: training step; evaluation | "
          f"{h['train_step_nchw_over_channels_last']:.2f}; "
          f"{h['eval_nchw_over_channels_last']:.2f} | kept if > 1 |")
    print(f"| h) evaluation batch {h['eval_batch_sizes'][1]} time / batch "
          f"{h['eval_batch_sizes'][0]} time | {h['eval_bigger_batch_over_default']:.2f} | "
          "kept if > 1 |")


if __name__ == "__main__":
    main()
