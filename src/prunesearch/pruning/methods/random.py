"""Random pruning: the controls every ranking has to beat (torch's global RNG, which the
pruning loop seeds)."""

import torch
from torch.nn.utils import prune

from prunesearch.pruning.graph import channels
from prunesearch.pruning.methods.base import PruningMethod
from prunesearch.pruning.methods.magnitude import UnstructuredMethod


class RandomUnstructuredMethod(UnstructuredMethod):
    """Per layer, zero an `amount` fraction of the remaining weights chosen at random."""

    def apply(self, model, targets, amount, context):
        for module, tensor_name in targets:
            prune.random_unstructured(module, tensor_name, amount=amount)


class RandomStructuredMethod(PruningMethod):
    """Per layer (per group of layers added together), remove an `amount` fraction of the
    remaining output channels at random."""

    def apply(self, model, targets, amount, context):
        for group in channels.groups(targets, context.couplings):
            weight = group[0].weight
            count = channels.capped_count(len(channels.live_channels(group[0])), amount,
                                          context.options.round_to)
            scores = torch.rand(weight.shape[0], device=weight.device)
            channels.prune_group(group, scores, count, context.couplings)
