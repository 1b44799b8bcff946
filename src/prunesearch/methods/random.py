"""Random pruning: the controls every ranking has to beat (torch's global RNG, which the
pruning loop seeds)."""

from torch.nn.utils import prune

from prunesearch.methods import channels
from prunesearch.methods.base import PruningMethod
from prunesearch.methods.magnitude import UnstructuredMethod


class RandomUnstructuredMethod(UnstructuredMethod):
    """Per layer, zero an `amount` fraction of the remaining weights chosen at random."""

    name = "random_unstructured"

    def apply(self, model, targets, amount, context):
        for module, tensor_name in targets:
            prune.random_unstructured(module, tensor_name, amount=amount)


class RandomStructuredMethod(PruningMethod):
    """Per layer, remove an `amount` fraction of the remaining output channels at random."""

    name = "random_structured"
    structured = True

    def apply(self, model, targets, amount, context):
        for module, _ in targets:
            count = channels.capped_count(len(channels.live_channels(module)), amount)
            if count > 0:
                prune.random_structured(module, "weight", amount=count, dim=0)
            channels.mask_dependents(module, context.couplings)
