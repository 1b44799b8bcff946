"""Which parts of a trained network tolerate pruning: each unit pruned alone, without
retraining, at several amounts, and the validation accuracy that is left.

A unit is what a method prunes as one (pruning.allocation): for a structured method, a group
of layers whose channels are one (channels.channel_sets: a residual stage's layers, added
together, count once; scanning them layer by layer gives wrong answers on residual networks,
fasterai PR #40); for an unstructured method, a layer. Allocation `sensitivity` shares a
trial's amount out by these scans (`curves`).
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from prunesearch.foundation import interrupts
from prunesearch.pruning import allocation, methods
from prunesearch.pruning.loop import prunable_targets
from prunesearch.pruning.methods.base import Context
from prunesearch.pruning.graph.channels import couplings
from prunesearch.pruning.rehearsal import Rehearsal

AMOUNTS = (0.1, 0.3, 0.5, 0.7, 0.9)


@dataclass(frozen=True)
class Unit:
    """One unit's accuracies: `accuracy[i]` after pruning `amounts[i]` of it alone."""

    name: str  # its first layer's name, "+N" for the N more of its group
    layers: tuple[str, ...]
    weights: int  # conv and linear weights in it
    accuracy: tuple[float, ...]

    def drop(self, dense_accuracy: float) -> float:
        """The mean accuracy lost over the amounts: how sensitive the unit is."""
        return dense_accuracy - sum(self.accuracy) / len(self.accuracy)


def scan(model: nn.Module, method_name: str, options, *, example_input: torch.Tensor,
         evaluate: Callable[[nn.Module], float], batches: Callable[[int], object],
         amounts=AMOUNTS, classifier: str = "classifier") -> list[Unit]:
    """Every unit of `model` (trained, dense, left as it is) pruned alone by `method_name`
    (with its `options`) to each of `amounts`, scored by `evaluate` (validation accuracy);
    `batches` are what a loss-based ranking reads. Most sensitive first."""
    method = methods.get(method_name)
    targets = prunable_targets(model, include_classifier=method.prunes_classifier(options),
                               classifier=classifier)
    found = couplings(model, targets, example_input) if method.structured else {}
    if method.structured:
        targets = [target for target in targets if target[0] in found]
    units = allocation.unit_modules(targets, found, method.structured)
    dense_accuracy = evaluate(model)
    rehearsal = Rehearsal(model, targets, found)
    context = Context(options=options, couplings=rehearsal.found, batches=batches)
    results = []
    for members, unit in zip(units, allocation.describe(model, units, method.structured)):
        scores = []
        for amount in amounts:
            interrupts.check()
            with rehearsal.attempt():
                method.apply(rehearsal.model,
                             [(rehearsal.twin[module], "weight") for module in members],
                             amount, context)
                scores.append(evaluate(rehearsal.model))
        results.append(Unit(name=unit.name, layers=unit.layers, weights=unit.size,
                            accuracy=tuple(scores)))
    return sorted(results, key=lambda unit: -unit.drop(dense_accuracy))


def curves(units: list[Unit], amounts, dense_accuracy: float) -> dict[str, allocation.Curve]:
    """Each unit's scan as allocation `sensitivity` reads it: losses from the dense accuracy."""
    return {unit.name: allocation.Curve(tuple(amounts),
                                        tuple(dense_accuracy - a for a in unit.accuracy))
            for unit in units}
