"""The prune / re-init / retrain loop of one trial. Knows nothing of Optuna or MLflow:
each iteration's figures leave through `on_iteration`."""

import copy
import dataclasses
import math
from collections.abc import Callable
from functools import partial
from dataclasses import dataclass, replace

import torch
from torch import nn

from prunesearch.pruning import costs
from prunesearch.foundation import interrupts
from prunesearch.pruning import methods
from prunesearch.pruning import allocation, gradual, projection, reinit, seeds
from prunesearch.training.data import ImageData, generator_on, train_batches
from prunesearch.pruning.methods.base import Amounts, Context, Target
from prunesearch.pruning.rehearsal import Rehearsal
from prunesearch.pruning.graph.channels import couplings
from prunesearch.pruning.schedule import Schedule
from prunesearch.pruning.figures import IterationResult, mean
from prunesearch.pruning.trial import StateDict, TrialSettings
from prunesearch.training.distill import Distillation
from prunesearch.training.train import OptimizerSettings, Trainer, evaluate, train_epochs

@dataclass(frozen=True)
class Result:
    dense: IterationResult  # iteration 0: the unpruned model, measured at the trial's start
    iterations: tuple[IterationResult, ...]  # with repeats, their means

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
    settings: TrialSettings,
    schedule: Schedule,
    model: nn.Module,
    *,
    on_iteration: Callable[[IterationResult, tuple[IterationResult, ...]], None]
    = lambda result, each: None,
    on_epoch: Callable[[int, int, float], None] = lambda iteration, epoch, loss: None,
    on_plan: Callable[[allocation.Plan], None] = lambda plan: None,
) -> Result:
    """Prune `model` (trained, dense, on the data's device) in place following `schedule`,
    with what every trial of the study shares (`settings`).

    First the dense model's costs are measured (iteration 0, with `settings.dense_accuracy`
    from dense training; its speed-up, about 1, shows how steady the timing is); every later
    timing runs against a copy of it, block for block. Then each iteration prunes
    `schedule.amount` of what is still unpruned (weights, or channels for a structured
    method; per unit as the schedule's allocation and the study's projection share it out,
    `on_plan(plan)` told how, before the first), applies the re-init option (`random` restores a fresh initialisation, seeded by
    seeds.fresh_init), retrains with the masks in place, measures the costs and evaluates on
    the validation and test splits. With `schedule.distill_alpha` > 0, retraining distils a
    frozen copy of the dense model (training.distill).

    With `settings.repeats` > 1 the schedule runs that many times in step, from copies of the
    dense model, each repeat with its own seeds (pruning.seeds); `model` is repeat 0's, and
    each iteration's result is the repeats' mean (see `mean`). Latency is timed as
    `settings.latency` says. Figures leave through `on_iteration(result, each repeat's
    result)` (iteration 0 included) and `on_epoch(iteration, epoch, train_loss)`, both of
    repeat 0; a stop request is honoured between iterations and at every training step, and
    an exception raised by `on_iteration` ends the run.
    """
    data, optimizer, augmented = settings.data, settings.optimizer, settings.augmented
    example_input = data.val.inputs(slice(1))
    latency = settings.latency
    shipping = dict(latency_device=latency.device, classifier=settings.classifier)
    measure = partial(costs.measure, example_input=example_input,
                      reference=costs.deployed(model, example_input, **shipping)
                      if latency.timed else None, batch_sizes=latency.batch_sizes, **shipping)
    dense_costs = measure(model)
    val_accuracy, test_accuracy = settings.dense_accuracy
    dense = _result(0, dense_costs, dense_costs, val_accuracy=val_accuracy,
                    test_accuracy=test_accuracy, train_loss=math.nan)
    on_iteration(dense, (dense,))
    # The teacher: the dense model as trained, frozen before anything is pruned.
    distillation = Distillation.of(copy.deepcopy(model), alpha=schedule.distill_alpha,
                                   temperature=schedule.distill_temperature) \
        if schedule.distill_alpha > 0 else None
    runs = [_Repeat(model if r == 0 else copy.deepcopy(model), schedule, data, optimizer,
                    seeds.repeat(settings.seed, r), example_input, settings.classifier)
            for r in range(settings.repeats)]
    plan = _plan(settings, schedule, runs[0], example_input, dense_costs)
    on_plan(plan)
    for repeat in runs:
        repeat.follow(plan, uneven=schedule.allocation != "uniform" or plan.factor != 1.0)

    def fresh_state(iteration: int) -> StateDict:
        return settings.fresh_state(seeds.fresh_init(settings.seed, iteration))

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
            torch.manual_seed(seeds.step(repeat.seed, iteration))
            repeat.prune(iteration, settings.rewind_state, fresh_state)
            train_loss = train_epochs(
                repeat.model, data.train, epochs=schedule.retrain_epochs, settings=retrain,
                generator=repeat.generator, augmented=augmented, distillation=distillation,
                on_epoch=(lambda epoch, loss: on_epoch(iteration, epoch, loss)) if r == 0
                else (lambda epoch, loss: None))
            each.append(figures(iteration, repeat, train_loss))
        result = each[0] if len(runs) == 1 else mean(each)
        history.append(result)
        on_iteration(result, tuple(each))
    return Result(dense, tuple(history))


def _gradual(schedule: Schedule, runs: list["_Repeat"], data: ImageData,
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
        torch.manual_seed(seeds.step(repeat.seed, 1))  # random rankings and re-init draw here
        trainers.append(Trainer(repeat.model, data.train, epochs=schedule.gradual_epochs,
                                settings=retrain, generator=repeat.generator,
                                augmented=augmented, distillation=distillation,
                                on_step=repeat.pruning_at(events)))
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

    def __init__(self, model: nn.Module, schedule: Schedule, data: ImageData,
                 optimizer: OptimizerSettings, seed: int, example_input: torch.Tensor,
                 classifier: str):
        self.model, self.seed, self.schedule = model, seed, schedule
        self.generator = generator_on(data.train.labels.device, seed)
        self.method = methods.get(schedule.method)
        self.options = schedule.method_options()
        self.reinit = schedule.reinit
        self.targets = prunable_targets(
            model, include_classifier=self.method.prunes_classifier(self.options),
            classifier=classifier)
        self.found = couplings(model, self.targets, example_input) \
            if self.method.structured else {}
        if self.method.structured:  # layers it cannot prune stay whole (validate lists them)
            self.targets = [target for target in self.targets if target[0] in self.found]
        self.units = allocation.unit_modules(self.targets, self.found, self.method.structured)
        self.context = Context(
            options=self.options,
            couplings=self.found,
            batches=lambda count: ranking_batches(data, optimizer.batch_size, self.generator,
                                                   count))
        self.shares: list[float] | None = None  # per unit, when shared unevenly (follow)
        self.overall = _overall_share(schedule)

    def follow(self, plan: allocation.Plan, *, uneven: bool) -> None:
        """Prune each unit by its share of `plan` (`uneven`), else the schedule's amount."""
        if uneven:
            self.shares = list(plan.shares)
            self.overall = min(self.overall * plan.factor, allocation.MAX_SHARE)

    def prune(self, iteration: int, rewind_state: StateDict,
              fresh_state: Callable[[int], StateDict]) -> None:
        rounds = self.schedule.iterations
        amounts = Amounts(self.schedule.amount) if self.shares is None else _amounts(
            self.units, self.shares, self.overall,
            lambda share: allocation.per_round(share, rounds))
        self.method.apply(self.model, self.targets, amounts, self.context)
        reinit.apply(self.reinit, self.model, rewind_state=rewind_state,
                     fresh_state=lambda: fresh_state(iteration))

    def pruning_at(self, events: list[int]) -> Callable[[int], None]:
        """What a gradual schedule does after each training step: at an event, prune what
        takes each unit from the ramp's last target to this one (a fraction of what
        remains, as methods prune)."""
        at = set(events)
        finals = self.shares or [self.overall] * len(self.units)
        reached = [0.0] * (len(finals) + 1)  # each unit's, then the overall

        def after_step(step: int) -> None:
            if step not in at:
                return
            now = [gradual.target(step, events[-1], final) for final in (*finals, self.overall)]
            between = [gradual.amount_between(before, after)
                       for before, after in zip(reached, now)]
            per_module = {module: amount for members, amount in zip(self.units, between)
                          for module in members} if self.shares is not None else {}
            self.method.apply(self.model, self.targets, Amounts(between[-1], per_module),
                              self.context)
            reached[:] = now
        return after_step


def _overall_share(schedule: Schedule) -> float:
    """The fraction of the network a schedule prunes by its end."""
    if schedule.schedule == "gradual":
        return schedule.final_sparsity
    return allocation.overall_share(schedule.amount, schedule.iterations)


def _amounts(units, shares, overall: float, each: Callable[[float], float]) -> Amounts:
    return Amounts(each(overall), {module: each(share)
                                   for members, share in zip(units, shares)
                                   for module in members})


def _plan(settings: TrialSettings, schedule: Schedule, repeat: _Repeat,
          example_input: torch.Tensor, dense_costs: costs.Costs) -> allocation.Plan:
    """Each unit's share of the pruning: the schedule's allocation of its overall share, then
    (with a projection) all scaled by the one factor that lands the last model on the size
    budgets (pruning.projection)."""
    sharing = settings.sharing
    structured = repeat.method.structured
    stage_of = allocation.stages(repeat.model, example_input, sharing.stages) \
        if schedule.allocation == "stages" else {}
    units = allocation.describe(repeat.model, repeat.units, structured, stage_of)
    cap = min(1 - sharing.min_kept, allocation.MAX_SHARE)
    overall = _overall_share(schedule)
    curves = [sharing.curves[schedule.method][unit.name] for unit in units] \
        if schedule.allocation == "sensitivity" else ()
    shares = allocation.shares(schedule.allocation, overall, units, cap=cap,
                               factors=schedule.stage_factors, curves=curves,
                               weight=schedule.sensitivity_weight) \
        if schedule.allocation != "uniform" else [overall] * len(units)
    if not sharing.projection:
        return allocation.Plan(tuple(units), tuple(shares))
    rounds = schedule.iterations if schedule.schedule == "iterative" else 1
    counted = not structured and not repeat.method.ranks_globally
    rehearsal = None if counted else Rehearsal(repeat.model, repeat.targets, repeat.found)
    tally = projection.Counted(repeat.model, repeat.targets, example_input, dense_costs) \
        if counted else None

    def keeps(factor: float) -> bool:
        scaled = allocation.scaled(shares, factor, cap)
        top_overall = min(overall * factor, allocation.MAX_SHARE)

        def amounts_of(twin: dict) -> Amounts:
            return _amounts([[twin[m] for m in members] for members in repeat.units], scaled,
                            top_overall, lambda share: allocation.per_round(share, rounds))

        if counted:
            figures = tally.figures([amounts_of({m: m for m, _ in repeat.targets})] * rounds)
        else:
            with rehearsal.attempt():
                figures = projection.measured(
                    projection.played(rehearsal, schedule.method, repeat.options,
                                      [amounts_of] * rounds), example_input)
        return projection.keeps_budgets(figures, sharing.projection, dense_costs)

    factor = projection.land(keeps, top=cap / min([s for s in shares if s > 0] or [cap]))
    return allocation.Plan(tuple(units), tuple(allocation.scaled(shares, factor, cap)), factor)


def ranking_batches(data: ImageData, batch_size: int, generator: torch.Generator, count: int):
    """`count` shuffled, unaugmented training batches for rankings that need the loss
    (Taylor importance)."""
    batches = train_batches(data.train, batch_size=batch_size, generator=generator,
                            augmented=False)
    return (batch for _, batch in zip(range(count), batches))
