"""What a pruned model costs. Sparsity is counted over the weights of every conv and linear
layer (the prunable weights, the classifier's included even when it is left unpruned);
biases and BatchNorm parameters are not counted."""

from torch import nn

PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


def prunable_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, PRUNABLE_TYPES)]


def weight_counts(model: nn.Module) -> tuple[int, int]:
    """(nonzero, total) entries of the conv and linear weights, masks applied."""
    nonzero = total = 0
    for _, module in prunable_modules(model):
        nonzero += int(module.weight.count_nonzero())
        total += module.weight.numel()
    return nonzero, total

