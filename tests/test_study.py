"""The whole path through the real `prunesearch` entry point: Optuna storage, MLflow store,
dense cache, resume and the Pareto output."""

import json
import math
import platform
import shutil
import subprocess
import sys

import optuna
import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from prunesearch.pruning import costs
from prunesearch.pruning import export
from prunesearch.training import models
from prunesearch.views import study_view
from prunesearch.config import studyfile
from prunesearch.training import data as data_module
from prunesearch.cli import main
from prunesearch.training.train import evaluate

from conftest import working_in, write_study

STORAGE = "sqlite:///prunesearch.db"


def invoke(*args):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def tracking_client(workdir) -> MlflowClient:
    """Absolute URI: MLflow caches stores by URI, and each test has its own working directory."""
    return MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")


def complete(study):
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


@pytest.fixture(scope="module")
def finished_tiny_study(tmp_path_factory, cifar_dir):
    """The tiny study run to its two trials once for this module, in a folder of its own."""
    folder = tmp_path_factory.mktemp("two-trials")
    with working_in(folder, cifar_dir):
        output = invoke("optimize", "--study", str(write_study(
            folder, settings='latency_device = "cpu"'))).output
    return folder, output


@pytest.fixture
def two_trials(finished_tiny_study, tiny_study, workdir):
    """A study with two completed trials in the default stores of the working directory: a
    copy of the module's run, whose MLflow artifacts it shares, so not for tests that add
    trials."""
    folder, output = finished_tiny_study
    for name in ("prunesearch.db", "mlflow.db"):
        shutil.copy2(folder / name, workdir / name)
    shutil.copytree(folder / "cache", workdir / "cache")
    return output


@pytest.mark.slow
def test_resume_reaches_n_trials_in_all_and_reuses_the_dense_model(tiny_study, workdir):
    # A run of its own: resuming writes to the study's MLflow artifacts, which the copies
    # made by `two_trials` share with the module's run.
    first = invoke("optimize", "--study", str(tiny_study))
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    assert len(complete(study)) == 2
    assert "dense model trained" in first.output
    checkpoint, = (workdir / "cache").glob("dense-*.pt")
    trained_at = checkpoint.stat().st_mtime_ns

    again = invoke("optimize", "--study", str(tiny_study), "--n-trials", "3")

    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    assert len(complete(study)) == 3 and len(study.trials) == 3
    assert "dense model from cache" in again.output and "dense model trained" not in again.output
    assert "\r" not in again.output and "batch/s" not in again.output  # no bars off a terminal
    assert checkpoint.stat().st_mtime_ns == trained_at

    finished = invoke("optimize", "--study", str(tiny_study), "--n-trials", "3")
    assert "already has 3 of 3" in finished.output
    assert len(optuna.load_study(study_name="tiny", storage=STORAGE).trials) == 3


@pytest.mark.slow
def test_objectives_are_validation_accuracy_and_sparsity_never_test(two_trials):
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    assert study.metric_names == ["val_accuracy", "sparsity"]
    for trial in complete(study):
        final = trial.user_attrs["final"]
        assert trial.values == [final["val_accuracy"], final["sparsity"]]
        assert 0 <= final["test_accuracy"] <= 1
        assert len(trial.user_attrs["curve"]) == trial.user_attrs["schedule"]["iterations"]


def test_mlflow_parent_child_runs_step_metrics_and_pareto_artifacts(two_trials, workdir,
                                                                    tmp_path):
    client = tracking_client(workdir)
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    parent, = [r for r in runs if r.data.tags.get("prunesearch.role") == "study"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED"
    assert len(children) == 2
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"pareto.png", "pareto.html", "pareto.json", "pareto.csv"} <= artifacts

    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    front = {t.number for t in study.best_trials}
    for child in children:
        number = int(child.data.tags["prunesearch.trial"])
        trial = study.trials[number]
        assert child.info.status == "FINISHED"
        assert child.data.tags["prunesearch.state"] == "COMPLETE"
        assert child.data.tags["prunesearch.study"] == "tiny"
        assert child.data.tags["prunesearch.timed_on"] == f"cpu ({platform.machine()}, " \
            f"{torch.get_num_threads()} threads)"  # this process's, which ran the trials
        assert child.data.params["method"] == "l1_unstructured"
        assert float(child.data.params["amount"]) == pytest.approx(trial.params["amount"])
        history = client.get_metric_history(child.info.run_id, "val_accuracy")
        iterations = trial.user_attrs["schedule"]["iterations"]
        assert sorted(m.step for m in history) == list(range(iterations + 1))  # 0 = dense
        for key in ("sparsity", "test_accuracy", "weights_remaining", "macs", "speedup_b64"):
            assert len(client.get_metric_history(child.info.run_id, key)) == iterations + 1
        assert child.data.metrics["final_val_accuracy"] == pytest.approx(trial.values[0])
        assert (child.data.tags.get("prunesearch.pareto") == "true") == (number in front)

    downloaded = client.download_artifacts(parent.info.run_id, "pareto.json", str(tmp_path))
    with open(downloaded) as f:
        assert {row["trial"] for row in json.load(f)} == front


def test_the_study_run_tells_the_story_and_trial_runs_say_what_they_are(two_trials, workdir,
                                                                         cifar_dir):
    client = tracking_client(workdir)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    parent, = [r for r in runs if r.data.tags.get("prunesearch.role") == "study"]
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    overview = parent.data.tags["mlflow.note.content"]
    assert "**Dense model**: validation" in overview and "Pareto front** after 2 complete" \
        in overview and "- objectives: val_accuracy, sparsity" in overview
    for row in study_view.pareto_rows(study):  # one table row per model on the front
        assert (f"| {row.trial}.{row.iteration} | {100 * row.figures.sparsity:.2f} | "
                f"{100 * row.figures.val_accuracy:.2f} |") in overview
    history = client.get_metric_history(parent.info.run_id, "front_hypervolume")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2]
    assert parent.data.metrics["trials_complete"] == 2
    half_sparse = [row.figures.val_accuracy for row in study_view.candidates(study)
                   if row.figures.sparsity >= 0.5]
    assert parent.data.metrics.get("best_val_accuracy_sparsity_ge_50") == max(
        half_sparse, default=None)
    for run in runs:
        assert [i.dataset.name for i in run.inputs.dataset_inputs] == [
            "CIFAR-10 (cifar-10-batches-py)"]
        if run.data.tags.get("prunesearch.role") == "trial":
            trial = study.trials[int(run.data.tags["prunesearch.trial"])]
            assert run.info.run_name == (f"trial {trial.number}: l1_unstructured "
                                         f"{trial.params['amount']:.0%} x"
                                         f"{trial.params['iterations']} {trial.params['reinit']}")


@pytest.mark.slow
def test_the_front_is_drawn_at_most_once_per_interval_and_when_n_trials_are_finished(
        workdir, monkeypatch):
    from prunesearch.search import optimize as study_module

    drawn = []
    draw = study_module._draw_front
    monkeypatch.setattr(study_module, "_draw_front", lambda study, tracker, rows, *rest:
                        drawn.append(len({row.trial for row in rows})) or
                        draw(study, tracker, rows, *rest))
    monkeypatch.setattr(study_module, "FRONT_DRAWN_EVERY_S", 3600)
    invoke("optimize", "--study", str(write_study(workdir, retrain_epochs="0")),
           "--n-trials", "3")
    assert drawn == [1, 3]  # the first trial, then not again until the budget was met
    client = tracking_client(workdir)
    parent, = client.search_runs([client.get_experiment_by_name("tiny").experiment_id],
                                 "tags.`prunesearch.role` = 'study'")
    # The overview is rewritten after every trial all the same.
    assert "after 3 complete trials" in parent.data.tags["mlflow.note.content"]


def test_story_hypervolume_and_thresholds():
    from prunesearch.config.objectives import OBJECTIVES
    from prunesearch.pruning.figures import IterationResult
    from prunesearch.views import overview
    from prunesearch.views.rows import ModelRow

    rows = [ModelRow(study="s", trial=n, iteration=1, schedule={}, mlflow_run_id=None,
                     stopped=False, figures=IterationResult.from_dict(
                         {"iteration": 1, "sparsity": sparsity, "val_accuracy": accuracy}))
            for n, (sparsity, accuracy) in enumerate([(0.9, 0.6), (0.5, 0.7), (0.4, 0.65)])]
    # the last is dominated
    axis = OBJECTIVES["sparsity"]
    assert overview.hypervolume(rows[:2], axis) == pytest.approx(0.9 * 0.6 + 0.5 * 0.1)
    assert overview.hypervolume(rows, axis) == pytest.approx(0.9 * 0.6 + 0.5 * 0.1)
    metrics = overview.search_metrics(rows, rows[:2], {"COMPLETE": 3, "FAIL": 1}, axis)
    assert metrics["best_val_accuracy_sparsity_ge_50"] == 0.7
    assert metrics["best_val_accuracy_sparsity_ge_90"] == 0.6
    assert "best_val_accuracy_sparsity_ge_95" not in metrics  # no trial got there
    assert (metrics["trials_complete"], metrics["trials_failed"]) == (3, 1)


def test_pareto_json_csv_and_table(two_trials, tiny_study):
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    # The front is over every iteration of every trial: each is a model of its own.
    made = {(t.number, point["iteration"]): (t, point) for t in complete(study)
              for point in t.user_attrs["curve"]}
    front = {key for key, (_, point) in made.items() if not any(
        other["val_accuracy"] >= point["val_accuracy"] and other["sparsity"] >= point["sparsity"]
        and (other["val_accuracy"], other["sparsity"]) != (point["val_accuracy"], point["sparsity"])
        for _, other in made.values())}

    output = invoke("pareto", "--study", str(tiny_study), "--format", "json").output
    rows = json.loads(output, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert {(row["trial"], row["iteration"]) for row in rows} == front
    assert all(row["val_accuracy_std"] is None for row in rows)  # one repeat: no spread
    for row in rows:
        trial, point = made[row["trial"], row["iteration"]]
        assert row["val_accuracy"] == point["val_accuracy"]
        assert row["sparsity"] == point["sparsity"]
        assert row["test_accuracy"] == point["test_accuracy"]
        assert row["params"]["amount"] == trial.params["amount"]
        assert row["timed_on"] == trial.user_attrs["timed_on"]
        assert row["timed_on"].startswith("cpu (")  # where its speed-up was measured

    csv_lines = invoke("pareto", "--study", "tiny", "--format", "csv").output.splitlines()
    assert csv_lines[0].startswith(
        "trial,iteration,sparsity,macs_reduction,val_accuracy,test_accuracy")
    assert len(csv_lines) == len(front) + 1
    table = invoke("pareto", "--study", str(tiny_study)).output
    assert "val acc %" in table.splitlines()[0]


@pytest.mark.slow
def test_pareto_plot_writes_png_and_interactive_html_with_labelled_axes(two_trials, tiny_study,
                                                                       workdir):
    result = CliRunner().invoke(main, ["pareto", "--study", str(tiny_study), "--plot",
                                       str(workdir / "front.png")])
    assert result.exit_code == 0, result.output
    assert (workdir / "front.png").read_bytes()[:4] == b"\x89PNG"
    html = (workdir / "front.html").read_text()
    assert "weight sparsity (% of conv + linear weights at zero)" in html
    assert "validation accuracy (%)" in html and "dense model" in html


def test_pareto_can_list_every_trial_and_every_iteration(two_trials, tiny_study):
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    rows = json.loads(invoke("pareto", "--study", str(tiny_study), "--all", "--iterations",
                             "--format", "json").output)
    expected = {(t.number, point["iteration"]): point for t in complete(study)
                for point in t.user_attrs["curve"]}
    assert {(row["trial"], row["iteration"]) for row in rows} == set(expected)
    for row in rows:
        assert row["val_accuracy"] == expected[row["trial"], row["iteration"]]["val_accuracy"]
    every = json.loads(invoke("pareto", "--study", str(tiny_study), "--all",
                              "--format", "json").output)
    assert sorted(row["trial"] for row in every) == [t.number for t in complete(study)]


READING = [["status", "--study", "tiny.toml"], ["pareto", "--study", "tiny.toml"],
           ["pareto", "--study", "tiny", "--all", "--format", "json"],
           ["best", "--study", "tiny.toml"], ["compare", "tiny.toml", "tiny"], ["studies"]]


def test_commands_that_read_a_study_never_build_or_trace_a_network(two_trials, monkeypatch):
    from prunesearch.config import preflight

    def refuse(*args, **kwargs):
        raise AssertionError("a command that only reads results built a network")

    monkeypatch.setattr(models, "build", refuse)
    monkeypatch.setattr(preflight, "run", refuse)
    for args in READING:
        invoke(*args)
    invoke("pareto", "--study", "tiny.toml", "--plot", "front.png")


def test_reading_a_finished_study_imports_no_torch(two_trials, workdir):
    program = (
        "import sys\n"
        "from prunesearch.cli import main\n"
        f"for args in {READING[:4]!r}:\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as end:\n"
        "        assert end.code == 0, (args, end.code)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported'\n")
    done = subprocess.run([sys.executable, "-c", program], cwd=workdir, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_pareto_without_a_storage_is_one_line_and_creates_nothing(tiny_study, workdir):
    result = CliRunner().invoke(main, ["pareto", "--study", str(tiny_study)])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "prunesearch.db" in result.output
    assert not (workdir / "prunesearch.db").exists()


def test_each_trial_exports_its_pruned_weights_without_masks(two_trials, tiny_study, workdir,
                                                           cifar_dir, tmp_path):
    spec = studyfile.load(str(tiny_study))
    data = data_module.load(data_dir=cifar_dir, val_size=spec.data.val_size,
                            train_subset=spec.data.train_subset, seed=spec.seed)
    client = tracking_client(workdir)
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    for trial in complete(study):
        run_id = trial.user_attrs["mlflow_run_id"]
        curve = trial.user_attrs["curve"]
        kept = client.list_artifacts(run_id, "model")  # one folder per iteration
        assert [a.path for a in kept] == [f"model/iteration-{i + 1}" for i in range(len(curve))]
        for folder, figures in zip(kept, curve):
            artifact, = client.list_artifacts(run_id, folder.path)
            state = torch.load(client.download_artifacts(run_id, artifact.path, str(tmp_path)),
                               weights_only=True)
            assert not [key for key in state if key.endswith(("_orig", "_mask"))]
            model = models.build(spec.model.name, width=spec.model.width)
            model.load_state_dict(state)
            nonzero, total = costs.weight_counts(model)
            assert 1 - nonzero / total == pytest.approx(figures["sparsity"])
            assert evaluate(model, data.val) == pytest.approx(figures["val_accuracy"])


def test_a_failure_before_any_trial_ends_the_study_run_failed_in_one_line(workdir):
    path = write_study(workdir)
    path.write_text(path.read_text().replace("batch_size = 32", "batch_size = 32\nlr = 1e9"))
    result = CliRunner().invoke(main, ["optimize", "--study", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1].startswith(f"error: {path}: dense training diverged")
    assert "lower dense.lr" in result.output
    client = tracking_client(workdir)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert [run.info.status for run in runs] == ["FAILED"]  # the study run, never RUNNING


STRUCTURED_STUDY = """
name = "filters"
seed = 0
n_trials = 2
objectives = ["val_accuracy", "macs_reduction", "speedup"]
accuracy_floor = {floor}
max_speedup_noise = 10  # a width-4 model runs in microseconds: not a test of timing noise

[data]
val_size = 50

[model]
width = 4

[dense]
epochs = 2
batch_size = 32

[space]
method = ["ln_structured", "taylor_structured"]
norm = [1, 2]
amount = 0.5
iterations = 1
retrain_epochs = 0
reinit = "finetune"
"""


@pytest.mark.slow
def test_a_study_that_times_no_latency_records_every_other_figure(workdir):
    write_study(workdir, settings='latency_device = "none"')
    assert "latency not timed" in invoke("validate", "--study", "tiny.toml").output
    invoke("optimize", "--study", "tiny.toml")
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    trials = complete(study)
    assert len(trials) == 2
    client = tracking_client(workdir)
    for trial in trials:
        final = trial.user_attrs["final"]
        assert math.isnan(final["speedup"]) and math.isnan(final["latency_ms"])
        assert not any(key.startswith(("latency_b", "speedup_b")) for key in final)
        assert trial.values == [final["val_accuracy"], final["sparsity"]]
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert "final_val_accuracy" in run.data.metrics and "final_macs" in run.data.metrics
        assert not any("latency" in key or "speedup" in key for key in run.data.metrics)
    table = invoke("pareto", "--study", "tiny.toml").output
    assert "nan" not in table and " -" in table
    invoke("export", "--study", "tiny", "--trial", str(trials[0].number), "--output", "out")
    summary = json.loads((workdir / "out" / "trial.json").read_text(),
                         parse_constant=lambda name: pytest.fail(f"{name} in trial.json"))
    assert summary["figures"]["macs"] > 0 and summary["figures"]["speedup"] is None


@pytest.mark.slow
def test_structured_study_optimises_macs_and_speedup_of_the_smaller_model(workdir):
    (workdir / "filters.toml").write_text(STRUCTURED_STUDY.format(floor=0.0))
    invoke("optimize", "--study", "filters.toml")
    study = optuna.load_study(study_name="filters", storage=STORAGE)
    assert study.metric_names == ["val_accuracy", "macs_reduction", "speedup"]
    for trial in complete(study):
        final = trial.user_attrs["final"]
        assert trial.values == [final["val_accuracy"], final["macs_reduction"],
                                final["speedup_b64"]]  # the largest batch size by default
        assert 0.5 < final["macs_reduction"] < 1  # channels halved: MACs about quartered
        assert trial.constraints == {
            "val_accuracy_floor": 0.0 - final["val_accuracy"],
            "max_speedup_noise": pytest.approx(final["speedup_noise"] - 10)}
    rows = json.loads(invoke("pareto", "--study", "filters.toml", "--format", "json").output)
    assert rows and all(row["macs_reduction"] > 0.5 for row in rows)

    # Export: the smaller model, loadable with plain torch, scoring what the trial recorded.
    trial = complete(study)[0]
    out = workdir / "exported"
    invoke("export", "--study", "filters", "--trial", str(trial.number), "--output", str(out))
    summary = json.loads((out / "trial.json").read_text())
    assert summary["test_accuracy_measured"] == pytest.approx(
        trial.user_attrs["final"]["test_accuracy"], abs=1 / 50 + 1e-9)  # one image
    convs = [shape for name, shape in summary["shapes"].items() if name != "classifier"]
    assert [shape[0] for shape in convs] == [2, 2, 4, 4, 8, 8]  # half of 4, 4, 8, 8, 16, 16
    program = torch.export.load(str(out / "model.pt2")).module()
    images = torch.randn(3, 3, 32, 32)
    slim = models.build("cifar_cnn", width=4)
    assert program(images).shape == (3, 10)
    state = torch.load(out / "state_dict.pt")
    assert state["classifier.weight"].shape == (10, 8)
    assert sum(v.numel() for k, v in state.items() if "running" not in k
               and "num_batches" not in k) == trial.user_attrs["final"]["params_remaining"]
    assert sum(p.numel() for p in slim.parameters()) > trial.user_attrs["final"]["params_remaining"]

    missing = CliRunner().invoke(main, ["export", "--study", "filters", "--trial", "7",
                                        "--output", str(workdir / "nothing")])
    assert missing.exit_code == 1
    assert missing.output.strip() == ("error: study 'filters' has no finished trial 7; "
                                      "finished trials: 0-1")
    assert not (workdir / "nothing").exists()


@pytest.mark.slow
def test_trials_below_the_accuracy_floor_never_reach_the_front(workdir):
    (workdir / "filters.toml").write_text(STRUCTURED_STUDY.format(floor=1.0))
    invoke("optimize", "--study", "filters.toml")
    study = optuna.load_study(study_name="filters", storage=STORAGE)
    assert len(complete(study)) == 2
    # No trial reaches 100% here.
    assert all(t.constraints["val_accuracy_floor"] > 0 for t in complete(study))
    assert study.best_trials == []
    assert json.loads(invoke("pareto", "--study", "filters.toml", "--format", "json").output) == []


@pytest.mark.slow
def test_grid_sampler_runs_every_combination_once(workdir):
    text = STRUCTURED_STUDY.format(floor=0.0).replace("norm = [1, 2]", "norm = 1")
    text = text.replace("n_trials = 2", 'n_trials = 4\nsampler = "grid"').replace(
        "amount = 0.5", "amount = [0.3, 0.5]")
    (workdir / "grid.toml").write_text(text)
    invoke("optimize", "--study", "grid.toml")
    study = optuna.load_study(study_name="filters", storage=STORAGE)
    assert sorted((t.params["method"], t.params["amount"]) for t in complete(study)) == [
        ("ln_structured", 0.3), ("ln_structured", 0.5),
        ("taylor_structured", 0.3), ("taylor_structured", 0.5)]


@pytest.mark.slow
def test_a_failing_trial_is_recorded_and_the_study_goes_on_until_failures_repeat(workdir):
    path = write_study(workdir, retrain_epochs="1")
    path.write_text(path.read_text() + "retrain_lr = 1e9\n")  # every retraining diverges
    result = CliRunner().invoke(main, ["optimize", "--study", str(path), "--n-trials", "5"])

    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: 3 trials in a row failed, the last (trial 2) with "
                           "TrainingDiverged: training loss is nan")
    assert "Traceback" not in result.output
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 3
    assert all(t.user_attrs["fail_reason"].startswith("TrainingDiverged") for t in study.trials)
    client = tracking_client(workdir)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    children = [r for r in runs if r.data.tags.get("prunesearch.role") == "trial"]
    assert len(children) == 3 and all(r.info.status == "FAILED" for r in children)
    assert all("Traceback" in r.data.tags["prunesearch.fail_reason"] for r in children)
    parent, = [r for r in runs if r.data.tags.get("prunesearch.role") == "study"]
    assert parent.info.status == "FAILED"


@pytest.mark.slow
def test_a_failed_trial_is_said_in_one_line(workdir):
    """prunesearch's own line; not Optuna's too, which repeated it with empty parameters."""
    path = write_study(workdir, retrain_epochs="1", settings='latency_device = "none"')
    path.write_text(path.read_text() + "retrain_lr = 1e9\n")  # every retraining diverges
    done = subprocess.run([sys.executable, "-m", "prunesearch", "optimize", "--study",
                           str(path), "--n-trials", "1"], cwd=workdir, capture_output=True,
                          text=True, timeout=300)
    said = [line for line in done.stderr.splitlines() if "trial 0" in line.lower()
            and "fail" in line.lower()]
    assert len(said) == 1 and "TrainingDiverged" in said[0], done.stderr


@pytest.mark.slow
def test_same_study_file_seed_and_parameters_give_the_same_metrics(workdir):
    """Two studies, identical but for their name: the same seed samples the same first
    trial, which must train to exactly the same figures (timings aside)."""
    first = write_study(workdir, retrain_epochs="1")
    second = workdir / "again.toml"
    second.write_text(first.read_text().replace('name = "tiny"', 'name = "again"'))
    invoke("optimize", "--study", str(first), "--n-trials", "1")
    invoke("optimize", "--study", str(second), "--n-trials", "1")
    a, = complete(optuna.load_study(study_name="tiny", storage=STORAGE))
    b, = complete(optuna.load_study(study_name="again", storage=STORAGE))
    assert a.params == b.params
    for before, after in zip(a.user_attrs["curve"], b.user_attrs["curve"], strict=True):
        assert {k: v for k, v in before.items() if not k.startswith(("latency", "speedup"))} == \
               {k: v for k, v in after.items() if not k.startswith(("latency", "speedup"))}


@pytest.mark.slow
def test_resuming_a_study_whose_file_changed_is_refused_unless_allowed(workdir):
    path = write_study(workdir)
    invoke("optimize", "--study", str(path), "--n-trials", "1")
    stored = optuna.load_study(study_name="tiny", storage=STORAGE).user_attrs["spec"]
    path.write_text(path.read_text().replace("high = 0.5", "high = 0.6"))

    refused = CliRunner().invoke(main, ["optimize", "--study", str(path), "--n-trials", "2"])

    assert refused.exit_code == 2
    assert refused.output.strip().splitlines()[-1] == (
        f"error: study 'tiny' in sqlite:///{workdir / 'prunesearch.db'} was run with "
        "space.amount = float [0.2, 0.5], but "
        f"{path} now says float [0.2, 0.6]; pass --allow-spec-change to continue it anyway, "
        "or give the study a new name")
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    assert len(study.trials) == 1 and study.user_attrs["spec"] == stored  # nothing written

    invoke("optimize", "--study", str(path), "--n-trials", "2", "--allow-spec-change")
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    assert len(complete(study)) == 2 and study.user_attrs["spec"]["space.amount"] == \
        "float [0.2, 0.6]"
    # A new budget, description or sampler is not a change of meaning.
    path.write_text(path.read_text().replace('sampler = "tpe"', 'sampler = "random"'))
    invoke("optimize", "--study", str(path), "--n-trials", "2")


@pytest.mark.slow
def test_jobs_runs_workers_that_share_the_study_and_train_the_dense_model_once(workdir):
    path = write_study(workdir, retrain_epochs="1")
    # A real process, so that the workers' output is captured with its own.
    coordinator = subprocess.Popen([sys.executable, "-m", "prunesearch", "optimize", "--study",
                                    str(path), "--n-trials", "3", "--jobs", "2"],
                                   cwd=workdir, stderr=subprocess.PIPE, text=True)
    _, stderr = coordinator.communicate(timeout=600)
    assert coordinator.returncode == 0, stderr

    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    done = complete(study)
    assert 3 <= len(done) <= 4  # the budget, give or take one per other concurrent worker
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)
    # Trials ran in the workers, never in the process that started them (a worker that
    # starts late may find the budget met and run none).
    workers = {t.user_attrs["worker"]["pid"] for t in done}
    assert 1 <= len(workers) <= 2 and coordinator.pid not in workers
    assert stderr.count("dense model trained") == 1  # by the coordinator, before the workers
    assert stderr.count("[worker 1/2] ") and stderr.count("[worker 2/2] ")
    assert stderr.count("dense model from cache") == 2
    client = tracking_client(workdir)
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    parent, = [r for r in runs if r.data.tags.get("prunesearch.role") == "study"]
    assert parent.info.status == "FINISHED"
    children = {int(r.data.tags["prunesearch.trial"]): r for r in runs
                if r.data.tags.get("prunesearch.role") == "trial"}
    for trial in done:
        assert children[trial.number].info.status == "FINISHED"
        assert "final_val_accuracy" in children[trial.number].data.metrics


@pytest.mark.slow
def test_changed_objectives_are_refused_even_with_allow_spec_change(workdir):
    path = write_study(workdir, retrain_epochs="0")
    invoke("optimize", "--study", str(path), "--n-trials", "1")
    path.write_text(path.read_text().replace(
        'sampler = "tpe"', 'sampler = "tpe"\nobjectives = ["val_accuracy", "macs_reduction"]'))
    for allow in ([], ["--allow-spec-change"]):
        refused = CliRunner().invoke(main, ["optimize", "--study", str(path), "--n-trials", "2",
                                            *allow])
        assert refused.exit_code == 2
        assert refused.output.strip().splitlines()[-1].endswith(
            "was run with objectives = val_accuracy, sparsity, but "
            f"{path} now says val_accuracy, macs_reduction; give the study a new name")
    assert len(optuna.load_study(study_name="tiny", storage=STORAGE).trials) == 1


@pytest.mark.slow
def test_timeout_stops_starting_trials_once_it_has_passed(workdir):
    path = write_study(workdir, retrain_epochs="0")
    result = invoke("optimize", "--study", str(path), "--n-trials", "5", "--timeout", "0.01")
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    assert len(study.trials) == 1 and len(complete(study)) == 1  # checked after each trial
    assert "1 of 5 trials finished" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["nsga2", "gp"])
def test_the_other_samplers_run_a_multi_objective_study(workdir, sampler):
    path = write_study(workdir, retrain_epochs="0")
    path.write_text(path.read_text().replace('sampler = "tpe"', f'sampler = "{sampler}"'))
    invoke("optimize", "--study", str(path), "--n-trials", "2")
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    assert len(complete(study)) == 2
    assert len({t.params["amount"] for t in study.trials}) == 2  # sampled, not repeated


def test_export_registers_a_model_that_loads_back_and_scores_what_its_trial_recorded(
        two_trials, workdir, cifar_dir, monkeypatch):
    import mlflow.models
    import mlflow.pytorch

    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    trial = complete(study)[0]
    tracking = f"sqlite:///{workdir / 'mlflow.db'}"  # this test's copy of the store
    result = invoke("export", "--study", "tiny", "--trial", str(trial.number), "--output",
                    str(workdir / "out"), "--tracking-uri", tracking, "--register", "tiny-pruned")
    assert "registered as version 1 of 'tiny-pruned'" in result.output
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    model = mlflow.pytorch.load_model("models:/tiny-pruned/1")
    test = data_module.load_test(cifar_dir)
    assert evaluate(model, test) == pytest.approx(trial.user_attrs["final"]["test_accuracy"],
                                                  abs=1 / len(test))
    assert mlflow.models.get_model_info("models:/tiny-pruned/1").signature is not None
    tags = tracking_client(workdir).get_model_version("tiny-pruned", "1").tags
    assert tags["prunesearch.study"] == "tiny" and tags["prunesearch.trial"] == str(trial.number)
    assert float(tags["prunesearch.sparsity"]) == pytest.approx(trial.values[1])


def test_export_refuses_a_model_that_does_not_score_what_its_trial_recorded(
        two_trials, tiny_study, workdir, monkeypatch):
    # As when --data-dir is not the data the study ran on (on this tiny data a pruned model
    # may score chance on any data, so the measurement itself is made to differ).
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    trial = complete(study)[0]
    recorded = trial.user_attrs["final"]["test_accuracy"]
    monkeypatch.setattr(export, "evaluate", lambda model, split: (recorded + 0.5) % 1)
    result = CliRunner().invoke(main, ["export", "--study", "tiny", "--trial", str(trial.number),
                                       "--output", str(workdir / "out")])
    assert result.exit_code == 1
    message = result.output.strip()
    assert "\n" not in message and message.startswith("error: the rebuilt model scores")
    assert message.endswith("is --data-dir the data the study ran on?")
    assert not (workdir / "out").exists()


def test_export_takes_any_iteration_of_a_trial_each_a_model_of_its_own(two_trials, workdir):
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    trial = next(t for t in complete(study) if len(t.user_attrs["curve"]) >= 2)
    first = trial.user_attrs["curve"][0]
    result = invoke("export", "--study", "tiny", "--trial", str(trial.number), "--iteration",
                    "1", "--output", str(workdir / "it1"))
    assert f"trial {trial.number} iteration 1 of tiny" in result.output
    written = json.loads((workdir / "it1" / "trial.json").read_text())
    assert written["iteration"] == 1
    assert written["figures"]["sparsity"] == first["sparsity"] < trial.values[1]
    assert written["test_accuracy_recorded"] == first["test_accuracy"]

    missing = CliRunner().invoke(main, ["export", "--study", "tiny", "--trial",
                                        str(trial.number), "--iteration", "9", "--output",
                                        str(workdir / "it9")])
    assert missing.exit_code == 1
    assert missing.output.strip() == (f"error: trial {trial.number} of 'tiny' has no iteration "
                                      f"9; its iterations: 1-{len(trial.user_attrs['curve'])}")
    assert not (workdir / "it9").exists()


def test_a_study_recorded_before_n_trials_was_named_reads_its_trial_count():
    """Studies made before 2026-12-07 stored the trial count as `budget`."""
    from prunesearch.stores.records import StudyRecord

    study = optuna.create_study()
    study.set_user_attr("budget", 12)
    assert StudyRecord.of(study).n_trials == 12
