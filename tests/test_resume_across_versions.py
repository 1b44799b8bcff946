"""A study begun by an earlier prunesearch resumes under this one: its Optuna storage, MLflow
runs and tags, stored weights and dense cache are read as they were written. The earlier
version is the repository's own history, run from a `git archive` of it."""

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from prunesearch.cli import main

from conftest import write_study

ROOT = Path(__file__).parents[1]
BEFORE_PACKAGES = "7350dcb"  # the last commit with the flat module layout (issue 27)


@pytest.fixture(scope="module")
def earlier_version(tmp_path_factory) -> Path:
    """The source tree of BEFORE_PACKAGES (its src/ and the studies it ships)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_PACKAGES, "src",
                              "studies"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"this clone lacks commit {BEFORE_PACKAGES} (shallow?): "
                    f"{archive.stderr.decode().strip()}")
    folder = tmp_path_factory.mktemp("earlier")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_a_study_begun_before_the_packages_resumes_after_them(workdir, earlier_version):
    def earlier(*args: str) -> str:
        done = subprocess.run([sys.executable, *args], cwd=workdir, capture_output=True,
                              text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(earlier_version)})
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    assert earlier("-c", "import prunesearch.study as m; print(m.__file__)").startswith(
        str(earlier_version))  # the flat layout, from the archive
    study_file = write_study(workdir, retrain_epochs="1", settings='latency_device = "cpu"')
    earlier("-m", "prunesearch", "optimize", "--study", str(study_file), "--n-trials", "1")
    dense_files = sorted((workdir / "cache").glob("*"))
    written_at = [path.stat().st_mtime_ns for path in dense_files]

    invoke("optimize", "--study", str(study_file), "--n-trials", "2")

    study = optuna.load_study(study_name="tiny", storage="sqlite:///prunesearch.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    # The dense model came from the earlier run's cache: nothing was trained again.
    assert [p.stat().st_mtime_ns for p in sorted((workdir / "cache").glob("*"))] == written_at
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    studies = [r for r in runs if r.data.tags.get("prunesearch.role") == "study"]
    trials = sorted((r for r in runs if r.data.tags.get("prunesearch.role") == "trial"),
                    key=lambda r: int(r.data.tags["prunesearch.trial"]))
    assert len(studies) == 1  # the earlier study run goes on, no second one
    assert [r.data.tags["prunesearch.trial"] for r in trials] == ["0", "1"]
    assert all(r.data.tags["prunesearch.study"] == "tiny" and
               r.data.tags["mlflow.parentRunId"] == studies[0].info.run_id for r in trials)
    assert {r.info.status for r in runs} == {"FINISHED"}
    # Every model of both versions' trials is read back: the front, and a model exported.
    every = json.loads(invoke("pareto", "--study", "tiny", "--all", "--iterations",
                              "--format", "json"))
    assert {row["trial"] for row in every} == {0, 1}
    # The earlier version timed batch 1 and 64 under fixed names: the objective's and the
    # latency budget's figures are read off them.
    assert all(row["speedup"] == row["speedup_b64"] and row["latency_ms"] == row["latency_b1_ms"]
               for row in every)
    assert "of tiny: test accuracy" in invoke("export", "--study", "tiny", "--trial", "0",
                                              "--output", str(workdir / "t0"))
    assert (workdir / "t0" / "state_dict.pt").exists()
