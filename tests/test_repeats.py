"""Repeated seeds: a schedule trained k times from the same dense model, its figures the
means, the spread recorded, shown and drawn, the first repeat's model kept and exported."""

import json
import statistics

import optuna
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from prunesearch.cli import main
from prunesearch.stores.records import TrialRecord

from conftest import write_study


@pytest.mark.slow
def test_a_repeated_trial_reports_means_and_spread_and_exports_its_first_repeat(workdir):
    study_file = write_study(workdir, retrain_epochs="1", settings='repeats = 2\nlatency_device = "cpu"')
    study_file.write_text(study_file.read_text().replace("n_trials = 2", "n_trials = 1"))
    run = CliRunner().invoke(main, ["optimize", "--study", str(study_file)])
    assert run.exit_code == 0, run.output

    trial, = optuna.load_study(study_name="tiny", storage="sqlite:///prunesearch.db").trials
    record = TrialRecord.of(trial)
    assert len(record.repeat_curves) == 2
    for k, mean in enumerate(record.curve):
        each = [curve[k]["val_accuracy"] for curve in record.repeat_curves]
        assert mean["val_accuracy"] == pytest.approx(statistics.fmean(each))
        assert mean["val_accuracy_std"] == pytest.approx(statistics.stdev(each))
        each = [curve[k]["speedup_b64"] for curve in record.repeat_curves]  # timed ones too
        assert mean["speedup_b64"] == mean["speedup"] == pytest.approx(statistics.fmean(each))
    assert trial.values[0] == pytest.approx(record.final["val_accuracy"])
    # The repeats retrained with different seeds: their losses differ.
    assert record.repeat_curves[0][-1]["train_loss"] != record.repeat_curves[1][-1]["train_loss"]
    metrics = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}").get_run(
        record.mlflow_run_id).data.metrics
    assert metrics["val_accuracy_std"] == pytest.approx(record.final["val_accuracy_std"])

    table = CliRunner().invoke(main, ["pareto", "--study", "tiny"]).output
    assert f"{100 * record.final['val_accuracy']:.2f}±" in table
    rows = json.loads(CliRunner().invoke(main, ["pareto", "--study", "tiny", "--format",
                                                "json"]).output)
    assert all(row["val_accuracy_std"] >= 0 for row in rows)

    # The weights kept are the first repeat's: export checks its own test accuracy.
    exported = CliRunner().invoke(main, ["export", "--study", "tiny", "--trial", "0",
                                         "--output", str(workdir / "out")])
    assert exported.exit_code == 0, exported.output
    summary = json.loads((workdir / "out" / "trial.json").read_text())
    assert summary["test_accuracy_recorded"] == record.repeat_curves[0][-1]["test_accuracy"]
