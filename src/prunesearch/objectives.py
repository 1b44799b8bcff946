"""What a study optimises: each objective's direction and how it is read off a trial's result.

Test accuracy is deliberately absent: it is reported, never optimised.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    direction: str  # "maximize" or "minimize", as Optuna spells it
    label: str  # axis label; values are fractions in [0, 1], shown in percent
    value: Callable  # Result -> float


OBJECTIVES = {
    "val_accuracy": Objective("maximize", "validation accuracy (%)",
                              lambda result: result.final.val_accuracy),
    "sparsity": Objective("maximize", "weight sparsity (% of conv + linear weights at zero)",
                          lambda result: result.final.sparsity),
    "macs_reduction": Objective("maximize", "MACs removed (% of the dense model's)",
                                lambda result: result.final.macs_reduction),
    "speedup": Objective("maximize", "CPU speed-up at batch 64 (dense latency / pruned)",
                         lambda result: result.final.speedup_b64),
}
