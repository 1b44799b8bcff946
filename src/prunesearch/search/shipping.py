"""A finished trial's model taken away: rebuilt from its stored weights, checked against its
recorded test accuracy, written as a package (pruning.export.write_package) and, if asked,
registered in MLflow's Model Registry with the study, trial and figures as tags."""

from dataclasses import dataclass
from pathlib import Path

import optuna

from prunesearch.pruning import export, methods, onnx_runtime
from prunesearch.pruning.figures import BATCH_SIZES
from prunesearch.stores import tracking
from prunesearch.stores.records import StudyRecord, TrialRecord
from prunesearch.search import data as study_data
from prunesearch.training import models
from prunesearch.views import layers, study_view


@dataclass(frozen=True)
class Shipped:
    iteration: int
    summary: dict  # write_package's: test accuracies, layers and shapes, the ONNX check if any
    registered: tuple[str, str] | None  # (tracking URI, version) when registered


def ship(study: optuna.Study, number: int, *, iteration: int | None, output_dir: Path,
         model_format: str, tracking_uri: str | None, data_dir: Path,
         cache_dir: Path | None = None, registered_name: str | None) -> Shipped:
    """Trial `number`'s model after `iteration` (None: its last) written to `output_dir` as
    model.pt2 or model.onnx, state_dict.pt and trial.json; and registered as a new version of
    `registered_name` when given."""
    if model_format == "onnx":
        onnx_runtime.require("export --format onnx")
    model, row = study_view.trial_model(study, number, iteration=iteration,
                                        tracking_uri=tracking_uri)
    record = StudyRecord.of(study)
    trial, _ = study_view.finished_model(study, number, row.iteration)
    test = study_data.test_split(record.data, data_dir=data_dir, cache_dir=cache_dir)
    shown = row.as_dict()  # unmeasured figures null, as in pareto.json
    figures = {key: shown[key] for key in row.figures.names()}
    slim, summary = export.write_package(
        model, test.inputs(slice(1)), test,
        recorded_test_accuracy=study_view.kept_test_accuracy(study, number, row.iteration),
        output_dir=output_dir,
        info={"study": study.study_name, "trial": number, "iteration": row.iteration,
              "model": record.model, "data": record.data or study_data.CIFAR10_RECORD,
              "schedule": row.schedule, "figures": figures,
              "layers": layers.rows(TrialRecord.of(trial), row.iteration)},
        classifier=record.model.get("classifier", "classifier"),
        onnx_dense=models.from_spec(record.model) if model_format == "onnx" else None,
        structured=methods.get(row.schedule["method"]).structured,
        batch_sizes=row.figures.batch_sizes or BATCH_SIZES)
    if not registered_name:
        return Shipped(row.iteration, summary, None)
    deployed = summary.get("onnx") or {}
    tracker = tracking.StudyTracker(tracking_uri or record.mlflow_tracking_uri)
    version = tracker.register_model(
        row.mlflow_run_id, slim, test.inputs(slice(2)), name=registered_name,
        tags={"prunesearch.study": study.study_name, "prunesearch.trial": str(number),
              "prunesearch.iteration": str(row.iteration),
              **{f"prunesearch.{key}": str(value) for key, value in figures.items()},
              **{f"prunesearch.onnx.{key}": str(value) for key, value in deployed.items()}},
        files=[output_dir / "model.onnx"] if deployed else [])
    return Shipped(row.iteration, summary, (tracker.uri, version))
