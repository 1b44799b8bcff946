"""What every trial of a study shares, as one frozen value: the data, the dense model it starts
from, the optimiser, the seed, the repeats, where latency is timed and the output layer. It is
built in one place from a study (search.trials.settings); the loop takes it and a Schedule."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from prunesearch.pruning.figures import BATCH_SIZES, NOT_TIMED
from prunesearch.training.data import CifarData
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


@dataclass(frozen=True)
class TrialSettings:
    data: CifarData  # on the device the trials train on
    dense_accuracy: tuple[float, float]  # the dense model's (validation, test) accuracy
    rewind_state: StateDict  # what `rewind` restores
    fresh_state: Callable[[int], StateDict]  # a fresh initialisation's weights, for a seed
    optimizer: OptimizerSettings  # retraining's (its learning rate is the schedule's)
    augmented: bool
    seed: int  # the study's: every trial's seeds derive from it (pruning.seeds)
    repeats: int = 1
    latency: Latency = Latency()
    classifier: str = "classifier"  # the output layer's module name
