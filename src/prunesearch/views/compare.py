"""Several studies' fronts side by side (`prunesearch compare`): each study's models (every
iteration of its finished trials) seen on the axes the studies share, and its front
recomputed there."""

import optuna

from prunesearch.config.objectives import OBJECTIVES, Objective, plot_axis
from prunesearch.views import study_view
from prunesearch.views.rows import ModelRow


def common_axis(objective_lists: list[list[str]]) -> Objective:
    """What every study puts against validation accuracy, the first it shares; sparsity when
    they share none (every trial records it)."""
    shared = [name for name in objective_lists[0] if name != "val_accuracy"
              and all(name in objectives for objectives in objective_lists)]
    return OBJECTIVES[shared[0]] if shared else plot_axis([])


def fronts(studies: list[optuna.Study], axis: Objective) -> dict[str, list[ModelRow]]:
    """Each study's front on validation accuracy and `axis`, highest `axis` first."""
    return {study.study_name: sorted(
        study_view.front(study_view.candidates(study), [OBJECTIVES["val_accuracy"], axis]),
        key=lambda row: (-row.figure(axis.column), row.trial, row.iteration))
        for study in studies}
