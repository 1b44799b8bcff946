"""Training and evaluation. Knows nothing of Optuna or MLflow: progress leaves through `on_epoch`."""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from prunesearch.foundation import interrupts
from prunesearch.foundation import progress
from prunesearch.training.data import Split, eval_batches, train_batches
from prunesearch.training.distill import Distillation
from prunesearch.errors import UsageError

EVAL_BATCH_SIZE = 128  # faster on CPU than larger batches: benchmarks/speed.py (h)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True)
class OptimizerSettings:
    """SGD with Nesterov momentum and a cosine learning-rate decay over each training phase;
    forward passes in `precision` ("bf16": bfloat16 autocast, "fp32": none)."""

    lr: float
    batch_size: int
    momentum: float
    weight_decay: float
    precision: str = "fp32"


def resolve_device(device: str) -> torch.device:
    """--device: "auto" is the GPU when there is one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available; use --device cpu or auto")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto": bf16 on a GPU that supports it (several times faster for small CNNs, see
    docs/performance.md), fp32 elsewhere (bf16 autocast on a CPU is slower, not faster)."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def train_epochs(
    model: nn.Module,
    split: Split,
    *,
    epochs: int,
    settings: OptimizerSettings,
    generator: torch.Generator,
    augmented: bool = True,
    on_epoch: Callable[[int, float], None] | None = None,
    distillation: Distillation | None = None,
) -> float:
    """Train `epochs` epochs; return the mean training loss of the last one (NaN if none).

    Calls `on_epoch(epoch, mean_loss)` after each epoch, epochs counted from 1. With
    `distillation`, the loss mixes in its teacher's soft labels (training.distill).
    """
    if epochs == 0:
        return math.nan
    trainer = Trainer(model, split, epochs=epochs, settings=settings, generator=generator,
                      augmented=augmented, distillation=distillation)
    mean_loss = math.nan
    for epoch in range(1, epochs + 1):
        mean_loss = trainer.epoch()
        if on_epoch is not None:
            on_epoch(epoch, mean_loss)
    return mean_loss


class Trainer:
    """One training phase of `epochs` epochs (SGD, the cosine decay over all of them), run an
    epoch at a time, so that a caller may measure the model between epochs (gradual pruning)
    or change it between steps (`on_step(step)`, after each optimizer step, counted from 1
    over the phase)."""

    def __init__(self, model: nn.Module, split: Split, *, epochs: int,
                 settings: OptimizerSettings, generator: torch.Generator,
                 augmented: bool = True, distillation: Distillation | None = None,
                 on_step: Callable[[int], None] | None = None):
        self.model, self.split, self.epochs = model, split, epochs
        self.settings, self.generator, self.augmented = settings, generator, augmented
        self.distillation, self.on_step = distillation, on_step
        self.steps_per_epoch = math.ceil(len(split) / settings.batch_size)
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=settings.lr, momentum=settings.momentum,
            nesterov=settings.momentum > 0, weight_decay=settings.weight_decay)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, epochs * self.steps_per_epoch)
        self.done, self.step = 0, 0

    def epoch(self) -> float:
        """Train the next epoch; its mean training loss."""
        model, split, settings = self.model, self.split, self.settings
        self.done += 1
        model.train()
        loss_fn = nn.CrossEntropyLoss()
        device_type = split.labels.device.type
        bf16 = settings.precision == "bf16"
        # Summed on the device and read once per epoch: no host sync per step.
        total = torch.zeros((), device=split.labels.device)
        batches = train_batches(split, batch_size=settings.batch_size, generator=self.generator,
                                augmented=self.augmented)
        steps = progress.steps(batches, total=self.steps_per_epoch,
                               label=f"epoch {self.done}/{self.epochs}")
        for images, labels in steps:
            interrupts.check()
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(images)
                loss = (loss_fn(logits, labels) if self.distillation is None
                        else self.distillation.loss(logits, images, labels))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            total += loss.detach() * len(labels)
            self.step += 1
            if self.on_step is not None:
                self.on_step(self.step)
        mean_loss = total.item() / len(split)
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(f"training loss is {mean_loss} at epoch {self.done}")
        return mean_loss


def evaluate(model: nn.Module, split: Split) -> float:
    """Top-1 accuracy in [0, 1] on `split`, always in fp32: the accuracy recorded is the one
    the exported model scores, whatever precision it was trained in."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=split.labels.device)
    with torch.inference_mode():
        for images, labels in eval_batches(split, batch_size=EVAL_BATCH_SIZE):
            interrupts.check()
            correct += (model(images).argmax(1) == labels).sum()
    return correct.item() / len(split)
