"""The figures of one model (an iteration of a trial; iteration 0: the dense model), their units
and names: one schema, read by the loop that measures them, the stores that keep them and every
view that shows them. No torch: reading a finished study never imports it."""

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

BATCH_SIZES = (1, 64)  # what a study times latency at by default: one request, and a full batch
NOT_TIMED = "none"  # the latency_device that times nothing: its figures are NaN


def figure(unit: str, meaning: str, **default):
    """A field of IterationResult: `unit` is "fraction" (shown in percent), "ratio", "count",
    "ms" or "loss"; `meaning` says what is counted."""
    return field(metadata={"unit": unit, "meaning": meaning}, **default)


@dataclass(frozen=True)
class IterationResult:
    """The model after one prune-retrain round (iteration 0: the dense model). The one list of
    a trial's figures: MLflow metrics, report columns and stored curves all derive from it.

    Latency is timed at each of the study's `latency_batch_sizes`: `timed` holds, per batch
    size N, `latency_bN_ms` (forward time, fastest block: see costs), `speedup_bN` (dense
    latency / this latency, timed together) and `speedup_bN_spread` (the interquartile range
    of its rounds). The speedup objective and max_speedup_noise read `speedup` and
    `speedup_noise` (at the largest size), max_latency_ms reads `latency_ms` (at the
    smallest); with nothing timed they are NaN."""

    iteration: int
    sparsity: float = figure("fraction", "conv + linear weights at zero")
    macs_reduction: float = figure("fraction", "1 - macs / the dense model's macs")
    val_accuracy: float = figure("fraction", "top-1 on the validation split")
    test_accuracy: float = figure("fraction", "top-1 on the test split; reported, never optimised")
    weights_remaining: int = figure("count", "nonzero conv + linear weights")
    params_remaining: int = figure("count", "parameter entries not masked (see costs)")
    macs: int = figure("count", "per image, conv + linear, nonzero weights (see costs)")
    train_loss: float = figure("loss", "mean loss of the last retraining epoch; NaN if none")
    val_accuracy_std: float = figure(
        "fraction", "standard deviation of val_accuracy over the repeats; NaN with one",
        default=math.nan)
    test_accuracy_std: float = figure(
        "fraction", "standard deviation of test_accuracy over the repeats; NaN with one",
        default=math.nan)
    timed: Mapping[str, float] = field(default_factory=dict)

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes latency was timed at, smallest first (none: not timed)."""
        return tuple(sorted(int(match.group(1)) for match in map(LATENCY_NAME.fullmatch,
                                                                  self.timed) if match))

    @property
    def speedup(self) -> float:
        """Dense latency / this latency at the largest batch size timed: the speedup objective."""
        return self.timed.get(f"speedup_b{self.batch_sizes[-1]}", math.nan) \
            if self.batch_sizes else math.nan

    @property
    def speedup_noise(self) -> float:
        """How repeatable `speedup` is: its rounds' interquartile range / the speed-up."""
        return self.timed.get(f"speedup_b{self.batch_sizes[-1]}_spread", math.nan) / \
            self.speedup if self.batch_sizes else math.nan

    @property
    def latency_ms(self) -> float:
        """Latency at the smallest batch size timed: what max_latency_ms limits."""
        return self.timed.get(f"latency_b{self.batch_sizes[0]}_ms", math.nan) \
            if self.batch_sizes else math.nan

    def figure(self, name: str) -> float:
        """Any figure by name (see `names`); NaN for one this result did not measure."""
        if name in ("iteration", *FIXED, *DERIVED):
            return getattr(self, name)
        return self.timed.get(name, math.nan)

    def names(self) -> tuple[str, ...]:
        """Every figure this result has, in order: fixed, derived, then each batch size's."""
        return FIXED + DERIVED + tuple(
            name for batch in self.batch_sizes for name in timed_names(batch))

    def as_dict(self) -> dict:
        """The figures as trials store them and MLflow logs them: flat, by name."""
        return {"iteration": self.iteration, **{name: self.figure(name) for name in self.names()}}

    @classmethod
    def from_dict(cls, stored: Mapping) -> "IterationResult":
        """Figures as trials store them (`as_dict`); a figure recorded before it existed is
        NaN, and a key no longer a figure is ignored."""
        return cls(iteration=stored["iteration"],
                   **{name: stored.get(name, math.nan) for name in FIXED},
                   timed={name: value for name, value in stored.items()
                          if TIMED_NAME.fullmatch(name)})


FIXED_UNITS = {f.name: f.metadata["unit"] for f in fields(IterationResult)
               if f.name not in ("iteration", "timed")}
FIXED = tuple(FIXED_UNITS)
"""The figures every result has."""
DERIVED = ("speedup", "speedup_noise", "latency_ms")
"""Read off `timed` at the batch size their objective or budget uses."""
TIMED_NAME = re.compile(r"latency_b\d+_ms|speedup_b\d+(?:_spread)?")
LATENCY_NAME = re.compile(r"latency_b(\d+)_ms")


def unit(name: str) -> str:
    """A figure's unit, as declared with it: "fraction" (shown in percent), "ratio", "count",
    "ms" or "loss"; what every view shows it in."""
    if name in FIXED_UNITS:
        return FIXED_UNITS[name]
    if name == "speedup_noise":
        return "fraction"
    if name == "latency_ms" or name.startswith("latency_b"):
        return "ms"
    if name in DERIVED or TIMED_NAME.fullmatch(name):
        return "ratio"
    raise KeyError(name)


def timed_names(batch: int) -> tuple[str, str, str]:
    """The figures timed at batch size `batch`: latency (ms), speed-up and its spread."""
    return f"latency_b{batch}_ms", f"speedup_b{batch}", f"speedup_b{batch}_spread"


def mean(results: Sequence[IterationResult]) -> IterationResult:
    """One iteration's figures averaged over repeats, with the accuracies' spread."""
    def average(name: str):
        column = [result.figure(name) for result in results]
        value = statistics.fmean(column)
        return round(value) if isinstance(column[0], int) else value

    values = {name: average(name) for name in ("iteration", *FIXED)}
    for name in ("val_accuracy", "test_accuracy"):
        column = [getattr(result, name) for result in results]
        values[f"{name}_std"] = statistics.stdev(column) if len(column) > 1 else math.nan
    return IterationResult(**values, timed={name: average(name) for name in results[0].timed})
