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


PRECISIONS = ("auto", "bf16", "fp32")


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
    steps_per_epoch = math.ceil(len(split) / settings.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum,
                                nesterov=settings.momentum > 0,
                                weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    device_type = split.labels.device.type
    bf16 = settings.precision == "bf16"
    mean_loss = math.nan
    for epoch in range(1, epochs + 1):
        # Summed on the device and read once per epoch: no host sync per step.
        total = torch.zeros((), device=split.labels.device)
        batches = train_batches(split, batch_size=settings.batch_size, generator=generator,
                                augmented=augmented)
        steps = progress.steps(batches, total=steps_per_epoch, label=f"epoch {epoch}/{epochs}")
        for images, labels in steps:
            interrupts.check()
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(images)
                loss = (loss_fn(logits, labels) if distillation is None
                        else distillation.loss(logits, images, labels))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.detach() * len(labels)
        mean_loss = total.item() / len(split)
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(f"training loss is {mean_loss} at epoch {epoch}")
        if on_epoch is not None:
            on_epoch(epoch, mean_loss)
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
