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

from prunesearch.foundation.fields import setting
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


class Untraceable(ValueError):
    """A model whose dependency graph torch-pruning cannot build."""


def trace(model: nn.Module, example_input: torch.Tensor) -> tp.DependencyGraph:
    """torch-pruning's dependency graph of `model` (unpruned, or with its masks folded)."""
    try:
        return tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
    except Exception as error:  # what its tracer meets in a model it does not handle
        raise Untraceable(f"torch-pruning cannot trace its channels ({type(error).__name__}: "
                          f"{error})") from None


def couplings(model: nn.Module, targets: list[Target], example_input: torch.Tensor,
              graph: tp.DependencyGraph | None = None) -> Couplings:
    """List, per channel of each target, its dependents: its own bias, following BatchNorm
    scale and shift, later layers' inputs, a depthwise convolution's filters.
    One dependency group per target, all its channels at once, each dependent sorted back to
    the channel it follows (torch-pruning's root indices): per channel, a DenseNet took
    minutes. A target whose channels reach a layer that cannot be masked along them (a
    grouped convolution, a LayerNorm over the channels, an unknown layer with parameters) is
    left out: see `unprunable`.
    Pass `graph` when the caller has traced `model` already (`trace`)."""
    found, _ = couplings_and_unprunable(model, targets, example_input, graph)
    return found


def unprunable(model: nn.Module, targets: list[Target], example_input: torch.Tensor,
               graph: tp.DependencyGraph | None = None) -> dict[nn.Module, str]:
    """The targets no structured method can prune, each with the reason."""
    return couplings_and_unprunable(model, targets, example_input, graph)[1]


def couplings_and_unprunable(model: nn.Module, targets: list[Target],
                             example_input: torch.Tensor,
                             graph: tp.DependencyGraph | None = None
                             ) -> tuple[Couplings, dict[nn.Module, str]]:
    if graph is None:
        graph = trace(model, example_input)
    found, refused = {}, {}
    for module, _ in targets:
        channels = module.weight.shape[0]
        prune_fn = graph.get_pruner_of_module(module).prune_out_channels
        group = graph.get_pruning_group(module, prune_fn, idxs=list(range(channels)))
        per_channel = [[] for _ in range(channels)]
        try:
            for item in group:
                target, handler = item.dep.target.module, item.dep.handler.__name__
                for index, root in zip(item.idxs, item.root_idxs):
                    per_channel[root] += _dependents(target, handler, [index])
        except Unmaskable as reason:
            refused[module] = str(reason)
            continue
        found[module] = per_channel
    return found, refused


class Unmaskable(ValueError):
    """A layer that a channel reaches but that cannot be masked along it."""


def _dependents(module, handler: str, index: list[int]) -> list[Dependent]:
    if not isinstance(module, nn.Module) or not list(module.parameters(recurse=False)):
        return []  # an operation without parameters (ReLU, pooling, flatten, concatenation)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        names, dim = ("weight", "bias"), 0
    elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
        raise Unmaskable(f"its channels reach a {type(module).__name__}, whose statistics a "
                         "masked channel would still count in")
    elif isinstance(module, nn.Conv2d) and module.groups > 1:
        if not module.groups == module.in_channels == module.out_channels:
            raise Unmaskable("its channels reach a grouped convolution, whose groups would "
                             "change if one of their channels went")
        names, dim = ("weight", "bias"), 0  # depthwise: a channel in is the channel out
    elif isinstance(module, (nn.Conv2d, nn.Linear)):
        names, dim = ((("weight", "bias"), 0) if handler == "prune_out_channels"
                      else (("weight",), 1))
    else:
        raise Unmaskable(f"its channels reach a {type(module).__name__}, whose parameters "
                         "prunesearch cannot mask along a channel")
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


@dataclass(frozen=True)
class ChannelOptions:
    """Options every structured method reads."""

    round_to: int = setting(
        default=1, help="structured methods: leave each layer a multiple of this many "
                        "channels (1: any number), the widths vector kernels run fastest at; "
                        "the channels kept are rounded down to one, as torch-pruning's "
                        "round_to does, but never below it",
        allowed="an integer >= 1", check=lambda v: v >= 1)


def capped_count(live: int, amount: float, round_to: int = 1) -> int:
    """Channels to prune from a layer with `live` channels: `amount` of them, rounded, but
    never the last one; with `round_to`, more, so that a multiple of it is left (at least
    one multiple: a layer of `round_to` channels or fewer is left as it is)."""
    return rounded(live, min(round(amount * live), live - 1), round_to)


def rounded(live: int, count: int, round_to: int) -> int:
    """`count` of `live` channels to prune, adjusted so that a multiple of `round_to` is left:
    the channels kept rounded down to one, as torch-pruning's BasePruner._round_to does (a
    private method of its pruners), except that one multiple always stays, where it would
    leave none."""
    if round_to <= 1 or count <= 0:
        return count
    keep = max(round_to, (live - count) // round_to * round_to)
    return max(live - keep, 0)


def mask_dependents(module: nn.Module, found: Couplings) -> None:
    """Mask everything that depends on the pruned output channels of `module`."""
    alive = set(live_channels(module).tolist())
    dead: dict[tuple[nn.Module, str], dict[int, list[int]]] = {}  # -> dim -> indices
    for channel, dependents in enumerate(found[module]):
        if channel in alive:
            continue
        for dep in dependents:
            dead.setdefault((dep.module, dep.tensor_name), {}).setdefault(dep.dim, []).extend(
                dep.index)
    for (dep_module, name), along in dead.items():
        if dep_module is module and name == "weight":
            continue  # the method's own selection already masks these rows
        mask = torch.ones_like(getattr(dep_module, name))
        for dim, index in along.items():  # one fill per dimension, not per channel
            mask.index_fill_(dim, torch.tensor(index, device=mask.device), 0)
        prune.custom_from_mask(dep_module, name, mask)


def activation_module(module: nn.Module, found: Couplings) -> nn.Module:
    """The module whose output is the channel's last affine value: the BatchNorm that follows
    `module` if there is one, else `module` itself."""
    for dep in found[module][0]:
        if isinstance(dep.module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return dep.module
    return module
