"""MO-ASHA early stopping: the promotion rule on synthetic points, its state in the study's
storage (shared by every handle on it, so by resumed runs and other workers), and stopped
trials through the CLI."""

import math
import random

import optuna
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from prunesearch.search import early_stopping
from prunesearch.foundation import pareto
from prunesearch.stores import records
from prunesearch.views import study_view
from prunesearch.cli import main
from prunesearch.search.early_stopping import Rule, StoppedEarly, decide
from prunesearch.pruning.figures import IterationResult
from prunesearch.stores.records import TrialRecord
from prunesearch.pruning.schedule import Schedule

from conftest import write_study

STORAGE = "sqlite:///prunesearch.db"


def test_ranks_and_crowding_follow_non_dominated_sorting():
    points = [(0.9, 0.1), (0.5, 0.5), (0.1, 0.9), (0.4, 0.4), (0.1, 0.1)]
    assert pareto.ranks(points) == [0, 0, 0, 1, 2]
    assert pareto.optimal(points) == [0, 1, 2]
    distance = pareto.crowding(points[:3])
    assert math.isinf(distance[0]) and math.isinf(distance[2])
    assert distance[1] == pytest.approx(2.0)  # (0.9-0.1)/0.8 on each axis


def test_a_trial_dominated_at_its_rung_stops_and_the_top_third_goes_on():
    # Six trials at the rung, reduction factor 3: the first two in order go on.
    points = {0: [0.8, 0.5], 1: [0.6, 0.9], 2: [0.7, 0.7], 3: [0.5, 0.5], 4: [0.4, 0.4],
              5: [0.79, 0.49]}
    goes_on = {n for n in points if decide(n, points, 3).goes_on}
    # Rank 0 is {0, 1, 2}; 0 and 1 are its extremes (infinite crowding distance).
    assert goes_on == {0, 1}
    stopped = decide(4, points, 3)
    assert not stopped.goes_on and "ranked 6 of 6" in stopped.reason


def test_ties_go_to_the_earlier_trial():
    points = {3: [0.5, 0.5], 7: [0.5, 0.5], 9: [0.1, 0.1]}
    assert decide(3, points, 3).goes_on
    assert not decide(7, points, 3).goes_on


def test_with_fewer_trials_than_the_reduction_factor_only_non_dominated_ones_go_on():
    points = {0: [0.6, 0.5], 1: [0.4, 0.8], 2: [0.3, 0.3]}
    assert decide(0, points, 4).goes_on and decide(1, points, 4).goes_on
    stopped = decide(2, points, 4)
    assert not stopped.goes_on and "another trial" in stopped.reason
    assert decide(0, {0: [0.1, 0.1]}, 3).goes_on  # the first trial at a rung


def test_rungs_are_geometric_in_retraining_epochs():
    rule = Rule(reduction_factor=3, first_rung_epochs=1)
    assert rule.rungs_reached(0, 2) == [1]
    assert rule.rungs_reached(2, 4) == [3]
    assert rule.rungs_reached(4, 6) == []
    assert rule.rungs_reached(0, 9) == [1, 3, 9]
    assert Rule(2, 2).rungs_reached(0, 1) == []


def result(iteration, val_accuracy, sparsity):
    return IterationResult(
        iteration=iteration, sparsity=sparsity, macs_reduction=sparsity / 2,
        val_accuracy=val_accuracy, test_accuracy=val_accuracy, weights_remaining=1,
        params_remaining=1, macs=1, train_loss=1.0,
        timed={"latency_b1_ms": 1.0, "speedup_b1": 1.0, "speedup_b1_spread": 0.0,
               "latency_b64_ms": 1.0, "speedup_b64": 1.2, "speedup_b64_spread": 0.0})


def test_a_point_is_the_accuracy_now_and_where_the_schedule_ends():
    schedule = Schedule(method="l1_unstructured", amount=0.5, iterations=3, retrain_epochs=1,
                        reinit="finetune")
    # After 1 of 3 iterations 50% is pruned; the schedule ends at 87.5%.
    here = early_stopping.point(result(1, 0.6, 0.5), schedule, ("val_accuracy", "sparsity"))
    assert here == pytest.approx([0.6, 0.875])
    here = early_stopping.point(result(1, 0.6, 0.5), schedule,
                                ("val_accuracy", "macs_reduction", "speedup"))
    assert here == pytest.approx([0.6, 0.4375, 1.2])


def test_a_current_point_is_the_model_as_it_is_at_the_rung():
    schedule = Schedule(method="l1_unstructured", amount=0.5, iterations=3, retrain_epochs=1,
                        reinit="finetune")
    here = early_stopping.point(result(1, 0.6, 0.5), schedule,
                                ("val_accuracy", "sparsity", "macs_reduction"), "current")
    assert here == pytest.approx([0.6, 0.5, 0.25])


def trial_with_rungs(study, rungs):
    """A trial as another worker (or an earlier run) left it: running, its points stored."""
    trial = study.ask()
    records.save_trial(trial, rungs=rungs)
    return trial


def test_the_rungs_live_in_the_storage_every_worker_and_resumed_run_reads(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = optuna.create_study(study_name="s", storage=storage,
                                directions=["maximize", "maximize"])
    # An earlier run left a complete trial; another worker is running one.
    done = trial_with_rungs(first, {"1": [0.9, 0.9]})
    first.tell(done, [0.9, 0.9])
    trial_with_rungs(first, {"1": [0.8, 0.95]})
    # A new worker (its own handle on the storage) sees both at the rung.
    second = optuna.load_study(study_name="s", storage=storage)
    mine = second.ask()
    schedule = Schedule(method="l1_unstructured", amount=0.5, iterations=3, retrain_epochs=1,
                        reinit="finetune")
    with pytest.raises(StoppedEarly, match=r"1-epoch rung: ranked 3 of 3 trials there"):
        early_stopping.check(mine, result(1, 0.5, 0.5), schedule,
                             ("val_accuracy", "sparsity"), Rule(3, 1))
    stored = TrialRecord.of(optuna.load_study(study_name="s", storage=storage)
                            .trials[mine.number]).rungs
    assert stored == {"1": pytest.approx([0.5, 0.875])}


def test_failed_trials_do_not_count_at_a_rung(tmp_path):
    study = optuna.create_study(directions=["maximize", "maximize"])
    failed = trial_with_rungs(study, {"1": [0.99, 0.99]})
    study.tell(failed, state=TrialState.FAIL)
    mine = study.ask()
    schedule = Schedule(method="l1_unstructured", amount=0.5, iterations=2, retrain_epochs=1,
                        reinit="finetune")
    early_stopping.check(mine, result(1, 0.5, 0.5), schedule, ("val_accuracy", "sparsity"),
                         Rule(3, 1))  # alone at the rung: goes on


def test_the_last_iteration_records_its_point_but_never_stops(tmp_path):
    study = optuna.create_study(directions=["maximize", "maximize"])
    study.tell(trial_with_rungs(study, {"1": [0.99, 0.99]}), [0.99, 0.99])
    mine = study.ask()
    schedule = Schedule(method="l1_unstructured", amount=0.5, iterations=1, retrain_epochs=1,
                        reinit="finetune")
    early_stopping.check(mine, result(1, 0.1, 0.5), schedule, ("val_accuracy", "sparsity"),
                         Rule(3, 1))
    assert TrialRecord.of(study.trials[mine.number]).rungs == {"1": pytest.approx([0.1, 0.5])}


EARLY = 'early_stopping = "mo-asha"\nreduction_factor = 2'


@pytest.mark.slow
def test_stopped_trials_are_recorded_honestly_end_to_end(workdir):
    study_file = write_study(workdir, retrain_epochs="1", settings=EARLY)
    text = study_file.read_text().replace("n_trials = 2", "n_trials = 5").replace(
        "iterations = { low = 1, high = 2 }", "iterations = 3")
    study_file.write_text(text)
    output = CliRunner().invoke(main, ["optimize", "--study", str(study_file)])
    assert output.exit_code == 0, output.output

    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    stopped = [t for t in study.trials if study_view.is_stopped(t)]
    # The budget counts finished trials; the sampler (TPE) went on after stopped ones, and
    # learns from them: they are COMPLETE with the figures they reached.
    assert len(study.trials) == 5 and {t.state for t in study.trials} == {TrialState.COMPLETE}
    assert stopped, "no trial stopped: the rule never fired"
    assert len(stopped) < 5, "every trial stopped: the rule kept none"
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    for trial in stopped:
        record = TrialRecord.of(trial)
        assert len(record.curve) < 3
        assert record.stopped.startswith(f"stopped after iteration {len(record.curve)} of 3")
        assert record.final == record.curve[-1]
        assert trial.values == [record.curve[-1]["val_accuracy"], record.curve[-1]["sparsity"]]
        run = client.get_run(record.mlflow_run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags["prunesearch.state"] == "STOPPED"
        assert run.data.tags["prunesearch.stop_reason"] == record.stopped
        assert run.data.metrics["final_sparsity"] == record.curve[-1]["sparsity"]
        kept = client.list_artifacts(record.mlflow_run_id, "model")
        assert len(kept) == len(record.curve)  # each iteration's weights
    for trial in study.trials:  # every trial recorded its point at the rungs it reached
        assert "1" in TrialRecord.of(trial).rungs

    status = CliRunner().invoke(main, ["status", "--study", "tiny"])
    assert f"({5 - len(stopped)} complete, {len(stopped)} stopped early)" in status.output
    parent = client.search_runs(
        [client.get_experiment_by_name("tiny").experiment_id],
        "tags.`prunesearch.role` = 'study'")[0]
    assert parent.data.metrics["trials_stopped"] == len(stopped)


def test_stopped_trials_count_apart_from_complete_ones_old_pruned_ones_too():
    study = optuna.create_study(directions=["maximize", "maximize"])
    study.add_trial(optuna.trial.create_trial(values=[0.5, 0.9]))
    study.add_trial(optuna.trial.create_trial(values=[0.6, 0.3],
                                              user_attrs={"stopped": "stopped after 1 of 3"}))
    study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED))  # recorded before
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    assert [study_view.is_stopped(t) for t in study.trials] == [False, True, True, False]
    assert study_view.counts(study.trials) == {"COMPLETE": 1, "STOPPED": 2, "FAIL": 1,
                                            "RUNNING": 0, "WAITING": 0}


@pytest.mark.slow
def test_two_workers_record_their_rungs_in_the_one_storage(workdir):
    study_file = write_study(workdir, retrain_epochs="1", settings=EARLY)
    study_file.write_text(study_file.read_text().replace("n_trials = 2", "n_trials = 4").replace(
        "iterations = { low = 1, high = 2 }", "iterations = 2"))
    output = CliRunner().invoke(main, ["optimize", "--study", str(study_file), "--jobs", "2"])
    assert output.exit_code == 0, output.output

    trials = optuna.load_study(study_name="tiny", storage=STORAGE).trials
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    assert len(trials) >= 4 and not any(t.state == TrialState.RUNNING for t in trials)
    at_first_rung = {TrialRecord.of(t).worker["pid"] for t in trials
                     if "1" in TrialRecord.of(t).rungs}
    assert len(at_first_rung) == 2  # both workers wrote their points where the other reads


def test_the_front_of_many_points_is_the_first_non_dominated_layer():
    rng = random.Random(0)
    points = [(round(rng.random(), 2), round(rng.random(), 2), rng.choice((0.0, 1.0)))
              for _ in range(300)]
    points += points[:5]  # duplicates: equal points do not dominate each other
    assert pareto.optimal(points) == [i for i, r in enumerate(pareto.ranks(points)) if r == 0]
