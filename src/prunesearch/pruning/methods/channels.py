"""What else dies with an output channel, and how structured methods mask it.

Removing filter j of a conv is not only row j of its weight: its bias, the BatchNorm scale and
shift of channel j, and the weights of every later layer that read channel j (the next conv's
input channel j, the classifier's input feature j) go with it. torch-pruning's dependency graph
traces the model once and names those dependents; here each becomes a mask through
`torch.nn.utils.prune.custom_from_mask`, so the masked model computes exactly what the
physically smaller one would (`export.shrink`) and its weight sparsity counts
every weight the removal deletes.
"""

from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune

from prunesearch.pruning.methods.base import Target


@dataclass(frozen=True)
class Dependent:
    """Entries of `module.<tensor_name>` along `dim` that die with one output channel."""

    module: nn.Module
    tensor_name: str
    dim: int
    index: tuple[int, ...]


Couplings = dict[nn.Module, list[list[Dependent]]]
"""For each prunable module, per output channel, the entries that die with that channel."""


def trace(model: nn.Module, example_input: torch.Tensor) -> tp.DependencyGraph:
    """torch-pruning's dependency graph of `model` (unpruned, or with its masks folded)."""
    return tp.DependencyGraph().build_dependency(model, example_inputs=example_input)


def couplings(model: nn.Module, targets: list[Target], example_input: torch.Tensor,
              graph: tp.DependencyGraph | None = None) -> Couplings:
    """List, per channel of each target, its dependents: its own bias, following BatchNorm
    scale and shift, later layers' inputs. Pass `graph` when the caller has traced `model`
    already (`trace`), so it is not traced twice."""
    if graph is None:
        graph = trace(model, example_input)
    found = {}
    for module, _ in targets:
        prune_fn = graph.get_pruner_of_module(module).prune_out_channels
        found[module] = [
            [dependent for item in graph.get_pruning_group(module, prune_fn, idxs=[channel])
             for dependent in _dependents(item.dep.target.module, item.dep.handler.__name__,
                                          item.idxs)]
            for channel in range(module.weight.shape[0])]
    return found


def _dependents(module, handler: str, index: list[int]) -> list[Dependent]:
    if not isinstance(module, nn.Module) or not list(module.parameters(recurse=False)):
        return []  # an operation without parameters (ReLU, pooling, flatten)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        names, dim = ("weight", "bias"), 0
    elif isinstance(module, (nn.Conv2d, nn.Linear)):
        if isinstance(module, nn.Conv2d) and module.groups != 1:
            raise ValueError(f"structured pruning does not support grouped convolutions: {module}")
        names, dim = ((("weight", "bias"), 0) if handler == "prune_out_channels"
                      else (("weight",), 1))
    else:
        raise ValueError(f"structured pruning does not know how to mask {type(module).__name__}")
    return [Dependent(module, name, dim, tuple(index)) for name in names
            if getattr(module, name, None) is not None]


def live_channels(module: nn.Module) -> torch.Tensor:
    """Indices of the output channels of `module.weight` not yet pruned."""
    rows = module.weight.detach().flatten(1)
    mask = getattr(module, "weight_mask", None)
    alive = mask.flatten(1).any(dim=1) if mask is not None else torch.ones(
        rows.shape[0], dtype=torch.bool, device=rows.device)
    return alive.nonzero().flatten()


def prune_lowest(module: nn.Module, channel_scores: torch.Tensor, count: int) -> None:
    """Prune the `count` live output channels of `module` with the lowest scores, through
    torch's own structured selection (`ln_structured` on the scores as importance)."""
    if count <= 0:
        return
    shape = (-1,) + (1,) * (module.weight.dim() - 1)
    scores = channel_scores.detach().abs().reshape(shape).expand_as(module.weight)
    prune.ln_structured(module, "weight", amount=int(count), n=1, dim=0,
                        importance_scores=scores)


def groups(targets: list[Target], found: Couplings) -> list[list[nn.Module]]:
    """The targets whose output channels are one channel: layers whose outputs are added
    together (a residual sum, through identity or projection shortcuts), so that a channel
    removed from one goes from all of them. Each group in target order; a layer nothing is
    added to is a group of its own (every layer of a plain CNN)."""
    modules = [module for module, _ in targets]
    leader = {module: module for module in modules}

    def root(module):
        while leader[module] is not module:
            module = leader[module]
        return module

    for module in modules:
        for dep in found[module][0]:
            if dep.dim == 0 and dep.tensor_name == "weight" and dep.module in leader:
                leader[root(dep.module)] = root(module)
    members: dict[nn.Module, list[nn.Module]] = {}
    for module in modules:
        members.setdefault(root(module), []).append(module)
    return list(members.values())


def prune_group(group: list[nn.Module], channel_scores: torch.Tensor, count: int,
                found: Couplings) -> None:
    """Prune the same `count` lowest-scoring live channels from every layer of `group`, then
    mask what depends on them (all members first: masking a member's dependents earlier would
    count its channels as pruned in the next member before it chose its own)."""
    for module in group:
        prune_lowest(module, channel_scores, count)
    for module in group:
        mask_dependents(module, found)


def capped_count(live: int, amount: float) -> int:
    """Channels to prune from a layer with `live` channels: `amount` of them, rounded, but
    never the last one."""
    return min(round(amount * live), live - 1)


def mask_dependents(module: nn.Module, found: Couplings) -> None:
    """Mask everything that depends on the pruned output channels of `module`."""
    alive = set(live_channels(module).tolist())
    masks: dict[tuple[nn.Module, str], torch.Tensor] = {}
    for channel, dependents in enumerate(found[module]):
        if channel in alive:
            continue
        for dep in dependents:
            key = (dep.module, dep.tensor_name)
            if key not in masks:
                masks[key] = torch.ones_like(getattr(dep.module, dep.tensor_name))
            masks[key].index_fill_(dep.dim, torch.tensor(dep.index, device=masks[key].device), 0)
    for (dep_module, name), mask in masks.items():
        if dep_module is module and name == "weight":
            continue  # the method's own selection already masks these rows
        prune.custom_from_mask(dep_module, name, mask)


def activation_module(module: nn.Module, found: Couplings) -> nn.Module:
    """The module whose output is the channel's last affine value: the BatchNorm that follows
    `module` if there is one, else `module` itself."""
    for dep in found[module][0]:
        if isinstance(dep.module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return dep.module
    return module
