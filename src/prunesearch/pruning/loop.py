"""The prune / re-init / retrain loop of one trial. Knows nothing of Optuna or MLflow:
each iteration's figures leave through `on_iteration`."""

import copy
import dataclasses
import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from dataclasses import dataclass, field, fields, replace

import torch
from torch import nn

from prunesearch.pruning import costs
from prunesearch.foundation import interrupts
from prunesearch.pruning import methods
from prunesearch.pruning import gradual, reinit
from prunesearch.training.data import CifarData, generator_on, normalize, train_batches
from prunesearch.pruning.methods import Context, Target
from prunesearch.pruning.methods.channels import couplings
from prunesearch.pruning.schedule import Schedule
from prunesearch.pruning.timing import BATCH_SIZES, timed_names
from prunesearch.training.distill import Distillation
from prunesearch.training.train import OptimizerSettings, Trainer, evaluate, train_epochs

StateDict = Mapping[str, torch.Tensor]


def figure(unit: str, meaning: str, **default):
    """A field of IterationResult: `unit` is "fraction" (shown in percent), "ratio", "count",
    "ms" or "loss"; `meaning` says what is counted."""
    return field(metadata={"unit": unit, "meaning": meaning}, **default)


@dataclass(frozen=True)
class IterationResult:
    """The model after one prune-retrain round (iteration 0: the dense model). The one list of
    a trial's figures: MLflow metrics, report columns and stored curves all derive from it.

    Latency is timed at each of the study's `latency_batch_sizes`: `timed` holds, per batch
    size N, `latency_bN_ms` (forward time, fastest block: see costs), `speedup_bN` (dense
    latency / this latency, timed together) and `speedup_bN_spread` (the interquartile range
    of its rounds). The speedup objective and max_speedup_noise read `speedup` and
    `speedup_noise` (at the largest size), max_latency_ms reads `latency_ms` (at the
    smallest); with nothing timed they are NaN."""

    iteration: int
    sparsity: float = figure("fraction", "conv + linear weights at zero")
    macs_reduction: float = figure("fraction", "1 - macs / the dense model's macs")
    val_accuracy: float = figure("fraction", "top-1 on the validation split")
    test_accuracy: float = figure("fraction", "top-1 on the test split; reported, never optimised")
    weights_remaining: int = figure("count", "nonzero conv + linear weights")
    params_remaining: int = figure("count", "parameter entries not masked (see costs)")
    macs: int = figure("count", "per image, conv + linear, nonzero weights (see costs)")
    train_loss: float = figure("loss", "mean loss of the last retraining epoch; NaN if none")
    val_accuracy_std: float = figure(
        "fraction", "standard deviation of val_accuracy over the repeats; NaN with one",
        default=math.nan)
    test_accuracy_std: float = figure(
        "fraction", "standard deviation of test_accuracy over the repeats; NaN with one",
        default=math.nan)
    timed: Mapping[str, float] = field(default_factory=dict)

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes latency was timed at, smallest first (none: not timed)."""
        return tuple(sorted(int(match.group(1)) for match in map(LATENCY_NAME.fullmatch,
                                                                  self.timed) if match))

    @property
    def speedup(self) -> float:
        """Dense latency / this latency at the largest batch size timed: the speedup objective."""
        return self.timed.get(f"speedup_b{self.batch_sizes[-1]}", math.nan) \
            if self.batch_sizes else math.nan

    @property
    def speedup_noise(self) -> float:
        """How repeatable `speedup` is: its rounds' interquartile range / the speed-up."""
        return self.timed.get(f"speedup_b{self.batch_sizes[-1]}_spread", math.nan) / \
            self.speedup if self.batch_sizes else math.nan

    @property
    def latency_ms(self) -> float:
        """Latency at the smallest batch size timed: what max_latency_ms limits."""
        return self.timed.get(f"latency_b{self.batch_sizes[0]}_ms", math.nan) \
            if self.batch_sizes else math.nan

    def figure(self, name: str) -> float:
        """Any figure by name (see `names`); NaN for one this result did not measure."""
        if name in ("iteration", *FIXED, *DERIVED):
            return getattr(self, name)
        return self.timed.get(name, math.nan)

    def names(self) -> tuple[str, ...]:
        """Every figure this result has, in order: fixed, derived, then each batch size's."""
        return FIXED + DERIVED + tuple(
            name for batch in self.batch_sizes for name in timed_names(batch))

    def as_dict(self) -> dict:
        """The figures as trials store them and MLflow logs them: flat, by name."""
        return {"iteration": self.iteration, **{name: self.figure(name) for name in self.names()}}

    @classmethod
    def from_dict(cls, stored: Mapping) -> "IterationResult":
        """Figures as trials store them (`as_dict`); a figure recorded before it existed is
        NaN, and a key no longer a figure is ignored."""
        return cls(iteration=stored["iteration"],
                   **{name: stored.get(name, math.nan) for name in FIXED},
                   timed={name: value for name, value in stored.items()
                          if TIMED_NAME.fullmatch(name)})


FIXED_UNITS = {f.name: f.metadata["unit"] for f in fields(IterationResult)
               if f.name not in ("iteration", "timed")}
FIXED = tuple(FIXED_UNITS)
"""The figures every result has."""
DERIVED = ("speedup", "speedup_noise", "latency_ms")
"""Read off `timed` at the batch size their objective or budget uses."""
TIMED_NAME = re.compile(r"latency_b\d+_ms|speedup_b\d+(?:_spread)?")
LATENCY_NAME = re.compile(r"latency_b(\d+)_ms")


def unit(name: str) -> str:
    """A figure's unit, as declared with it: "fraction" (shown in percent), "ratio", "count",
    "ms" or "loss"; what every view shows it in."""
    if name in FIXED_UNITS:
        return FIXED_UNITS[name]
    if name == "speedup_noise":
        return "fraction"
    if name == "latency_ms" or name.startswith("latency_b"):
        return "ms"
    if name in DERIVED or TIMED_NAME.fullmatch(name):
        return "ratio"
    raise KeyError(name)


@dataclass(frozen=True)
class Result:
    dense: IterationResult  # iteration 0: the unpruned model, measured at the trial's start
    iterations: tuple[IterationResult, ...]  # with repeats, their means

    @property
    def final(self) -> IterationResult:
        return self.iterations[-1]


def mean(results: Sequence[IterationResult]) -> IterationResult:
    """One iteration's figures averaged over repeats, with the accuracies' spread."""
    def average(name: str):
        column = [result.figure(name) for result in results]
        value = statistics.fmean(column)
        return round(value) if isinstance(column[0], int) else value

    values = {name: average(name) for name in ("iteration", *FIXED)}
    for name in ("val_accuracy", "test_accuracy"):
        column = [getattr(result, name) for result in results]
        values[f"{name}_std"] = statistics.stdev(column) if len(column) > 1 else math.nan
    return IterationResult(**values, timed={name: average(name) for name in results[0].timed})


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
    repeats: int = 1,
    latency_device: torch.device | str = "cpu",
    latency_batch_sizes: Sequence[int] = BATCH_SIZES,
    classifier: str = "classifier",
    on_iteration: Callable[[IterationResult, tuple[IterationResult, ...]], None]
    = lambda result, each: None,
    on_epoch: Callable[[int, int, float], None] = lambda iteration, epoch, loss: None,
) -> Result:
    """Prune `model` (trained, dense, on the data's device) in place following `schedule`.

    First the dense model's costs are measured (iteration 0, with `dense_accuracy` = its
    (validation, test) accuracy from dense training; its speed-up, about 1, shows how steady
    the timing is); every later timing runs against a copy of it, block for block. Then each
    iteration prunes `schedule.amount` of what is still unpruned (weights, or channels for a
    structured method), applies the re-init option (`fresh_state(iteration)` gives a fresh
    initialisation for `random`), retrains with the masks in place, measures the costs and
    evaluates on the validation and test splits. With `schedule.distill_alpha` > 0, retraining
    distils a frozen copy of the dense model (training.distill).

    With `repeats` > 1 the schedule runs that many times in step, from copies of the dense
    model, repeat r retraining with seed `seed + r`; `model` is repeat 0's, and each
    iteration's result is the repeats' mean (see `mean`). Latency is timed on `latency_device`
    at each of `latency_batch_sizes`; `classifier` names the output layer.
    Figures leave through `on_iteration(result, each repeat's result)` (iteration 0 included)
    and `on_epoch(iteration, epoch, train_loss)`, both of repeat 0; a stop request is honoured
    between iterations and at every training step, and an exception raised by `on_iteration`
    ends the run.
    """
    example_input = normalize(data.val.images[:1])
    shipping = dict(latency_device=latency_device, classifier=classifier)
    timed = latency_device != costs.NOT_TIMED
    measure = partial(costs.measure, example_input=example_input,
                      reference=costs.deployed(model, example_input, **shipping) if timed
                      else None, batch_sizes=latency_batch_sizes, **shipping)
    dense_costs = measure(model)
    val_accuracy, test_accuracy = dense_accuracy
    dense = _result(0, dense_costs, dense_costs, val_accuracy=val_accuracy,
                    test_accuracy=test_accuracy, train_loss=math.nan)
    on_iteration(dense, (dense,))
    # The teacher: the dense model as trained, frozen before anything is pruned.
    distillation = Distillation.of(copy.deepcopy(model), alpha=schedule.distill_alpha,
                                   temperature=schedule.distill_temperature) \
        if schedule.distill_alpha > 0 else None
    runs = [_Repeat(model if r == 0 else copy.deepcopy(model), schedule, data, optimizer,
                    seed + r, example_input, classifier) for r in range(repeats)]
    retrain = replace(optimizer, lr=schedule.retrain_lr)

    def figures(iteration: int, repeat: "_Repeat", train_loss: float) -> IterationResult:
        return _result(iteration, measure(repeat.model), dense_costs,
                       val_accuracy=evaluate(repeat.model, data.val),
                       test_accuracy=evaluate(repeat.model, data.test), train_loss=train_loss)

    if schedule.schedule == "gradual":
        history = _gradual(schedule, runs, data, retrain, augmented, distillation, figures,
                           on_iteration, on_epoch)
        return Result(dense, tuple(history))
    history = []
    for iteration in range(1, schedule.iterations + 1):
        each = []
        for r, repeat in enumerate(runs):
            interrupts.check()
            torch.manual_seed(repeat.seed + 7919 * iteration)  # one stream per step and repeat
            repeat.prune(iteration, rewind_state, fresh_state)
            train_loss = train_epochs(
                repeat.model, data.train, epochs=schedule.retrain_epochs, settings=retrain,
                generator=repeat.generator, augmented=augmented, distillation=distillation,
                on_epoch=(lambda epoch, loss: on_epoch(iteration, epoch, loss)) if r == 0
                else (lambda epoch, loss: None))
            each.append(figures(iteration, repeat, train_loss))
        result = each[0] if repeats == 1 else mean(each)
        history.append(result)
        on_iteration(result, tuple(each))
    return Result(dense, tuple(history))


def _gradual(schedule: Schedule, runs: list["_Repeat"], data: CifarData,
             retrain: OptimizerSettings, augmented: bool, distillation, figures,
             on_iteration, on_epoch) -> list[IterationResult]:
    """The gradual family: each repeat trains `gradual_epochs` epochs in one phase (one
    cosine decay), pruned after the steps of pruning.gradual.event_steps to the ramp's
    target, the repeats in step epoch by epoch; every epoch's model is a candidate (its
    figures, iteration = epoch)."""
    steps = math.ceil(len(data.train) / retrain.batch_size) * schedule.gradual_epochs
    events = gradual.event_steps(steps, schedule.ramp_end, schedule.prune_every)
    trainers = []
    for r, repeat in enumerate(runs):
        torch.manual_seed(repeat.seed + 7919)  # random rankings and re-init draw from here
        trainers.append(Trainer(repeat.model, data.train, epochs=schedule.gradual_epochs,
                                settings=retrain, generator=repeat.generator,
                                augmented=augmented, distillation=distillation,
                                on_step=repeat.pruning_at(events, schedule.final_sparsity)))
    history = []
    for epoch in range(1, schedule.gradual_epochs + 1):
        each = []
        for r, (repeat, trainer) in enumerate(zip(runs, trainers)):
            interrupts.check()
            train_loss = trainer.epoch()
            if r == 0:
                on_epoch(epoch, 1, train_loss)
            each.append(figures(epoch, repeat, train_loss))
        result = each[0] if len(runs) == 1 else mean(each)
        history.append(result)
        on_iteration(result, tuple(each))
    return history


class _Repeat:
    """One of a trial's repeats: its model, what it prunes and its random numbers."""

    def __init__(self, model: nn.Module, schedule: Schedule, data: CifarData,
                 optimizer: OptimizerSettings, seed: int, example_input: torch.Tensor,
                 classifier: str):
        self.model, self.seed = model, seed
        self.generator = generator_on(data.train.labels.device, seed)
        self.method = methods.get(schedule.method)
        options = schedule.method_options()
        self.amount, self.reinit = schedule.amount, schedule.reinit
        self.targets = prunable_targets(
            model, include_classifier=self.method.prunes_classifier(options),
            classifier=classifier)
        found = couplings(model, self.targets, example_input) if self.method.structured else {}
        if self.method.structured:  # layers it cannot prune stay whole (validate lists them)
            self.targets = [target for target in self.targets if target[0] in found]
        self.context = Context(
            options=options,
            couplings=found,
            batches=lambda count: ranking_batches(data, optimizer.batch_size, self.generator,
                                                   count))

    def prune(self, iteration: int, rewind_state: StateDict,
              fresh_state: Callable[[int], StateDict]) -> None:
        self.method.apply(self.model, self.targets, self.amount, self.context)
        reinit.apply(self.reinit, self.model, rewind_state=rewind_state,
                     fresh_state=lambda: fresh_state(iteration))

    def pruning_at(self, events: list[int], final: float) -> Callable[[int], None]:
        """What a gradual schedule does after each training step: at an event, prune what
        takes the model from the ramp's last target to this one (a fraction of what remains,
        as methods prune)."""
        at = set(events)
        reached = [0.0]

        def after_step(step: int) -> None:
            if step not in at:
                return
            now = gradual.target(step, events[-1], final)
            self.method.apply(self.model, self.targets,
                              gradual.amount_between(reached[0], now), self.context)
            reached[0] = now
        return after_step


def ranking_batches(data: CifarData, batch_size: int, generator: torch.Generator, count: int):
    """`count` shuffled, unaugmented training batches for rankings that need the loss
    (Taylor importance)."""
    batches = train_batches(data.train, batch_size=batch_size, generator=generator,
                            augmented=False)
    return (batch for _, batch in zip(range(count), batches))
