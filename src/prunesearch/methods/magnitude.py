"""Magnitude pruning: the weights of smallest absolute value matter least (Han et al., 2015)."""

from torch.nn.utils import prune

from prunesearch.methods.base import PruningMethod


class L1UnstructuredMethod(PruningMethod):
    """Per layer, zero the `amount` fraction of remaining weights with the smallest |w|."""

    name = "l1_unstructured"

    def apply(self, model, targets, amount):
        for module, tensor_name in targets:
            prune.l1_unstructured(module, tensor_name, amount=amount)
