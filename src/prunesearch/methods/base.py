"""The contract every pruning method keeps."""

from collections.abc import Iterator

from torch import nn
from torch.nn.utils import prune

Target = tuple[nn.Module, str]
"""A prunable tensor: the module that owns it and its name, e.g. (conv, "weight")."""


class PruningMethod:
    """One way of choosing what to prune, built on `torch.nn.utils.prune`.

    `apply` is called by the pruning loop once per iteration, on the trained (or retrained)
    model, before the re-init option and retraining. It must only add masks through
    `torch.nn.utils.prune` (so masks compose and only shrink), pruning `amount` of the entries
    of `targets` that are still unpruned. It must not change `weight_orig` values, and never
    call `prune.remove`: masks must hold through retraining.
    """

    name: str

    def apply(self, model: nn.Module, targets: list[Target], amount: float) -> None:
        raise NotImplementedError


def pruning_hooks(model: nn.Module) -> Iterator[tuple[nn.Module, prune.BasePruningMethod]]:
    """Every (module, mask hook) that torch.nn.utils.prune has attached in `model`."""
    for module in model.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                yield module, hook
