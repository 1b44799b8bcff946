"""Magnitude pruning: the weights of smallest absolute value matter least (Han et al., 2015)."""

from torch.nn.utils import prune

from prunesearch.pruning.methods.base import PruningMethod
from prunesearch.pruning.methods.options import UnstructuredOptions


class UnstructuredMethod(PruningMethod):
    """Zeroes single weights; may take the classifier's too."""

    def prunes_classifier(self, options: UnstructuredOptions) -> bool:
        return options.prune_classifier


class L1UnstructuredMethod(UnstructuredMethod):
    """Per layer, zero the `amount` fraction of remaining weights with the smallest |w|: every
    layer ends at the same sparsity."""

    def apply(self, model, targets, amount, context):
        for module, tensor_name in targets:
            prune.l1_unstructured(module, tensor_name, amount=amount.of(module))


class GlobalL1Method(UnstructuredMethod):
    """One |w| threshold across all targets together: zero the `amount` fraction of the
    remaining weights with the smallest |w| wherever they are, so layers whose weights are
    small (typically the wide late convolutions) end sparser than the others."""

    def apply(self, model, targets, amount, context):
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured,
                                amount=amount.overall)
