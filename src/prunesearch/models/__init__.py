"""Model registry: a new model is one file here plus one line in REGISTRY.

Every model is built as `builder(width=..., num_classes=...)` and names its output layer
`classifier`, so that pruning can leave it out.
"""

from torch import nn

from prunesearch.models.cifar_cnn import CifarCNN

REGISTRY = {
    "cifar_cnn": CifarCNN,
}


def get(name: str):
    """The model class called `name`; a KeyError lists the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; one of {sorted(REGISTRY)}") from None


def build(name: str, *, width: int, num_classes: int = 10) -> nn.Module:
    return get(name)(width=width, num_classes=num_classes)
