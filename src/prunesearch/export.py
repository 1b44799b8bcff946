"""Turn a masked model into plain weights for deployment.

The only place `prune.remove` is called: masks stay in place through every retraining phase
and are made permanent here, on the finished model.
"""

import copy
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from prunesearch.methods.base import pruning_hooks


def without_masks(model: nn.Module) -> nn.Module:
    """A copy of `model` whose pruned weights are ordinary parameters (zeros where masked)."""
    exported = copy.deepcopy(model)
    for module, hook in list(pruning_hooks(exported)):
        prune.remove(module, hook._tensor_name)
    return exported


def save_weights(model: nn.Module, path: Path) -> Path:
    """The model's weights, masks made permanent, as a CPU state dict loadable into a freshly
    built model of the same name and width."""
    state = {key: value.detach().cpu() for key, value in without_masks(model).state_dict().items()}
    torch.save(state, path)
    return path
