"""A pruning schedule (what one trial does) and the search-space entries that produce one."""

import dataclasses
import typing
from dataclasses import dataclass

from prunesearch.pruning import methods
from prunesearch.foundation.fields import field_types, format_value, setting


FAMILIES = ("iterative", "gradual")
REINIT_OPTIONS = ("finetune", "rewind", "random")  # carried out by pruning.reinit
ALLOCATIONS = ("uniform", "stages", "sensitivity")  # carried out by pruning.allocation
STAGE_FACTOR = "stage_factor"  # stage i's factor is the parameter stage_factor_<i+1>


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """What one trial does. `iterative`: `iterations` rounds of prune `amount`, re-init,
    retrain `retrain_epochs`; each round's model a candidate. `gradual`: one training phase of
    `gradual_epochs` epochs, pruning every `prune_every` steps along the cubic ramp to
    `final_sparsity` by `ramp_end` of it (pruning.gradual); each epoch's model a candidate.
    Each family reads only its own keys (FAMILY_KEYS); the others are None."""

    method: str = setting(
        help="pruning method", allowed=f"one of {sorted(methods.REGISTRY)}",
        check=lambda v: v in methods.REGISTRY)
    schedule: str = setting(
        default="iterative", help="the schedule family: iterative (prune, re-init, retrain, "
                                  "repeated) or gradual (prune while training, Zhu & Gupta)",
        allowed=f"one of {list(FAMILIES)}", check=lambda v: v in FAMILIES)
    amount: float | None = setting(
        default=None, help="iterative: fraction of the still-unpruned weights (or channels) "
                           "pruned in each iteration",
        allowed="a number in (0, 1)", check=lambda v: 0 < v < 1)
    iterations: int | None = setting(
        default=None, help="iterative: prune-retrain rounds; sparsity after n rounds is "
                           "1-(1-amount)^n",
        allowed="an integer >= 1", check=lambda v: v >= 1)
    retrain_epochs: int | None = setting(
        default=None, help="iterative: epochs of retraining after each pruning step",
        allowed="an integer >= 0", check=lambda v: v >= 0)
    final_sparsity: float | None = setting(
        default=None, help="gradual: the fraction of weights (structured methods: of each "
                           "layer's channels) pruned at the ramp's end",
        allowed="a number in (0, 1)", check=lambda v: 0 < v < 1)
    gradual_epochs: int | None = setting(
        default=None, help="gradual: training epochs in all, the ramp's and the fine-tuning "
                           "after it",
        allowed="an integer >= 1", check=lambda v: v >= 1)
    ramp_end: float = setting(
        default=0.75, help="gradual: the fraction of the training steps by which "
                           "final_sparsity is reached; the rest fine-tunes",
        allowed="a number in (0, 1]", check=lambda v: 0 < v <= 1)
    prune_every: int = setting(
        default=50, help="gradual: training steps between two pruning events",
        allowed="an integer >= 1", check=lambda v: v >= 1)
    reinit: str = setting(
        help="what the surviving weights start retraining from: finetune (trained values), "
             "rewind (values at dense epoch `dense.rewind_epoch`), random (fresh init)",
        allowed=f"one of {list(REINIT_OPTIONS)}", check=lambda v: v in REINIT_OPTIONS)
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
    allocation: str = setting(
        default="uniform", added=True,
        help="how a per-layer method shares the amount among its units (layers, or layers "
             "added together): uniform (each the same), stages (each stage of units its own "
             "factor on it, space.stage_factor) or sensitivity (equal predicted accuracy "
             "losses, from the study's sensitivity scan of the dense model)",
        allowed=f"one of {list(ALLOCATIONS)}", check=lambda v: v in ALLOCATIONS)
    sensitivity_weight: float = setting(
        default=1.0, added=True,
        help="allocation sensitivity: 0 is uniform, 1 equalises the predicted losses fully, "
             "between them a blend",
        allowed="a number in [0, 1]", check=lambda v: 0 <= v <= 1)
    stage_factors: tuple[float, ...] = dataclasses.field(default=())
    """allocation stages: each stage's factor on the amount (the space's stage_factor drawn
    once per stage, parameters stage_factor_1, stage_factor_2, ...)."""
    options: dict = dataclasses.field(default_factory=dict)
    """Values of the method's own options (its `Options` dataclass); unset ones default."""

    def method_options(self):
        """The method's options, an instance of its `Options`, defaults filled in."""
        return methods.get(self.method).Options(**self.options)

    def as_dict(self) -> dict:
        """Every field of this schedule's family (none of the other family's), every option
        of its method (none of other methods'), and the allocation's keys where it is not
        uniform (stage factors as stage_factor_1, ...), in one flat dict: a trial's
        parameters as logged and stored."""
        other = FAMILY_KEYS[FAMILIES[1 - FAMILIES.index(self.schedule)]]
        unread = {"sensitivity_weight"} if self.allocation != "sensitivity" else set()
        if self.allocation == "uniform":
            unread.add("allocation")
        plain = {name: value for name, value in dataclasses.asdict(self).items()
                 if name not in ("options", "stage_factors") and name not in other
                 and name not in unread}
        stages = {f"{STAGE_FACTOR}_{i + 1}": factor
                  for i, factor in enumerate(self.stage_factors)}
        return {**plain, **stages, **dataclasses.asdict(self.method_options())}

    @property
    def rounds(self) -> int:
        """How many candidate models the schedule makes: iterations, or gradual epochs."""
        return self.iterations if self.schedule == "iterative" else self.gradual_epochs

    @property
    def epochs_per_round(self) -> int:
        """Retraining epochs spent per candidate (what early stopping's rungs count)."""
        return self.retrain_epochs if self.schedule == "iterative" else 1

    def planned_growth(self, done: int) -> float:
        """How much the pruned fraction after `done` rounds still grows by the schedule's
        end (early stopping's "planned" point); 1 once it is reached."""
        if self.schedule == "iterative":
            return (1 - (1 - self.amount) ** self.iterations) / (1 - (1 - self.amount) ** done)
        now = min(done / (self.ramp_end * self.gradual_epochs), 1.0)
        reached = 1 - (1 - now) ** 3
        return 1 / reached if reached > 0 else 1.0

    @classmethod
    def from_dict(cls, values: dict) -> "Schedule":
        """The inverse of `as_dict`."""
        fields = {name: values[name] for name in SCHEDULE_FIELDS if name in values}
        stages = {key: value for key, value in values.items()
                  if key.startswith(STAGE_FACTOR + "_")}
        factors = tuple(stages[f"{STAGE_FACTOR}_{i + 1}"] for i in range(len(stages)))
        return cls(**fields, stage_factors=factors,
                   options={k: v for k, v in values.items()
                            if k not in fields and k not in stages})


def _unset_allowed(type_):
    """`float | None` (a key only one family reads, None in the other) as `float`: a study
    file's value is never None."""
    options = [t for t in typing.get_args(type_) if t is not type(None)]
    return options[0] if len(options) == 1 else type_


FAMILY_KEYS = {"iterative": ("amount", "iterations", "retrain_epochs"),
               "gradual": ("final_sparsity", "gradual_epochs", "ramp_end", "prune_every")}
"""The keys each schedule family reads; a study samples a family's keys in its trials only."""
REQUIRED_KEYS = {"iterative": ("amount", "iterations", "retrain_epochs"),
                 "gradual": ("final_sparsity", "gradual_epochs")}
"""The keys a study must set for each family it may sample."""
SCHEDULE_FIELDS = {field.name: field for field in dataclasses.fields(Schedule)
                   if field.name not in ("options", "stage_factors")}
"""The fields every schedule has; methods' options (methods.OPTION_FIELDS) come beside them."""


@dataclass(frozen=True)
class StageFactor:
    """The space key that gives each stage's factor (Schedule.stage_factors)."""

    stage_factor: float = setting(
        default=1.0, added=True,
        help="allocation stages: the factor on the amount each stage's units get, drawn once "
             "per stage (a range or list; leave out: { low = 0.5, high = 1.5 })",
        allowed="a number in (0, 4]", check=lambda v: 0 < v <= 4)


SPACE_FIELDS = {**SCHEDULE_FIELDS, **methods.OPTION_FIELDS,
                **{field.name: field for field in dataclasses.fields(StageFactor)}}
"""What a study file's [space] may set: the schedule's fields, every method's options and the
stages' factor."""
SPACE_TYPES = {name: _unset_allowed(type_)
               for cls in (Schedule, StageFactor, *(m.Options for m in methods.REGISTRY.values()))
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
DEFAULT_STAGE_FACTORS = Range(0.5, 1.5, integer=False)
"""space.stage_factor where a study that may allocate by stages leaves it out."""


def possible_values(param: "ParamSpec | None") -> tuple:
    """The values a fixed or categorical parameter can take (none for a range, or none given)."""
    return (param.value,) if isinstance(param, Fixed) else \
        tuple(param.choices) if isinstance(param, Choice) else ()


def structured_methods(space: dict[str, ParamSpec]) -> list[str]:
    """The structured methods a study's space can sample."""
    return [name for name in possible_values(space.get("method")) if methods.get(name).structured]
