"""Preflight: what a study needs checked against its network, before anything is written.

Reading a study file (studyfile) is pure: no torch, no network. This is the one step that
builds the network, once, and traces it once: a custom model that cannot be built or has no
output layer, a structured method on a network it cannot prune, a budget the dense model
already keeps or no schedule can reach, and a latency device that is not installed are
refused here, in one line. `validate`, `optimize` and `sensitivity` run it and hand its
result on; commands that only read results never do."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from prunesearch.config import coverage
from prunesearch.config.studyfile import (CIFAR_SIZE, StudySpec, allocations, module_file,
                                         study_budgets)
from prunesearch.errors import DataError, StudyFileError
from prunesearch.pruning import onnx_runtime
from prunesearch.pruning.graph import tracing
from prunesearch.pruning.schedule import structured_methods
from prunesearch.training import models


@dataclass(frozen=True)
class Preflight:
    """A study checked against its network, and what that found."""

    spec: StudySpec  # as read, a custom model's output layer resolved
    layers: int  # conv and linear layers a method may prune, the output layer aside
    unpruned: dict[str, str]  # layer -> why no structured method can prune it ({}: none)
    dense_macs: int  # per image
    dense_params: int
    num_classes: int  # the data's
    image_size: int  # what every image is fitted to: the network's input is 3 x this x this
    stages: int = 0  # allocation stages: how many (each a factor to sample); 0 without


def run(spec: StudySpec) -> Preflight:
    """Build and trace the study's network once; raise StudyFileError for what cannot work."""
    if spec.latency_device == "onnxruntime" and not onnx_runtime.available():
        raise StudyFileError.bad_value(spec.path, "latency_device", "onnxruntime",
                                       "needs ONNX Runtime: pip install 'prunesearch[onnx]'")
    num_classes = _class_count(spec)
    image_size = spec.data.image_size or CIFAR_SIZE
    model, model_spec = _built(spec, num_classes, image_size)
    spec = dataclasses.replace(spec, model=model_spec)
    _check_start(spec, model)
    model.eval()
    dense_macs, dense_params = coverage.dense_costs(model, image_size)
    _check_budgets(spec, model, dense_macs, dense_params)
    layers, unpruned = _coverage(spec, model, image_size)
    return Preflight(spec=spec, layers=layers, unpruned=unpruned, dense_macs=dense_macs,
                     dense_params=dense_params, num_classes=num_classes, image_size=image_size,
                     stages=_stage_count(spec, model, image_size))


def _stage_count(spec: StudySpec, model, image_size: int) -> int:
    """How many stages allocation `stages` finds in the network (0: the study never
    allocates by stages); a prefix of `stages` that names no layer is refused."""
    from prunesearch.pruning import allocation

    if "stages" not in allocations(spec):
        return 0
    found = allocation.stages(model, coverage.example(image_size), spec.stages)
    if spec.stages:
        names = [name for name, _ in model.named_modules()]
        unmatched = allocation.unmatched_prefixes(names, spec.stages)
        if unmatched:
            raise StudyFileError.bad_value(
                spec.path, "stages", [list(stage) for stage in spec.stages],
                f"{unmatched[0]!r} names no module of {spec.model.name}; prefixes are module "
                "names such as stages.0 or layer1 (prunesearch validate lists the layers)")
        return len(spec.stages)
    return len(set(found.values()))


def _class_count(spec: StudySpec) -> int:
    """The data's classes, found without reading its images: CIFAR's, an image folder's class
    folders (its layout checked: splits, the same classes in each, images in each), or what
    the user's data set callable names."""
    from prunesearch.training.sources import folder, user

    source = spec.data.source
    if source in ("cifar10", "cifar100"):
        return 10 if source == "cifar10" else 100
    try:
        if source == "imagefolder":
            return len(folder.listings(Path(spec.data.path))[0])
        return len(user.classes(source))
    except DataError as error:  # its message names the key: data.path or data.source
        raise StudyFileError(spec.path, str(error)) from None


def _check_start(spec: StudySpec, model) -> None:
    """The weights the dense model starts from fit it: the checkpoint's keys and shapes (or
    torchvision's weights exist); refused naming the first mismatch."""
    from prunesearch.training.models import checkpoints, custom

    classifier = spec.model.classifier or "classifier"
    try:
        if spec.dense.checkpoint is not None:
            checkpoints.put(model, checkpoints.read(Path(spec.dense.checkpoint)),
                            classifier=classifier,
                            reset_classifier=spec.dense.reset_classifier)
        if spec.model.weights is not None:
            checkpoints.check_weights(spec.model.name, spec.model.weights)
    except custom.ModelError as error:
        key = "dense.checkpoint" if spec.dense.checkpoint is not None else "model.weights"
        raise StudyFileError.bad_value(spec.path, key, spec.dense.checkpoint or
                                       spec.model.weights, str(error)) from None


def _built(spec: StudySpec, num_classes: int, image_size: int):
    """(The network, [model] with its output layer resolved); a custom model that cannot be
    built, or whose outputs are not the classes, is refused against model.name, and an image
    size the network cannot take against data.image_size."""
    model_spec = spec.model
    if not models.is_custom(model_spec.name):
        model = models.from_spec(dataclasses.asdict(model_spec), num_classes=num_classes)
        try:
            with torch.no_grad():
                model.eval()(coverage.example(image_size))
        except RuntimeError as error:
            raise StudyFileError.bad_value(
                spec.path, "data.image_size", image_size,
                f"large enough for {model_spec.name}'s downsampling ({str(error).splitlines()[0]})"
            ) from None
        return model, model_spec
    from prunesearch.training.models import custom

    try:
        model = models.from_spec(dataclasses.asdict(model_spec), num_classes=num_classes)
        custom.check_output(model, num_classes=num_classes, image_size=image_size)
    except custom.ModelError as error:
        name = model_spec.name
        looked = (f"; looked for {module_file(name)} next to the study file and in the "
                  "working directory, then among installed packages"
                  if str(error).startswith("cannot import")
                  and not name.rpartition(":")[0].endswith(".py") else "")
        raise StudyFileError.bad_value(spec.path, "model.name", name,
                                       f"{error}{looked}") from None
    try:
        classifier = custom.classifier_name(model, model_spec.classifier, num_classes)
    except custom.ModelError as error:
        raise StudyFileError.bad_value(spec.path, "model.classifier", model_spec.classifier,
                                       str(error)) from None
    return model, dataclasses.replace(model_spec, classifier=classifier)


def _coverage(spec: StudySpec, model, image_size: int) -> tuple[int, dict[str, str]]:
    """A structured method on a network it cannot prune at all is refused, in one line."""
    classifier = spec.model.classifier or "classifier"
    structured = structured_methods(spec.space)
    if not structured:
        return coverage.layer_count(model, classifier), {}
    try:
        layers, unprunable = coverage.unprunable_layers(model, classifier, image_size)
    except tracing.Untraceable as error:
        raise StudyFileError(spec.path, f"model.name = {spec.model.name!r} cannot be pruned "
                                        f"by space.method {', '.join(structured)}: {error}; "
                                        "use an unstructured method") from None
    if len(unprunable) == layers:
        example = next(iter(unprunable.items()), ("", ""))
        raise StudyFileError(spec.path, f"model.name = {spec.model.name!r} has no layer that "
                                        f"space.method {', '.join(structured)} can prune (e.g. "
                                        f"{example[0]}: {example[1]}); use an unstructured "
                                        "method")
    return layers, unprunable


def _check_budgets(spec: StudySpec, model, dense_macs: int, dense_params: int) -> None:
    """An absolute size budget the dense model already keeps is refused (it would constrain
    nothing: a unit slip, 20e9 for 20e6?), and a parameter budget below what the space's
    schedules can reach."""
    found = {budget.key: budget for budget in study_budgets(spec)
             if budget.key in ("max_macs", "max_params")}
    dense = {"max_macs": dense_macs, "max_params": dense_params}
    for budget in found.values():
        if not budget.relative and budget.limit >= dense[budget.key]:
            raise StudyFileError.bad_value(
                spec.path, budget.key, getattr(spec, budget.key),
                f"the dense {spec.model.name} has {dense[budget.key]:,} already, so this "
                f"constrains nothing; give a number below it or a percentage such as \"50%\"")
    params = found.get("max_params")
    if params is None:
        return
    floor = coverage.weights_left_at_least(model, spec.space)
    if floor is not None and params.limit * (dense_params if params.relative else 1) < floor:
        raise StudyFileError.bad_value(
            spec.path, "max_params", spec.max_params,
            f"no schedule of this space leaves fewer than {floor:,} parameters (largest "
            "space.amount and space.iterations, with biases and BatchNorm kept); raise it, or "
            "prune more")
