"""First-order Taylor importance (Molchanov et al., ICLR 2017): removing channel j sets its
activation a_j to zero, which changes the loss by about |sum over positions of a_j * dL/da_j|.
Averaged over a few training batches, that is how much the channel helps the loss."""

import torch
from torch import nn

from prunesearch.pruning.graph import channels
from prunesearch.pruning.methods.base import PruningMethod


def taylor_scores(model: nn.Module, modules: list[nn.Module], batches) -> dict:
    """Per module, the mean |a x grad| of each output channel over `batches`.

    The activation is taken where the channel is last affine (after its BatchNorm, before the
    nonlinearity), since that is what removing the channel zeroes. The model runs in eval mode
    so that BatchNorm statistics are left as they were; parameters get no gradient.
    """
    outputs: dict[nn.Module, torch.Tensor] = {}

    def capture(module):
        def hook(_, __, output):
            outputs[module] = output
            return output.clone()  # an in-place ReLU downstream must not overwrite it
        return hook

    handles = [module.register_forward_hook(capture(module)) for module in modules]
    scores = {module: 0.0 for module in modules}
    seen = 0
    was_training = model.training
    model.eval()
    try:
        for images, labels in batches:
            loss = nn.functional.cross_entropy(model(images), labels, reduction="sum")
            grads = torch.autograd.grad(loss, [outputs[m] for m in modules])
            for module, grad in zip(modules, grads):
                product = outputs[module].detach() * grad
                # Per image and channel, summed over positions: a linear layer's channels are
                # its last dimension (ConvNeXt applies them per pixel), a conv's the second.
                if product.dim() == 2:
                    per_image = product
                elif isinstance(module, nn.Linear):
                    per_image = product.reshape(len(product), -1, product.shape[-1]).sum(1)
                else:
                    per_image = product.flatten(2).sum(2)
                scores[module] = scores[module] + per_image.abs().sum(0)
            seen += len(labels)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {module: score / max(seen, 1) for module, score in scores.items()}


class TaylorStructuredMethod(PruningMethod):
    """Per layer, remove the `amount` fraction of remaining output channels whose first-order
    Taylor importance, over a few training batches, is smallest. Layers added together (a
    residual sum) are ranked as one, by the sum of their channels' importances."""

    def apply(self, model, targets, amount, context):
        activations = {module: channels.activation_module(module, context.couplings)
                       for module, _ in targets}
        batches = context.batches(context.options.ranking_batches)
        scores = taylor_scores(model, list(activations.values()), batches)
        for channel_set in channels.channel_sets(targets, context.couplings):
            count = channels.capped_count(len(channels.live_channels(channel_set[0])),
                                          amount.of(channel_set[0]), context.options.round_to)
            set_scores = sum(scores[activations[module]] for module in channel_set)
            channels.prune_channel_set(channel_set, set_scores, count, context.couplings)
