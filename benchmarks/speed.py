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
  g) torch.compile on a retraining step: compile time and speed-up;
  h) the layout (channels_last) and evaluation batch size prunesearch uses vs the others.

    python benchmarks/speed.py --data-dir ../shared/data/cifar10-subset [--json speed.json]

With --device cuda it measures what a GPU gives instead (benchmarks/gpu.py: pipelines side by
side at fp32 and bf16, a trial's time by part, trials per hour against --jobs on one GPU); a
--data-dir without CIFAR-10 gets --gpu-images random CIFAR-shaped images (timing only).
"""

import argparse
import dataclasses
import itertools
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from unittest import mock

import numpy as np
import optuna
import torch
from PIL import Image
from torch import nn
from torch.nn.utils import prune
from torchvision import transforms

from prunesearch import costs, dense, loop, methods, models, results, studyfile, train
from prunesearch import data as data_module
from prunesearch import study as study_module
from prunesearch.export import shrink
from prunesearch.methods.channels import couplings
from prunesearch.records import TrialRecord
from prunesearch.schedule import Schedule
from prunesearch.data import train_batches

BATCH = 128


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


class NotebookDataset(torch.utils.data.Dataset):
    """CIFAR images as PIL images through torchvision transforms, one at a time."""

    def __init__(self, split, augmented: bool):
        self.images = split.images.permute(0, 2, 3, 1).numpy()
        self.labels = split.labels.tolist()
        steps = [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()] \
            if augmented else []
        self.transform = transforms.Compose(
            [*steps, transforms.ToTensor(), transforms.Normalize(data_module.MEAN,
                                                                 data_module.STD)])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.transform(Image.fromarray(self.images[index])), self.labels[index]


def notebook_loader(split, *, augmented: bool, shuffle: bool = True):
    return torch.utils.data.DataLoader(NotebookDataset(split, augmented), batch_size=BATCH,
                                       shuffle=shuffle, num_workers=2)


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def step(model, optimizer, images, labels):
    loss = nn.functional.cross_entropy(model(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def train_on(model, optimizer, batches) -> None:
    """Train `model` on every batch of `batches` with the plain step."""
    model.train()
    for images, labels in batches:
        step(model, optimizer, images, labels)


def take_turns(contenders: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds of each callable per round, the contenders taking turns in an order that
    rotates every round, so that a drift in this shared machine's speed hits all alike."""
    names = list(contenders)
    seconds = {name: [] for name in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            contenders[name]()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def throughput(build, split, rounds: int) -> dict:
    """prunesearch's training loop and data pipeline vs DataLoader + transforms vs prepared
    batches, each training its own copy of one model for one epoch per round.

    The three take turns (`take_turns`); ratios are the medians of the per-round ratios. prunesearch
    runs its real loop (`train.train_epochs`: progress bar, interrupt check, lr schedule); the
    others the bare step. Also the data pipelines alone, without a model.
    """
    generator = torch.Generator().manual_seed(0)
    prepared = next(train_batches(split, batch_size=BATCH, generator=generator, augmented=True))
    full_batches = len(split) // BATCH
    loader = notebook_loader(split, augmented=True)
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
    ratio = lambda a, b: statistics.median(x / y for x, y in zip(rates[a], rates[b]))
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


def study_data(spec, data_dir: Path):
    return data_module.load(data_dir=data_dir, val_size=spec.data.val_size,
                            train_subset=spec.data.train_subset, seed=spec.seed)


def shortened(name: str, *, n_trials: int, train_images: int):
    """A shipped study as it is, but for its trial budget and its training images."""
    spec = studyfile.load(name)
    return dataclasses.replace(spec, n_trials=n_trials, data=dataclasses.replace(
        spec.data, train_subset=train_images))


def trial_cold_vs_warm(data_dir: Path) -> dict:
    """One smoke-sized trial with an empty dense cache, then again with the cache filled."""
    spec = studyfile.load("smoke")
    data = study_data(spec, data_dir)
    schedule = Schedule(method="l1_unstructured", amount=0.5, iterations=1, retrain_epochs=1,
                        reinit="finetune")
    timings = {}
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold", "warm"):
            start = time.perf_counter()
            checkpoint = dense.load_or_train(spec, data, cache_dir=Path(cache),
                                             device=torch.device("cpu"))
            dense_s = time.perf_counter() - start
            model = models.build(spec.model.name, width=spec.model.width)
            model.load_state_dict(checkpoint.trained_state)
            loop.run(schedule=schedule, model=model, data=data,
                     dense_accuracy=(checkpoint.val_accuracy, checkpoint.test_accuracy),
                     rewind_state=checkpoint.rewind_state,
                     fresh_state=lambda i: checkpoint.rewind_state,
                     optimizer=dense.optimizer_settings(spec, torch.device("cpu")),
                     augmented=True, seed=0)
            timings[f"{label}_s"] = time.perf_counter() - start
            timings[f"{label}_dense_s"] = dense_s
    return timings


def run_study(spec, folder: Path, data_dir: Path, **options) -> optuna.Study:
    """`spec` run to its budget through prunesearch, with its stores in `folder`; `options`
    are other RunSettings (device, timeout, ...)."""
    options = {"n_trials": spec.n_trials, "cache_dir": folder / "cache", "device": "cpu",
               **options}
    return study_module.optimize(spec, study_module.RunSettings(
        study=spec.path, storage_url=f"sqlite:///{folder / 'o.db'}",
        tracking_uri=tracking_uri(folder), data_dir=data_dir, **options))


def tracking_uri(folder: Path) -> str:
    """The MLflow store of a study run_study ran in `folder`."""
    return f"sqlite:///{folder / 'm.db'}"


def study_vs_notebook(spec, data_dir: Path) -> dict:
    """A study through prunesearch, then the same trials the notebook way."""
    data = study_data(spec, data_dir)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        study = run_study(spec, Path(folder), data_dir)
        ours = time.perf_counter() - start
        schedules = [Schedule.from_dict(TrialRecord.of(t).schedule)
                     for t in results.completed(study)]
    start = time.perf_counter()
    dense_s = sum(notebook_trial(spec, data, schedule) for schedule in schedules)
    notebook = time.perf_counter() - start
    epochs = spec.dense.epochs + sum(s.iterations * s.retrain_epochs for s in schedules)
    return {"trials": len(schedules), "prunesearch_s": ours, "notebook_s": notebook,
            "speedup": notebook / ours, "notebook_dense_s": dense_s,
            "prunesearch_trained_images": epochs * len(data.train),
            # What caching the dense model alone could give: the notebook without its
            # repeated dense trainings, everything else equal.
            "caching_bound": notebook / (notebook - dense_s * (len(schedules) - 1)
                                         / len(schedules))}


def notebook_trial(spec, data, schedule: Schedule) -> float:
    """A trial as a notebook writes it: train the dense model, prune, retrain, evaluate;
    returns the seconds its dense training took. (Re-initialising costs no measurable time and
    is left out.)"""
    torch.manual_seed(spec.seed)
    model = models.build(spec.model.name, width=spec.model.width)
    train = notebook_loader(data.train, augmented=True)
    start = time.perf_counter()
    notebook_epochs(model, train, spec.dense.epochs, spec.dense.lr)
    dense_s = time.perf_counter() - start
    for _ in range(schedule.iterations):
        for _, module in costs.prunable_modules(model):
            prune.l1_unstructured(module, "weight", amount=schedule.amount)
        notebook_epochs(model, train, schedule.retrain_epochs, schedule.retrain_lr)
        for split in (data.val, data.test):
            notebook_accuracy(model, notebook_loader(split, augmented=False, shuffle=False))
    return dense_s


def notebook_epochs(model, loader, epochs: int, lr: float) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    model.train()
    for _ in range(epochs):
        for images, labels in loader:
            step(model, optimizer, images, labels)


def notebook_accuracy(model, loader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += int((model(images).argmax(1) == labels).sum())
            total += len(labels)
    return correct / total


def structured_latency(rounds: int = 3) -> list[dict]:
    """ln_structured at several amounts on the default model: latency ratio vs MACs ratio."""
    example = torch.zeros(1, 3, 32, 32)
    rows = []
    for amount in (0.25, 0.5, 0.75):
        torch.manual_seed(0)
        model = models.build("cifar_cnn", width=32)
        dense_model = models.build("cifar_cnn", width=32).eval()
        targets = loop.prunable_targets(model, include_classifier=False)
        context = methods.Context(options=methods.get("ln_structured").Options(norm=1),
                                  couplings=couplings(model, targets, example))
        methods.get("ln_structured").apply(model, targets, amount, context)
        slim = shrink(model, example).eval()
        macs_ratio = costs.macs(dense_model, example) / costs.macs(slim, example)
        latency_ratio = costs.time_against(slim, dense_model, example, costs.LATENCY_BIG_BATCH,
                                           rounds=rounds).speedup
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


def median_ms(contenders: dict, rounds: int) -> dict[str, float]:
    """Median milliseconds of each callable, taking turns."""
    return {name: 1000 * statistics.median(times)
            for name, times in take_turns(contenders, rounds).items()}


def compiled_vs_eager(rounds: int = 5, steps: int = 4) -> dict:
    """torch.compile on a trial's retraining step: its compile time, then its step time
    against eager mode (milliseconds per batch of 128)."""
    generator = torch.Generator().manual_seed(0)
    images = data_module.normalize(torch.randint(0, 256, (BATCH, 3, 32, 32), dtype=torch.uint8,
                                                 generator=generator))
    labels = torch.randint(0, 10, (BATCH,), generator=generator)
    eager, compiled = masked_default_model(), torch.compile(masked_default_model())
    eager_opt, compiled_opt = sgd(eager), sgd(compiled)
    # A cold compile, as a study's first trial pays it: an empty inductor cache.
    with tempfile.TemporaryDirectory() as cache, mock.patch.dict(
            os.environ, {"TORCHINDUCTOR_CACHE_DIR": cache}):
        start = time.perf_counter()
        step(compiled, compiled_opt, images, labels)
        compile_s = time.perf_counter() - start
    ms = median_ms({
        "eager": lambda: [step(eager, eager_opt, images, labels) for _ in range(steps)],
        "compiled": lambda: [step(compiled, compiled_opt, images, labels) for _ in range(steps)],
    }, rounds)
    return {"compile_s": compile_s, "eager_ms": ms["eager"] / steps,
            "compiled_ms": ms["compiled"] / steps, "speedup": ms["eager"] / ms["compiled"]}


def layout_and_eval_batch(split, rounds: int = 5) -> dict:
    """The choices data.normalize and train.evaluate make: channels_last vs NCHW inputs (a
    training step; evaluating the split), and the evaluation batch size."""
    model = masked_default_model()
    optimizer = sgd(model)
    images, labels = next(train_batches(split, batch_size=BATCH,
                                        generator=torch.Generator().manual_seed(0),
                                        augmented=True))
    nchw = images.contiguous()
    train_ms = median_ms({
        "channels_last": lambda: step(model, optimizer, images, labels),
        "nchw": lambda: step(model, optimizer, nchw, labels),
    }, rounds)
    model.eval()
    evaluated = split.images[:1024]

    def evaluate(batch_size: int, layout: torch.memory_format):
        with torch.inference_mode():
            for start in range(0, len(evaluated), batch_size):
                model(data_module.normalize(evaluated[start:start + batch_size])
                      .contiguous(memory_format=layout))

    sizes = (train.EVAL_BATCH_SIZE, 4 * train.EVAL_BATCH_SIZE)
    eval_ms = median_ms({
        **{f"channels_last_{size}": lambda size=size: evaluate(size, torch.channels_last)
           for size in sizes},
        f"nchw_{sizes[0]}": lambda: evaluate(sizes[0], torch.contiguous_format),
    }, rounds)
    return {"train_step_nchw_over_channels_last": train_ms["nchw"] / train_ms["channels_last"],
            "eval_nchw_over_channels_last": eval_ms[f"nchw_{sizes[0]}"]
            / eval_ms[f"channels_last_{sizes[0]}"],
            "eval_batch_sizes": list(sizes),
            "eval_bigger_batch_over_default": eval_ms[f"channels_last_{sizes[1]}"]
            / eval_ms[f"channels_last_{sizes[0]}"]}


def peak_memory_full_size() -> dict:
    """Peak RSS of `prunesearch optimize` (1 short trial) on 50,000 + 10,000 generated images."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        batches = folder / "data" / "cifar-10-batches-py"
        batches.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            images = rng.integers(0, 256, size=(10_000, 3072), dtype=np.uint8)
            labels = (np.arange(10_000) % 10).tolist()
            (batches / name).write_bytes(pickle.dumps({"data": images, "labels": labels}))
        (folder / "study.toml").write_text(textwrap.dedent("""
            name = "memory"
            n_trials = 1
            [data]
            val_size = 5000
            train_subset = 1000
            [model]
            width = 32
            [dense]
            epochs = 1
            [space]
            method = "l1_unstructured"
            amount = 0.5
            iterations = 1
            retrain_epochs = 1
            reinit = "finetune"
        """))
        # The worker reports its own peak: the benchmark's other children (DataLoader
        # workers) must not count, nor the benchmark itself, whose peak Linux hands on to
        # a child's getrusage() across exec; /proc's VmHWM is the worker's own.
        worker = subprocess.run([sys.executable, "-c", MEASURED_WORKER], cwd=folder,
                                check=True, capture_output=True, text=True)
    peak_kib = int(worker.stdout.split()[-1])
    return {"images": 60_000, "peak_rss_gib": peak_kib / 2**20}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=data_module.default_data_dir())
    parser.add_argument("--json", type=Path, default=Path("speed.json"))
    parser.add_argument("--rounds", type=int, default=3,
                        help="training epochs timed per pipeline on the default model "
                             "(the tutorial model gets twice as many)")
    parser.add_argument("--l1-trials", type=int, default=2,
                        help="trials of l1-iterative in (d)")
    parser.add_argument("--l1-train-images", type=int, default=300,
                        help="training images of l1-iterative in (d), to fit the 10 minutes")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--gpu-images", type=int, default=50_000,
                        help="--device cuda without CIFAR-10 in --data-dir: random images")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.device == "cuda":
        import gpu

        args.json.write_text(json.dumps(gpu.run(args), indent=2))
        return

    split = data_module.load(data_dir=args.data_dir, val_size=0.1, train_subset=None,
                             seed=0).train
    results = {"torch": torch.__version__, "threads": torch.get_num_threads(),
               "train_images": len(split)}
    sections = [
        ("a_default_model", lambda: throughput(lambda: models.build("cifar_cnn", width=32),
                                               split, args.rounds)),
        ("b_tutorial_model", lambda: throughput(TutorialNet, split, 2 * args.rounds)),
        ("c_trial_cache", lambda: trial_cold_vs_warm(args.data_dir)),
        ("d_smoke_study", lambda: study_vs_notebook(studyfile.load("smoke"), args.data_dir)),
        ("d_l1_iterative_study", lambda: study_vs_notebook(
            shortened("l1-iterative", n_trials=args.l1_trials,
                      train_images=args.l1_train_images), args.data_dir)),
        ("e_structured_latency", structured_latency),
        ("f_memory", peak_memory_full_size),
        ("g_torch_compile", compiled_vs_eager),
        ("h_layout_and_eval_batch", lambda: layout_and_eval_batch(split)),
    ]
    for name, measure in sections:
        start = time.perf_counter()
        results[name] = measure()
        print(f"{name} ({time.perf_counter() - start:.0f} s): {results[name]}", file=sys.stderr)
    # l1-iterative trains the default model: at the compute ceiling of (a), its training
    # steps alone take this long, so no pipeline can beat the notebook by more than this.
    l1 = results["d_l1_iterative_study"]
    l1["compute_floor_s"] = (l1["prunesearch_trained_images"]
                             / results["a_default_model"]["ceiling_img_s"])
    l1["best_possible"] = l1["notebook_s"] / l1["compute_floor_s"]
    args.json.write_text(json.dumps(results, indent=2))
    print_table(results)


def print_table(r: dict) -> None:
    a, b, c, f, g, h = (r[k] for k in ("a_default_model", "b_tutorial_model", "c_trial_cache",
                                       "f_memory", "g_torch_compile",
                                       "h_layout_and_eval_batch"))
    print(f"torch {r['torch']}, {r['threads']} threads, {r['train_images']} training images")
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
    print(f"| f) peak RSS, {f['images']} images (GiB) | {f['peak_rss_gib']:.2f} | <= 1.5 |")
    print(f"| g) torch.compile: compile time; step eager / compiled (ms) | "
          f"{g['compile_s']:.0f} s; {g['eager_ms']:.0f} / {g['compiled_ms']:.0f} = "
          f"{g['speedup']:.2f}x | kept if it pays |")
    print(f"| h) NCHW time / channels_last time: training step; evaluation | "
          f"{h['train_step_nchw_over_channels_last']:.2f}; "
          f"{h['eval_nchw_over_channels_last']:.2f} | kept if > 1 |")
    print(f"| h) evaluation batch {h['eval_batch_sizes'][1]} time / batch "
          f"{h['eval_batch_sizes'][0]} time | {h['eval_bigger_batch_over_default']:.2f} | "
          "kept if > 1 |")


if __name__ == "__main__":
    main()
