"""Random pruning: the control every ranking has to beat."""

from torch.nn.utils import prune

from prunesearch.methods.base import PruningMethod


class RandomUnstructuredMethod(PruningMethod):
    """Per layer, zero an `amount` fraction of the remaining weights chosen uniformly at random
    (torch's global RNG, which the pruning loop seeds)."""

    name = "random_unstructured"

    def apply(self, model, targets, amount):
        for module, tensor_name in targets:
            prune.random_unstructured(module, tensor_name, amount=amount)
