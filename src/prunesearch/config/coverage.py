"""Which layers of a study's network its structured methods can prune, known when the study
file is read: a network whose channels reach layers that cannot be masked along them (a
GroupNorm, a LayerNorm over more than the channels), or leave a part of it traced alone
(pruning.methods.tracing), leaves those layers unpruned, and a network none of whose layers
can be pruned, or no part of which torch-pruning can trace, is refused then, not after
trials fail."""

import dataclasses
import math

import torch

from prunesearch.pruning import costs, methods
from prunesearch.pruning.loop import prunable_targets
from prunesearch.pruning.methods import channels
from prunesearch.pruning.schedule import Choice, Fixed
from prunesearch.training import models

EXAMPLE = torch.zeros(1, 3, 32, 32)


def structured_methods(space: dict) -> list[str]:
    """The structured methods a study's space can sample."""
    method = space.get("method")
    named = [method.value] if isinstance(method, Fixed) else \
        list(method.choices) if isinstance(method, Choice) else []
    return [name for name in named if methods.get(name).structured]


def unprunable_layers(model_spec) -> tuple[int, dict[str, str]]:
    """(conv and linear layers a structured method could prune at most, the output layer
    aside; layer name -> why no structured method can prune its channels), from one build
    and one trace. Raises tracing.Untraceable for a network torch-pruning cannot trace."""
    model = models.from_spec(dataclasses.asdict(model_spec)).eval()
    targets = prunable_targets(model, include_classifier=False,
                               classifier=model_spec.classifier or "classifier")
    names = {module: name for name, module in model.named_modules()}
    return len(targets), {names[module]: reason for module, reason in
                          channels.unprunable(model, targets, EXAMPLE).items()}


def dense_costs(model_spec) -> tuple[int, int]:
    """(MACs per image, parameters) of the study's network unpruned: what relative budgets
    are fractions of, and what an absolute budget must be below to constrain anything."""
    model = models.from_spec(dataclasses.asdict(model_spec)).eval()
    return costs.macs(model, EXAMPLE), costs.params_remaining(model)


def weights_left_at_least(model_spec, space: dict) -> int | None:
    """The fewest parameters an unstructured schedule of `space` can leave: an iterative one
    prunes at most the largest `amount` of the conv and linear weights still unpruned, for at
    most the largest `iterations`; a gradual one at most the largest `final_sparsity`;
    biases and BatchNorm stay. None when a structured method may be sampled (it removes a
    channel's inputs downstream too, so no such bound holds)."""
    if structured_methods(space):
        return None
    model = models.from_spec(dataclasses.asdict(model_spec))
    layers = costs.prunable_modules(model)
    weights = sum(module.weight.numel() for _, module in layers)
    kept, rounds = 1.0, 1
    if "amount" in space:  # an iterative schedule may be sampled
        rounds = _largest(space.get("iterations", Fixed(1)))
        kept = (1 - _largest(space["amount"])) ** rounds
    if "final_sparsity" in space:  # a gradual one may
        kept = min(kept, 1 - _largest(space["final_sparsity"]))
        rounds = max(rounds, 100)  # its events round too; their number is not known here
    # torch rounds each layer's count to the nearest weight: up to one more per layer and round
    return (costs.params_remaining(model) - weights + math.floor(weights * kept)
            - len(layers) * rounds)


def _largest(param) -> float:
    if isinstance(param, Fixed):
        return param.value
    return max(param.choices) if isinstance(param, Choice) else param.high
