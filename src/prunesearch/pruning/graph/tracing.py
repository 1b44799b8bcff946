"""torch-pruning's dependency graph of a network: traced whole, or, where its tracer fails
on some operation (ShuffleNet's channel shuffle, a view it cannot map), in pieces.

A piece is a submodule traced alone, behind `entry`, a BatchNorm standing in for the
channels that come into it: a layer whose channels are tied to those (a depthwise
convolution reading them, a residual sum with them) or that leave the piece (torch-pruning's
output node) cannot be pruned inside it, so `channels` keeps to layers whose channels live and
die within the piece, such as the inside of ShuffleNet's branches.
"""

import warnings
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from prunesearch.pruning.watching import watched_forward


class Untraceable(ValueError):
    """A model whose dependency graph torch-pruning cannot build, whole or in pieces."""


@dataclass(frozen=True)
class Piece:
    """A traced part of a network: the model itself (`entry` None), or a submodule traced
    behind `entry` (see the module docstring), named `name` in the model."""

    module: nn.Module
    graph: tp.DependencyGraph
    entry: nn.Module | None = None
    name: str = ""

    def holds(self, layer: nn.Module) -> bool:
        return any(layer is module for module in self.module.modules())


def trace(model: nn.Module, example_input: torch.Tensor) -> list[Piece]:
    """The model's dependency graph: one piece, the model itself, when torch-pruning traces it
    whole; else every largest submodule it traces alone (Untraceable when there is none)."""
    try:
        return [Piece(model, _graph(model, example_input))]
    except Untraceable as whole:
        inputs = _inputs_of_each_module(model, example_input)
        pieces = _pieces(model, "", inputs)
        if not pieces:
            raise whole from None
        return pieces


def piece_of(pieces: list[Piece], layer: nn.Module) -> Piece | None:
    return next((piece for piece in pieces if piece.holds(layer)), None)


def _graph(model: nn.Module, example_input: torch.Tensor) -> tp.DependencyGraph:
    try:
        with warnings.catch_warnings():
            # Parameters outside a layer (ConvNeXt's layer_scale): a notice that it would cut
            # them along their last dimension of more than one entry (as channels masks
            # them), printed on every trace.
            warnings.filterwarnings("ignore", "Unwrapped parameters detected")
            graph = tp.DependencyGraph()
            _keep_layer_norm_channels_in_order(graph)
            return graph.build_dependency(model, example_inputs=example_input)
    except Exception as error:  # what its tracer meets in a model it does not handle
        raise Untraceable(f"torch-pruning cannot trace its channels ({type(error).__name__}: "
                          f"{error})") from None


def _inputs_of_each_module(model: nn.Module, example_input: torch.Tensor) -> dict:
    """Per submodule, the one image-batch tensor it was called with in a forward pass of
    `model`; None for one called more than once or with anything else."""
    seen: dict[nn.Module, torch.Tensor | None] = {}

    def record(module, args):
        single = len(args) == 1 and isinstance(args[0], torch.Tensor) and module not in seen
        seen[module] = args[0].detach()[:1] if single else None

    watched_forward(model, example_input[:1],
                    [module.register_forward_pre_hook(record) for module in model.modules()])
    return seen


def _pieces(module: nn.Module, name: str, inputs: dict) -> list[Piece]:
    """The largest submodules of `module` (itself not traceable) torch-pruning traces alone."""
    found = []
    for child_name, child in module.named_children():
        full_name = f"{name}.{child_name}" if name else child_name
        images = inputs.get(child)
        if images is None or images.dim() not in (2, 4) or not _has_layers(child):
            continue
        entry = (nn.BatchNorm2d if images.dim() == 4 else nn.BatchNorm1d)(
            images.shape[1], device=images.device)
        try:
            wrapped = nn.Sequential(entry, child).eval()
            found.append(Piece(child, _graph(wrapped, images), entry, full_name))
        except Untraceable:
            found += _pieces(child, full_name, inputs)
    return found


def _has_layers(module: nn.Module) -> bool:
    return any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in module.modules())


class _OrderedLayerNormPruner(tp.pruner.function.LayernormPruner):
    """torch-pruning 1.6.1's LayerNorm pruner keeps the channels in a Python set's order (its
    `keep_idxs.sort()` discards the sorted copy), so a LayerNorm's scales and shifts land on
    the wrong channels whenever the set iterates out of order ({6, 9, 10, 13} gives 9, 10,
    13, 6): the same removal, channels kept in order."""

    def prune_out_channels(self, layer: nn.Module, idxs) -> nn.Module:
        dim = self.pruning_dim
        if len(layer.normalized_shape) < -dim:
            return layer
        removed = set(idxs)
        keep = [i for i in range(layer.normalized_shape[dim]) if i not in removed]
        if layer.elementwise_affine:
            layer.weight = self._prune_parameter_and_grad(layer.weight, keep, dim)
            if layer.bias is not None:
                layer.bias = self._prune_parameter_and_grad(layer.bias, keep, dim)
        shape = list(layer.normalized_shape)
        shape[dim] = len(keep)
        layer.normalized_shape = tuple(shape)
        return layer

    prune_in_channels = prune_out_channels


def _keep_layer_norm_channels_in_order(graph: tp.DependencyGraph) -> None:
    """Give `graph`, before it traces, the LayerNorm pruner above (its pruning functions are
    recorded in the graph's dependencies as it traces, and looked up in these sets)."""
    pruner = _OrderedLayerNormPruner()
    graph.REGISTERED_PRUNERS[tp.ops.OPTYPE.LN] = pruner
    graph._in_channel_pruning_fn.add(pruner.prune_in_channels)
    graph._out_channel_pruning_fn.add(pruner.prune_out_channels)
