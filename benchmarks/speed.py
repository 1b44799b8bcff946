"""How fast prunesearch trains and prunes, against the usual way and against the hardware.

Measures in one run, on this machine, and prints a table (and writes JSON):
  a) training throughput (images/s) of prunesearch's step and data pipeline on the default
     model (cifar_cnn, width 32), vs a torch DataLoader + torchvision transforms pipeline on the
     same model and data, and vs the compute ceiling (forward+backward+step on a batch already
     prepared in memory);
  b) the same on the PyTorch tutorial's small CIFAR CNN, where data handling dominates;
  c) a trial with the dense cache cold (dense training included) vs warm;
  d) the smoke study's wall time vs a reference loop written the way a notebook would (DataLoader
     + transforms, the dense model retrained for every trial), same trials and settings;
  e) structured pruning: measured CPU latency ratio dense/pruned vs MACs ratio;
  f) peak resident memory of a worker on a full-size (50,000-image) CIFAR-shaped data set.

    python benchmarks/speed.py --data-dir ../shared/data/cifar10-subset [--json speed.json]
"""

import argparse
import json
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import optuna
import torch
from PIL import Image
from torch import nn
from torch.nn.utils import prune
from torchvision import transforms

from prunesearch import costs, dense, loop, methods, models, studyfile
from prunesearch import data as data_module
from prunesearch import study as study_module
from prunesearch.export import shrink
from prunesearch.methods.channels import couplings
from prunesearch.schedule import Schedule
from prunesearch.train import train_batches

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


def images_per_second(batches, model, steps: int, warmup: int = 3) -> float:
    """Train `steps` steps from `batches` (after `warmup`) and return images per second."""
    optimizer = sgd(model)
    model.train()
    iterator = iter(batches)
    for _ in range(warmup):
        step(model, optimizer, *next(iterator))
    seen, start = 0, time.perf_counter()
    for _ in range(steps):
        images, labels = next(iterator)
        step(model, optimizer, images, labels)
        seen += len(labels)
    return seen / (time.perf_counter() - start)


def forever(make_epoch):
    while True:
        yield from make_epoch()


def throughput(build, split, steps: int) -> dict:
    """prunesearch's pipeline vs DataLoader + transforms vs prepared batches, one model."""
    generator = torch.Generator().manual_seed(0)
    ours = images_per_second(forever(lambda: train_batches(
        split, batch_size=BATCH, generator=generator, augmented=True)), build(), steps)
    loader = notebook_loader(split, augmented=True)
    notebook = images_per_second(forever(lambda: iter(loader)), build(), steps)
    images, labels = next(train_batches(split, batch_size=BATCH, generator=generator,
                                        augmented=True))
    ceiling = images_per_second(forever(lambda: [(images, labels)]), build(), steps)
    return {"prunesearch_img_s": ours, "dataloader_img_s": notebook, "ceiling_img_s": ceiling,
            "vs_dataloader": ours / notebook, "of_ceiling": ours / ceiling}


def smoke_spec(data_dir: Path):
    return studyfile.load("smoke"), data_module.load(data_dir=data_dir, val_size=0.1,
                                                     train_subset=2000, seed=0)


def trial_cold_vs_warm(data_dir: Path) -> dict:
    """One smoke-sized trial with an empty dense cache, then again with the cache filled."""
    spec, data = smoke_spec(data_dir)
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
                     rewind_state=checkpoint.rewind_state,
                     fresh_state=lambda i: checkpoint.rewind_state,
                     optimizer=dense.optimizer_settings(spec), augmented=True, seed=0)
            timings[f"{label}_s"] = time.perf_counter() - start
            timings[f"{label}_dense_s"] = dense_s
    return timings


def study_vs_notebook(data_dir: Path) -> dict:
    """The smoke study through prunesearch, then the same trials the notebook way."""
    spec, data = smoke_spec(data_dir)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        start = time.perf_counter()
        study = study_module.optimize(
            spec, n_trials=None, timeout=None, storage_url=f"sqlite:///{folder / 'o.db'}",
            tracking_uri=f"sqlite:///{folder / 'm.db'}", data_dir=data_dir,
            cache_dir=folder / "cache", device="cpu")
        ours = time.perf_counter() - start
        schedules = [Schedule(**t.user_attrs["schedule"]) for t in study_module.completed(study)]
    start = time.perf_counter()
    for schedule in schedules:
        notebook_trial(spec, data, schedule)
    notebook = time.perf_counter() - start
    return {"trials": len(schedules), "prunesearch_s": ours, "notebook_s": notebook,
            "speedup": notebook / ours}


def notebook_trial(spec, data, schedule: Schedule) -> None:
    """A trial as a notebook writes it: train the dense model, prune, retrain, evaluate."""
    torch.manual_seed(spec.seed)
    model = models.build(spec.model.name, width=spec.model.width)
    train = notebook_loader(data.train, augmented=True)
    notebook_epochs(model, train, spec.dense.epochs, spec.dense.lr)
    for _ in range(schedule.iterations):
        for _, module in costs.prunable_modules(model):
            prune.l1_unstructured(module, "weight", amount=schedule.amount)
        notebook_epochs(model, train, schedule.retrain_epochs, schedule.retrain_lr)
        for split in (data.val, data.test):
            notebook_accuracy(model, notebook_loader(split, augmented=False, shuffle=False))


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
        context = methods.Context(norm=1, couplings=couplings(model, targets, example))
        methods.get("ln_structured").apply(model, targets, amount, context)
        slim = shrink(model, example).eval()
        macs_ratio = costs.macs(dense_model, example) / costs.macs(slim, example)
        measured = [(costs.latency_ms(dense_model, example, costs.LATENCY_BIG_BATCH),
                     costs.latency_ms(slim, example, costs.LATENCY_BIG_BATCH))
                    for _ in range(rounds)]
        latency_ratio = statistics.median(d / p for d, p in measured)
        rows.append({"amount": amount, "macs_ratio": macs_ratio, "latency_ratio": latency_ratio,
                     "latency_of_macs": latency_ratio / macs_ratio})
    return rows


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
        # workers) must not count.
        worker = subprocess.run([sys.executable, "-c", MEASURED_WORKER], cwd=folder,
                                check=True, capture_output=True, text=True)
    peak_kib = int(worker.stdout.split()[-1])
    return {"images": 60_000, "peak_rss_gib": peak_kib / 2**20}


MEASURED_WORKER = """
import resource, sys
from prunesearch.cli import main
try:
    main(["optimize", "--study", "study.toml", "--data-dir", "data", "--cache-dir", "cache"])
except SystemExit as end:
    assert not end.code, end.code
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=data_module.default_data_dir())
    parser.add_argument("--json", type=Path, default=Path("speed.json"))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per throughput")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    split = data_module.load(data_dir=args.data_dir, val_size=0.1, train_subset=None,
                             seed=0).train
    results = {"torch": torch.__version__, "threads": torch.get_num_threads(),
               "train_images": len(split)}
    sections = [
        ("a_default_model", lambda: throughput(lambda: models.build("cifar_cnn", width=32),
                                               split, args.steps)),
        ("b_tutorial_model", lambda: throughput(TutorialNet, split, 5 * args.steps)),
        ("c_trial_cache", lambda: trial_cold_vs_warm(args.data_dir)),
        ("d_smoke_study", lambda: study_vs_notebook(args.data_dir)),
        ("e_structured_latency", structured_latency),
        ("f_memory", peak_memory_full_size),
    ]
    for name, measure in sections:
        start = time.perf_counter()
        results[name] = measure()
        print(f"{name} ({time.perf_counter() - start:.0f} s): {results[name]}", file=sys.stderr)
    args.json.write_text(json.dumps(results, indent=2))
    print_table(results)


def print_table(r: dict) -> None:
    a, b, c, d, f = (r[k] for k in ("a_default_model", "b_tutorial_model", "c_trial_cache",
                                    "d_smoke_study", "f_memory"))
    print(f"torch {r['torch']}, {r['threads']} threads, {r['train_images']} training images")
    print("| measure | figure | target |")
    print("| --- | ---: | --- |")
    for label, t in (("a) default model", a), ("b) tutorial model", b)):
        print(f"| {label}: prunesearch / DataLoader+transforms / ceiling (img/s) | "
              f"{t['prunesearch_img_s']:.0f} / {t['dataloader_img_s']:.0f} / "
              f"{t['ceiling_img_s']:.0f} | |")
        print(f"| {label}: vs DataLoader | {t['vs_dataloader']:.2f}x | "
              f"{'>= 1.2x' if label.startswith('a') else '>= 2.5x'} |")
        if label.startswith("a"):
            print(f"| {label}: of compute ceiling | {t['of_ceiling']:.2f} | >= 0.9 |")
    print(f"| c) trial, dense cache cold / warm (s) | {c['cold_s']:.1f} / {c['warm_s']:.1f} "
          f"(dense {c['cold_dense_s']:.1f} / {c['warm_dense_s']:.2f}) | warm: no dense training |")
    print(f"| d) smoke study, {d['trials']} trials: notebook / prunesearch (s) | "
          f"{d['notebook_s']:.0f} / {d['prunesearch_s']:.0f} = {d['speedup']:.1f}x | >= 5x |")
    for row in r["e_structured_latency"]:
        print(f"| e) ln_structured {row['amount']}: latency ratio / MACs ratio | "
              f"{row['latency_ratio']:.2f} / {row['macs_ratio']:.2f} = "
              f"{row['latency_of_macs']:.2f} | >= 0.7 |")
    print(f"| f) peak RSS, {f['images']} images (GiB) | {f['peak_rss_gib']:.2f} | <= 1.5 |")


if __name__ == "__main__":
    main()
