"""Magnitude pruning: the weights of smallest absolute value matter least (Han et al., 2015)."""

from torch.nn.utils import prune

from prunesearch.methods.base import PruningMethod


class L1UnstructuredMethod(PruningMethod):
    """Per layer, zero the `amount` fraction of remaining weights with the smallest |w|: every
    layer ends at the same sparsity."""

    name = "l1_unstructured"
    options = ("prune_classifier",)

    def apply(self, model, targets, amount, context):
        for module, tensor_name in targets:
            prune.l1_unstructured(module, tensor_name, amount=amount)


class GlobalL1Method(PruningMethod):
    """One |w| threshold across all targets together: zero the `amount` fraction of the
    remaining weights with the smallest |w| wherever they are, so layers whose weights are
    small (typically the wide late convolutions) end sparser than the others."""

    name = "global_l1"
    options = ("prune_classifier",)

    def apply(self, model, targets, amount, context):
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
