"""Budgets: limits a model must keep to count (config.budgets), as Optuna constraints, in the
views and commands, and `prunesearch best`."""

import json
import math

import optuna
import pytest
from click.testing import CliRunner

from prunesearch.cli import main
from prunesearch.config import budgets, studyfile
from prunesearch.pruning.figures import FIXED, IterationResult

from conftest import write_study

STORAGE = "sqlite:///prunesearch.db"


def figures(**values) -> IterationResult:
    """A model's figures as a trial stores them (latency as timed at batch 1 and 64)."""
    return IterationResult.from_dict({"iteration": 1, **dict.fromkeys(FIXED, math.nan),
                                      "latency_b64_ms": math.nan, **values})


DENSE = figures(val_accuracy=0.80, macs=1000, params_remaining=500, latency_b1_ms=2.0)


@pytest.mark.parametrize("key, value, model, over", [
    ("max_accuracy_drop", 0.01, figures(val_accuracy=0.795), None),
    ("max_accuracy_drop", 0.01, figures(val_accuracy=0.78), 0.01),
    ("accuracy_floor", 0.7, figures(val_accuracy=0.65), 0.05),
    ("max_macs", "50%", figures(macs=500), None),
    ("max_macs", "50%", figures(macs=600), 0.1),  # 100 MACs over, a tenth of the dense 1000
    ("max_macs", 400.0, figures(macs=600), 0.2),
    ("max_params", "10%", figures(params_remaining=100), 0.1),
    ("max_latency_ms", 1.0, figures(latency_b1_ms=0.5), None),
    ("max_latency_ms", 1.0, figures(latency_b1_ms=math.nan), math.inf),  # not measured
])
def test_a_budget_is_broken_by_its_excess_over_the_dense_model(key, value, model, over):
    found = budgets.violations(model, DENSE, [budgets.make(key, value)])
    if over is None:
        assert found == {}
    else:
        assert found == {key: pytest.approx(over)}


def test_budgets_read_back_from_the_settings_a_study_recorded():
    made = [budgets.make("max_macs", "40%"), budgets.make("max_params", 2e5),
            budgets.make("max_accuracy_drop", 0.01)]
    recorded = {"max_macs": "40%", "max_params": "200000.0", "max_accuracy_drop": "0.01",
                "max_latency_ms": "unset", "accuracy_floor": "unset"}
    assert sorted(budgets.of_settings(recorded), key=lambda b: b.key) == sorted(
        made, key=lambda b: b.key)
    assert [b.describe() for b in made] == ["max_macs = 40%", "max_params = 200000",
                                           "max_accuracy_drop = 0.01"]


def test_where_no_model_keeps_a_budget_the_nearest_miss_is_named():
    models = [figures(macs=900, val_accuracy=0.8), figures(macs=700, val_accuracy=0.8)]
    lines = budgets.closest_misses(models, DENSE, [budgets.make("max_macs", "50%"),
                                                   budgets.make("max_accuracy_drop", 0.05)])
    assert lines == ["max_macs = 50%: 2 of 2 models broke it; the nearest has macs 700 "
                     "against a limit of 500"]


def invoke(*args, code: int = 0):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result


def test_models_over_budget_never_reach_the_front_and_best_ships_one_within(workdir):
    path = write_study(workdir, settings='max_params = "60%"\nlatency_device = "none"',
                       retrain_epochs="0")
    path.write_text(path.read_text().replace("n_trials = 2", "n_trials = 6"))
    invoke("optimize", "--study", str(path))
    study = optuna.load_study(study_name="tiny", storage=STORAGE)
    dense = study.user_attrs["dense"]
    limit = 0.6 * dense["params_remaining"]
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 6  # the sampler works on with constraints
    for trial in trials:
        final = trial.user_attrs["final"]
        assert trial.constraints == {"max_params": pytest.approx(
            (final["params_remaining"] - limit) / dense["params_remaining"])}
    models = json.loads(invoke("pareto", "--study", "tiny", "--all", "--iterations",
                               "--format", "json").output)
    over = [m for m in models if m["params_remaining"] > limit]
    within = [m for m in models if m["params_remaining"] <= limit]
    assert over and within, "the space should give models on both sides of the budget"
    assert all(set(m["over_budget"]) == {"max_params"} for m in over)
    assert all(m["over_budget"] == {} for m in within)
    front = json.loads(invoke("pareto", "--study", "tiny", "--format", "json").output)
    assert front and all(m["params_remaining"] <= limit for m in front)
    table = invoke("pareto", "--study", "tiny", "--all", "--iterations").output
    assert f"budgets max_params = 60%: {len(within)} models within, {len(over)} over" in table
    assert "over budget" in table and "max_params" in table
    assert f"{len(within)} models within" in invoke("status", "--study", "tiny").output

    best = json.loads(invoke("best", "--study", "tiny", "--format", "json").output)
    sparsest = max(within, key=lambda m: (m["sparsity"], m["val_accuracy"]))
    assert (best["trial"], best["iteration"]) == (sparsest["trial"], sparsest["iteration"])
    most_accurate = invoke("best", "--study", "tiny", "--by", "val_accuracy").output
    top = max(m["val_accuracy"] for m in within)
    assert f"validation accuracy {100 * top:.2f}%" in most_accurate
    assert "prunesearch export --study tiny --trial" in most_accurate

    # A budget is part of what the study means.
    path.write_text(path.read_text().replace('"60%"', '"70%"'))
    refused = invoke("optimize", "--study", str(path), "--n-trials", "7", code=2)
    assert "max_params = 60%, but" in refused.output and "--allow-spec-change" in refused.output
    # So are the batch sizes latency is timed at (what max_latency_ms and speedup read).
    path.write_text(path.read_text().replace('"70%"', '"60%"\nlatency_batch_sizes = [8]'))
    refused = invoke("optimize", "--study", str(path), "--n-trials", "7", code=2)
    assert "latency_batch_sizes = [1, 64], but" in refused.output


def test_best_says_what_every_model_broke_while_none_keeps_the_budgets(workdir):
    path = write_study(workdir, settings="accuracy_floor = 1.0\nlatency_device = \"none\"",
                       retrain_epochs="0")
    invoke("optimize", "--study", str(path))
    result = invoke("best", "--study", "tiny", code=1)
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("error: study 'tiny' has no model within its budgets to "
                                    "ship yet: accuracy_floor = 1: ")
    assert "models broke it; the nearest has val_accuracy 0." in result.output
    assert json.loads(invoke("pareto", "--study", "tiny", "--format", "json").output) == []


def test_a_speedup_that_did_not_repeat_is_over_the_noise_budget():
    noise = budgets.make("max_speedup_noise", 0.1)
    steady = figures(speedup_b64=2.0, speedup_b64_spread=0.1)  # 5% of the speed-up
    erratic = figures(speedup_b64=2.0, speedup_b64_spread=0.5)  # 25%
    assert steady.speedup_noise == pytest.approx(0.05)
    assert budgets.violations(steady, DENSE, [noise]) == {}
    assert budgets.violations(erratic, DENSE, [noise]) == {
        "max_speedup_noise": pytest.approx(0.15)}


def test_the_speedup_objective_brings_the_noise_budget_unless_the_file_sets_one(workdir):
    speedup = 'objectives = ["val_accuracy", "speedup"]\nlatency_device = "cpu"'
    assert studyfile.load(str(write_study(workdir, settings=speedup))).max_speedup_noise == \
        budgets.DEFAULT_SPEEDUP_NOISE
    assert studyfile.load(str(write_study(
        workdir, settings=f"{speedup}\nmax_speedup_noise = 0.3"))).max_speedup_noise == 0.3
    assert studyfile.load(str(write_study(workdir))).max_speedup_noise is None
