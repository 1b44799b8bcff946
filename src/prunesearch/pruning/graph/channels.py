"""What else dies with an output channel, and how structured methods mask it.

Removing filter j of a conv is not only row j of its weight: its bias, the BatchNorm scale and
shift of channel j, and the weights of every later layer that read channel j (the next conv's
input channel j, the classifier's input feature j) go with it. torch-pruning's dependency graph
traces the model once and names those dependents; here each becomes a mask through
`torch.nn.utils.prune.custom_from_mask`, so the masked model computes exactly what the
physically smaller one would (`export.shrink`) and its weight sparsity counts
every weight the removal deletes.
"""

import sys
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune

from prunesearch.pruning.methods.base import Target
from prunesearch.pruning.graph.tracing import Piece, piece_of, trace


@dataclass(frozen=True)
class Dependent:
    """Entries of `module.<tensor_name>` along `dim` that die with one output channel; `rows`,
    a (start, stop) of dim 0, where only those rows hold them (a grouped convolution's input
    channel is read by its own group's filters only)."""

    module: nn.Module
    tensor_name: str
    dim: int
    index: tuple[int, ...]
    rows: tuple[int, int] | None = None


class Couplings(dict):
    """For each prunable module, per output channel, the entries that die with that channel
    (module -> list of lists of Dependent); and in `ties`, for a module whose channels reach a
    grouped convolution, each channel's tie: channels sharing a tie leave together, one from
    each group at the same place in it, so that every group keeps as many (what a grouped
    convolution needs, and torch-pruning's removal assumes)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ties: dict[nn.Module, list[int]] = {}


def couplings(model: nn.Module, targets: list[Target], example_input: torch.Tensor,
              pieces: list[Piece] | None = None) -> Couplings:
    """List, per channel of each target, its dependents: its own bias, following BatchNorm
    scale and shift, later layers' inputs, a depthwise convolution's filters, a grouped
    convolution's columns in its group's filters (the channels then tied across its groups:
    Couplings.ties). One dependency group per target, all its channels at once, each
    dependent sorted back to the channel it follows (torch-pruning's root indices): per
    channel, a DenseNet took minutes. A target whose channels reach a layer that cannot be
    masked along them (a GroupNorm, an unknown layer with parameters), or that are the
    network's outputs, or that torch-pruning traces no part of the network around (see
    tracing) is left out: see `unprunable`.
    Pass `pieces` when the caller has traced `model` already (`tracing.trace`)."""
    found, _ = couplings_and_unprunable(model, targets, example_input, pieces)
    return found


def unprunable(model: nn.Module, targets: list[Target], example_input: torch.Tensor,
               pieces: list[Piece] | None = None) -> dict[nn.Module, str]:
    """The targets no structured method can prune, each with the reason."""
    return couplings_and_unprunable(model, targets, example_input, pieces)[1]


def couplings_and_unprunable(model: nn.Module, targets: list[Target],
                             example_input: torch.Tensor,
                             pieces: list[Piece] | None = None
                             ) -> tuple[Couplings, dict[nn.Module, str]]:
    if pieces is None:
        pieces = trace(model, example_input)
    owners = {parameter: (module, name) for module in model.modules()
              for name, parameter in module.named_parameters(recurse=False)}
    found, refused = Couplings(), {}
    for module, _ in targets:
        piece = piece_of(pieces, module)
        if piece is None:
            refused[module] = ("torch-pruning traces no part of the network around it (nor the "
                               "whole network)")
            continue
        channels = module.weight.shape[0]
        prune_fn = piece.graph.get_pruner_of_module(module).prune_out_channels
        dependency_group = piece.graph.get_pruning_group(module, prune_fn,
                                                         idxs=list(range(channels)))
        per_channel = [[] for _ in range(channels)]
        tie = list(range(channels))
        try:
            for item in dependency_group:
                target, handler = item.dep.target.module, item.dep.handler.__name__
                _check_inside(piece, target)
                period = _group_period(target, handler)
                first = {}  # place in the group -> the first channel seen there
                for index, root in zip(item.idxs, item.root_idxs):
                    per_channel[root] += _parameter_dependents(owners, target, [index]) \
                        if isinstance(target, nn.Parameter) \
                        else _dependents(target, handler, [index])
                    if period:
                        _join(tie, root, first.setdefault(index % period, root))
        except Unmaskable as reason:
            refused[module] = str(reason)
            continue
        found[module] = per_channel
        if tie != list(range(channels)):
            found.ties[module] = [_root(tie, channel) for channel in range(channels)]
    return found, refused


def _group_period(module, handler: str) -> int:
    """For a grouped (not depthwise) convolution, the channels per group on the side
    `handler` prunes; 0 for any other layer."""
    if not (isinstance(module, nn.Conv2d) and module.groups > 1) or _depthwise(module):
        return 0
    return (module.out_channels if handler == "prune_out_channels"
            else module.in_channels) // module.groups


def _root(tie: list[int], channel: int) -> int:
    while tie[channel] != channel:
        channel = tie[channel]
    return channel


def _join(tie: list[int], a: int, b: int) -> None:
    tie[_root(tie, a)] = _root(tie, b)


def _depthwise(module: nn.Conv2d) -> bool:
    return module.groups == module.in_channels == module.out_channels


def _parameter_dependents(owners: dict, parameter: nn.Parameter, index: list[int]
                          ) -> list[Dependent]:
    """A parameter outside a layer that a channel reaches (ConvNeXt's layer_scale), cut along
    its last dimension of more than one entry, as torch-pruning cuts it."""
    module, name = owners[parameter]
    dim = max(d for d, size in enumerate(parameter.shape) if size > 1)
    return [Dependent(module, name.removesuffix("_orig"), dim, tuple(index))]


class Unmaskable(ValueError):
    """A layer that a channel reaches but that cannot be masked along it."""


def _check_inside(piece: Piece, reached) -> None:
    """Refuse a channel that is an output of the network, or that comes into or leaves a
    piece traced alone (what torch-pruning could not trace around it would have to change)."""
    where = f"{piece.name}, which torch-pruning traces alone" if piece.entry is not None \
        else "the network"
    if isinstance(reached, tp.ops._OutputOp):
        raise Unmaskable(f"its channels are outputs of {where}")
    if reached is piece.entry:
        raise Unmaskable(f"its channels are tied to those coming into {where}")


def _dependents(module, handler: str, index: list[int]) -> list[Dependent]:
    if not isinstance(module, nn.Module) or not list(module.parameters(recurse=False)):
        return []  # an operation without parameters (ReLU, pooling, flatten, concatenation)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) or channel_layer_norm(module):
        names, dim = ("weight", "bias"), 0  # a LayerNorm's statistics: see kept_statistics
    elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
        raise Unmaskable(f"its channels reach a {type(module).__name__}, whose statistics a "
                         "masked channel would still count in")
    elif isinstance(module, nn.Conv2d) and _depthwise(module):
        names, dim = ("weight", "bias"), 0  # depthwise: a channel in is the channel out
    elif isinstance(module, nn.Conv2d) and module.groups > 1 and handler == "prune_in_channels":
        # Input channel c is column c % per_group of its group's filters only.
        per_group = module.in_channels // module.groups
        outputs = module.out_channels // module.groups
        return [Dependent(module, "weight", 1, tuple(i % per_group for i in index),
                          rows=(i // per_group * outputs, (i // per_group + 1) * outputs))
                for i in index]
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


def channel_sets(targets: list[Target], found: Couplings) -> list[list[nn.Module]]:
    """The targets whose output channels are one channel: layers whose outputs are added
    together (a residual sum, through identity or projection shortcuts), so that a channel
    removed from one goes from all of them: a channel set. Each in target order; a layer
    nothing is added to is a set of its own (every layer of a plain CNN). ("Group" is kept
    for torch-pruning's dependency groups and for grouped convolutions.)"""
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


def prune_channel_set(channel_set: list[nn.Module], channel_scores: torch.Tensor, count: int,
                      found: Couplings) -> None:
    """Prune the same `count` lowest-scoring live channels from every layer of `channel_set`,
    then mask what depends on them (all members first: masking a member's dependents earlier
    would count its channels as pruned in the next member before it chose its own)."""
    ties = _ties_of(channel_set, found)
    for module in channel_set:
        if ties is None:
            prune_lowest(module, channel_scores, count)
        else:
            prune_channels(module, _lowest_ties(channel_set[0], channel_scores, count, ties))
    for module in channel_set:
        mask_dependents(module, found)


def _ties_of(channel_set: list[nn.Module], found: Couplings) -> list[int] | None:
    """Each channel's tie in a channel set (one channel index space), or None: no tie."""
    tied = [found.ties[module] for module in channel_set if module in found.ties]
    if not tied:
        return None
    tie = list(range(len(tied[0])))
    for labels in tied:
        for channel, label in enumerate(labels):
            _join(tie, channel, label)
    return [_root(tie, channel) for channel in range(len(tie))]


def _lowest_ties(module: nn.Module, channel_scores: torch.Tensor, count: int,
                 ties: list[int]) -> list[int]:
    """The channels of the live ties of lowest summed score, about `count` channels (whole
    ties: `count` rounded to them), never the last tie."""
    alive = set(live_channels(module).tolist())
    members: dict[int, list[int]] = {}
    for channel, label in enumerate(ties):
        members.setdefault(label, []).append(channel)
    live = [channels for channels in members.values() if set(channels) <= alive]
    if not live:
        return []
    scores = channel_scores.detach().abs().cpu()
    take = min(round(count / len(live[0])), len(live) - 1)
    ranked = sorted(live, key=lambda channels: float(scores[channels].sum()))
    return [channel for channels in ranked[:take] for channel in channels]


def prune_channels(module: nn.Module, channels: list[int]) -> None:
    """Prune these output channels of `module` (a mask through torch's custom_from_mask)."""
    if not channels:
        return
    mask = torch.ones_like(module.weight)
    mask[channels] = 0
    prune.custom_from_mask(module, "weight", mask)


def capped_count(live: int, amount: float, round_to: int = 1) -> int:
    """Channels to prune from a layer with `live` channels: `amount` of them, rounded, but
    never the last one; with `round_to`, adjusted so that a multiple of it is left (see
    `rounded`: a layer of `round_to` channels or fewer is left as it is)."""
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
    dead: dict[tuple[nn.Module, str], dict] = {}  # -> (dim, rows) -> indices
    for channel, dependents in enumerate(found[module]):
        if channel in alive:
            continue
        for dep in dependents:
            dead.setdefault((dep.module, dep.tensor_name), {}).setdefault(
                (dep.dim, dep.rows), []).extend(dep.index)
    for (dep_module, name), along in dead.items():
        if dep_module is module and name == "weight":
            continue  # the method's own selection already masks these rows
        mask = torch.ones_like(getattr(dep_module, name))
        for (dim, rows), index in along.items():  # one fill per dimension and rows
            part = mask if rows is None else mask[rows[0]:rows[1]]
            part.index_fill_(dim, torch.tensor(index, device=mask.device), 0)
        prune.custom_from_mask(dep_module, name, mask)
        if channel_layer_norm(dep_module) and \
                kept_statistics not in dep_module._forward_hooks.values():
            dep_module.register_forward_hook(kept_statistics)


def channel_layer_norm(module: nn.Module) -> bool:
    """A LayerNorm over the channels alone, with a scale and shift to mask: channels last
    (nn.LayerNorm itself, after a permute) or first (ConvNeXt's LayerNorm2d)."""
    # torchvision's LayerNorm2d only where torchvision is loaded (a network of it is): its
    # import costs 1.7 s, which a trial of prunesearch's own networks need not pay.
    convnext = sys.modules.get("torchvision.models.convnext")
    norms = (nn.LayerNorm, convnext.LayerNorm2d) if convnext else (nn.LayerNorm,)
    return (type(module) in norms and len(module.normalized_shape) == 1
            and module.weight is not None and module.bias is not None)


def kept_statistics(module: nn.Module, inputs: tuple, output: torch.Tensor):
    """A masked LayerNorm's output as the smaller model's: normalised over the channels kept
    alone (a masked channel, zero, would still count in the mean and variance), zero on the
    others. A forward hook that `mask_dependents` registers; without masks it leaves the
    output as it is."""
    mask = getattr(module, "weight_mask", None)
    if mask is None or bool(mask.all()):
        return None
    kept = mask.bool()
    channels_first = type(module) is not nn.LayerNorm
    images = inputs[0].permute(0, 2, 3, 1) if channels_first else inputs[0]
    normalised = images.new_zeros(images.shape)
    normalised[..., kept] = nn.functional.layer_norm(
        images[..., kept], (int(kept.sum()),), module.weight[kept], module.bias[kept],
        module.eps)
    return normalised.permute(0, 3, 1, 2) if channels_first else normalised


def drop_kept_statistics(model: nn.Module) -> None:
    """Remove `kept_statistics` from a model whose masks are folded (nothing left to keep)."""
    for module in model.modules():
        for key, hook in list(module._forward_hooks.items()):
            if hook is kept_statistics:
                del module._forward_hooks[key]


def activation_module(module: nn.Module, found: Couplings) -> nn.Module:
    """The module whose output is the channel's last affine value: the BatchNorm that follows
    `module` if there is one, else `module` itself."""
    for dep in found[module][0]:
        if isinstance(dep.module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return dep.module
    return module
