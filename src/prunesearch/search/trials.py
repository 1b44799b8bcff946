"""A study's trials wired one way: the TrialSettings every trial of a study shares, built here
from the study file, its data and its dense model, for `optimize`, the benchmarks and the
tests alike."""

import functools

import torch

from prunesearch.config import studyfile
from prunesearch.config.studyfile import StudySpec
from prunesearch.pruning.trial import Latency, Sharing, SizeBudget, TrialSettings
from prunesearch.search import dense
from prunesearch.training.data import ImageData


def settings(spec: StudySpec, data: ImageData, checkpoint: dense.DenseCheckpoint,
             device: torch.device, *, curves: dict | None = None) -> TrialSettings:
    """What every trial of `spec` shares, with `data` on `device` and its dense model
    `checkpoint` (search.dense.load_or_train); `curves`: the study's sensitivity scans, for
    allocation `sensitivity` (search.sensitivity.study_curves)."""
    return TrialSettings(
        data=data, dense_accuracy=(checkpoint.val_accuracy, checkpoint.test_accuracy),
        rewind_state=checkpoint.rewind_state,
        fresh_state=functools.partial(dense.initial_state, spec, data.num_classes),
        optimizer=dense.optimizer_settings(spec, device), augmented=spec.data.augment,
        seed=spec.seed, repeats=spec.repeats,
        latency=Latency(studyfile.timed_device(spec), spec.latency_batch_sizes),
        classifier=spec.model.classifier or "classifier",
        sharing=Sharing(stages=spec.stages, min_kept=spec.min_kept, curves=curves or {},
                        projection=_projection(spec)))


def _projection(spec: StudySpec) -> tuple[SizeBudget, ...]:
    """The size budgets project_to_budget lands a trial on."""
    if not spec.project_to_budget:
        return ()
    return tuple(SizeBudget(budget.column, budget.limit, budget.relative)
                 for budget in studyfile.study_budgets(spec)
                 if budget.key in ("max_macs", "max_params"))
