"""What a study optimises: each objective's direction and how it is read off a trial's result.

Test accuracy is deliberately absent: it is reported, never optimised.
"""

from dataclasses import dataclass

from prunesearch.pruning.figures import unit


@dataclass(frozen=True)
class Objective:
    direction: str  # "maximize" or "minimize", as Optuna spells it
    label: str  # axis label, with its unit
    column: str  # the figure's name in an IterationResult

    @property
    def scale(self) -> float:
        """What a plot multiplies the figure by: fractions are shown in percent (its unit is
        declared with the figure, pruning.figures.unit), ratios as they are."""
        return 100.0 if unit(self.column) == "fraction" else 1.0

    def value(self, figures) -> float:
        """The objective in one iteration's figures (an IterationResult)."""
        return figures.figure(self.column)


OBJECTIVES = {
    "val_accuracy": Objective("maximize", "validation accuracy (%)", "val_accuracy"),
    "sparsity": Objective("maximize", "weight sparsity (% of conv + linear weights at zero)",
                          "sparsity"),
    "macs_reduction": Objective("maximize", "MACs removed (% of the dense model's)",
                                "macs_reduction"),
    "speedup": Objective("maximize", "speed-up at the largest latency batch size "
                                     "(dense latency / pruned, x)", "speedup"),
}


DEFAULT_OBJECTIVES = ("val_accuracy", "sparsity")


def plot_axis(objectives: list[str]) -> Objective:
    """What a 2-D plot puts against validation accuracy: the study's first other objective.
    With three objectives, the front seen in two of them is not a line: see `joined`."""
    return OBJECTIVES[next((name for name in objectives if name != "val_accuracy"), "sparsity")]


def joined(objectives: list[str]) -> bool:
    """Whether a 2-D plot may join the front's points: only when it shows every objective."""
    return len(objectives) <= 2
