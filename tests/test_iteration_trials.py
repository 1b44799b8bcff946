"""The sampler learns from every iteration: iteration k of a trial shown as the schedule with k
iterations, a stopped trial as the schedule it ran, the study's storage left as it is."""

import dataclasses

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

from prunesearch import iteration_trials, studyfile
from prunesearch.iteration_trials import LearningFromIterations, per_iteration

from conftest import write_study

OBJECTIVES = ("val_accuracy", "sparsity")
DISTRIBUTIONS = {"method": CategoricalDistribution(["l1_unstructured", "global_l1"]),
                 "iterations": IntDistribution(1, 4)}


def figures(iteration, val_accuracy, sparsity):
    return {"iteration": iteration, "val_accuracy": val_accuracy, "sparsity": sparsity,
            "test_accuracy": 0.0}


def trial(iterations, curve, state=TrialState.COMPLETE, **attrs):
    """A trial that planned `iterations` and ran len(curve) of them."""
    values = [curve[-1]["val_accuracy"], curve[-1]["sparsity"]] \
        if curve and state == TrialState.COMPLETE else None
    made = optuna.trial.create_trial(
        state=state, values=values, params={"method": "global_l1", "iterations": iterations},
        distributions=DISTRIBUTIONS, user_attrs={"curve": curve, **attrs})
    made.number = 7
    return made


def test_each_iteration_is_the_schedule_with_that_many_iterations():
    curve = [figures(1, 0.6, 0.5), figures(2, 0.55, 0.75), figures(3, 0.4, 0.875)]
    shown = per_iteration(trial(3, curve), OBJECTIVES)
    assert [t.params for t in shown] == [{"method": "global_l1", "iterations": k}
                                         for k in (1, 2, 3)]
    assert [t.values for t in shown] == [[0.6, 0.5], [0.55, 0.75], [0.4, 0.875]]
    assert {t.state for t in shown} == {TrialState.COMPLETE}
    assert {t.number for t in shown} == {7}
    assert shown[0].distributions == DISTRIBUTIONS


def test_a_stopped_trial_is_the_schedule_it_ran_not_the_one_it_planned():
    stopped = trial(4, [figures(1, 0.6, 0.5)], stopped="stopped after iteration 1 of 4")
    [shown] = per_iteration(stopped, OBJECTIVES)
    assert shown.params["iterations"] == 1 and shown.values == [0.6, 0.5]


def test_a_running_trial_shows_its_iterations_and_stays_running_for_the_liar():
    running = trial(3, [figures(1, 0.6, 0.5)], state=TrialState.RUNNING)
    done, still = per_iteration(running, OBJECTIVES)
    assert done.state == TrialState.COMPLETE and done.params["iterations"] == 1
    assert still is running


def test_the_accuracy_floor_is_each_iterations_constraint():
    curve = [figures(1, 0.6, 0.5), figures(2, 0.3, 0.75)]
    shown = per_iteration(trial(2, curve), OBJECTIVES, accuracy_floor=0.5)
    assert [t.constraints for t in shown] == [{"val_accuracy_floor": pytest.approx(-0.1)},
                                              {"val_accuracy_floor": pytest.approx(0.2)}]


def test_trials_without_iterations_to_split_are_shown_as_they_are():
    fixed = optuna.trial.create_trial(values=[0.6, 0.5], params={}, distributions={},
                                      user_attrs={"curve": [figures(1, 0.6, 0.5)]})
    failed = trial(3, [figures(1, 0.6, 0.5)], state=TrialState.FAIL)
    assert per_iteration(fixed, OBJECTIVES) == [fixed]  # the space fixed `iterations`
    assert per_iteration(failed, OBJECTIVES) == [failed]  # it runs again
    starting = trial(3, [], state=TrialState.RUNNING)
    assert per_iteration(starting, OBJECTIVES) == [starting]  # no iteration done yet


def proposals(sampler, history, draws=10) -> list[int]:
    """The `iterations` the sampler proposes after `history`."""
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=sampler)
    for made in history:
        study.add_trial(made)
    drawn = []
    for _ in range(draws):
        asked = study.ask()
        drawn.append(asked.suggest_int("iterations", 1, 4))
        study.tell(asked, state=TrialState.FAIL)
    assert len(study.trials) == len(history) + draws  # the storage keeps one trial per trial
    return drawn


def test_tpe_learns_which_schedules_were_run_from_trials_that_stopped():
    # Every schedule planned 4 iterations; the good ones were stopped after 1 (their first
    # iteration is on the front), the poor ones ran to the end.
    good = [trial(4, [figures(1, 0.6 + 0.01 * i, 0.5 + 0.01 * i)], stopped="stopped")
            for i in range(6)]
    poor = [trial(4, [figures(k, 0.2 - 0.01 * k, 0.1 * k) for k in range(1, 5)])
            for _ in range(6)]

    def tpe():
        return optuna.samplers.TPESampler(seed=0, n_startup_trials=5, constant_liar=True)

    learning = proposals(LearningFromIterations(tpe(), OBJECTIVES), good + poor)
    plain = proposals(tpe(), good + poor)
    # Shown as trials, the good schedules are "4 iterations"; shown per iteration, they are
    # the 1-iteration schedules they ran.
    assert learning.count(1) > len(learning) // 2, learning
    assert plain.count(1) < learning.count(1), plain


@pytest.mark.parametrize("settings, expected", [
    ("", LearningFromIterations),
    ('sampler_learns_from = "trials"', optuna.samplers.TPESampler),
])
def test_tpe_learns_from_iterations_unless_the_study_file_says_trials(workdir, settings,
                                                                       expected):
    spec = studyfile.load(str(write_study(workdir, settings=settings)))
    sampler = iteration_trials.sampler_for(spec, optuna.samplers.TPESampler(seed=0))
    assert type(sampler) is expected


def test_samplers_that_do_not_read_the_history_as_tpe_does_are_left_alone(workdir):
    spec = studyfile.load(str(write_study(workdir)))
    random = optuna.samplers.RandomSampler(seed=0)
    assert iteration_trials.sampler_for(dataclasses.replace(spec, sampler="random"),
                                        random) is random
