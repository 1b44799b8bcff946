"""The prune / re-init / retrain loop of one trial. Knows nothing of Optuna or MLflow:
each iteration's figures leave through `on_iteration`."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import torch
from torch import nn

from prunesearch import costs, methods, reinit
from prunesearch.data import CifarData, normalize, train_batches
from prunesearch.methods import Context, Target
from prunesearch.methods.channels import couplings
from prunesearch.schedule import Schedule
from prunesearch.train import OptimizerSettings, evaluate, train_epochs

StateDict = Mapping[str, torch.Tensor]
RANKING_BATCHES = 8  # training batches a loss-based ranking (Taylor) averages over


@dataclass(frozen=True)
class IterationResult:
    """The model after one prune-retrain round (iteration 0: the dense model)."""

    iteration: int
    sparsity: float  # fraction of conv + linear weights at zero
    weights_remaining: int  # nonzero conv + linear weights
    params_remaining: int  # parameter entries not masked (see costs)
    macs: int  # per image, conv + linear, nonzero weights (see costs)
    macs_reduction: float  # 1 - macs / dense model's macs
    latency_b1_ms: float  # median CPU forward time at batch 1 (see costs)
    latency_b64_ms: float  # ... at batch 64
    speedup_b1: float  # dense model's latency / this latency, measured in the same trial
    speedup_b64: float
    val_accuracy: float  # in [0, 1]
    test_accuracy: float  # in [0, 1]; reported, never optimised
    train_loss: float  # mean loss of the last retraining epoch; NaN without retraining


@dataclass(frozen=True)
class Result:
    dense: costs.Costs  # the unpruned model's costs, measured at the start of the trial
    iterations: tuple[IterationResult, ...]

    @property
    def final(self) -> IterationResult:
        return self.iterations[-1]


def prunable_targets(model: nn.Module, *, include_classifier: bool) -> list[Target]:
    """The (module, "weight") pairs a schedule prunes: every conv and linear weight, the
    model's `classifier` left out unless `include_classifier` (structured methods never take
    it: its outputs are the classes)."""
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

    Each iteration prunes `schedule.amount` of what is still unpruned (weights, or channels
    for a structured method), applies the re-init option (`fresh_state(iteration)` gives a
    fresh initialisation for `random`), retrains with the masks in place, measures the costs
    and evaluates on the validation and test splits. The dense model's costs are measured
    first, in the same process, so that speed-ups compare timings taken close together.
    Progress leaves through `on_epoch(iteration, epoch, train_loss)` and `on_iteration(result)`.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    method = methods.get(schedule.method)
    targets = prunable_targets(
        model, include_classifier=schedule.prune_classifier and not method.structured)
    example_input = normalize(data.val.images[:1])
    context = Context(
        norm=schedule.norm,
        couplings=couplings(model, targets, example_input) if method.structured else {},
        batches=lambda: _ranking_batches(data, optimizer.batch_size, generator))
    dense = costs.measure(model, example_input)
    retrain = replace(optimizer, lr=schedule.retrain_lr)
    history = []
    for iteration in range(1, schedule.iterations + 1):
        method.apply(model, targets, schedule.amount, context)
        reinit.apply(schedule.reinit, model, rewind_state=rewind_state,
                     fresh_state=lambda: fresh_state(iteration))
        train_loss = train_epochs(model, data.train, epochs=schedule.retrain_epochs,
                                  settings=retrain, generator=generator, augmented=augmented,
                                  on_epoch=lambda epoch, loss: on_epoch(iteration, epoch, loss))
        now = costs.measure(model, example_input)
        result = IterationResult(
            iteration=iteration,
            sparsity=now.sparsity,
            weights_remaining=now.weights_remaining,
            params_remaining=now.params_remaining,
            macs=now.macs,
            macs_reduction=1 - now.macs / dense.macs,
            latency_b1_ms=now.latency_b1_ms,
            latency_b64_ms=now.latency_b64_ms,
            speedup_b1=dense.latency_b1_ms / now.latency_b1_ms,
            speedup_b64=dense.latency_b64_ms / now.latency_b64_ms,
            val_accuracy=evaluate(model, data.val),
            test_accuracy=evaluate(model, data.test),
            train_loss=train_loss,
        )
        history.append(result)
        on_iteration(result)
    return Result(dense, tuple(history))


def _ranking_batches(data: CifarData, batch_size: int, generator: torch.Generator):
    """A few shuffled, unaugmented training batches for rankings that need the loss."""
    batches = train_batches(data.train, batch_size=batch_size, generator=generator,
                            augmented=False)
    return (batch for _, batch in zip(range(RANKING_BATCHES), batches))
