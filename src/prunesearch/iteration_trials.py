"""Every iteration a trial ran, shown to the sampler as a schedule measured in its own right.

Iteration k of a schedule with n iterations is the schedule with k iterations: nothing in
loop.run before iteration k depends on n, and each step's random numbers are seeded by its
iteration. So a trial that ran m iterations measured m schedules, and a trial early stopping
ended measured the schedule it ran, not the one it planned. A sampler that learns from the
study's history (TPE) is shown one finished trial per iteration of each trial that searched
`iterations` (the trial's parameters with `iterations` = k, its objectives those of
iteration k); running trials stay too, for constant_liar. The study's storage, and every
other view of the study, keeps one trial per trial.
"""

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from prunesearch.objectives import OBJECTIVES
from prunesearch.records import TrialRecord

LEARNS_FROM = ("iterations", "trials")
EXPANDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def per_iteration(trial: FrozenTrial, objectives: Sequence[str],
                  accuracy_floor: float | None = None) -> list[FrozenTrial]:
    """`trial` as the sampler sees it: a complete trial per iteration it ran (with the
    accuracy floor's constraint, if any), then the trial itself if it is running."""
    curve = TrialRecord.of(trial).curve if trial.state in EXPANDED else ()
    if "iterations" not in trial.params or not curve:
        return [trial]
    shown = []
    for figures in curve:
        measured = optuna.trial.create_trial(
            state=TrialState.COMPLETE, params={**trial.params, "iterations": figures["iteration"]},
            distributions=trial.distributions,
            values=[figures[OBJECTIVES[name].column] for name in objectives],
            constraints=None if accuracy_floor is None
            else {"val_accuracy_floor": accuracy_floor - figures["val_accuracy"]})
        measured.number = trial.number
        shown.append(measured)
    return shown + ([trial] if trial.state == TrialState.RUNNING else [])


class _StudySeenPerIteration:
    """The study with its trials replaced by `shown(trial)`; everything else delegated."""

    def __init__(self, study: optuna.Study, shown):
        self._study, self._shown = study, shown

    def __getattr__(self, name):
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False):
        shown = [measured for trial in self._study._get_trials(deepcopy=False, states=None,
                                                               use_cache=use_cache)
                 for measured in self._shown(trial)]
        return [t for t in shown if states is None or t.state in states]

    def get_trials(self, deepcopy: bool = True, states=None):
        return self._get_trials(deepcopy, states)

    @property
    def trials(self):
        return self._get_trials()


class LearningFromIterations(optuna.samplers.BaseSampler):
    """`inner`, sampling as if every iteration of every trial were a trial of its own."""

    def __init__(self, inner: optuna.samplers.BaseSampler, objectives: Sequence[str],
                 accuracy_floor: float | None = None):
        self.inner, self._objectives, self._floor = inner, tuple(objectives), accuracy_floor
        self._finished = {}  # trial number -> per_iteration: a finished trial never changes

    def _shown(self, trial: FrozenTrial) -> list[FrozenTrial]:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            return per_iteration(trial, self._objectives, self._floor)
        if trial.number not in self._finished:
            self._finished[trial.number] = per_iteration(trial, self._objectives, self._floor)
        return self._finished[trial.number]

    def _seen(self, study):
        return _StudySeenPerIteration(study, self._shown)

    def infer_relative_search_space(self, study, trial):
        return self.inner.infer_relative_search_space(self._seen(study), trial)

    def sample_relative(self, study, trial, search_space):
        return self.inner.sample_relative(self._seen(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.inner.sample_independent(self._seen(study), trial, param_name,
                                             param_distribution)

    def before_trial(self, study, trial):
        self.inner.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self):
        self.inner.reseed_rng()


def sampler_for(spec, sampler: optuna.samplers.BaseSampler) -> optuna.samplers.BaseSampler:
    """The study's sampler: TPE learns from every iteration unless the study file says
    `sampler_learns_from = "trials"`; other samplers learn from trials (random and grid do
    not learn; NSGA-II's generations and the GP are left as Optuna builds them)."""
    if spec.sampler != "tpe" or spec.sampler_learns_from == "trials":
        return sampler
    return LearningFromIterations(sampler, spec.objectives, spec.accuracy_floor)
