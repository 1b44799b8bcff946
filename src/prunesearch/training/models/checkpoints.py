"""Weights a dense model starts from, other than a fresh initialisation: the user's checkpoint
(a state dict, loaded with weights_only, so it runs no code) or torchvision's pretrained
weights; put into a freshly built model, the output layer left new when it is for other
classes (reset_classifier)."""

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from prunesearch.training.models import TORCHVISION
from prunesearch.training.models.custom import ModelError


def read(path: Path) -> dict[str, torch.Tensor]:
    """The state dict saved at `path`; refused if loading it would run code, or if it is not a
    mapping of names to tensors."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        named = [line.strip().split(" was not")[0].removeprefix("WeightsUnpickler error: ")
                 for line in str(error).splitlines() if "Unsupported" in line]
        raise ModelError(f"{path} needs code to load (a whole pickled model?), which is refused"
                         f"{f' ({named[0]})' if named else ''}; save "
                         "torch.save(model.state_dict(), path)") from None
    except Exception as error:
        raise ModelError(f"{path} is not a file torch.load reads ({type(error).__name__}: "
                         f"{error})") from None
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor)
            for key, value in state.items()):
        raise ModelError(f"{path} holds a {type(state).__name__}, not a state dict (names to "
                         "tensors); save torch.save(model.state_dict(), path)")
    return dict(state)


def pretrained(name: str, weights: str) -> dict[str, torch.Tensor]:
    """torchvision's `weights` for model `name` (torchvision:NAME), from torch's cache or
    downloaded there; offline, one line naming the file and where to put it."""
    weight = _weights(name, weights)
    try:
        return weight.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # URLError, socket timeouts, HTTP errors: all mean "no file"
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        raise ModelError(f"torchvision's {weight} could not be read or downloaded "
                         f"({str(error).splitlines()[0] if str(error) else type(error).__name__}"
                         f"); put {weight.url.rsplit('/', 1)[-1]} (from {weight.url}) in "
                         f"{folder}") from None


def _weights(name: str, weights: str):
    import torchvision

    model = name.removeprefix(TORCHVISION)
    try:
        enum = torchvision.models.get_model_weights(model)
        return enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    except (KeyError, ValueError):
        names = "DEFAULT" + "".join(f", {w.name}" for w in getattr(
            torchvision.models.get_model_weights(model), "__members__", {}).values()) \
            if model in torchvision.models.list_models() else "none"
        raise ModelError(f"torchvision has no weights {weights!r} for {model} ({names})"
                         ) from None


def check_weights(name: str, weights: str) -> None:
    """`weights` names torchvision weights of model `name`; nothing is downloaded."""
    _weights(name, weights)


def put(model: nn.Module, state: Mapping[str, torch.Tensor], *, classifier: str,
        reset_classifier: bool) -> None:
    """`state` loaded into `model`; with `reset_classifier`, the output layer's entries are
    left as built (new, for the data's classes). A key or shape that does not match is refused,
    naming the first."""
    own = model.state_dict()
    head = f"{classifier}."
    skipped = {key for key in set(own) | set(state) if key.startswith(head)} \
        if reset_classifier else set()
    for key in [*own, *(key for key in state if key not in own)]:
        if key in skipped:
            continue
        if key not in state:
            problem = f"the model's {key} is missing from it"
        elif key not in own:
            problem = f"it has {key}, which the model lacks"
        elif state[key].shape != own[key].shape:
            problem = (f"{key} is {tuple(state[key].shape)} in it but "
                       f"{tuple(own[key].shape)} in the model")
        else:
            continue
        hint = ("; it was trained for other classes: set dense.reset_classifier = true (with "
                "dense.epochs >= 1)" if key.startswith(head) and not reset_classifier else "")
        raise ModelError(f"it does not match the model: {problem}{hint}")
    model.load_state_dict({**own, **{k: v for k, v in state.items() if k not in skipped}})
