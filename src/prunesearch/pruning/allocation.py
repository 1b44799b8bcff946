"""How a per-layer method shares a trial's amount among its units (the study's `allocation`).

A unit is what a method prunes as one (as the sensitivity scan counts them): for a structured
method a channel set (layers added together, channels.channel_sets), else a layer.

- `uniform`: every unit gets the trial's amount (what the per-layer methods always did).
- `stages`: units are grouped into stages, each with its own factor on the amount. A stage is
  by default the units whose outputs share a spatial resolution (ResNet-20 has 3, VGG-16-BN 5;
  a linear layer, which has none, joins the stage before it), or what the study names by
  module-name prefixes.
- `sensitivity`: amounts from the study's sensitivity scan of the dense model, chosen so that
  every unit's predicted accuracy loss is the same (water-filling on the scan's curves), at
  the trial's overall amount; `sensitivity_weight` moves from uniform (0) to equalised (1).

All of it is in shares: the fraction of a unit pruned by the schedule's end (iterative:
1 - (1 - amount)^iterations; gradual: final_sparsity), which `per_round` turns into what each
iteration prunes of what is left. An overall share is a mean over units weighted by their
weights, so the network loses about as many weights as under `uniform`. A share never passes
`cap` (1 - the study's `min_kept`, at most MAX_SHARE), so that no unit is emptied: a
structured method also always leaves a unit one channel (channels.capped_count).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from prunesearch.pruning.costs import prunable_modules
from prunesearch.pruning.graph.channels import Couplings, channel_sets, live_channels
from prunesearch.pruning.methods.base import Target
from prunesearch.pruning.schedule import ALLOCATIONS
from prunesearch.pruning.watching import watched_forward

MAX_SHARE = 0.99


@dataclass(frozen=True)
class Unit:
    name: str  # its first layer's name, "+N" for the N more layers added to it
    layers: tuple[str, ...]
    size: int  # conv and linear weights in it: its weight in an overall share
    total: int  # what it prunes from: output channels (structured), else weights
    stage: int | None  # None: in no stage the study names (its factor is 1)


@dataclass(frozen=True)
class Curve:
    """A unit's predicted accuracy loss after pruning `amounts[i]` of it alone, without
    retraining: `losses[i]` (the dense accuracy less the scan's)."""

    amounts: tuple[float, ...]
    losses: tuple[float, ...]


@dataclass(frozen=True)
class Plan:
    """What one trial prunes of each unit: `shares[i]` of `units[i]` by the schedule's end,
    after projection onto a size budget scaled them by `factor` (1: no projection)."""

    units: tuple[Unit, ...]
    shares: tuple[float, ...]
    factor: float = 1.0

    def as_dict(self) -> dict:
        """As a trial records it (and `prunesearch layers` and export read it)."""
        return {"factor": self.factor,
                "units": [{"name": unit.name, "layers": list(unit.layers), "total": unit.total,
                           "share": share} for unit, share in zip(self.units, self.shares)]}


def unit_modules(targets: list[Target], found: Couplings, structured: bool
                 ) -> list[list[nn.Module]]:
    """The units of `targets`: channel sets for a structured method, else single layers."""
    return channel_sets(targets, found) if structured else [[module] for module, _ in targets]


def describe(model: nn.Module, modules: list[list[nn.Module]], structured: bool,
             stage_of: dict[str, int] | None = None) -> list[Unit]:
    """The units of `modules` (unit_modules) as names and sizes, each in its stage."""
    names = {module: name for name, module in model.named_modules()}
    found = []
    for members in modules:
        layers = tuple(names[module] for module in members)
        found.append(Unit(name=layers[0] + (f" +{len(layers) - 1}" if len(layers) > 1 else ""),
                          layers=layers, size=sum(m.weight.numel() for m in members),
                          total=members[0].weight.shape[0] if structured
                          else members[0].weight.numel(),
                          stage=(stage_of or {}).get(layers[0])))
    return found


def kept(model: nn.Module, units: Sequence[Unit], structured: bool) -> list[int]:
    """What each unit of `model` has left: live output channels (structured), else nonzero
    weights, counted on its first layer."""
    modules = dict(model.named_modules())
    return [len(live_channels(modules[unit.layers[0]])) if structured
            else int(modules[unit.layers[0]].weight.count_nonzero()) for unit in units]


def stages(model: nn.Module, example_input: torch.Tensor,
           prefixes: Sequence[Sequence[str]] = ()) -> dict[str, int]:
    """Each conv and linear layer's stage, numbered from 0 in the order the layers are
    declared. With `prefixes`, stage i holds the layers whose names are, or start with, one
    of `prefixes[i]` followed by a dot (a layer matched by none is in no stage); without, a
    stage is the convolutions whose outputs share a spatial resolution, a linear layer
    joining the stage before it."""
    layers = prunable_modules(model)
    if prefixes:
        return {name: index for name, _ in layers
                for index in [_matching_stage(name, prefixes)] if index is not None}
    resolution: dict[nn.Module, tuple[int, ...]] = {}

    def record(module, _, output):
        resolution[module] = tuple(output.shape[2:])

    watched_forward(model, example_input[:1],
                    [module.register_forward_hook(record) for _, module in layers
                     if isinstance(module, nn.Conv2d)])
    seen: list[tuple[int, ...]] = []
    found, last = {}, 0
    for name, module in layers:
        size = resolution.get(module)
        if size is not None:
            if size not in seen:
                seen.append(size)
            last = seen.index(size)
        found[name] = last
    return found


def _matching_stage(name: str, prefixes: Sequence[Sequence[str]]) -> int | None:
    for index, stage in enumerate(prefixes):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in stage):
            return index
    return None


def unmatched_prefixes(layer_names: Sequence[str],
                       prefixes: Sequence[Sequence[str]]) -> list[str]:
    """The prefixes that name no layer (a study file's typo)."""
    return [prefix for stage in prefixes for prefix in stage
            if not any(name == prefix or name.startswith(prefix + ".") for name in layer_names)]


def shares(allocation: str, overall: float, units: Sequence[Unit], *, cap: float,
           factors: Sequence[float] = (), curves: Sequence[Curve] = (),
           weight: float = 1.0) -> list[float]:
    """Each unit's share of the pruning when the network as a whole loses `overall`:
    `factors[stage]` times it under `stages`, the equal-loss shares blended with `overall` by
    `weight` under `sensitivity` (`curves`: each unit's), `overall` under `uniform`; none past
    `cap`."""
    if allocation == "uniform":
        found = [overall] * len(units)
    elif allocation == "stages":
        found = [overall * (factors[unit.stage] if unit.stage is not None else 1.0)
                 for unit in units]
    elif allocation == "sensitivity":
        equal = equal_loss(curves, [unit.size for unit in units], overall, cap)
        found = [(1 - weight) * overall + weight * share for share in equal]
    else:
        raise ValueError(f"unknown allocation {allocation!r}; one of {list(ALLOCATIONS)}")
    return [min(max(share, 0.0), cap) for share in found]


def equal_loss(curves: Sequence[Curve], sizes: Sequence[int], overall: float,
               cap: float) -> list[float]:
    """Water-filling: the shares whose predicted losses are all one level (a unit at `cap`
    stays there), the level chosen by bisection so that their mean weighted by `sizes` is
    `overall`. A curve is read as piecewise linear through (0, 0) and the scan's points, on
    to 1 at its last slope, made non-decreasing; a slope of 1e-6 keeps it invertible where it
    is flat."""
    inverses, tops = zip(*(_inverse(curve) for curve in curves))
    total = sum(sizes)

    def mean_share(level: float) -> float:
        return sum(size * min(inverse(level), cap)
                   for size, inverse in zip(sizes, inverses)) / total

    low, high = 0.0, max(tops)
    if mean_share(high) <= overall:
        return [min(inverse(high), cap) for inverse in inverses]
    for _ in range(60):
        middle = (low + high) / 2
        if mean_share(middle) < overall:
            low = middle
        else:
            high = middle
    return [min(inverse(high), cap) for inverse in inverses]


def _inverse(curve: Curve):
    """(share(level), the largest share of the unit whose predicted loss is at most `level`;
    the level it reaches at 1)."""
    amounts = [0.0, *curve.amounts, 1.0]
    points = [0.0, *curve.losses]
    slope = (points[-1] - points[-2]) / (amounts[-2] - amounts[-3])
    points.append(points[-1] + max(slope, 0.0) * (1.0 - amounts[-2]))
    losses, running = [], 0.0
    for amount, loss in zip(amounts, points):
        running = max(running, loss)
        losses.append(running + 1e-6 * amount)

    def share(level: float) -> float:
        if level <= losses[0]:
            return 0.0
        for i in range(1, len(losses)):
            if level <= losses[i]:
                span = losses[i] - losses[i - 1]
                return amounts[i - 1] + (amounts[i] - amounts[i - 1]) * (
                    (level - losses[i - 1]) / span)
        return 1.0
    return share, losses[-1]


def scaled(shares: Sequence[float], factor: float, cap: float) -> list[float]:
    """`shares` times `factor` (projection onto a budget), none past `cap`."""
    return [min(share * factor, cap) for share in shares]


def per_round(share: float, rounds: int) -> float:
    """What each of `rounds` iterations prunes of what is left, so that `share` of the unit is
    pruned after the last: 1 - (1 - share)^(1/rounds)."""
    return 1 - (1 - share) ** (1 / rounds)


def overall_share(amount: float, rounds: int) -> float:
    """The share an iterative schedule prunes by its end: 1 - (1 - amount)^rounds."""
    return 1 - (1 - amount) ** rounds
