"""A study's cached dense model scanned unit by unit (pruning.sensitivity): for the
`prunesearch sensitivity` command, rendered (views.sensitivity) and logged to the study's MLflow
experiment; and once per study for allocation `sensitivity`, stored with the study."""

import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from prunesearch.config import studyfile
from prunesearch.config.studyfile import StudySpec
from prunesearch.pruning import allocation, loop, methods, sensitivity
from prunesearch.pruning.schedule import Fixed, possible_values
from prunesearch.search import data as study_data
from prunesearch.search import dense as dense_module
from prunesearch.stores import records
from prunesearch.stores.records import StudyRecord
from prunesearch.stores.tracking import StudyTracker
from prunesearch.training import data as data_module
from prunesearch.training import models
from prunesearch.training.train import evaluate
from prunesearch.views import sensitivity as view


SHOWN_SHARE = 0.5  # the overall share at which the table shows allocation sensitivity's


@dataclass(frozen=True)
class Report:
    table: str
    files: list[Path]
    run_id: str


def run(spec: StudySpec, *, method: str, amounts, data_dir: Path, cache_dir: Path,
        device: torch.device, output_dir: Path, tracking_uri: str) -> Report:
    """Scan the study's dense model (trained and cached first if need be, as `optimize` would)
    with `method`, its options as the study fixes them (defaults where it searches them);
    write the table, JSON and plots to `output_dir` and log them as a run of the study's
    experiment."""
    tracker = StudyTracker(tracking_uri)  # an unreachable store fails before any training
    data = study_data.read(spec, data_dir=data_dir, cache_dir=cache_dir).to(device)
    checkpoint = dense_module.load_or_train(spec, data, cache_dir=cache_dir, device=device)
    units = _scan(spec, data, checkpoint, method, amounts, device)
    dense_accuracy = checkpoint.val_accuracy
    shares = allocation.equal_loss(
        list(sensitivity.curves(units, amounts, dense_accuracy).values()),
        [unit.weights for unit in units], SHOWN_SHARE, allocation.MAX_SHARE)
    table = view.to_table(units, amounts, dense_accuracy, shares=shares, overall=SHOWN_SHARE)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        (staged / "sensitivity.txt").write_text(table + "\n")
        (staged / "sensitivity.json").write_text(view.to_json(
            units, amounts, dense_accuracy, study=spec.name, method=method))
        view.draw(staged / "sensitivity.png", units, amounts, dense_accuracy,
                  title=f"{spec.name}: {method}, each unit pruned alone")
        run_id = tracker.log_report(spec.name, f"sensitivity: {method}", staged,
                                    tags={"prunesearch.role": "sensitivity",
                                          "prunesearch.study": spec.name,
                                          "prunesearch.method": method})
        output_dir.mkdir(parents=True, exist_ok=True)
        files = [Path(shutil.copy(path, output_dir / path.name))
                 for path in sorted(staged.iterdir())]
    return Report(table=table, files=files, run_id=run_id)


def _scan(spec: StudySpec, data, checkpoint, method: str, amounts, device: torch.device):
    """The study's dense model scanned by `method`, its options as the study fixes them
    (defaults where it searches them)."""
    model = models.from_spec(dataclasses.asdict(spec.model), num_classes=data.num_classes)
    model.load_state_dict(checkpoint.trained_state)
    model.to(device)
    fields = {field.name for field in dataclasses.fields(methods.get(method).Options)}
    options = methods.get(method).Options(**{
        name: param.value for name, param in spec.space.items()
        if name in fields and isinstance(param, Fixed)})
    generator = data_module.generator_on(data.train.labels.device, spec.seed)
    return sensitivity.scan(
        model, method, options, example_input=data.val.inputs(slice(1)),
        evaluate=lambda pruned: evaluate(pruned, data.val),
        batches=lambda count: loop.ranking_batches(data, spec.dense.batch_size, generator,
                                                   count),
        amounts=amounts, classifier=spec.model.classifier or "classifier")


def study_curves(study, spec: StudySpec, data, checkpoint, device: torch.device,
                 tracker: StudyTracker) -> dict[str, dict]:
    """What allocation `sensitivity` reads (method -> unit name -> allocation.Curve): the
    dense model scanned once per study for each per-layer method its space samples, stored
    with the study (StudyRecord.sensitivity; later runs and other workers read it back) and
    as JSON in its MLflow run; {} when the study never allocates by sensitivity."""
    if "sensitivity" not in studyfile.allocations(spec):
        return {}
    stored = dict(StudyRecord.of(study).sensitivity or {})
    for method in _per_layer_methods(spec):
        if method in stored:
            continue
        units = _scan(spec, data, checkpoint, method, sensitivity.AMOUNTS, device)
        stored[method] = json.loads(view.to_json(
            units, sensitivity.AMOUNTS, checkpoint.val_accuracy, study=spec.name,
            method=method))
        records.save_study(study, sensitivity=stored)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"sensitivity-{method}.json"
            path.write_text(json.dumps(stored[method], indent=2))
            tracker.log_study_file(path, folder="sensitivity")
    return {method: {unit["unit"]: allocation.Curve(
        tuple(scan["amounts"]),
        tuple(scan["dense_val_accuracy"] - a for a in unit["val_accuracy"]))
        for unit in scan["units"]} for method, scan in stored.items()}


def _per_layer_methods(spec: StudySpec) -> list[str]:
    return [name for name in possible_values(spec.space["method"])
            if not methods.get(name).ranks_globally]
