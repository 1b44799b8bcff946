"""Model registry: a new model is one file here plus one line in REGISTRY.

Every registry model is built as `builder(width=..., num_classes=...)`, `width` being the
channel count of its first stage (each has its own default), and names its output layer
`classifier`, so that pruning can leave it out. Other names are torchvision builders or the
user's own (see custom).
"""

import inspect

from torch import nn

from prunesearch.training.models import custom
from prunesearch.training.models.cifar_cnn import CifarCNN
from prunesearch.training.models.resnet import resnet20, resnet56
from prunesearch.training.models.vgg import vgg16_bn

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


def build(name: str, *, width: int | None = None, num_classes: int = 10,
          cifar_stem: bool = True, options: dict | None = None) -> nn.Module:
    """Model `name`: from the registry (`width` None: as published), or through
    `custom.build` with `width` (if given) and `options` as keyword arguments."""
    if custom.is_custom(name):
        given = {"width": width} if width is not None else {}
        return custom.build(name, num_classes=num_classes, cifar_stem=cifar_stem,
                            options={**given, **(options or {})})
    return get(name)(width=width if width is not None else default_width(name),
                     num_classes=num_classes)


def from_spec(model: dict) -> nn.Module:
    """The model a study's `[model]` (a ModelSpec as a dict, as studies store it) describes."""
    return build(model["name"], width=model.get("width"),
                 cifar_stem=model.get("cifar_stem", True), options=model.get("options"))
