"""The contract every pruning method keeps, and the options methods declare."""

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import prune

from prunesearch.pruning.methods.options import NoOptions

Target = tuple[nn.Module, str]
"""A prunable tensor: the module that owns it and its name, e.g. (conv, "weight")."""

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Amounts:
    """How much a method prunes this time, as a fraction of what is still unpruned: `overall`,
    or per unit where an allocation shares the trial's amount unevenly among them
    (`per_module`, each unit's modules mapped to its amount; pruning.allocation). A global
    method ranks across layers and reads `overall` alone."""

    overall: float
    per_module: Mapping[nn.Module, float] = field(default_factory=dict)

    def of(self, module: nn.Module) -> float:
        return self.per_module.get(module, self.overall)


@dataclass(frozen=True)
class Context:
    """What a method may need beyond the model: its options (an instance of its `Options`),
    the channel couplings (structured methods) and training batches (loss-based rankings)."""

    options: object = NoOptions()
    couplings: dict = field(default_factory=dict)
    batches: Callable[[int], Batches] = lambda count: ()


class PruningMethod:
    """One way of choosing what to prune, built on `torch.nn.utils.prune`.

    `apply` is called by the pruning loop once per iteration, on the trained (or retrained)
    model, before the re-init option and retraining. It must only add masks through
    `torch.nn.utils.prune` (so masks compose and only shrink), pruning `amount.of(module)` of
    each target's units still unpruned (a method whose registry entry says `ranks_globally`:
    `amount.overall` of all of them): single weights, or whole output channels (filters,
    neurons) when its registry entry says `structured`. It must not change `weight_orig` values, and
    never call `prune.remove`: masks must hold through retraining.

    Its name, whether it is structured or ranks globally and its `Options` are declared in the registry
    (methods/__init__.py), readable without torch; `context.options` holds an instance of
    those options.
    """

    def apply(self, model: nn.Module, targets: list[Target], amount: Amounts,
              context: Context) -> None:
        raise NotImplementedError

    def prunes_classifier(self, options) -> bool:
        """Whether the classifier's weights are targets too (structured methods: never, its
        outputs are the classes)."""
        return False


def pruning_hooks(model: nn.Module) -> Iterator[tuple[nn.Module, prune.BasePruningMethod]]:
    """Every (module, mask hook) that torch.nn.utils.prune has attached in `model`."""
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                yield module, hook
