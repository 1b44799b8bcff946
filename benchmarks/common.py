"""What the benchmarks share: the --smoke size every benchmark can run at, prunesearch runs
in a scratch folder, turn-taking timing, and the reference loop written the way a notebook
would (torchvision DataLoader and transforms), against which prunesearch's own pipeline is
measured. Study files and data folders come from prunesearch.testing, as the tests' do."""

import argparse
import contextlib
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from prunesearch.config import preflight
from prunesearch.search import data as study_data
from prunesearch.search import optimize
from prunesearch.pruning.schedule import Fixed
from prunesearch.testing import data as testing_data
from prunesearch.testing.stores import empty_mlflow_store
from prunesearch.training import data as data_module

BATCH = 128


def load_data(spec, data_dir: Path) -> data_module.ImageData:
    """The data a study's trials see."""
    return study_data.read(spec, data_dir=data_dir, cache_dir=None)


# -- --smoke ----------------------------------------------------------------------------------

def parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's argument parser: its docstring's first line, and --smoke."""
    made = argparse.ArgumentParser(description=doc.splitlines()[0])
    made.add_argument("--smoke", action="store_true",
                      help="every section on tiny generated data and rounds, in seconds: "
                           "proves the benchmark runs; its figures mean nothing")
    return made


@contextlib.contextmanager
def data_dir_for(args):
    """The data a run measures: --data-dir, or with --smoke a tiny generated folder."""
    if not args.smoke:
        yield args.data_dir
        return
    with tempfile.TemporaryDirectory() as folder:
        yield testing_data.cifar_folder(Path(folder))


def smoke_sized(spec, *, n_trials: int = 1):
    """`spec` at --smoke size: a width-4 model, one dense epoch, one-iteration trials of one
    retraining epoch, every image of the tiny data (50 held out for validation), no latency
    timed (seconds a model at smoke size)."""
    return dataclasses.replace(
        spec, n_trials=n_trials, latency_device="none",
        space={**spec.space, "iterations": Fixed(1), "retrain_epochs": Fixed(1)},
        data=dataclasses.replace(spec.data, val_size=50, train_subset=None),
        model=dataclasses.replace(spec.model, width=4),
        dense=dataclasses.replace(spec.dense, epochs=1))


def run_sections(figures: dict, sections: list[tuple[str, Callable[[], dict]]]) -> dict:
    """A benchmark's sections, in order, each one's figures into `figures` under its name and
    printed to stderr as it ends, with its seconds. Returns `figures`."""
    for name, section in sections:
        start = time.perf_counter()
        figures[name] = section()
        print(f"{name} ({time.perf_counter() - start:.0f} s): {figures[name]}", file=sys.stderr)
    return figures


def write_json(path: Path, figures: dict) -> None:
    path.write_text(json.dumps(figures, indent=2))


# -- prunesearch runs -------------------------------------------------------------------------

def run_study(spec, folder: Path, data_dir: Path, **options):
    """`spec` run to its budget through prunesearch, with its stores in `folder`; `options`
    are other RunSettings (device, timeout, ...). Returns the Optuna study."""
    options = {"n_trials": spec.n_trials, "cache_dir": folder / "cache", "device": "cpu",
               **options}
    empty_mlflow_store(folder / "m.db")  # a copy: creating a store runs every migration
    return optimize.optimize(preflight.run(spec), optimize.RunSettings(
        study=spec.path, storage_url=f"sqlite:///{folder / 'o.db'}",
        tracking_uri=tracking_uri(folder), data_dir=data_dir, **options))


def tracking_uri(folder: Path) -> str:
    """The MLflow store of a study run_study ran in `folder` (m.db)."""
    return f"sqlite:///{folder / 'm.db'}"


# -- timing -----------------------------------------------------------------------------------

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


def median_ms(contenders: dict, rounds: int) -> dict[str, float]:
    """Median milliseconds of each callable, taking turns."""
    return {name: 1000 * statistics.median(times)
            for name, times in take_turns(contenders, rounds).items()}


def median_ratio(rates: dict[str, list[float]], a: str, b: str) -> float:
    """The median over rounds of a's rate / b's rate in the same round."""
    return statistics.median(x / y for x, y in zip(rates[a], rates[b]))


# -- the notebook way -------------------------------------------------------------------------

class NotebookDataset(torch.utils.data.Dataset):
    """CIFAR images as PIL images through torchvision transforms, one at a time."""

    def __init__(self, split, augmented: bool):
        self.images = split.images.cpu().permute(0, 2, 3, 1).numpy()
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


def notebook_loader(split, *, augmented: bool, shuffle: bool = True, workers: int = 2,
                    device: torch.device | None = None):
    """The DataLoader a notebook writes: `workers` processes (pinned memory for a GPU)."""
    cuda = device is not None and device.type == "cuda"
    return torch.utils.data.DataLoader(NotebookDataset(split, augmented), batch_size=BATCH,
                                       shuffle=shuffle, num_workers=workers, pin_memory=cuda,
                                       persistent_workers=workers > 0)


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def step(model, optimizer, images, labels) -> None:
    """The plain training step, with nothing around it."""
    loss = nn.functional.cross_entropy(model(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def train_on(model, optimizer, batches, device: torch.device | None = None) -> None:
    """Train `model` on every batch of `batches` with the plain step (batches moved to
    `device` first, as a notebook's loop does)."""
    model.train()
    for images, labels in batches:
        if device is not None:
            images, labels = (images.to(device, non_blocking=True),
                              labels.to(device, non_blocking=True))
        step(model, optimizer, images, labels)


def notebook_epochs(model, loader, epochs: int, lr: float) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    for _ in range(epochs):
        train_on(model, optimizer, loader)


def notebook_accuracy(model, loader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += int((model(images).argmax(1) == labels).sum())
            total += len(labels)
    return correct / total
