"""A pruning schedule (what one trial does) and the search-space entries that produce one."""

import dataclasses
from dataclasses import dataclass

from prunesearch import methods, reinit
from prunesearch.settings import format_value, setting


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
    prune_classifier: bool = setting(
        default=True, help="unstructured methods: also prune the final linear layer's weights "
                           "(structured methods never remove its outputs, the classes)",
        allowed="true or false")
    norm: int = setting(
        default=1, help="ln_structured, global_structured: rank channels by their L1 or L2 norm",
        allowed="1 or 2", check=lambda v: v in (1, 2))

    def as_dict(self) -> dict:
        """The fields this schedule's method reads: options of other methods are left out."""
        used = methods.get(self.method).options
        return {name: value for name, value in dataclasses.asdict(self).items()
                if name not in METHOD_OPTIONS or name in used}


SCHEDULE_FIELDS = {field.name: field for field in dataclasses.fields(Schedule)}
METHOD_OPTIONS = {option for method in methods.REGISTRY.values() for option in method.options}
"""Fields only some methods read; a trial samples them only when its method does."""


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
