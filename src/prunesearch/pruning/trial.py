"""What every trial of a study shares, as one frozen value: the data, the dense model it starts
from, the optimiser, the seed, the repeats, where latency is timed, the output layer and how
amounts are shared among units. It is
built in one place from a study (search.trials.settings); the loop takes it and a Schedule."""

import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from prunesearch.pruning.figures import BATCH_SIZES, NOT_TIMED
from prunesearch.training.data import ImageData
from prunesearch.training.train import OptimizerSettings

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Latency:
    """Where a trial's models are timed (the study's latency_device: cpu, cuda, onnxruntime,
    or none, which times nothing) and at which batch sizes, smallest first."""

    device: str = "cpu"
    batch_sizes: tuple[int, ...] = BATCH_SIZES

    @property
    def timed(self) -> bool:
        return self.device != NOT_TIMED

    def where(self) -> str:
        """The machine this process times on, in words: what a trial records with its timed
        figures, so that a speed-up says where it was measured."""
        if not self.timed:
            return NOT_TIMED
        if self.device.startswith("cuda"):
            return f"cuda ({torch.cuda.get_device_name(torch.device(self.device))})"
        cpu = f"{platform.machine()}, {torch.get_num_threads()} threads"
        if self.device == "onnxruntime":
            import onnxruntime

            return f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider, {cpu})"
        return f"cpu ({cpu})"


@dataclass(frozen=True)
class SizeBudget:
    """A budget a projected trial lands on: `column` (macs or params_remaining) at most
    `limit`, or `limit` x the dense model's figure when `relative`."""

    column: str
    limit: float
    relative: bool = False

    def bound(self, dense_figure: float) -> float:
        return self.limit * dense_figure if self.relative else self.limit


@dataclass(frozen=True)
class Sharing:
    """How the trials share their amounts among units (pruning.allocation): the stages the
    study names by prefix (none: by resolution), the fraction every unit keeps at least, the
    sensitivity scan's curves (method -> unit name -> Curve) and the size budgets a trial's
    amounts are projected onto (none: no projection)."""

    stages: tuple[tuple[str, ...], ...] = ()
    min_kept: float = 0.0
    curves: Mapping[str, Mapping] = field(default_factory=dict)
    projection: tuple[SizeBudget, ...] = ()


@dataclass(frozen=True)
class TrialSettings:
    data: ImageData  # on the device the trials train on
    dense_accuracy: tuple[float, float]  # the dense model's (validation, test) accuracy
    rewind_state: StateDict  # what `rewind` restores
    fresh_state: Callable[[int], StateDict]  # a fresh initialisation's weights, for a seed
    optimizer: OptimizerSettings  # retraining's (its learning rate is the schedule's)
    augmented: bool
    seed: int  # the study's: every trial's seeds derive from it (pruning.seeds)
    repeats: int = 1
    latency: Latency = Latency()
    classifier: str = "classifier"  # the output layer's module name
    sharing: Sharing = Sharing()
