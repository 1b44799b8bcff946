"""Norm-ranked structured pruning: filters (conv output channels) and neurons (linear outputs)
of small norm matter least (Li et al., ICLR 2017). Norms are taken over the filter's live
weights, so inputs already removed upstream do not count."""

import torch

from prunesearch.pruning.graph import channels
from prunesearch.pruning.methods.base import PruningMethod


def channel_norms(module, norm: int) -> torch.Tensor:
    return module.weight.detach().flatten(1).norm(p=norm, dim=1)


class LnStructuredMethod(PruningMethod):
    """Per layer (per channel set: layers added together), remove the `amount` fraction of
    remaining output channels of smallest L1 or L2 norm (`norm`, summed over the set);
    every layer ends with the same fraction of its channels."""

    def apply(self, model, targets, amount, context):
        for channel_set in channels.channel_sets(targets, context.couplings):
            count = channels.capped_count(len(channels.live_channels(channel_set[0])),
                                          amount.of(channel_set[0]), context.options.round_to)
            scores = sum(channel_norms(module, context.options.norm) for module in channel_set)
            channels.prune_channel_set(channel_set, scores, count, context.couplings)


class GlobalStructuredMethod(PruningMethod):
    """Remove the `amount` fraction of all remaining output channels, ranked across layers.

    Raw norms are not comparable between layers (a 3x3x128 filter has more weights than a
    3x3x3 one, and BatchNorm makes each layer's scale arbitrary), so each channel's norm is
    divided by the mean norm of its layer's live channels: a score below 1 means weaker than
    its layer's average. Layers added together (a residual sum) are scored as one, by the sum
    of their norms. The lowest scores go first, but a layer's last channel is never taken;
    with `round_to`, each layer's count is then raised to leave a multiple of it.
    """

    def apply(self, model, targets, amount, context):
        channel_sets = channels.channel_sets(targets, context.couplings)
        candidates, scores, live_left = [], [], []
        for position, channel_set in enumerate(channel_sets):
            live = channels.live_channels(channel_set[0])
            norms = sum(channel_norms(module, context.options.norm) for module in channel_set)
            scores.append(norms / norms[live].mean().clamp_min(1e-12))
            # One transfer per channel set: on a GPU, a float() per channel would sync each time.
            candidates += [(score, position, channel) for score, channel in
                           zip(scores[position][live].tolist(), live.tolist())]
            live_left.append(len(live))
        to_remove = round(amount.overall * len(candidates))
        chosen = [0] * len(channel_sets)
        for _, position, _ in sorted(candidates):
            if to_remove == 0:
                break
            if live_left[position] - chosen[position] > 1:
                chosen[position] += 1
                to_remove -= 1
        for position, channel_set in enumerate(channel_sets):
            count = channels.rounded(live_left[position], chosen[position],
                                     context.options.round_to)
            channels.prune_channel_set(channel_set, scores[position], count, context.couplings)
