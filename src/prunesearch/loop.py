"""The prune / re-init / retrain loop of one trial. Knows nothing of Optuna or MLflow:
each iteration's figures leave through `on_iteration`."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import torch
from torch import nn

from prunesearch import costs, methods, reinit
from prunesearch.data import CifarData
from prunesearch.methods import Target
from prunesearch.schedule import Schedule
from prunesearch.train import OptimizerSettings, evaluate, train_epochs

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class IterationResult:
    """The model after one prune-retrain round (iteration 0: the dense model)."""

    iteration: int
    sparsity: float  # fraction of conv + linear weights at zero
    weights_remaining: int  # nonzero conv + linear weights
    val_accuracy: float  # in [0, 1]
    test_accuracy: float  # in [0, 1]; reported, never optimised
    train_loss: float  # mean loss of the last retraining epoch; NaN without retraining


@dataclass(frozen=True)
class Result:
    iterations: tuple[IterationResult, ...]

    @property
    def final(self) -> IterationResult:
        return self.iterations[-1]


def prunable_targets(model: nn.Module, *, include_classifier: bool) -> list[Target]:
    """The (module, "weight") pairs a schedule prunes: every conv and linear weight, the
    model's `classifier` left out unless `include_classifier`."""
    classifier = getattr(model, "classifier", None)
    return [(module, "weight") for _, module in costs.prunable_modules(model)
            if include_classifier or module is not classifier]


def run(
    *,
    schedule: Schedule,
    model: nn.Module,
    data: CifarData,
    rewind_state: StateDict,
    fresh_state: Callable[[int], StateDict],
    optimizer: OptimizerSettings,
    augmented: bool,
    seed: int,
    on_iteration: Callable[[IterationResult], None] = lambda result: None,
    on_epoch: Callable[[int, int, float], None] = lambda iteration, epoch, loss: None,
) -> Result:
    """Prune `model` (trained, dense) in place following `schedule`.

    Each iteration prunes `schedule.amount` of the weights still unpruned, applies the re-init
    option (`fresh_state(iteration)` gives a fresh initialisation for `random`), retrains with
    the masks in place and evaluates on the validation and test splits. Progress leaves through
    `on_epoch(iteration, epoch, train_loss)` and `on_iteration(result)`.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    targets = prunable_targets(model, include_classifier=schedule.prune_classifier)
    method = methods.get(schedule.method)
    retrain = replace(optimizer, lr=schedule.retrain_lr)
    history = []
    for iteration in range(1, schedule.iterations + 1):
        method.apply(model, targets, schedule.amount)
        reinit.apply(schedule.reinit, model, rewind_state=rewind_state,
                     fresh_state=lambda: fresh_state(iteration))
        train_loss = train_epochs(model, data.train, epochs=schedule.retrain_epochs,
                                  settings=retrain, generator=generator, augmented=augmented,
                                  on_epoch=lambda epoch, loss: on_epoch(iteration, epoch, loss))
        nonzero, total = costs.weight_counts(model)
        result = IterationResult(
            iteration=iteration,
            sparsity=1 - nonzero / total,
            weights_remaining=nonzero,
            val_accuracy=evaluate(model, data.val),
            test_accuracy=evaluate(model, data.test),
            train_loss=train_loss,
        )
        history.append(result)
        on_iteration(result)
    return Result(tuple(history))
