"""`validate`, `studies`, `status` and `ui` through the real entry point."""

import dataclasses
import json
import pickle
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from prunesearch.config import studyfile
from prunesearch.cli import main

from conftest import contents, PortTaken, on_a_free_port, write_study


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_validate_prints_resolved_settings_and_every_schedule_parameter(tiny_study):
    result = invoke("validate", "--study", str(tiny_study))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{tiny_study}: valid"
    assert "model: name cifar_cnn, width 4" in result.output
    assert "train_subset unset" in result.output  # defaults are filled in
    assert "trials: early_stopping none, repeats 1" in lines
    space = {line.split()[0]: line.split()[1:] for line in lines[lines.index("search space:") + 1:]}
    assert space["amount"] == ["float", "[0.2,", "0.5]"]
    assert space["iterations"] == ["int", "[1,", "2]"]
    assert space["method"] == ["fixed", "l1_unstructured"]
    assert space["reinit"] == ["categorical", "finetune,", "rewind,", "random"]
    assert space["retrain_lr"] == ["default", "0.01"]


def test_validate_shows_the_early_stopping_rule_when_it_is_on(workdir):
    path = write_study(workdir, settings='early_stopping = "mo-asha"\nrung_point = "current"')
    result = invoke("validate", "--study", str(path))
    assert result.exit_code == 0, result.output
    assert ("trials: early_stopping mo-asha (reduction_factor 3, first_rung_epochs 1, "
            "rung_point current), repeats 1") in result.output.splitlines()


def test_validate_refuses_a_bad_file_in_one_line_with_exit_2(workdir):
    path = write_study(workdir)
    path.write_text(path.read_text().replace("high = 0.5", "high = 1.5"))
    result = invoke("validate", "--study", str(path))
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "space.amount.high = 1.5" in result.output


@pytest.mark.slow
def test_studies_lists_files_and_trial_counts_per_state(workdir):
    (workdir / "studies").mkdir()
    write_study(workdir / "studies", name="tiny.toml")
    (workdir / "studies" / "broken.toml").write_text("name = 3\n")
    before = invoke("studies")
    assert before.exit_code == 0, before.output
    assert "tiny" in before.output and "a test study" in before.output
    assert "l1-iterative" in before.output  # shipped files too
    assert "broken" in before.output and "INVALID" in before.output
    assert "no study storage" in before.output and not (workdir / "prunesearch.db").exists()

    assert invoke("optimize", "--study", "tiny", "--n-trials", "1").exit_code == 0
    after = invoke("studies")
    header, row = (line.split() for line in after.output.splitlines()[-2:])
    assert header == ["study", "complete", "stopped", "fail", "running", "waiting"]
    assert row == ["tiny", "1", "0", "0", "0", "0"]


def test_studies_with_a_missing_storage_is_an_error_and_creates_nothing(workdir):
    result = invoke("studies", "--storage", f"sqlite:///{workdir / 'elsewhere.db'}")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith("error: no study storage")
    assert not (workdir / "elsewhere.db").exists()


@pytest.mark.slow
def test_status_shows_progress_dense_accuracy_and_front_by_file_or_stored_name(workdir):
    write_study(workdir)
    assert invoke("optimize", "--study", "tiny.toml", "--n-trials", "1").exit_code == 0
    result = invoke("status", "--study", "tiny.toml")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("study tiny: 1 of 1 trials finished (1 complete, 0 stopped early), "
                        "0 failed, 0 running, 0 queued")
    assert lines[1].startswith("elapsed ") and "left" not in lines[1]  # nothing left to run
    assert lines[2].startswith("dense model: val ")
    assert lines[3] == "Pareto front:" and lines[4].split()[:2] == ["trial", "iter"]
    assert lines[5].split()[0] == "0"
    by_name = invoke("status", "--study", "tiny")  # the stored name works too
    assert by_name.output == result.output
    unknown = invoke("status", "--study", "nope")
    assert unknown.exit_code != 0
    assert unknown.output.strip() == "error: no study 'nope' in this storage; studies there: tiny"


def start_ui(workdir, port: int):
    """`prunesearch ui` on `port`, once it answers: (server, port, experiment)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "prunesearch", "ui", "--study", "tiny", "--port", str(port)],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=tiny"
    return server, port, first_answer(server, url, "the MLflow UI")["experiment"]


def first_answer(server: subprocess.Popen, url: str, what: str):
    """The JSON at `url` once `server` serves it; PortTaken if the server exited first."""
    for _ in range(120):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.load(response)
        except OSError:
            if server.poll() is not None:
                raise PortTaken(server.communicate()[0])
            time.sleep(0.5)
    server.kill()
    pytest.fail(f"{what} did not answer within a minute")


@pytest.mark.slow
def test_ui_serves_the_study_runs_of_its_tracking_store(workdir):
    write_study(workdir)
    assert invoke("optimize", "--study", "tiny.toml", "--n-trials", "1").exit_code == 0
    server, port, experiment = on_a_free_port(lambda port: start_ui(workdir, port))
    try:
        search = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", method="POST",
            data=json.dumps({"experiment_ids": [experiment["experiment_id"]]}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(search, timeout=10) as response:
            runs = json.load(response)["runs"]
        names = {run["info"]["run_name"]: run["info"]["run_id"] for run in runs}
        assert len(names) == 2 and names.keys() > {"tiny"}
        assert next(name for name in names if name != "tiny").startswith("trial 0: ")
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    runs_page = (f"http://127.0.0.1:{port}/#/experiments/{experiment['experiment_id']}/runs")
    assert (f"  trials:       {runs_page}?viewStateShareKey=prunesearch-front&compareRunsMode="
            "TABLE&workflowType=machine_learning") in output
    assert f"  front chart:  {runs_page}?viewStateShareKey=prunesearch-front" in output
    # the study's run, whose Overview shows the front's table
    assert f"  study run:    {runs_page}/{names['tiny']}?workflowType=machine_learning" in output


@pytest.mark.parametrize("command", [[], *([name] for name in main.commands)],
                         ids=lambda c: c[0] if c else "prunesearch")
def test_every_help_has_examples(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "examples:" in result.output
    first_example = result.output.split("examples:")[1].strip().splitlines()[0]
    assert first_example.startswith(" ".join(["prunesearch", *command]))


BAD_INPUT = {
    "storage URL not a URL": (["--storage", "notaurl"], 1,
                              "storage 'notaurl' cannot be used (Could not parse"),
    "storage on a missing folder": (["--storage", "sqlite:////nonexistent/dir/x.db"], 1,
                                    "the folder /nonexistent/dir does not exist"),
    "tracking store on a missing folder": (["--tracking-uri", "sqlite:////nonexistent/m.db"], 1,
                                           "the folder /nonexistent does not exist"),
    # Refused at once, without --outage-wait 0: a server that never answered is a wrong address.
    "PostgreSQL server unreachable": (["--storage", "postgresql://u:secret@127.0.0.1:9/db"], 1,
                                      "study database postgresql://u:***@127.0.0.1:9/db cannot "
                                      "be reached (OperationalError: connection failed"),
    "tracking server unreachable": (["--tracking-uri", "http://127.0.0.1:9"], 1,
                                    "MLflow tracking server http://127.0.0.1:9 cannot be reached"),
    "no trials": (["--n-trials", "0"], 2, "optimize: Invalid value for '--n-trials': 0 is not"),
    "negative trials": (["--n-trials", "-3"], 2, "Invalid value for '--n-trials'"),
    "no workers": (["--jobs", "0"], 2, "optimize: Invalid value for '--jobs': 0 is not"),
    "unknown device": (["--device", "tpu"], 2, "'tpu' is not one of 'auto', 'cpu', 'cuda'"),
    "unknown option": (["--trails", "3"], 2, "optimize: No such option '--trails'"),
}
if not torch.cuda.is_available():
    BAD_INPUT["cuda without a GPU"] = (["--device", "cuda"], 2,
                                       "--device cuda: no CUDA device is available")


@pytest.mark.parametrize("options, code, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_option_or_store_is_one_line_and_writes_nothing(workdir, options, code, message):
    write_study(workdir)
    before = contents(workdir)
    result = invoke("optimize", "--study", "tiny.toml", *options)
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert contents(workdir) == before


def broken_copy(cifar_dir, target, *, drop=None, replace=None):
    """A copy of the tiny CIFAR folder with one file left out or overwritten."""
    folder = target / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for source in (cifar_dir / "cifar-10-batches-py").iterdir():
        if source.name != drop:
            (folder / source.name).write_bytes(source.read_bytes())
    if replace:
        name, content = replace
        (folder / name).write_bytes(content)
    return target


BAD_DATA = {
    "test batch missing": (dict(drop="test_batch"), "test_batch: missing"),
    "truncated batch": (dict(replace=("data_batch_2", b"\x80\x04trunc")),
                        "data_batch_2: not a CIFAR-10 batch"),
    "images of the wrong shape": (dict(replace=("data_batch_4", pickle.dumps(
        {"data": np.zeros((5, 1000), dtype=np.uint8), "labels": [0] * 5}))),
        "data_batch_4: not a CIFAR-10 batch"),
}


@pytest.mark.parametrize("damage, message", BAD_DATA.values(), ids=BAD_DATA.keys())
def test_bad_data_folder_is_one_line_and_writes_nothing(workdir, cifar_dir, tmp_path_factory,
                                                        damage, message):
    data_dir = broken_copy(cifar_dir, tmp_path_factory.mktemp("broken"), **damage)
    write_study(workdir)
    before = contents(workdir)
    result = invoke("optimize", "--study", "tiny.toml", "--data-dir", str(data_dir))
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert contents(workdir) == before


def test_the_worker_command_line_carries_every_run_setting(tiny_study, tmp_path):
    from prunesearch.cli.running import run_settings
    from prunesearch.search.optimize import RunSettings

    spec = studyfile.load(str(tiny_study))
    # Every field away from its default, so that one the command line drops shows.
    settings = RunSettings(study=spec.path.resolve(), n_trials=7, timeout=12.5,
                           storage_url=f"sqlite:///{tmp_path / 'o.db'}",
                           tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
                           data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                           device="cpu", allow_spec_change=True, outage_wait_s=42.0,
                           wait_for_prepare=30.0)
    defaults = {f.name: f.default for f in dataclasses.fields(RunSettings)}
    assert all(getattr(settings, name) != default for name, default in defaults.items())
    command, *argv = settings.to_argv()
    params = main.commands[command].make_context(command, argv).params
    study, jobs = params.pop("study"), params.pop("jobs")  # the command's own, not the run's
    assert jobs == 1 and run_settings(studyfile.load(study), **params) == settings


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the study would run")
def test_latency_on_a_gpu_without_one_is_one_line_and_writes_nothing(workdir):
    path = write_study(workdir)
    path.write_text(path.read_text().replace('latency_device = "none"',
                                             'latency_device = "cuda"'))
    before = contents(workdir)
    result = invoke("optimize", "--study", str(path))
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: {path}: latency_device = 'cuda' but no CUDA "
                                     "device is available; use 'cpu' or run on a machine with "
                                     "a GPU")
    assert contents(workdir) == before


@pytest.mark.slow
def test_compare_puts_several_fronts_on_their_common_axes_and_logs_a_run(workdir):
    for name, method in (("tiny", "l1_unstructured"), ("other", "random_unstructured")):
        path = write_study(workdir, name=f"{name}.toml", retrain_epochs="0")
        path.write_text(path.read_text().replace('name = "tiny"', f'name = "{name}"')
                        .replace('method = "l1_unstructured"', f'method = "{method}"'))
        assert invoke("optimize", "--study", str(path)).exit_code == 0
    result = invoke("compare", "tiny", "other", "--format", "json", "--plot", "fronts.png",
                    "--log-run")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {row["study"] for row in rows} == {"tiny", "other"}
    for study in ("tiny", "other"):
        front = [r for r in rows if r["study"] == study]
        for row in front:  # nothing in a study's front beaten on both axes by its own trials
            assert not any(o["sparsity"] > row["sparsity"] and o["val_accuracy"] >
                           row["val_accuracy"] for o in front)
    assert (workdir / "fronts.png").stat().st_size > 0 and (workdir / "fronts.html").exists()
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    run, = client.search_runs([client.get_experiment_by_name("prunesearch-compare")
                               .experiment_id])
    assert run.info.run_name == "tiny vs other" and run.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "fronts.png", "fronts.html", "fronts.json"}


@pytest.mark.slow
def test_optuna_dashboard_serves_the_study_and_its_front(workdir):
    import optuna

    write_study(workdir, retrain_epochs="0")
    assert invoke("optimize", "--study", "tiny.toml").exit_code == 0

    def start_dashboard(port: int):
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "optuna-dashboard"),
             f"sqlite:///{workdir / 'prunesearch.db'}",
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return server, port, first_answer(server, f"http://127.0.0.1:{port}/api/studies",
                                          "optuna-dashboard")["study_summaries"]

    server, port, summaries = on_a_free_port(start_dashboard)
    try:
        summary, = summaries
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/"
                                    f"{summary['study_id']}?after=0", timeout=10) as response:
            shown = json.load(response)
    finally:
        server.kill()
        server.communicate()
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{workdir / 'prunesearch.db'}")
    assert summary["study_name"] == "tiny"
    assert shown["objective_names"] == ["val_accuracy", "sparsity"]
    assert sorted(t["number"] for t in shown["best_trials"]) == sorted(
        t.number for t in study.best_trials)
