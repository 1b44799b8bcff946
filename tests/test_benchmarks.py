"""The speed benchmark's sections on tiny data: they must keep running, and comparing like with
like, as the code they measure changes. Its figures come from running it, never from here."""

import importlib.util
from pathlib import Path

import pytest

from prunesearch import data, studyfile

SPEED = Path(__file__).parents[1] / "benchmarks" / "speed.py"


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("speed", SPEED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_throughput_times_all_three_pipelines_on_the_same_images(speed, cifar_dir):
    split = data.load(data_dir=cifar_dir, val_size=50, train_subset=None, seed=0).train
    result = speed.throughput(speed.TutorialNet, split, rounds=1)
    rates = [result[key] for key in ("prunesearch_img_s", "dataloader_img_s", "ceiling_img_s",
                                     "data_only_prunesearch_img_s", "data_only_dataloader_img_s")]
    assert all(rate > 0 for rate in rates)
    # One round: each ratio is the quotient of that round's rates.
    assert result["vs_dataloader"] == pytest.approx(
        result["prunesearch_img_s"] / result["dataloader_img_s"])
    assert result["of_ceiling"] == pytest.approx(
        result["prunesearch_img_s"] / result["ceiling_img_s"])


def test_study_vs_notebook_replays_the_study_trials(speed, workdir, cifar_dir, tiny_study):
    spec = studyfile.load(str(tiny_study))
    result = speed.study_vs_notebook(spec, cifar_dir)
    assert result["trials"] == spec.n_trials
    assert result["notebook_s"] > result["notebook_dense_s"] > 0
    assert result["prunesearch_trained_images"] >= spec.dense.epochs * 200  # 250 - 50 held out
    assert result["caching_bound"] > 1  # two trials: one dense training fewer


def test_layout_and_eval_batch_compares_against_the_defaults(speed, cifar_dir):
    split = data.load(data_dir=cifar_dir, val_size=50, train_subset=None, seed=0).train
    result = speed.layout_and_eval_batch(split, rounds=1)
    assert result["eval_batch_sizes"][0] == 128
    assert all(result[key] > 0 for key in ("train_step_nchw_over_channels_last",
                                           "eval_nchw_over_channels_last",
                                           "eval_bigger_batch_over_default"))
