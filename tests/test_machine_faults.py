"""The machine failing a study: a disk that fills up (a real, tiny tmpfs) and a trial out of
GPU memory (the error as CUDA raises it; test_cuda forces a real one on a GPU)."""

import subprocess

import optuna
import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from conftest import write_study
from prunesearch.pruning import loop
from prunesearch.cli import main

TrialState = optuna.trial.TrialState


@pytest.fixture
def tiny_disk(tmp_path):
    """Mount a filesystem of one 4 KiB page at the given folder (needs root, as in CI)."""
    mounted = []

    def mount(folder):
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(folder)],
                              capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small filesystem here: {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def study_of(workdir) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{workdir / 'prunesearch.db'}")


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.mark.slow
def test_a_full_disk_under_the_artifacts_is_one_line_the_trial_queued_again(workdir,
                                                                             tiny_disk):
    artifacts = tiny_disk(workdir / "mlruns")  # where MLflow keeps a local store's artifacts
    write_study(workdir, retrain_epochs="1")
    result = CliRunner().invoke(main, ["optimize", "--study", "tiny.toml"])
    assert result.exit_code == 1, result.output
    errors = error_lines(result.output)
    assert len(errors) == 1 and errors[0].startswith(f"error: disk full: no space left in "
                                                     f"{artifacts}"), result.output
    assert "weights.pt (MLflow artifacts)" in errors[0] and "Traceback" not in result.output
    study = study_of(workdir)
    failed, = study.get_trials(states=(TrialState.FAIL,))
    assert failed.user_attrs["fail_reason"].startswith("disk full")
    queued, = study.get_trials(states=(TrialState.WAITING,))
    assert queued.user_attrs["retry_of"] == failed.number
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    assert client.get_run(failed.user_attrs["mlflow_run_id"]).info.status == "KILLED"

    subprocess.run(["umount", "-l", str(artifacts)], check=True)  # space freed
    result = CliRunner().invoke(main, ["optimize", "--study", "tiny.toml"])
    assert result.exit_code == 0, result.output
    study = study_of(workdir)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert failed.params in [t.params for t in study.get_trials(states=(TrialState.COMPLETE,))]


@pytest.mark.slow
def test_a_dense_cache_that_cannot_be_written_is_a_warning_and_the_study_goes_on(workdir,
                                                                                 tiny_disk):
    cache = tiny_disk(workdir / "cache")  # the workdir fixture's PRUNESEARCH_CACHE_DIR
    write_study(workdir)
    result = CliRunner().invoke(main, ["optimize", "--study", "tiny.toml"])
    assert result.exit_code == 0, result.output
    assert f"disk full: no space left in {cache} while writing the dense model cache" \
        in result.output and "goes on without the cache" in result.output
    assert not list(cache.glob("*.tmp")) and not list(cache.glob("*.pt"))  # nothing half-written
    assert len(study_of(workdir).get_trials(states=(TrialState.COMPLETE,))) == 2


@pytest.mark.slow
def test_a_trial_out_of_gpu_memory_says_so_and_the_study_goes_on(workdir, monkeypatch):
    retrain = loop.train_epochs
    calls = []

    def out_of_memory_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return retrain(*args, **kwargs)

    monkeypatch.setattr(loop, "train_epochs", out_of_memory_once)
    write_study(workdir, retrain_epochs="1")
    result = CliRunner().invoke(main, ["optimize", "--study", "tiny.toml"])
    assert result.exit_code == 0, result.output
    study = study_of(workdir)
    failed, = study.get_trials(states=(TrialState.FAIL,))
    reason = failed.user_attrs["fail_reason"]
    assert reason.startswith("out of GPU memory with model cifar_cnn, batch size 32, schedule")
    assert str(failed.params["amount"]) in reason
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
