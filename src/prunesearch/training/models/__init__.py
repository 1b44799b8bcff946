"""Model registry: a new model is one file here plus one line in REGISTRY.

Every registry model is built as `builder(width=..., num_classes=...)`, `width` being the
channel count of its first stage (each has its own default, written here too, so that a study
file is read without importing torch), and names its output layer `classifier`, so that
pruning can leave it out. Other names are torchvision builders or the user's own (see custom),
told apart by the colon in their names.
"""

import importlib
from dataclasses import dataclass

TORCHVISION = "torchvision:"


@dataclass(frozen=True)
class Network:
    builder: str  # "module:callable" within prunesearch.training.models
    width: int  # the first stage's channels as published: the builder's default


REGISTRY = {
    "cifar_cnn": Network("cifar_cnn:CifarCNN", 32),
    "resnet20": Network("resnet:resnet20", 16),
    "resnet56": Network("resnet:resnet56", 16),
    "vgg16_bn": Network("vgg:vgg16_bn", 64),
}


def is_custom(name: str) -> bool:
    """Whether `name` is a torchvision builder or the user's own (module:callable)."""
    return ":" in name


def get(name: str):
    """The model builder called `name`; a KeyError lists the valid names."""
    try:
        module, _, builder = REGISTRY[name].builder.partition(":")
    except KeyError:
        raise KeyError(f"unknown model {name!r}; one of {sorted(REGISTRY)}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), builder)


def default_width(name: str) -> int:
    """The first stage's channels of model `name` as published (cifar_cnn: 32)."""
    return REGISTRY[name].width


def build(name: str, *, width: int | None = None, num_classes: int = 10,
          cifar_stem: bool = True, options: dict | None = None):
    """Model `name` (an nn.Module): from the registry (`width` None: as published), or
    through `custom.build` with `width` (if given) and `options` as keyword arguments."""
    if is_custom(name):
        from prunesearch.training.models import custom

        given = {"width": width} if width is not None else {}
        return custom.build(name, num_classes=num_classes, cifar_stem=cifar_stem,
                            options={**given, **(options or {})})
    return get(name)(width=width if width is not None else default_width(name),
                     num_classes=num_classes)


def from_spec(model: dict, num_classes: int | None = None):
    """The model (an nn.Module, untrained) a study's `[model]` (a ModelSpec as a dict, as
    studies store it, with the data's `num_classes`, 10 when not recorded) describes."""
    return build(model["name"], width=model.get("width"),
                 num_classes=num_classes or model.get("num_classes", 10),
                 cifar_stem=model.get("cifar_stem", True), options=model.get("options"))
