"""Turn a masked model into plain weights for deployment, and a structurally pruned one into a
genuinely smaller model.

The only place `prune.remove` is called: masks stay in place through every retraining phase
and are made permanent here, on the finished model.
"""

import copy
from pathlib import Path

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune

from prunesearch.methods.base import pruning_hooks
from prunesearch.methods.channels import live_channels

PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


def without_masks(model: nn.Module) -> nn.Module:
    """A copy of `model` whose pruned weights are ordinary parameters (zeros where masked)."""
    # A masked weight computed by a forward pass with autograd on is not a graph leaf, and
    # deepcopy refuses those: recompute the masked tensors without autograd first.
    with torch.no_grad():
        for module, hook in pruning_hooks(model):
            setattr(module, hook._tensor_name, hook.apply_mask(module))
    exported = copy.deepcopy(model)
    for module, hook in list(pruning_hooks(exported)):
        prune.remove(module, hook._tensor_name)
    return exported


def remove_pruned_channels(model: nn.Module, example_input: torch.Tensor) -> nn.Module:
    """A smaller dense copy of a model pruned by a structured method: every output channel
    whose weights are all masked is deleted with its dependents (bias, BatchNorm, the next
    layers' inputs) by torch-pruning's dependency graph. It computes what the masked model
    computes, because structured methods mask those dependents too."""
    dead = {}
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES) and hasattr(module, "weight_mask"):
            alive = set(live_channels(module).tolist())
            dead[name] = [c for c in range(module.weight.shape[0]) if c not in alive]
    slim = without_masks(model)
    graph = tp.DependencyGraph().build_dependency(slim, example_inputs=example_input)
    modules = dict(slim.named_modules())
    for name, channels in dead.items():
        if channels:
            module = modules[name]
            prune_fn = graph.get_pruner_of_module(module).prune_out_channels
            graph.get_pruning_group(module, prune_fn, idxs=channels).prune()
    return slim


def save_weights(model: nn.Module, path: Path) -> Path:
    """The model's weights, masks made permanent, as a CPU state dict loadable into a freshly
    built model of the same name and width."""
    state = {key: value.detach().cpu() for key, value in without_masks(model).state_dict().items()}
    torch.save(state, path)
    return path
