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
            prune.random_unstructured(module, tensor_name, amount=amount.of(module))


class RandomStructuredMethod(PruningMethod):
    """Per layer (per channel set: layers added together), remove an `amount` fraction of the
    remaining output channels at random."""

    def apply(self, model, targets, amount, context):
        for channel_set in channels.channel_sets(targets, context.couplings):
            weight = channel_set[0].weight
            count = channels.capped_count(len(channels.live_channels(channel_set[0])),
                                          amount.of(channel_set[0]), context.options.round_to)
            scores = torch.rand(weight.shape[0], device=weight.device)
            channels.prune_channel_set(channel_set, scores, count, context.couplings)
