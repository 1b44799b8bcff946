"""The benchmarks' sections on tiny data: they must keep running, and comparing like with like,
as the code they measure changes. Their figures come from running them, never from here."""

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from prunesearch import data

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_split(cifar_dir):
    return data.load(data_dir=cifar_dir, val_size=50, train_subset=None, seed=0).train


def test_cpu_throughput_ratios_compare_the_same_rounds(tiny_split):
    speed = load("speed")
    result = speed.throughput(speed.TutorialNet, tiny_split, rounds=1)
    # One round: each ratio is the quotient of that round's rates.
    assert result["vs_dataloader"] == pytest.approx(
        result["prunesearch_img_s"] / result["dataloader_img_s"])
    assert result["of_ceiling"] == pytest.approx(
        result["prunesearch_img_s"] / result["ceiling_img_s"])


def test_gpu_pipelines_compare_each_pipeline_with_the_bare_step_at_its_settings(tiny_split):
    gpu = load("gpu")
    split = data.Split(tiny_split.images[:16], tiny_split.labels[:16])
    result = gpu.pipelines(split, torch.device("cpu"), rounds=1, notebook_workers=0)
    for precision, batch in (("fp32", 128), ("bf16", 512)):
        assert result[f"of_bare_{precision}_b{batch}"] == pytest.approx(
            result[f"prunesearch_{precision}_b{batch}_img_s"]
            / result[f"bare_{precision}_b{batch}_img_s"])
    assert result["bf16_b512_vs_notebook"] == pytest.approx(
        result["prunesearch_bf16_b512_img_s"] / result["notebook_fp32_b128_img_s"])


def test_search_benchmark_times_each_way_to_the_hypervolume_tpe_reached():
    search = load("search")
    rows = [(10.0, {"val_accuracy": 0.5, "sparsity": 0.5}),
            (20.0, {"val_accuracy": 0.3, "sparsity": 0.9}),
            (40.0, {"val_accuracy": 0.6, "sparsity": 0.95})]  # after the budget
    points = search.curve(rows, budget_s=30)
    # From (accuracy 0.1, sparsity 0): 0.5 x 0.4, then 0.9 x 0.2 more above 0.3.
    assert points == [(0.0, 0.0), (10.0, pytest.approx(0.2)),
                      (20.0, pytest.approx(0.2 + 0.4 * 0.2))]
    assert search.time_to(points, 0.2) == 10.0 and search.time_to(points, 0.5) is None
    notebook = [(0.0, 0.0), (25.0, 0.1)]
    curves = {"tpe": [points, points], "tpe+es+iterations": [points[:2], points],
              "notebook": [notebook]}  # the notebook loop runs the first seed only
    table = search.summary(curves, budget_s=30, seeds=[0, 1])
    assert table[0]["tpe"]["time_to_tpe_s"] == 20.0
    assert table[0]["tpe+es+iterations"]["time_to_tpe_s"] is None
    assert table[0]["tpe+es+iterations"]["of_tpe_budget"] is None
    assert table[1]["tpe+es+iterations"]["of_tpe_budget"] == pytest.approx(20 / 30)
    # The notebook's 0.1 at 25 s: TPE and the early-stopped run had it at 10 s.
    assert table[0]["notebook_hypervolume"] == 0.1
    assert table[0]["notebook"]["time_to_notebook_s"] == 25.0
    assert table[0]["tpe+es+iterations"]["time_to_notebook_s"] == 10.0
    assert table[1]["notebook_hypervolume"] is None and "notebook" not in table[1]
    assert "time_to_notebook_s" not in table[1]["tpe"]


def test_search_benchmark_averages_each_way_over_seeds_at_fractions_of_the_budget():
    search = load("search")
    curves = {"tpe": [[(0.0, 0.0), (10.0, 0.2), (20.0, 0.4)], [(0.0, 0.0), (25.0, 0.6)]]}
    # A 40 s budget is read at 10, 20, 30 and 40 s: seed 1 has nothing before 25 s.
    assert search.mean_over_seeds(curves, budget_s=40) == {
        "tpe": [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.5), pytest.approx(0.5)]}


def test_search_benchmark_study_files_take_the_reduction_factor(tmp_path):
    search = load("search")
    spec = search.spec_for(tmp_path, "tpe+es", seed=0, reduction_factor=2)
    assert (spec.early_stopping, spec.reduction_factor) == ("mo-asha", 2)


def test_search_benchmark_refuses_a_reduction_factor_below_2(monkeypatch, capsys, tmp_path):
    search = load("search")
    monkeypatch.setattr(sys, "argv", ["search.py", "--data-dir", str(tmp_path),
                                      "--reduction-factor", "1"])
    with pytest.raises(SystemExit) as exit_:
        search.main()
    assert exit_.value.code == 2
    assert "--reduction-factor 1: must be an integer >= 2" in capsys.readouterr().err


def test_search_benchmark_notebook_loop_records_what_it_trained(cifar_dir, tmp_path):
    search = load("search")
    spec = search.spec_for(tmp_path, "random", seed=0)
    spec = dataclasses.replace(spec, data=dataclasses.replace(  # the tiny data's 250 images
        spec.data, val_size=50, train_subset=None))
    found = search.notebook_search(spec, cifar_dir, budget_s=0.01)  # one trial
    (at, row), = found
    assert at > 0 and 0 <= row["val_accuracy"] <= 1
    assert 0.2 <= row["sparsity"] < 1  # at least one prune of >= 20%


def test_search_benchmark_counts_each_iteration_from_when_it_was_logged(cifar_dir, tmp_path):
    search = load("search")
    spec = search.spec_for(tmp_path, "tpe+esc", seed=0)
    assert (spec.early_stopping, spec.rung_point) == ("mo-asha", "current")
    spec = dataclasses.replace(
        spec, data=dataclasses.replace(spec.data, val_size=50, train_subset=None),
        model=dataclasses.replace(spec.model, width=4),
        dense=dataclasses.replace(spec.dense, epochs=1),
        space={**spec.space, "iterations": search.studyfile.Fixed(3),
               "retrain_epochs": search.studyfile.Fixed(1)})
    study = search.search(spec, tmp_path, cifar_dir, budget_s=0.01)  # one trial
    last = search.arrivals(study, iterations=False)
    every = search.arrivals(study, iterations=True,
                            tracking_uri=search.speed.tracking_uri(tmp_path))
    assert [row["iteration"] for _, row in every] == [1, 2, 3]
    (ended, row), = last
    assert row["iteration"] == 3
    times = [at for at, _ in every]
    # Logged as each iteration ended: in order, the last about when the trial ended.
    assert 0 < times[0] < times[1] < times[2] <= ended + 0.01
