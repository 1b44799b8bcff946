"""Which layers of a study's network its structured methods can prune, known when the study
file is read: a network whose channels reach layers that cannot be masked along them (grouped
convolutions, a LayerNorm over the channels) leaves those layers unpruned, and a network
none of whose layers can be pruned, or that torch-pruning cannot trace, is refused then, not
after trials fail."""

import dataclasses

import torch

from prunesearch.pruning import methods
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
    and one trace. Raises channels.Untraceable for a network torch-pruning cannot trace."""
    model = models.from_spec(dataclasses.asdict(model_spec)).eval()
    targets = prunable_targets(model, include_classifier=False,
                               classifier=model_spec.classifier or "classifier")
    names = {module: name for name, module in model.named_modules()}
    return len(targets), {names[module]: reason for module, reason in
                          channels.unprunable(model, targets, EXAMPLE).items()}
