"""Models that are not in the registry: a torchvision classification builder
(`torchvision:resnet18`), or the user's own, `package.module:callable` or `file.py:callable`.

Each way this can go wrong raises ModelError with what went wrong; the study file reports it
against `model.name` (or `model.classifier`).
"""

import importlib
import importlib.util
from pathlib import Path

import torch
from torch import nn

TORCHVISION = "torchvision:"


class ModelError(ValueError):
    """A model that cannot be built or used; the message says why."""


def is_custom(name: str) -> bool:
    return ":" in name


def builder(name: str):
    """The callable `name` points at: torchvision's builder, or the user's."""
    if name.startswith(TORCHVISION):
        import torchvision

        try:
            return torchvision.models.get_model_builder(name.removeprefix(TORCHVISION))
        except ValueError:
            known = ", ".join(torchvision.models.list_models(torchvision.models)[:8])
            raise ModelError(f"torchvision has no classification model "
                             f"{name.removeprefix(TORCHVISION)!r} (e.g. {known}, ...)") from None
    where, _, attribute = name.rpartition(":")
    try:
        if where.endswith(".py"):
            spec = importlib.util.spec_from_file_location(f"prunesearch_user_{Path(where).stem}",
                                                          where)
            if spec is None or not Path(where).is_file():
                raise ModelError(f"no such file {where}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ModelError:
        raise
    except Exception as error:  # an ImportError, or whatever the user's module raises
        raise ModelError(f"cannot import {where} ({type(error).__name__}: {error})") from None
    found = getattr(module, attribute, None)
    if found is None:
        raise ModelError(f"{where} has no attribute {attribute!r}")
    if not callable(found):
        raise ModelError(f"{where}:{attribute} is not callable")
    return found


def build(name: str, *, num_classes: int, cifar_stem: bool, options: dict) -> nn.Module:
    """Call the builder with `options` as keyword arguments (torchvision: untrained, with
    `num_classes` outputs; with `cifar_stem`, a 3x3 stride-1 first convolution and no max-pooling,
    the usual change for 32x32 images, where the model has `conv1` and `maxpool`)."""
    make = builder(name)
    if name.startswith(TORCHVISION):
        options = {"weights": None, "num_classes": num_classes, **options}
    try:
        model = make(**options)
    except Exception as error:
        raise ModelError(f"calling {name} failed ({type(error).__name__}: {error})") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"{name} returned a {type(model).__name__}, not a torch.nn.Module")
    if name.startswith(TORCHVISION) and cifar_stem and hasattr(model, "conv1") \
            and hasattr(model, "maxpool"):
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, 3, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def check_output(model: nn.Module, num_classes: int) -> None:
    """The model maps a batch of CIFAR images to one score per class."""
    model.eval()
    try:
        with torch.no_grad():
            output = model(torch.zeros(2, 3, 32, 32))
    except Exception as error:
        raise ModelError(f"it fails on a batch of 2 CIFAR images, 2 x 3 x 32 x 32 "
                         f"({type(error).__name__}: {error})") from None
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != (2, num_classes):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ModelError(f"on a batch of 2 CIFAR images it returns {shape}, not 2 x "
                         f"{num_classes} class scores")


def classifier_name(model: nn.Module, given: str | None) -> str:
    """The output layer's name: `given`, else a module called `classifier`, else the last
    nn.Linear."""
    modules = dict(model.named_modules())
    if given is not None:
        if given not in modules or not isinstance(modules[given], (nn.Linear, nn.Conv2d)):
            raise ModelError(f"the model has no linear or conv layer called {given!r}")
        return given
    if isinstance(modules.get("classifier"), (nn.Linear, nn.Conv2d)):
        return "classifier"
    linear = [name for name, module in modules.items() if isinstance(module, nn.Linear)]
    if not linear:
        raise ModelError("no output layer found (no nn.Linear); name it with model.classifier")
    return linear[-1]
