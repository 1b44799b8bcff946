"""Study files: find one by name or path, parse its TOML and validate it into a StudySpec.

Every value is checked before anything is written anywhere; a bad one raises a
StudyFileError naming the file, the key, the value and what is allowed.
"""

import dataclasses
import functools
import hashlib
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from prunesearch.pruning import methods
from prunesearch.pruning.figures import BATCH_SIZES, NOT_TIMED
from prunesearch.training import models
from prunesearch.errors import MISSING, StudyFileError
from prunesearch.config import budgets
from prunesearch.config.objectives import DEFAULT_OBJECTIVES, OBJECTIVES
from prunesearch.pruning.schedule import (DEFAULT_STAGE_FACTORS, FAMILY_KEYS, REQUIRED_KEYS,
                                          SPACE_FIELDS, SPACE_TYPES, STAGE_FACTOR, Choice, Fixed,
                                          ParamSpec, Range, possible_values,
                                          structured_methods)
from prunesearch.foundation.fields import (coerce, field_types, format_value, is_required, setting,
                                  valid)

SAMPLERS = ("tpe", "nsga2", "gp", "random", "grid")
EARLY_STOPPING_RULES = ("none", "mo-asha")  # see search.early_stopping
RUNG_POINTS = ("planned", "current")
LATENCY_DEVICES = ("auto", "cpu", "cuda", "onnxruntime", "none")  # see pruning.costs
PRECISIONS = ("auto", "bf16", "fp32")  # see training.train.resolve_precision
DATA_SOURCES = ("cifar10", "cifar100", "imagefolder")  # see training.data.load
CIFAR_SIZE = 32
MAX_BATCH_SIZES, MAX_LATENCY_BATCH = 4, 4096  # each size is timed every iteration
SHIPPED_DIR = Path(__file__).parents[1] / "studies"


@dataclass(frozen=True)
class DataSpec:
    val_size: int | float = setting(
        default=5000, help="validation images held out of the training set (stratified)",
        allowed="an integer >= 1 (images) or a number in (0, 1) (fraction of the training set)",
        check=lambda v: v >= 1 if isinstance(v, int) else 0 < v < 1)
    train_subset: int | None = setting(
        default=None, help="train on a stratified subset of this many images (leave out: all)",
        allowed="an integer >= 1", check=lambda v: v >= 1)
    augment: bool = setting(
        default=True, help="random crop (zero padding of an eighth of the image size: 4 px "
                           "at 32) and horizontal flip while training",
        allowed="true or false")
    source: str = setting(
        default="cifar10", added=True,
        help="where the images come from: cifar10 or cifar100 (torchvision's format, in "
             "--data-dir or data.path), imagefolder (data.path: train/ and val/ and/or test/, "
             "each with a folder per class), or your own data set, module:callable or "
             "file.py:callable returning (train, test, class names)",
        allowed=f"one of {list(DATA_SOURCES)}, module:callable or file.py:callable",
        check=lambda v: v in DATA_SOURCES or ":" in v)
    path: str | None = setting(
        default=None, added=True,
        help="imagefolder: its folder; cifar10/cifar100: the folder holding the batches "
             "(default: --data-dir); relative to the study file",
        allowed="an existing folder")
    image_size: int | None = setting(
        default=None, added=True,
        help="pixels: every image's shorter side resized to it and its centre cropped, once, "
             "when first read; leave out for CIFAR's own 32 (required for imagefolder and "
             "your own data set)",
        allowed="an integer >= 8", check=lambda v: v >= 8)
    mean: tuple[float, ...] | None = setting(
        default=None, added=True,
        help="per-channel mean (R, G, B) in [0, 1] units that inputs are normalised with; "
             "leave out: CIFAR-10's for cifar10, else the training images' own",
        allowed="three numbers in [0, 1]",
        check=lambda v: len(v) == 3 and all(0 <= x <= 1 for x in v))
    std: tuple[float, ...] | None = setting(
        default=None, added=True, help="per-channel standard deviation, as mean",
        allowed="three numbers > 0", check=lambda v: len(v) == 3 and all(x > 0 for x in v))
    skip_unreadable: bool = setting(
        default=False, added=True,
        help="imagefolder: leave out files that cannot be decoded (counted in the study's "
             "record) rather than refuse the folder",
        allowed="true or false")


@dataclass(frozen=True)
class ModelSpec:
    """The network. Keys other than these are keyword arguments of a custom builder."""

    name: str = setting(
        default="cifar_cnn", help="a registry model; a torchvision classification builder, "
                                  "torchvision:NAME; or your own, package.module:callable or "
                                  "file.py:callable (a path relative to the study file)",
        allowed=f"one of {sorted(models.REGISTRY)}, torchvision:NAME, module:callable or "
                "file.py:callable",
        check=lambda v: v in models.REGISTRY or models.is_custom(v))
    width: int | None = setting(
        default=None, help="channels of the first stage, later stages in proportion; leave "
                           "out for the model as published (cifar_cnn 32, resnet20 and "
                           "resnet56 16, vgg16_bn 64); a custom builder gets it as a keyword",
        allowed="an integer >= 1", check=lambda v: v >= 1)
    classifier: str | None = setting(
        default=None, help="the output layer, whose outputs are the classes (never pruned "
                           "away), as a module name such as fc or head.linear; leave out: a "
                           "module called classifier, else the last nn.Linear",
        allowed="the name of a linear or conv layer of the model")
    cifar_stem: bool = setting(
        default=True, help="torchvision models with conv1 and maxpool (ResNets): a 3x3 "
                           "stride-1 first convolution and no max-pooling, for 32x32 images; "
                           "set false from about 96 px up and with pretrained weights",
        allowed="true or false")
    weights: str | None = setting(
        default=None, added=True,
        help="torchvision models: torchvision's pretrained weights (DEFAULT, or a name such as "
             "IMAGENET1K_V1), downloaded to torch's cache on first use",
        allowed="DEFAULT or a weights name of the torchvision model")
    options: dict = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class DenseSpec:
    epochs: int = setting(
        default=15, help="epochs of dense training (once, then cached); with a checkpoint, "
                         "0 (its default then) evaluates it as the dense model and more "
                         "fine-tune it",
        allowed="an integer >= 1, or 0 with dense.checkpoint or model.weights",
        check=lambda v: v >= 0)
    lr: float = setting(default=0.05, help="peak learning rate (cosine decay)",
                        allowed="a number > 0", check=lambda v: v > 0)
    batch_size: int = setting(default=128, help="images per training step (also retraining)",
                              allowed="an integer >= 1", check=lambda v: v >= 1)
    momentum: float = setting(default=0.9, help="SGD Nesterov momentum (also retraining)",
                              allowed="a number in [0, 1)", check=lambda v: 0 <= v < 1)
    weight_decay: float = setting(default=5e-4, help="L2 weight decay (also retraining)",
                                  allowed="a number >= 0", check=lambda v: v >= 0)
    rewind_epoch: int = setting(
        default=0, help="dense epoch whose weights `rewind` restores (0: initialisation)",
        allowed="an integer >= 0 and <= dense.epochs", check=lambda v: v >= 0)
    precision: str = setting(
        default="auto", help="training precision (also retraining): auto = bf16 autocast on a "
                             "GPU that supports it, fp32 on a CPU; evaluation is always fp32",
        allowed=f"one of {list(PRECISIONS)}", check=lambda v: v in PRECISIONS)
    checkpoint: str | None = setting(
        default=None, added=True,
        help="your trained model as the dense model: a state dict of exactly the [model] "
             "(torch.save(model.state_dict(), path)), relative to the study file; loaded with "
             "weights_only, so it runs no code",
        allowed="an existing file")
    reset_classifier: bool = setting(
        default=False, added=True,
        help="the checkpoint's (or weights') output layer is for other classes: a new one "
             "is made for the data's, trained in the dense epochs",
        allowed="true or false (true needs dense.epochs >= 1)")


@dataclass(frozen=True)
class StudySpec:
    """Everything a study file says, validated. `space` maps Schedule fields to ParamSpecs."""

    name: str = setting(help="Optuna study and MLflow experiment name",
                        allowed="a non-empty string", check=lambda v: v.strip() != "")
    n_trials: int = setting(help="completed trials the study aims for, over all runs",
                            allowed="an integer >= 1", check=lambda v: v >= 1)
    description: str = setting(
        default="", help="one line, shown as the description of the study's MLflow run",
        allowed="a string")
    seed: int = setting(default=0, help="seeds data split, training and the sampler",
                        allowed="an integer >= 0", check=lambda v: v >= 0)
    sampler: str = setting(default="tpe", help="Optuna sampler; grid runs every combination "
                           "of the space's lists once (set n_trials to their number)",
                           allowed=f"one of {list(SAMPLERS)}", check=lambda v: v in SAMPLERS)
    objectives: tuple = setting(
        default=DEFAULT_OBJECTIVES, help="what the study maximises",
        allowed=f"a list of distinct names from {sorted(OBJECTIVES)}",
        check=lambda v: len(v) >= 1 and len(set(v)) == len(v) and set(v) <= set(OBJECTIVES))
    latency_device: str = setting(
        default="auto", help="where latency and the speedup objective are measured: the "
                             "device the pruned model will be deployed on, in eager PyTorch, "
                             "or onnxruntime (exported to ONNX, ONNX Runtime on the CPU); none "
                             "skips timing; auto times on the cpu where a figure of the study "
                             "can use it (a structured method in the space, the speedup "
                             "objective or a latency budget) and nowhere else",
        allowed=f"one of {list(LATENCY_DEVICES)}", check=lambda v: v in LATENCY_DEVICES)
    latency_batch_sizes: tuple[int, ...] = setting(
        default=BATCH_SIZES, help="batch sizes latency is timed at; the speedup "
                                         "objective is read at the largest, max_latency_ms "
                                         "at the smallest",
        allowed=f"a list of 1 to {MAX_BATCH_SIZES} distinct integers from 1 to "
                f"{MAX_LATENCY_BATCH}, smallest first",
        check=lambda v: 1 <= len(v) <= MAX_BATCH_SIZES and list(v) == sorted(set(v))
        and 1 <= v[0] and v[-1] <= MAX_LATENCY_BATCH)
    accuracy_floor: float | None = setting(
        default=None, help="budget: validation accuracy a model must reach to count",
        allowed="a number in [0, 1]", check=lambda v: 0 <= v <= 1)
    max_accuracy_drop: float | None = setting(
        default=None, help="budget: validation accuracy at most this far below the dense "
                           "model's (a fraction: 0.01 is one point)",
        allowed="a number in [0, 1)", check=lambda v: 0 <= v < 1)
    max_macs: float | str | None = setting(
        default=None, help="budget: multiply-accumulates per image of the deployed model, "
                           "absolute (20e6) or a percentage of the dense model's (\"50%\")",
        allowed="a number > 0 or a percentage string between \"0%\" and \"100%\"",
        check=lambda v: v > 0 if isinstance(v, float) else budgets.is_percent(v))
    max_params: float | str | None = setting(
        default=None, help="budget: parameters of the deployed model (not pruned away), "
                           "absolute or a percentage of the dense model's",
        allowed="a number > 0 or a percentage string between \"0%\" and \"100%\"",
        check=lambda v: v > 0 if isinstance(v, float) else budgets.is_percent(v))
    max_latency_ms: float | None = setting(
        default=None, help="budget: the deployed model's latency at the smallest of "
                           "latency_batch_sizes on the latency_device, in milliseconds",
        allowed="a number > 0", check=lambda v: v > 0)
    max_speedup_noise: float | None = setting(
        default=None, help="budget: how repeatable a model's speed-up must be to count: the "
                           "interquartile range of its timed rounds as a fraction of it; "
                           f"{budgets.DEFAULT_SPEEDUP_NOISE} when the speedup objective is on",
        allowed="a number > 0", check=lambda v: v > 0)
    early_stopping: str = setting(
        default="none", help="stop trials headed for a dominated point: mo-asha ranks the "
                             "trials at each rung (retraining epochs spent) by non-dominated "
                             "sorting and lets the first 1/reduction_factor go on",
        allowed=f"one of {list(EARLY_STOPPING_RULES)}", check=lambda v: v in EARLY_STOPPING_RULES)
    reduction_factor: int = setting(
        default=3, help="early stopping: about one trial in this many goes on at each rung, "
                        "and each rung is this many times the epochs of the one before",
        allowed="an integer >= 2", check=lambda v: v >= 2)
    first_rung_epochs: int = setting(
        default=1, help="early stopping: retraining epochs spent at the first rung",
        allowed="an integer >= 1", check=lambda v: v >= 1)
    rung_point: str = setting(
        default="planned", help="early stopping: a trial's other objectives at a rung, where "
                                "its schedule will end (planned) or as its model is now "
                                "(current)",
        allowed=f"one of {list(RUNG_POINTS)}", check=lambda v: v in RUNG_POINTS)
    repeats: int = setting(
        default=1, help="train each schedule this many times from the same dense model with "
                        "different retraining seeds; the objectives are the means",
        allowed="an integer >= 1", check=lambda v: v >= 1)
    project_to_budget: bool = setting(
        default=False, added=True,
        help="scale each trial's amounts by one factor, found by bisection on the masked "
             "model's real costs, so that its last model lands on max_macs or max_params: "
             "every trial meets the size budget by construction",
        allowed="true or false (true needs max_macs or max_params)")
    stages: tuple[tuple[str, ...], ...] = setting(
        default=(), added=True,
        help="allocation stages: the stages by module-name prefix, each a prefix or a list "
             "of them (a layer is in the first stage one of whose prefixes it starts with; "
             "in none, its factor is 1); leave out: one stage per spatial resolution",
        allowed="a list of module-name prefixes or lists of them, each naming a layer")
    min_kept: float = setting(
        default=0.0, added=True,
        help="where an allocation or a projection shares the amount unevenly: the fraction "
             "of each unit's channels (or weights) it keeps at least (a unit always keeps "
             "one channel, and 1% of its weights)",
        allowed="a number in [0, 1)", check=lambda v: 0 <= v < 1)
    data: DataSpec = DataSpec()
    model: ModelSpec = ModelSpec()
    dense: DenseSpec = DenseSpec()
    space: dict = dataclasses.field(default_factory=dict)
    path: Path = Path()


SECTIONS = {"data": DataSpec, "model": ModelSpec, "dense": DenseSpec}
TOP_LEVEL = {f.name: f for f in dataclasses.fields(StudySpec)
             if f.name not in SECTIONS and f.name not in ("space", "path")}


def resolve(study: str) -> Path:
    """A path to an existing file as it is; otherwise a name, looked up as `studies/NAME.toml`
    in the current directory first, then among the study files shipped with prunesearch."""
    as_path = Path(study)
    if as_path.is_file():
        return as_path
    if as_path.suffix == ".toml" or len(as_path.parts) > 1:
        raise StudyFileError(study, "no such file")
    candidates = [Path("studies") / f"{study}.toml", SHIPPED_DIR / f"{study}.toml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    names = sorted(path.stem for path in available())
    raise StudyFileError(study, f"no such study file; looked for {candidates[0]} and "
                                f"{candidates[1]}; study names available: {', '.join(names)}")


def available() -> list[Path]:
    """Study files found by name: local ones shadow shipped ones of the same name."""
    found = {}
    for folder in (SHIPPED_DIR, Path("studies")):
        for path in sorted(folder.glob("*.toml")):
            found[path.stem] = path
    return [found[name] for name in sorted(found)]


def load(study: str) -> StudySpec:
    """Resolve `study` (a name or a path), parse and validate it."""
    path = resolve(study)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise StudyFileError(path, f"not valid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise StudyFileError(path, f"cannot be read: {error}") from None
    return parse(raw, path)


def parse(raw: dict, path: Path) -> StudySpec:
    allowed_keys = list(TOP_LEVEL) + list(SECTIONS) + ["space"]
    for key in raw:
        if key not in allowed_keys:
            raise StudyFileError.bad_value(path, key, raw[key],
                                           f"unknown key; allowed: {', '.join(allowed_keys)}")
    scalars = {key: value for key, value in raw.items() if key in TOP_LEVEL and key != "stages"}
    values = _parse_fields(StudySpec, [f for f in TOP_LEVEL.values() if f.name != "stages"],
                           scalars, path, prefix="")
    if "stages" in raw:
        values["stages"] = _parse_stages(raw["stages"], path)
    for section, cls in SECTIONS.items():
        table = _table(raw, section, path)
        if section == "model":
            values[section] = _parse_model(table, path)
            continue
        parsed = _parse_fields(cls, dataclasses.fields(cls), table, path, prefix=f"{section}.")
        if section == "dense" and "checkpoint" in parsed and "epochs" not in parsed:
            parsed["epochs"] = 0  # a trained model is evaluated, not trained again
        values[section] = cls(**parsed)
    values["data"] = _resolved_data(values["data"], path)
    values["dense"] = _resolved_dense(values["dense"], values["model"], path)
    if values.get("latency_device") == "none" and "speedup" in values.get("objectives", ()):
        raise StudyFileError.bad_value(path, "latency_device", "none",
                                       "the speedup objective needs cpu, cuda or onnxruntime")
    if "speedup" in values.get("objectives", ()) and "max_speedup_noise" not in values:
        values["max_speedup_noise"] = budgets.DEFAULT_SPEEDUP_NOISE
    values["space"] = _parse_space(_table(raw, "space", path), path)
    if values.get("sampler") == "grid":
        _check_grid(values["space"], _table(raw, "space", path), path)
    spec = StudySpec(**values, path=path)
    _check_timing_budgets(spec)
    _check_allocation(spec, raw)
    return spec


def _parse_stages(value, path: Path) -> tuple[tuple[str, ...], ...]:
    allowed = StudySpec.__dataclass_fields__["stages"].metadata["allowed"]
    stages = []
    for item in value if isinstance(value, list) and value else [None]:
        prefixes = [item] if isinstance(item, str) else item
        if not isinstance(prefixes, list) or not prefixes or \
                not all(isinstance(p, str) and p.strip() for p in prefixes):
            raise StudyFileError.bad_value(path, "stages", value, allowed)
        stages.append(tuple(prefixes))
    return tuple(stages)


def allocations(spec: StudySpec) -> tuple[str, ...]:
    """The allocations the study's space may sample."""
    return possible_values(spec.space.get("allocation", Fixed("uniform")))


def _check_allocation(spec: StudySpec, raw: dict) -> None:
    """Refuse what an allocation cannot do or would silently ignore: a global ranking shared
    out, a stage key without stages, a projection without a size budget."""
    sampled = set(allocations(spec))
    global_methods = [name for name in possible_values(spec.space["method"])
                      if methods.get(name).ranks_globally]
    table = raw.get("space", {})
    if sampled - {"uniform"} and global_methods:
        raise StudyFileError.bad_value(
            spec.path, "space.allocation", table["allocation"],
            f"uniform with {', '.join(global_methods)}, whose one ranking across layers "
            "decides each layer's amount; give such a method a study of its own")
    for key, needs in (("stage_factor", "stages"), ("sensitivity_weight", "sensitivity")):
        if key in table and needs not in sampled:
            raise StudyFileError.bad_value(spec.path, f"space.{key}", table[key],
                                           f"only read by allocation {needs}, and "
                                           f"space.allocation has no {needs}")
    if spec.stages and "stages" not in sampled:
        raise StudyFileError.bad_value(spec.path, "stages", raw["stages"],
                                       "only read by allocation stages, and space.allocation "
                                       "has no stages")
    if spec.project_to_budget and spec.max_macs is None and spec.max_params is None:
        raise StudyFileError.bad_value(spec.path, "project_to_budget", True,
                                       "needs a size budget to land on: max_macs or "
                                       "max_params")
    if "min_kept" in raw and sampled == {"uniform"} and not spec.project_to_budget:
        raise StudyFileError.bad_value(spec.path, "min_kept", raw["min_kept"],
                                       "only read where amounts are shared unevenly: an "
                                       "allocation other than uniform, or project_to_budget")


def study_budgets(spec: StudySpec) -> list[budgets.Budget]:
    """The budgets the study file sets."""
    return [budgets.make(key, getattr(spec, key)) for key in budgets.KEYS
            if getattr(spec, key) is not None]


def timed_device(spec: StudySpec) -> str:
    """Where the study's models are timed: its latency_device, `auto` resolved. Unstructured
    pruning runs through the same dense kernels, so its speed-ups come out at 1 and timing it
    would cost a sizeable part of a trial for a figure no decision reads."""
    if spec.latency_device != "auto":
        return spec.latency_device
    timing_budgets = spec.max_latency_ms is not None or spec.max_speedup_noise is not None
    needed = "speedup" in spec.objectives or timing_budgets or structured_methods(spec.space)
    return "cpu" if needed else NOT_TIMED


def _check_timing_budgets(spec: StudySpec) -> None:
    """A budget on timings with nothing timed is refused (preflight checks the size budgets
    against the network)."""
    for budget in study_budgets(spec):
        if budget.key in ("max_latency_ms", "max_speedup_noise") and \
                spec.latency_device == "none":
            raise StudyFileError.bad_value(spec.path, budget.key, getattr(spec, budget.key),
                                           "a budget on timings needs latency_device cpu, "
                                           "cuda or onnxruntime, not none")


def _resolved_data(data: DataSpec, path: Path) -> DataSpec:
    """[data] with its folder made absolute (it must exist) and a data set file's path too."""
    if data.source not in DATA_SOURCES:
        data = dataclasses.replace(data, source=_user_model_file(data.source, path))
    if data.source == "imagefolder" and data.path is None:
        raise StudyFileError.bad_value(path, "data.path", MISSING,
                                       "required with source imagefolder: the folder holding "
                                       "train/ and val/ and/or test/")
    if data.image_size is None and data.source not in ("cifar10", "cifar100"):
        raise StudyFileError.bad_value(path, "data.image_size", MISSING,
                                       f"required with source {data.source}: the pixels every "
                                       "image is resized and cropped to, e.g. 64")
    if (data.mean is None) != (data.std is None):
        given = "mean" if data.std is None else "std"
        raise StudyFileError.bad_value(path, f"data.{given}", getattr(data, given),
                                       "give data.mean and data.std together")
    if data.path is not None:
        data = dataclasses.replace(data, path=_existing(path, "data.path", data.path, "folder"))
    return data


def _existing(path: Path, key: str, value: str, kind: str) -> str:
    """`value`, a path relative to the study file, made absolute; refused unless it is an
    existing `kind` ("folder" or "file")."""
    found = (path.parent / value).resolve()
    if not (found.is_dir() if kind == "folder" else found.is_file()):
        raise StudyFileError.bad_value(path, key, value, f"an existing {kind}; {found} is none")
    return str(found)


def _resolved_dense(dense: DenseSpec, model: ModelSpec, path: Path) -> DenseSpec:
    """[dense] checked against itself and the model: a checkpoint made absolute (it must
    exist), no epoch-free training of an untrained model."""
    if dense.checkpoint is not None:
        dense = dataclasses.replace(dense, checkpoint=_existing(
            path, "dense.checkpoint", dense.checkpoint, "file"))
    trained = dense.checkpoint is not None or model.weights is not None
    if dense.epochs == 0 and not trained:
        raise StudyFileError.bad_value(path, "dense.epochs", 0,
                                       "an integer >= 1: 0 needs dense.checkpoint or "
                                       "model.weights, a model already trained")
    if dense.reset_classifier and (not trained or dense.epochs == 0):
        raise StudyFileError.bad_value(path, "dense.reset_classifier", True,
                                       "needs dense.checkpoint or model.weights, and "
                                       "dense.epochs >= 1 to train the new output layer")
    if dense.rewind_epoch > dense.epochs:
        raise StudyFileError.bad_value(path, "dense.rewind_epoch", dense.rewind_epoch,
                                       f"must be <= dense.epochs ({dense.epochs})")
    return dense


def _parse_model(table: dict, path: Path) -> ModelSpec:
    """[model], resolved as far as reading can: a registry model's width, a model file's
    absolute path. A custom model's output layer is found by preflight, which builds it."""
    fields = [f for f in dataclasses.fields(ModelSpec) if f.name != "options"]
    declared = {f.name for f in fields}
    name = table.get("name", "cifar_cnn")
    custom = isinstance(name, str) and models.is_custom(name)
    options = {k: v for k, v in table.items() if k not in declared} if custom else {}
    known = {k: v for k, v in table.items() if k not in options}
    spec = ModelSpec(**_parse_fields(ModelSpec, fields, known, path, prefix="model."),
                     options=options)
    if spec.weights is not None and not spec.name.startswith(models.TORCHVISION):
        raise StudyFileError.bad_value(path, "model.weights", spec.weights,
                                       "only for torchvision:NAME models; give your own "
                                       "model's weights as dense.checkpoint")
    if custom:
        return dataclasses.replace(spec, name=_user_model_file(spec.name, path))
    if spec.classifier not in (None, "classifier"):
        raise StudyFileError.bad_value(path, "model.classifier", spec.classifier,
                                       f"{spec.name} names its output layer classifier")
    return dataclasses.replace(spec, width=spec.width or models.default_width(spec.name),
                               classifier="classifier")


def _user_model_file(name: str, path: Path) -> str:
    """`name` with its module made an absolute file path when the file is the user's: `x.py`
    relative to the study file, or `pkg.mod` found as pkg/mod.py next to the study file or in
    the working directory (the form uvicorn and Optuna's CLI resolve), so that every worker
    and every later command finds it from anywhere. An installed module stays as it is."""
    where, _, attribute = name.rpartition(":")
    if where.endswith(".py"):
        return name if Path(where).is_absolute() else f"{(path.parent / where).resolve()}:{attribute}"
    if name.startswith(models.TORCHVISION):
        return name
    for folder in (path.parent, Path.cwd()):
        candidate = folder / module_file(name)
        if candidate.is_file():
            return f"{candidate.resolve()}:{attribute}"
    return name


def module_file(name: str) -> str:
    """The file a `pkg.mod:callable` name would be in: pkg/mod.py."""
    return name.rpartition(":")[0].replace(".", "/") + ".py"


def _check_grid(space: dict[str, ParamSpec], table: dict, path: Path) -> None:
    """A grid is a product of lists: no ranges, and no lists of options only some methods
    read (a method that ignores one would run once per value); and no stages, whose factors
    are as many as the network has."""
    if "stages" in possible_values(space.get("allocation", Fixed("uniform"))):
        raise StudyFileError.bad_value(path, "space.allocation", table["allocation"],
                                       "sampler grid cannot search stages, whose factors are "
                                       "as many as the network's stages; use tpe or random")
    for name, param in space.items():
        if isinstance(param, Range):
            raise StudyFileError.bad_value(path, f"space.{name}", table[name],
                                           "sampler grid needs a list of values, not a range")
        if isinstance(param, Choice) and name in methods.OPTION_FIELDS:
            raise StudyFileError.bad_value(path, f"space.{name}", table[name],
                                           "sampler grid needs one value for a method option")


def _table(raw: dict, key: str, path: Path) -> dict:
    table = raw.get(key, {})
    if not isinstance(table, dict):
        raise StudyFileError.bad_value(path, key, table, "must be a table ([" + key + "])")
    return table


def _parse_fields(cls, fields, table: dict, path: Path, *, prefix: str) -> dict:
    """Type-check and range-check `table` against `fields` of dataclass `cls`."""
    fields = {f.name: f for f in fields}
    types = field_types(cls)
    for key in table:
        if key not in fields:
            raise StudyFileError.bad_value(path, prefix + key, table[key],
                                           f"unknown key; allowed: {', '.join(fields)}")
    values = {}
    for name, field in fields.items():
        if name not in table:
            if is_required(field):
                raise StudyFileError.bad_value(path, prefix + name, MISSING,
                                               f"required: {field.metadata['allowed']}")
            continue
        values[name] = _checked_value(field, types[name], table[name], path, prefix + name)
    return values


def _checked_value(field, type_, value, path: Path, key: str):
    allowed = field.metadata["allowed"]
    if typing.get_origin(type_) in (typing.Union, types.UnionType) and \
            any(typing.get_origin(option) is tuple for option in typing.get_args(type_)):
        type_ = next(o for o in typing.get_args(type_) if typing.get_origin(o) is tuple)
    if type_ is tuple or typing.get_origin(type_) is tuple:  # a TOML list of strings, or ints
        item_type = typing.get_args(type_)[0] if typing.get_args(type_) else str
        items = [coerce(item, item_type) for item in value] if isinstance(value, list) else []
        result = tuple(items) if isinstance(value, list) and MISSING not in items else MISSING
    else:
        result = coerce(value, type_)
    if result is MISSING or not valid(field, result):
        raise StudyFileError.bad_value(path, key, value, allowed)
    return result


def _parse_space(table: dict, path: Path) -> dict[str, ParamSpec]:
    types = SPACE_TYPES
    space = {}
    for key in table:
        if key not in SPACE_FIELDS:
            raise StudyFileError.bad_value(path, f"space.{key}", table[key],
                                           f"unknown key; allowed: {', '.join(SPACE_FIELDS)}")
    family = _parse_param(SPACE_FIELDS["schedule"], str, table["schedule"], path,
                          "space.schedule") if "schedule" in table else Fixed("iterative")
    families = family.choices if isinstance(family, Choice) else (family.value,)
    required = {key for name in families for key in REQUIRED_KEYS[name]}
    for name, field in SPACE_FIELDS.items():
        if name not in table:
            if is_required(field) or name in required:
                ranged = " or a range table { low = ..., high = ... }" \
                    if types[name] in (int, float) else ""
                family_note = next((f" (schedule {f})" for f in families
                                    if name in REQUIRED_KEYS[f]), "")
                raise StudyFileError.bad_value(
                    path, f"space.{name}", MISSING,
                    f"required{family_note}: {field.metadata['allowed']}, a list of such "
                    f"values{ranged}")
            continue
        space[name] = _parse_param(field, types[name], table[name], path, f"space.{name}")
    _check_families(space, families, table, path)
    _check_method_options(space, table, path)
    allocation = space.get("allocation", Fixed("uniform"))
    sampled = allocation.choices if isinstance(allocation, Choice) else (allocation.value,)
    if "stages" in sampled and STAGE_FACTOR not in space:
        space[STAGE_FACTOR] = DEFAULT_STAGE_FACTORS
    alpha = space.get("distill_alpha", Fixed(0.0))
    if "distill_temperature" in space and isinstance(alpha, Fixed) and alpha.value == 0:
        raise StudyFileError.bad_value(path, "space.distill_temperature",
                                       table["distill_temperature"],
                                       "read only when space.distill_alpha > 0 (distillation "
                                       "is off)")
    return space


def _check_families(space: dict[str, ParamSpec], families: tuple, table: dict,
                    path: Path) -> None:
    """A key of a schedule family the study cannot sample would be silently ignored: refuse
    it; and gradual pruning fine-tunes as it prunes, so it takes no other re-init option."""
    for family, keys in FAMILY_KEYS.items():
        for name in keys:
            if family not in families and name in table:
                raise StudyFileError.bad_value(
                    path, f"space.{name}", table[name],
                    f"only read by schedule {family}, and space.schedule has no {family}")
    reinit = space["reinit"]
    options = reinit.choices if isinstance(reinit, Choice) else (reinit.value,)
    if "gradual" in families and set(options) - {"finetune"}:
        raise StudyFileError.bad_value(
            path, "space.reinit", table["reinit"],
            "schedule gradual prunes while it trains, so it takes reinit finetune only; "
            "rewind and random need schedule iterative")


def _check_method_options(space: dict[str, ParamSpec], table: dict, path: Path) -> None:
    """An option no searched method reads would be silently ignored: refuse it."""
    method = space["method"]
    searched = method.choices if isinstance(method, Choice) else (method.value,)
    for name in sorted(space.keys() & methods.OPTION_FIELDS.keys()):
        readers = methods.readers(name)
        if not set(readers) & set(searched):
            raise StudyFileError.bad_value(
                path, f"space.{name}", table[name],
                f"only read by {', '.join(sorted(readers))}, and space.method has none of them")


def _parse_param(field, type_, value, path: Path, key: str) -> ParamSpec:
    if isinstance(value, list):
        if not value:
            raise StudyFileError.bad_value(path, key, value, "a list needs at least one choice")
        choices = tuple(_checked_value(field, type_, item, path, key) for item in value)
        if len(set(choices)) != len(choices):
            raise StudyFileError.bad_value(path, key, value, "choices must be distinct")
        return Choice(choices)
    if isinstance(value, dict):
        return _parse_range(field, type_, value, path, key)
    return Fixed(_checked_value(field, type_, value, path, key))


def _parse_range(field, type_, table: dict, path: Path, key: str) -> Range:
    if type_ not in (int, float):
        raise StudyFileError.bad_value(path, key, table, "a range table needs a numeric key; "
                                       f"give {field.metadata['allowed']} or a list of them")
    for extra in set(table) - {"low", "high", "log", "step"}:
        raise StudyFileError.bad_value(path, f"{key}.{extra}", table[extra],
                                       "unknown key; allowed: low, high, log, step")
    low = _checked_value(field, type_, table.get("low", MISSING), path, f"{key}.low")
    high = _checked_value(field, type_, table.get("high", MISSING), path, f"{key}.high")
    if low > high:
        raise StudyFileError.bad_value(path, f"{key}.high", high, f"must be >= low ({low})")
    log = table.get("log", False)
    if not isinstance(log, bool) or (log and low <= 0):
        raise StudyFileError.bad_value(path, f"{key}.log", log,
                                       "true or false; true needs low > 0")
    step = table.get("step")
    if step is not None:
        step = coerce(step, type_)
        if step is MISSING or step <= 0 or log:
            raise StudyFileError.bad_value(path, f"{key}.step", table["step"],
                                           f"a positive {type_.__name__}, not combined with log")
    return Range(low, high, integer=type_ is int, log=log, step=step)


def dense_identity(spec: StudySpec) -> dict:
    """What the dense model depends on: the data, model and dense sections, every field (one
    `added` later, only when set), the seed and the checkpoint's content. The dense cache key
    and the study's fingerprint are both made from it, so a setting added to a section joins
    both by construction."""
    identity = {section: {field.name: getattr(getattr(spec, section), field.name)
                          for field in dataclasses.fields(getattr(spec, section))
                          if not field.metadata.get("added")
                          or getattr(getattr(spec, section), field.name) != field.default}
                for section in SECTIONS}
    if spec.dense.checkpoint is not None:
        path = Path(spec.dense.checkpoint).resolve()
        stat = path.stat()
        identity["dense"]["checkpoint_sha256"] = _sha256(path, stat.st_size, stat.st_mtime_ns)
    return {**identity, "seed": spec.seed}


@functools.lru_cache(maxsize=8)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    """The file's SHA-256, read once while its size and modification time stay the same: the
    fingerprint and the dense cache key ask for it several times per run (a checkpoint can be
    hundreds of megabytes)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(spec: StudySpec) -> dict[str, str]:
    """What a study must keep to be resumed: every setting that changes what its trials mean
    (search space, objectives, budgets, repeats and the dense identity), as the study file
    spells it. Name, description, n_trials, sampler and early stopping may change."""
    dense = dense_identity(spec)
    settings = {"objectives": ", ".join(spec.objectives),
                # Left out at auto, which follows from the settings here (and reads a study
                # stored when cpu was the default as unchanged).
                **({"latency_device": spec.latency_device}
                   if spec.latency_device != "auto" else {}),
                "latency_batch_sizes": format_value(list(spec.latency_batch_sizes)),
                **{key: format_value(getattr(spec, key)) for key in budgets.KEYS},
                "seed": str(dense.pop("seed")), "repeats": str(spec.repeats),
                **{name: format_value(getattr(spec, name)) for name, field in TOP_LEVEL.items()
                   if field.metadata.get("added") and getattr(spec, name) != field.default}}
    for section, values in dense.items():
        for key, value in values.items():
            settings[f"{section}.{key}"] = format_value(value)
    for name, described in describe_space(spec).items():
        settings[f"space.{name}"] = " ".join(described.split())
    return settings


def describe_space(spec: StudySpec) -> dict[str, str]:
    """Every Schedule field: how the study searches it, or the default it takes (a key added
    later only where the study sets it)."""
    return {name: spec.space[name].describe() if name in spec.space
            else f"{'default':<12} {format_value(field.default)}"
            for name, field in SPACE_FIELDS.items()
            if name in spec.space or not field.metadata.get("added")}
