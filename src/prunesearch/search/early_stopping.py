"""Early stopping for multi-objective studies: MO-ASHA (Schmucker et al., 2021), asynchronous
successive halving that ranks trials by non-dominated sorting.

Optuna's pruners refuse studies with more than one objective, so the rule is ours. Its state
is the points trials record in the study's storage (TrialRecord.rungs): a resumed run, the
workers of --jobs and other machines sharing the storage all see the same rungs.

Rungs are retraining epochs spent: first_rung_epochs x reduction_factor^s. When a trial's
iterations first reach a rung, it records its point there: its validation accuracy now and,
for each other objective, with rung_point "planned", where its schedule will end, known
before training (sparsity and MACs reduction extrapolated by the pruned fraction
1 - (1 - amount)^iterations; speed-up as measured now, since it only grows), or with
"current", the model's own figures now (every coordinate at the same fidelity, as MO-ASHA
compares them; the model is itself a candidate for the front). Among the n trials recorded
at that rung (complete, stopped or running; failed ones run again and are left out) ordered
by non-domination rank, then crowding distance within a rank (larger first: the front's
extremes and sparse parts), then trial number (earlier first), it goes on if it is among the
first n // reduction_factor. With fewer trials than that at the rung (n // reduction_factor
= 0), it goes on if no trial there dominates it, as Optuna's successive halving promotes the
best of its first trials.
"""

from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from prunesearch.foundation import pareto
from prunesearch.stores import records
from prunesearch.stores.records import TrialRecord



class StoppedEarly(Exception):
    """A trial's schedule is not worth finishing: the message says at which rung and why;
    `figures` are those of the last iteration it ran (a model of its own)."""

    def __init__(self, reason: str, figures):
        super().__init__(reason)
        self.figures = figures


@dataclass(frozen=True)
class Decision:
    goes_on: bool
    reason: str


@dataclass(frozen=True)
class Rule:
    reduction_factor: int  # eta: about 1 in eta trials goes on at each rung
    first_rung_epochs: int
    rung_point: str = "planned"  # one of studyfile.RUNG_POINTS

    def rungs_reached(self, epochs_before: int, epochs_now: int) -> list[int]:
        """The rungs (in epochs) passed by retraining from `epochs_before` to `epochs_now`."""
        reached, rung = [], self.first_rung_epochs
        while rung <= epochs_now:
            if rung > epochs_before:
                reached.append(rung)
            rung *= self.reduction_factor
        return reached


def point(result, schedule, objectives, rung_point: str = "planned") -> list[float]:
    """A trial's point at a rung, every coordinate maximised: its validation accuracy after
    iteration `result.iteration`, then each other objective where its schedule ends
    ("planned") or as the model is now ("current")."""
    growth = 1.0 if rung_point == "current" else schedule.planned_growth(result.iteration)
    others = {"sparsity": min(result.sparsity * growth, 1.0),
              "macs_reduction": min(result.macs_reduction * growth, 1.0),
              "speedup": result.speedup}
    return [result.val_accuracy, *(others[name] for name in objectives
                                   if name != "val_accuracy")]


def decide(number: int, points: dict[int, list[float]], reduction_factor: int) -> Decision:
    """Whether trial `number` goes on, given every trial's point at its rung (its own
    included), following the rule in this module's docstring."""
    numbers = sorted(points)
    ranks = pareto.ranks([points[n] for n in numbers])
    rank = dict(zip(numbers, ranks))
    distance = {}
    for layer in set(ranks):
        members = [n for n in numbers if rank[n] == layer]
        distance.update(zip(members, pareto.crowding([points[n] for n in members])))
    order = sorted(numbers, key=lambda n: (rank[n], -distance[n], n))
    keep = len(numbers) // reduction_factor
    position = order.index(number)
    goes_on = position < keep if keep else rank[number] == 0
    if keep:
        why = (f"ranked {position + 1} of {len(numbers)} trials there (non-domination rank "
               f"{rank[number]}); mo-asha keeps the first {keep}")
    else:
        why = (f"{'no' if goes_on else 'another'} trial of the {len(numbers)} there "
               f"dominates it (fewer than reduction_factor = {reduction_factor}: only "
               "non-dominated ones go on)")
    return Decision(goes_on, why)


def check(trial: optuna.Trial, result, schedule, objectives, rule: Rule) -> None:
    """After iteration `result.iteration` of `trial`: record its point at every rung that
    iteration reached, and raise StoppedEarly if it should stop there. Nothing stops after
    the last iteration (its points still count for the trials after it)."""
    epochs_now = result.iteration * schedule.epochs_per_round
    reached = rule.rungs_reached(epochs_now - schedule.epochs_per_round, epochs_now)
    if not reached:
        return
    rungs = dict(TrialRecord.of(trial).rungs or {})
    here = point(result, schedule, objectives, rule.rung_point)
    rungs.update({str(rung): here for rung in reached})
    records.save_trial(trial, rungs=rungs)
    if result.iteration == schedule.rounds:
        return
    others = {t.number: TrialRecord.of(t).rungs or {} for t in trial.study.get_trials(
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
        if t.number != trial.number}
    for rung in reached:
        points = {number: theirs[str(rung)] for number, theirs in others.items()
                  if str(rung) in theirs}
        decision = decide(trial.number, {**points, trial.number: here},
                          rule.reduction_factor)
        if not decision.goes_on:
            raise StoppedEarly(f"stopped after iteration {result.iteration} of "
                               f"{schedule.rounds}, at the {rung}-epoch rung: "
                               f"{decision.reason}", result)


def rule_of(spec) -> Rule | None:
    """The study file's early-stopping rule, or None for `early_stopping = "none"`."""
    if spec.early_stopping == "none":
        return None
    return Rule(spec.reduction_factor, spec.first_rung_epochs, spec.rung_point)

