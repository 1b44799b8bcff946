"""Magnitude pruning: the weights of smallest absolute value matter least (Han et al., 2015)."""

from dataclasses import dataclass

from torch.nn.utils import prune

from prunesearch.pruning.methods.base import PruningMethod
from prunesearch.foundation.fields import setting


@dataclass(frozen=True)
class UnstructuredOptions:
    prune_classifier: bool = setting(
        default=True, help="also prune the final linear layer's weights",
        allowed="true or false")


class UnstructuredMethod(PruningMethod):
    """Zeroes single weights; may take the classifier's too."""

    Options = UnstructuredOptions

    def prunes_classifier(self, options: UnstructuredOptions) -> bool:
        return options.prune_classifier


class L1UnstructuredMethod(UnstructuredMethod):
    """Per layer, zero the `amount` fraction of remaining weights with the smallest |w|: every
    layer ends at the same sparsity."""

    name = "l1_unstructured"

    def apply(self, model, targets, amount, context):
        for module, tensor_name in targets:
            prune.l1_unstructured(module, tensor_name, amount=amount)


class GlobalL1Method(UnstructuredMethod):
    """One |w| threshold across all targets together: zero the `amount` fraction of the
    remaining weights with the smallest |w| wherever they are, so layers whose weights are
    small (typically the wide late convolutions) end sparser than the others."""

    name = "global_l1"

    def apply(self, model, targets, amount, context):
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
