"""Norm-ranked structured pruning: filters (conv output channels) and neurons (linear outputs)
of small norm matter least (Li et al., ICLR 2017). Norms are taken over the filter's live
weights, so inputs already removed upstream do not count."""

from dataclasses import dataclass

import torch

from prunesearch.methods import channels
from prunesearch.methods.base import PruningMethod
from prunesearch.settings import setting


@dataclass(frozen=True)
class NormOptions:
    norm: int = setting(default=1, help="rank channels by their L1 or L2 norm",
                        allowed="1 or 2", check=lambda v: v in (1, 2))


def channel_norms(module, norm: int) -> torch.Tensor:
    return module.weight.detach().flatten(1).norm(p=norm, dim=1)


class LnStructuredMethod(PruningMethod):
    """Per layer, remove the `amount` fraction of remaining output channels of smallest L1 or
    L2 norm (`norm`); every layer ends with the same fraction of its channels."""

    name = "ln_structured"
    structured = True
    Options = NormOptions

    def apply(self, model, targets, amount, context):
        for module, _ in targets:
            count = channels.capped_count(len(channels.live_channels(module)), amount)
            channels.prune_lowest(module, channel_norms(module, context.options.norm), count)
            channels.mask_dependents(module, context.couplings)


class GlobalStructuredMethod(PruningMethod):
    """Remove the `amount` fraction of all remaining output channels, ranked across layers.

    Raw norms are not comparable between layers (a 3x3x128 filter has more weights than a
    3x3x3 one, and BatchNorm makes each layer's scale arbitrary), so each channel's norm is
    divided by the mean norm of its layer's live channels: a score below 1 means weaker than
    its layer's average. The lowest scores go first, but a layer's last channel is never taken.
    """

    name = "global_structured"
    structured = True
    Options = NormOptions

    def apply(self, model, targets, amount, context):
        candidates, scores = [], {}
        for position, (module, _) in enumerate(targets):
            live = channels.live_channels(module)
            norms = channel_norms(module, context.options.norm)
            scores[module] = norms / norms[live].mean().clamp_min(1e-12)
            # One transfer per layer: on a GPU, a float() per channel would sync each time.
            candidates += [(score, position, channel) for score, channel in
                           zip(scores[module][live].tolist(), live.tolist())]
        budget = round(amount * len(candidates))
        live_left = {module: len(channels.live_channels(module)) for module, _ in targets}
        chosen = dict.fromkeys(live_left, 0)
        for _, position, _ in sorted(candidates):
            if budget == 0:
                break
            module = targets[position][0]
            if live_left[module] - chosen[module] > 1:
                chosen[module] += 1
                budget -= 1
        for module, _ in targets:
            channels.prune_lowest(module, scores[module], chosen[module])
            channels.mask_dependents(module, context.couplings)
