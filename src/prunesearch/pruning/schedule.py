"""A pruning schedule (what one trial does) and the search-space entries that produce one."""

import dataclasses
from dataclasses import dataclass

from prunesearch.pruning import methods
from prunesearch.pruning import reinit
from prunesearch.foundation.fields import field_types, format_value, setting


@dataclass(frozen=True)
class Schedule:
    """What one trial does: `iterations` rounds of prune `amount`, re-init, retrain."""

    method: str = setting(
        help="pruning method", allowed=f"one of {sorted(methods.REGISTRY)}",
        check=lambda v: v in methods.REGISTRY)
    amount: float = setting(
        help="fraction of the still-unpruned weights pruned in each iteration",
        allowed="a number in (0, 1)", check=lambda v: 0 < v < 1)
    iterations: int = setting(
        help="prune-retrain rounds; sparsity after n rounds is 1-(1-amount)^n",
        allowed="an integer >= 1", check=lambda v: v >= 1)
    retrain_epochs: int = setting(
        help="epochs of retraining after each pruning step",
        allowed="an integer >= 0", check=lambda v: v >= 0)
    reinit: str = setting(
        help="what the surviving weights start retraining from: finetune (trained values), "
             "rewind (values at dense epoch `dense.rewind_epoch`), random (fresh init)",
        allowed=f"one of {list(reinit.OPTIONS)}", check=lambda v: v in reinit.OPTIONS)
    retrain_lr: float = setting(
        default=0.01, help="peak learning rate of each retraining phase (cosine decay)",
        allowed="a number > 0", check=lambda v: v > 0)
    distill_alpha: float = setting(
        default=0.0, help="retraining distils the dense model: weight of its soft labels in "
                          "the loss (0: off, plain cross-entropy; 1: soft labels only)",
        allowed="a number in [0, 1]", check=lambda v: 0 <= v <= 1)
    distill_temperature: float = setting(
        default=4.0, help="softmax temperature of distillation (read when distill_alpha > 0)",
        allowed="a number > 0", check=lambda v: v > 0)
    options: dict = dataclasses.field(default_factory=dict)
    """Values of the method's own options (its `Options` dataclass); unset ones default."""

    def method_options(self):
        """The method's options, an instance of its `Options`, defaults filled in."""
        return methods.get(self.method).Options(**self.options)

    def as_dict(self) -> dict:
        """Every field, and every option of this schedule's method (none of other methods'),
        in one flat dict: a trial's parameters as logged and stored."""
        plain = {name: value for name, value in dataclasses.asdict(self).items()
                 if name != "options"}
        return {**plain, **dataclasses.asdict(self.method_options())}

    @classmethod
    def from_dict(cls, values: dict) -> "Schedule":
        """The inverse of `as_dict`."""
        fields = {name: values[name] for name in SCHEDULE_FIELDS if name in values}
        return cls(**fields, options={k: v for k, v in values.items() if k not in fields})


SCHEDULE_FIELDS = {field.name: field for field in dataclasses.fields(Schedule)
                   if field.name != "options"}
"""The fields every schedule has; methods' options (methods.OPTION_FIELDS) come beside them."""
SPACE_FIELDS = {**SCHEDULE_FIELDS, **methods.OPTION_FIELDS}
"""What a study file's [space] may set: the schedule's fields and every method's options."""
SPACE_TYPES = {name: type_ for cls in (Schedule, *(m.Options for m in methods.REGISTRY.values()))
               for name, type_ in field_types(cls).items() if name in SPACE_FIELDS}


@dataclass(frozen=True)
class Fixed:
    """The same value in every trial (a scalar in the study file)."""

    value: object

    def describe(self) -> str:
        return f"{'fixed':<12} {format_value(self.value)}"


@dataclass(frozen=True)
class Choice:
    """A categorical parameter (a list in the study file)."""

    choices: tuple

    def describe(self) -> str:
        return f"{'categorical':<12} {', '.join(format_value(c) for c in self.choices)}"


@dataclass(frozen=True)
class Range:
    """A numeric range (a table `{ low, high, log, step }` in the study file), inclusive."""

    low: int | float
    high: int | float
    integer: bool
    log: bool = False
    step: int | float | None = None

    def describe(self) -> str:
        scale = " log" if self.log else f" step {self.step}" if self.step else ""
        kind = "int" if self.integer else "float"
        return f"{kind:<12} [{self.low}, {self.high}]{scale}"


ParamSpec = Fixed | Choice | Range
