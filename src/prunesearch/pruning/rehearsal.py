"""One copy of a dense model, pruned again and again: after each try its masks are removed
and its weights restored. Copying a model with its couplings for every try cost 0.17 s on a
ResNet-20 (most of a projection's bisection, and of a sensitivity scan); this copies once."""

import contextlib
import copy
from collections.abc import Iterator

from torch import nn
from torch.nn.utils import prune

from prunesearch.pruning.graph.channels import drop_kept_statistics
from prunesearch.pruning.methods.base import Target, pruning_hooks


class Rehearsal:
    """`model` (dense: no masks yet), its `targets` and couplings `found`, copied once: the
    copies are `self.model`, `self.targets`, `self.found`, and `self.twin` maps each module
    of the model to its copy."""

    def __init__(self, model: nn.Module, targets: list[Target], found):
        memo: dict = {}
        self.model, self.found, self.targets = copy.deepcopy((model, found, targets), memo)
        self.twin = {module: memo[id(module)] for module in model.modules()}
        self.dense = {key: value.clone() for key, value in self.model.state_dict().items()}

    @contextlib.contextmanager
    def attempt(self) -> Iterator["Rehearsal"]:
        """Prune the copy inside; it is dense again after."""
        try:
            yield self
        finally:
            for module, hook in list(pruning_hooks(self.model)):
                prune.remove(module, hook._tensor_name)
            drop_kept_statistics(self.model)
            self.model.load_state_dict(self.dense)
