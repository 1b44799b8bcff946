"""One forward pass of a model watched by hooks: how the costs learn each layer's output
positions, and the piecewise tracer each part's input, without changing the model."""

import torch
from torch import nn


def watched_forward(model: nn.Module, images: torch.Tensor, handles: list) -> None:
    """Run `model` once on `images`, in eval mode and without autograd, then remove `handles`
    (the hooks watching it) and give the model back its mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
