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

from prunesearch.training.models import TORCHVISION

class ModelError(ValueError):
    """A model that cannot be built or used; the message says why."""


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
    `num_classes` outputs; with `cifar_stem`, see `use_cifar_stem`)."""
    make = builder(name)
    if name.startswith(TORCHVISION):
        options = {"weights": None, "num_classes": num_classes, **options}
    try:
        model = make(**options)
    except Exception as error:
        raise ModelError(f"calling {name} failed ({type(error).__name__}: {error})") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"{name} returned a {type(model).__name__}, not a torch.nn.Module")
    if name.startswith(TORCHVISION) and cifar_stem:
        use_cifar_stem(model)
    return model


def use_cifar_stem(model: nn.Module) -> None:
    """The usual change for 32x32 images, where a torchvision model has an ImageNet stem
    (`conv1`, a strided convolution, alone or first in a Sequential, then `maxpool`): a 3x3
    stride-1 first convolution and no max-pooling. Models built otherwise (MobileNet,
    DenseNet, ...) keep their stem: it only downsamples sooner."""
    if not (hasattr(model, "conv1") and hasattr(model, "maxpool")):
        return
    holder, key = (model.conv1, 0) if isinstance(model.conv1, nn.Sequential) else (model, "conv1")
    first = holder[key] if isinstance(holder, nn.Sequential) else model.conv1
    if not isinstance(first, nn.Conv2d):
        raise ModelError(f"cifar_stem = true expects conv1 to be a convolution (or to start with "
                         f"one), not {type(first).__name__}; set model.cifar_stem = false")
    stem = nn.Conv2d(first.in_channels, first.out_channels, 3, padding=1,
                     bias=first.bias is not None)
    if isinstance(holder, nn.Sequential):
        holder[key] = stem
    else:
        model.conv1 = stem
    model.maxpool = nn.Identity()


def check_output(model: nn.Module, num_classes: int, image_size: int = 32) -> None:
    """The model maps a batch of the study's images to one score per class, in evaluation mode
    and in training mode (where some return auxiliary heads' outputs too, which prunesearch's
    loss would not know what to do with)."""
    shape = f"2 x 3 x {image_size} x {image_size}"
    for training in (False, True):
        model.train(training)
        mode = "training" if training else "evaluation"
        try:
            with torch.no_grad():
                output = model(torch.zeros(2, 3, image_size, image_size))
        except Exception as error:
            raise ModelError(f"it fails on a batch of 2 images, {shape}, in {mode} mode "
                             f"({type(error).__name__}: {error})") from None
        if not isinstance(output, torch.Tensor):
            hint = ("; build it without its auxiliary heads (e.g. aux_logits = false under "
                    "[model])" if hasattr(output, "_fields") or isinstance(output, tuple) else "")
            raise ModelError(f"in {mode} mode it returns a {type(output).__name__}, not a "
                             f"tensor of class scores{hint}")
        if tuple(output.shape) != (2, num_classes):
            raise ModelError(f"on a batch of 2 images ({shape}) it returns "
                             f"{tuple(output.shape)}, not 2 x {num_classes} class scores")
    model.eval()


def classifier_name(model: nn.Module, given: str | None, num_classes: int = 10) -> str:
    """The output layer's name: `given`, else a module called `classifier`, else the last
    nn.Linear, else the last convolution with one output channel per class (SqueezeNet's)."""
    modules = dict(model.named_modules())
    if given is not None:
        if given not in modules or not isinstance(modules[given], (nn.Linear, nn.Conv2d)):
            raise ModelError(f"the model has no linear or conv layer called {given!r}")
        return given
    if isinstance(modules.get("classifier"), (nn.Linear, nn.Conv2d)):
        return "classifier"
    linear = [name for name, module in modules.items() if isinstance(module, nn.Linear)]
    if linear:
        return linear[-1]
    convs = [name for name, module in modules.items()
             if isinstance(module, nn.Conv2d) and module.out_channels == num_classes]
    if convs:
        return convs[-1]
    raise ModelError(f"no output layer found (no nn.Linear, no convolution with {num_classes} "
                     "output channels); name it with model.classifier")
