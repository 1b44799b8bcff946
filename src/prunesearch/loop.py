"""The prune / re-init / retrain loop of one trial. Knows nothing of Optuna or MLflow:
each iteration's figures leave through `on_iteration`."""

import dataclasses
import math
from collections.abc import Callable, Mapping
from functools import partial
from dataclasses import dataclass, field, fields, replace

import torch
from torch import nn

from prunesearch import costs, interrupts, methods, reinit
from prunesearch.data import CifarData, generator_on, normalize, train_batches
from prunesearch.methods import Context, Target
from prunesearch.methods.channels import couplings
from prunesearch.schedule import Schedule
from prunesearch.train import OptimizerSettings, evaluate, train_epochs

StateDict = Mapping[str, torch.Tensor]


def figure(unit: str, meaning: str):
    """A field of IterationResult: `unit` is "fraction" (shown in percent), "ratio", "count",
    "ms" or "loss"; `meaning` says what is counted."""
    return field(metadata={"unit": unit, "meaning": meaning})


@dataclass(frozen=True)
class IterationResult:
    """The model after one prune-retrain round (iteration 0: the dense model). The one list of
    a trial's figures: MLflow metrics, report columns and stored curves all derive from it."""

    iteration: int
    sparsity: float = figure("fraction", "conv + linear weights at zero")
    macs_reduction: float = figure("fraction", "1 - macs / the dense model's macs")
    val_accuracy: float = figure("fraction", "top-1 on the validation split")
    test_accuracy: float = figure("fraction", "top-1 on the test split; reported, never optimised")
    speedup_b1: float = figure("ratio", "dense latency / this latency, timed together, batch 1")
    speedup_b1_spread: float = figure("ratio", "interquartile range of speedup_b1's rounds")
    speedup_b64: float = figure("ratio", "dense latency / this latency, timed together, batch 64")
    speedup_b64_spread: float = figure("ratio", "interquartile range of speedup_b64's rounds")
    weights_remaining: int = figure("count", "nonzero conv + linear weights")
    params_remaining: int = figure("count", "parameter entries not masked (see costs)")
    macs: int = figure("count", "per image, conv + linear, nonzero weights (see costs)")
    latency_b1_ms: float = figure("ms", "forward time at batch 1, fastest block (see costs)")
    latency_b64_ms: float = figure("ms", "forward time at batch 64, fastest block")
    train_loss: float = figure("loss", "mean loss of the last retraining epoch; NaN if none")


FIGURES = tuple(f.name for f in fields(IterationResult) if f.name != "iteration")
"""Every figure's name, in order."""
PERCENT_FIGURES = tuple(f.name for f in fields(IterationResult)
                        if f.metadata.get("unit") == "fraction")


@dataclass(frozen=True)
class Result:
    dense: IterationResult  # iteration 0: the unpruned model, measured at the trial's start
    iterations: tuple[IterationResult, ...]

    @property
    def final(self) -> IterationResult:
        return self.iterations[-1]


def _result(iteration: int, now: costs.Costs, dense: costs.Costs, *, val_accuracy: float,
            test_accuracy: float, train_loss: float) -> IterationResult:
    return IterationResult(
        iteration=iteration, **dataclasses.asdict(now),
        macs_reduction=1 - now.macs / dense.macs,
        val_accuracy=val_accuracy, test_accuracy=test_accuracy, train_loss=train_loss)


def prunable_targets(model: nn.Module, *, include_classifier: bool,
                     classifier: str = "classifier") -> list[Target]:
    """The (module, "weight") pairs a schedule prunes: every conv and linear weight, the
    output layer (the module named `classifier`) left out unless `include_classifier`
    (structured methods never take it: its outputs are the classes)."""
    output_layer = dict(model.named_modules()).get(classifier)
    return [(module, "weight") for _, module in costs.prunable_modules(model)
            if include_classifier or module is not output_layer]


def run(
    *,
    schedule: Schedule,
    model: nn.Module,
    data: CifarData,
    dense_accuracy: tuple[float, float],
    rewind_state: StateDict,
    fresh_state: Callable[[int], StateDict],
    optimizer: OptimizerSettings,
    augmented: bool,
    seed: int,
    latency_device: torch.device | str = "cpu",
    classifier: str = "classifier",
    on_iteration: Callable[[IterationResult], None] = lambda result: None,
    on_epoch: Callable[[int, int, float], None] = lambda iteration, epoch, loss: None,
) -> Result:
    """Prune `model` (trained, dense, on the data's device) in place following `schedule`.

    First the dense model's costs are measured (iteration 0, with `dense_accuracy` = its
    (validation, test) accuracy from dense training; its speed-up, about 1, shows how steady
    the timing is); every later timing runs against a copy of it, block for block. Then each
    iteration prunes `schedule.amount` of what is still unpruned (weights, or channels for a
    structured method), applies the re-init option (`fresh_state(iteration)` gives a fresh
    initialisation for `random`), retrains with the masks in place, measures the costs and
    evaluates on the validation and test splits. `classifier` names the output layer. Figures
    leave through `on_iteration(result)` (iteration 0 included) and
    `on_epoch(iteration, epoch, train_loss)`; a stop request is honoured between iterations
    and at every training step.
    """
    device = data.train.labels.device
    generator = generator_on(device, seed)
    torch.manual_seed(seed)
    method = methods.get(schedule.method)
    options = schedule.method_options()
    targets = prunable_targets(model, include_classifier=method.prunes_classifier(options),
                               classifier=classifier)
    example_input = normalize(data.val.images[:1])
    context = Context(
        options=options,
        couplings=couplings(model, targets, example_input) if method.structured else {},
        batches=lambda count: _ranking_batches(data, optimizer.batch_size, generator, count))
    shipping = dict(latency_device=latency_device, classifier=classifier)
    measure = partial(costs.measure, example_input=example_input,
                      reference=costs.deployed(model, example_input, **shipping), **shipping)
    dense_costs = measure(model)
    val_accuracy, test_accuracy = dense_accuracy
    dense = _result(0, dense_costs, dense_costs, val_accuracy=val_accuracy,
                    test_accuracy=test_accuracy, train_loss=math.nan)
    on_iteration(dense)
    retrain = replace(optimizer, lr=schedule.retrain_lr)
    history = []
    for iteration in range(1, schedule.iterations + 1):
        interrupts.check()
        method.apply(model, targets, schedule.amount, context)
        reinit.apply(schedule.reinit, model, rewind_state=rewind_state,
                     fresh_state=lambda: fresh_state(iteration))
        train_loss = train_epochs(model, data.train, epochs=schedule.retrain_epochs,
                                  settings=retrain, generator=generator, augmented=augmented,
                                  on_epoch=lambda epoch, loss: on_epoch(iteration, epoch, loss))
        now = measure(model)
        result = _result(iteration, now, dense_costs, val_accuracy=evaluate(model, data.val),
                         test_accuracy=evaluate(model, data.test), train_loss=train_loss)
        history.append(result)
        on_iteration(result)
    return Result(dense, tuple(history))


def _ranking_batches(data: CifarData, batch_size: int, generator: torch.Generator, count: int):
    """`count` shuffled, unaugmented training batches for rankings that need the loss."""
    batches = train_batches(data.train, batch_size=batch_size, generator=generator,
                            augmented=False)
    return (batch for _, batch in zip(range(count), batches))
