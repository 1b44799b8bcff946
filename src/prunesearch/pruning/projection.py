"""Landing on a size budget (the study's project_to_budget): a trial's shares are scaled by one
factor, found by bisection on the real costs of the masked model its schedule would leave, so
that its last model keeps max_macs and max_params with as little pruned as that allows.

What a per-layer method removes from each unit depends only on how much the unit has left,
not on which weights or channels it ranks lowest. So a structured schedule is played on a copy
of the dense model without training, a norm ranking standing in for the method's own (Taylor
importance, random), and an unstructured one is counted (`Counted`): either way the figures
land exactly where the trial's will. A global ranking decides each layer's amount from the
weights, which retraining changes: its schedule is played with its own ranking on the dense
weights, and lands as close as they predict.
"""

from collections.abc import Callable, Sequence

from torch import nn

from prunesearch.pruning import costs, methods
from prunesearch.pruning.methods.base import Amounts, Context
from prunesearch.pruning.rehearsal import Rehearsal
from prunesearch.pruning.methods.options import NormOptions
from prunesearch.pruning.trial import SizeBudget

STEPS = 14  # bisection steps: the factor to 1/16384 of its range


def land(keeps: Callable[[float], bool], top: float) -> float:
    """The smallest factor in (0, `top`] that `keeps` the budgets (`keeps` is monotone: more
    pruned keeps more); `top` itself when even it does not."""
    if not keeps(top):
        return top
    low, high = 0.0, top
    for _ in range(STEPS):
        middle = (low + high) / 2
        if keeps(middle):
            high = middle
        else:
            low = middle
    return high


def stand_in(method_name: str, options) -> tuple[methods.Method, object]:
    """The method (and options) a projection plays: a norm ranking for a per-layer structured
    method, the method itself for a global one."""
    method = methods.get(method_name)
    if method.ranks_globally:
        return method, options
    return methods.get("ln_structured"), NormOptions(round_to=options.round_to)


def keeps_budgets(figures: dict, budgets: Sequence[SizeBudget], dense: costs.Costs) -> bool:
    """Whether `figures` (macs and params_remaining) keep every budget."""
    return all(figures[budget.column] <= budget.bound(getattr(dense, budget.column))
               for budget in budgets)


def measured(model: nn.Module, example_input) -> dict:
    """A masked model's figures that size budgets limit."""
    return {"macs": costs.macs(model, example_input),
            "params_remaining": costs.params_remaining(model)}


class Counted:
    """A per-layer unstructured schedule's figures by arithmetic, not by pruning a copy: each
    round takes round(amount x what is left) of a layer's weights, as torch's l1_unstructured
    does, whichever weights they are. Pruning a copy of VGG-16 (15 M weights) for each try of
    a bisection took 30 s, most of it sorting weights."""

    def __init__(self, model: nn.Module, targets, example_input, dense: costs.Costs):
        found = costs.positions(model, example_input)
        self.sizes = [(module, module.weight.numel(), found[module]) for module, _ in targets]
        self.macs, self.params = dense.macs, dense.params_remaining  # measured at iteration 0

    def figures(self, rounds: Sequence[Amounts]) -> dict:
        macs, params = self.macs, self.params
        for module, size, where in self.sizes:
            left = size
            for amounts in rounds:
                left -= round(amounts.of(module) * left)
            macs -= (size - left) * where
            params -= size - left
        return {"macs": macs, "params_remaining": params}


def played(rehearsal: Rehearsal, method_name: str, options,
           rounds: Sequence[Callable[[dict], Amounts]]) -> nn.Module:
    """The rehearsal's copy with each of `rounds` (the Amounts of one round, given the copy's
    module for each of the model's) applied in turn by the stand-in method; call it inside
    `rehearsal.attempt()`."""
    method, method_options = stand_in(method_name, options)
    context = Context(options=method_options, couplings=rehearsal.found)
    for amounts_of in rounds:
        method.apply(rehearsal.model, rehearsal.targets, amounts_of(rehearsal.twin), context)
    return rehearsal.model
