"""Which parts of a trained network tolerate pruning: each unit pruned alone, without
retraining, at several amounts, and the validation accuracy that is left.

A unit is what a method prunes as one: for a structured method, a group of layers whose
channels are one (channels.groups: a residual stage's layers, added together, count once;
scanning them layer by layer gives wrong answers on residual networks, fasterai PR #40); for
an unstructured method, a layer.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from prunesearch.foundation import interrupts
from prunesearch.pruning import methods
from prunesearch.pruning.loop import prunable_targets
from prunesearch.pruning.methods.base import Context
from prunesearch.pruning.graph.channels import couplings, channel_sets

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
    names = {module: name for name, module in model.named_modules()}
    if method.structured:
        targets = [target for target in targets if target[0] in found]
        units = channel_sets(targets, found)
    else:
        units = [[module] for module, _ in targets]
    dense_accuracy = evaluate(model)
    results = []
    for members in units:
        scores = []
        for amount in amounts:
            interrupts.check()
            # A copy of the model with its couplings, so that they name the copy's layers.
            pruned, pruned_found, pruned_members = copy.deepcopy((model, found, members))
            method.apply(pruned, [(module, "weight") for module in pruned_members], amount,
                         Context(options=options, couplings=pruned_found, batches=batches))
            scores.append(evaluate(pruned))
        layers = tuple(names[module] for module in members)
        results.append(Unit(
            name=layers[0] + (f" +{len(layers) - 1}" if len(layers) > 1 else ""),
            layers=layers, weights=sum(module.weight.numel() for module in members),
            accuracy=tuple(scores)))
    return sorted(results, key=lambda unit: -unit.drop(dense_accuracy))
