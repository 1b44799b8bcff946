"""`prunesearch prepare` and `optimize --wait-for-prepare` in this process, on SQLite: the
worker of a node whose cache prepare did not fill fetches the dense model from the study run,
and a worker that waits past its bound says so in one line and writes nothing. The race of
many workers on PostgreSQL is in test_distributed."""

import pytest
from click.testing import CliRunner

from conftest import contents
from prunesearch.cli import main


@pytest.mark.slow
def test_a_worker_with_a_cache_of_its_own_fetches_the_dense_model_prepare_logged(
        workdir, tiny_study):
    prepared = CliRunner().invoke(main, ["prepare", "--study", str(tiny_study)])
    assert prepared.exit_code == 0, prepared.output
    assert "dense model trained" in prepared.output and "its workers run:" in prepared.output
    command = prepared.output.splitlines()[-1]
    assert command.startswith("prunesearch optimize --study ") and \
        "--wait-for-prepare" in command

    worker = CliRunner().invoke(main, ["optimize", "--study", str(tiny_study), "--n-trials",
                                       "1", "--cache-dir", str(workdir / "node-cache"),
                                       "--wait-for-prepare", "10"])
    assert worker.exit_code == 0, worker.output
    assert "fetched from the study run" in worker.output
    assert "dense epoch" not in worker.output and "not prepared yet" not in worker.output
    made = [path.name for path in (workdir / "cache").glob("dense-*.pt")]
    assert [path.name for path in (workdir / "node-cache").glob("dense-*.pt")] == made

    again = CliRunner().invoke(main, ["prepare", "--study", str(tiny_study)])
    assert again.exit_code == 0 and "prepared already" in again.output, again.output
    assert "dense epoch" not in again.output


def test_a_worker_that_waits_past_its_bound_says_so_and_writes_nothing(workdir, tiny_study):
    before = contents(workdir)
    result = CliRunner().invoke(main, ["optimize", "--study", str(tiny_study),
                                       "--wait-for-prepare", "0.5"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "was not prepared within 0.5 s" in errors[0], result.output
    assert "Traceback" not in result.output and contents(workdir) == before
