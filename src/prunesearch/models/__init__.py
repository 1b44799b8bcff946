"""Model registry: a new model is one file here plus one line in REGISTRY.

Every model is built as `builder(width=..., num_classes=...)`, `width` being the channel count
of its first stage (each has its own default), and names its output layer `classifier`, so
that pruning can leave it out.
"""

import inspect

from torch import nn

from prunesearch.models.cifar_cnn import CifarCNN
from prunesearch.models.resnet import resnet20, resnet56
from prunesearch.models.vgg import vgg16_bn

REGISTRY = {
    "cifar_cnn": CifarCNN,
    "resnet20": resnet20,
    "resnet56": resnet56,
    "vgg16_bn": vgg16_bn,
}


def get(name: str):
    """The model builder called `name`; a KeyError lists the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; one of {sorted(REGISTRY)}") from None


def default_width(name: str) -> int:
    """The first stage's channels of model `name` as published (cifar_cnn: 32)."""
    return inspect.signature(get(name)).parameters["width"].default


def build(name: str, *, width: int, num_classes: int = 10) -> nn.Module:
    return get(name)(width=width, num_classes=num_classes)
