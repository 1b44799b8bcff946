"""What a study's network allows, found once at preflight from one build of it: which layers
its structured methods can prune (a network whose channels reach layers that cannot be masked
along them, a GroupNorm or a LayerNorm over more than the channels, or leave a part of it
traced alone (pruning.graph.tracing), leaves those layers unpruned), its dense costs, and the
fewest parameters a schedule can leave."""

import math

import torch

from prunesearch.pruning import costs
from prunesearch.pruning.loop import prunable_targets
from prunesearch.pruning.graph import channels
from prunesearch.pruning.schedule import Choice, Fixed, structured_methods

def example(image_size: int) -> torch.Tensor:
    """One input of the study's image size: what the network is traced and costed on."""
    return torch.zeros(1, 3, image_size, image_size)


def unprunable_layers(model, classifier: str, image_size: int = 32
                      ) -> tuple[int, dict[str, str]]:
    """(conv and linear layers a structured method could prune at most, the output layer
    `classifier` aside; layer name -> why no structured method can prune its channels), from
    one trace of `model` (in eval mode). Raises tracing.Untraceable for a network
    torch-pruning cannot trace."""
    targets = prunable_targets(model, include_classifier=False, classifier=classifier)
    names = {module: name for name, module in model.named_modules()}
    return len(targets), {names[module]: reason for module, reason in
                          channels.unprunable(model, targets, example(image_size)).items()}


def dense_costs(model, image_size: int = 32) -> tuple[int, int]:
    """(MACs per image, parameters) of the study's network unpruned: what relative budgets
    are fractions of, and what an absolute budget must be below to constrain anything."""
    return costs.macs(model, example(image_size)), costs.params_remaining(model)


def weights_left_at_least(model, space: dict) -> int | None:
    """The fewest parameters an unstructured schedule of `space` can leave: an iterative one
    prunes at most the largest `amount` of the conv and linear weights still unpruned, for at
    most the largest `iterations`; a gradual one at most the largest `final_sparsity`;
    biases and BatchNorm stay. None when a structured method may be sampled (it removes a
    channel's inputs downstream too, so no such bound holds)."""
    if structured_methods(space):
        return None
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


def layer_count(model, classifier: str) -> int:
    """Conv and linear layers a method may prune, the output layer `classifier` aside."""
    return len(prunable_targets(model, include_classifier=False, classifier=classifier))
