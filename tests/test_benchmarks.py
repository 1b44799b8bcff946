"""Every benchmark runs, every section, at --smoke size (so that a change to the code they
measure cannot break one unnoticed), and the search benchmark's readouts compute what they
say. Their figures come from running them at full size, never from here."""

import contextlib
import dataclasses
import importlib
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import common, search
from prunesearch.pruning.schedule import Fixed
from prunesearch.testing import servers

ROOT = Path(__file__).parents[1]


def smoke(module: str, *args: str) -> str:
    """`benchmarks.MODULE`'s main with `--smoke ARGS`, in this process, from the repository
    root; its stdout. In-process saves each benchmark a fresh interpreter's imports (about 4 s
    of CPU); `python -m benchmarks.NAME`, as the docs run them, is proven by
    scripts/gpu-check.sh (below) and the reading benchmark, which run benchmarks that way."""
    imported = importlib.import_module(f"benchmarks.{module}")
    threads, out = torch.get_num_threads(), io.StringIO()
    try:
        with contextlib.chdir(ROOT), contextlib.redirect_stdout(out):
            imported.main(["--smoke", *args])
    finally:
        torch.set_num_threads(threads)  # the latency benchmark sets its own
    return out.getvalue()


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_speed_benchmark_runs_every_section(tmp_path):
    out = smoke("speed", "--json", str(tmp_path / "speed.json"))
    figures = json.loads((tmp_path / "speed.json").read_text())
    for section in ("a_default_model", "b_tutorial_model"):
        assert all(positive(figures[section][key]) for key in (
            "prunesearch_img_s", "dataloader_img_s", "ceiling_img_s", "vs_dataloader",
            "data_only_prunesearch_img_s", "data_only_dataloader_img_s"))
    cache = figures["c_trial_cache"]
    assert cache["warm_dense_s"] < cache["cold_dense_s"]  # the warm run loads, not trains
    for section in ("d_smoke_study", "d_l1_iterative_study"):
        assert figures[section]["trials"] == 1 and positive(figures[section]["speedup"])
    macs = [row["macs_ratio"] for row in figures["e_structured_latency"]]
    assert 1 < macs[0] < macs[1] < macs[2]  # more channels removed, fewer MACs
    assert positive(figures["f_memory"]["peak_rss_gib"])
    assert positive(figures["h_layout_and_eval_batch"]["eval_nchw_over_channels_last"])
    assert "| f) peak RSS" in out and "--smoke" in out


@pytest.mark.slow
def test_reading_benchmark_compares_every_command_it_names():
    out = smoke("reading")
    for name in ("optuna studies", "prunesearch status", "prunesearch pareto",
                 "prunesearch best", "pareto --study resnet56-filters"):
        line = next(line for line in out.splitlines() if line.strip().startswith(name))
        seconds, megabytes, ratio = re.search(r"([\d.]+) s +(\d+) MB +([\d.]+)x", line).groups()
        assert all(positive(float(value)) for value in (seconds, megabytes, ratio)), line


@pytest.mark.slow
def test_gpu_check_runs_its_steps_on_the_cpu(tmp_path):
    """scripts/gpu-check.sh --device cpu: what a lent GPU will run, proven beforehand."""
    done = subprocess.run(["bash", "scripts/gpu-check.sh", "--device", "cpu", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    figures = json.loads((tmp_path / "speed-cpu.json").read_text())
    pipelines = figures["A_pipelines"]
    assert all(positive(pipelines[f"{name}_img_s"]) for name in (
        "prunesearch_fp32_b128", "bare_fp32_b128", "prunesearch_bf16_b512", "bare_bf16_b512",
        "notebook_fp32_b128", "evaluate"))
    parts = figures["B_trial_breakdown"]
    # Each part was timed where the trial spends it (the patched functions were called).
    assert all(positive(parts[f"{part}_s"]) for part in ("retraining", "evaluation", "costs"))
    assert parts["rest_s"] < parts["trial_s"]
    assert positive(figures["C_jobs"]["jobs_2_trials_per_hour"])
    assert "| B) trial (s)" in (tmp_path / "speed-cpu.md").read_text()


@pytest.mark.slow
def test_search_benchmark_runs_every_way(tmp_path):
    out = smoke("search", "--json", str(tmp_path / "s.json"), "--plot", str(tmp_path / "s.png"))
    figures = json.loads((tmp_path / "s.json").read_text())
    assert set(figures["curves"]) == {"random", "tpe", "tpe+iterations", "tpe+es",
                                      "tpe+es+iterations", "notebook"}
    assert (tmp_path / "s.png").stat().st_size > 0
    assert "median over seeds, tpe+iterations" in out


@pytest.mark.slow
def test_latency_benchmark_runs_every_section():
    out = smoke("latency")
    sections = dict(re.findall(r"^== (\w+)\n(.*?)(?=^== |\Z)", out, re.M | re.S))
    assert list(sections) == ["cost", "pruned", "noise", "deployed"]
    assert "timed / not timed" in sections["cost"]

    line = sections["pruned"].splitlines()[-1].split()  # trial 0's row
    assert line[0] == "0" and line[1] == "l1_unstructured"
    speedups = [float(cell.split("x+-")[0]) for cell in line if "x+-" in cell]
    assert len(speedups) == 2 and all(positive(x) for x in speedups)  # at batch 1 and 64

    assert sections["noise"].count("median of paired rounds within") == 2
    assert sections["noise"].count("speedup_noise median") == 2

    rows = [line.split() for line in sections["deployed"].splitlines()[2:]]
    assert [(row[0], row[1], row[2]) for row in rows] == [("cifar_cnn", "50%", "1"),
                                                          ("cifar_cnn", "50%", "8")]
    reductions = [float(row[3].rstrip("x")) for row in rows]
    assert reductions[0] > 3  # half the channels: about a quarter of the MACs
    assert 1 < reductions[1] < reductions[0]  # width 8: round_to 8 leaves the first layers
    for row in rows:
        speedups = [float(cell.rstrip("x")) for cell in row[4:] if cell.endswith("x")]
        assert len(speedups) == 4 and all(positive(x) for x in speedups)


@pytest.mark.slow
def test_images_benchmark_reads_caches_and_trains_both_ways():
    row = smoke("images").splitlines()[-1].strip("|").split("|")
    cells = [cell.strip().rstrip("x").replace(",", "") for cell in row]
    assert cells[0] == "40" and int(cells[1]) == 300  # the tiny CIFAR folder's 250 + 50
    assert all(positive(float(cell)) for cell in cells[2:5] + cells[6:])
    assert float(cells[5]) >= 0  # the memory it gained over the decoded size


@pytest.mark.slow
def test_networks_benchmark_times_each_part_of_a_trials_overhead(tmp_path):
    smoke("networks", "--json", str(tmp_path / "n.json"))
    rows = json.loads((tmp_path / "n.json").read_text())["networks"]
    assert [row["network"] for row in rows] == ["cifar_cnn", "torchvision:mobilenet_v2"]
    for row in rows:
        assert all(positive(row[key]) for key in ("set_up_s", "prune_s", "costs_s", "shrink_s",
                                                  "epoch_s"))
        assert 0.1 < row["macs_reduction"] < 1  # 30% of the channels: about half the MACs



def test_search_benchmark_times_each_way_to_the_hypervolume_tpe_reached():
    rows = [(10.0, search.model_row("s", 0, 1, val_accuracy=0.5, sparsity=0.5)),
            (20.0, search.model_row("s", 1, 1, val_accuracy=0.3, sparsity=0.9)),
            (40.0, search.model_row("s", 2, 1, val_accuracy=0.6, sparsity=0.95))]  # too late
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
    curves = {"tpe": [[(0.0, 0.0), (10.0, 0.2), (20.0, 0.4)], [(0.0, 0.0), (25.0, 0.6)]]}
    # A 40 s budget is read at 10, 20, 30 and 40 s: seed 1 has nothing before 25 s.
    assert search.mean_over_seeds(curves, budget_s=40) == {
        "tpe": [pytest.approx(0.1), pytest.approx(0.2), pytest.approx(0.5), pytest.approx(0.5)]}


def test_search_benchmark_study_files_take_the_reduction_factor(tmp_path):
    spec = search.spec_for(tmp_path, "tpe+es", seed=0, reduction_factor=2)
    assert (spec.early_stopping, spec.reduction_factor) == ("mo-asha", 2)


def test_search_benchmark_refuses_a_reduction_factor_below_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        search.main(["--data-dir", str(tmp_path), "--reduction-factor", "1"])
    assert exit_.value.code == 2
    assert "--reduction-factor 1: must be an integer >= 2" in capsys.readouterr().err


def test_search_benchmark_notebook_loop_records_what_it_trained(cifar_dir, tmp_path):
    spec = search.spec_for(tmp_path, "random", seed=0, dense_epochs=1)
    spec = dataclasses.replace(spec, data=dataclasses.replace(  # the tiny data's 250 images
        spec.data, val_size=50, train_subset=None))
    found = search.notebook_search(spec, cifar_dir, budget_s=0.01, loader_workers=0)
    (at, row), = found
    assert at > 0 and 0 <= row.figures.val_accuracy <= 1
    assert 0.2 <= row.figures.sparsity < 1  # at least one prune of >= 20%


def test_search_benchmark_counts_each_iteration_from_when_it_was_logged(cifar_dir, tmp_path):
    spec = search.spec_for(tmp_path, "tpe+esc", seed=0)
    assert (spec.early_stopping, spec.rung_point) == ("mo-asha", "current")
    spec = dataclasses.replace(
        spec, data=dataclasses.replace(spec.data, val_size=50, train_subset=None),
        model=dataclasses.replace(spec.model, width=4),
        dense=dataclasses.replace(spec.dense, epochs=1),
        space={**spec.space, "iterations": Fixed(3), "retrain_epochs": Fixed(1)})
    study = search.search(spec, tmp_path, cifar_dir, budget_s=0.01)  # one trial
    last = search.arrivals(study, iterations=False)
    every = search.arrivals(study, iterations=True,
                            tracking_uri=common.tracking_uri(tmp_path))
    assert [row.iteration for _, row in every] == [1, 2, 3]
    (ended, row), = last
    assert row.iteration == 3
    times = [at for at, _ in every]
    # Logged as each iteration ended: in order, the last about when the trial ended.
    assert 0 < times[0] < times[1] < times[2] <= ended + 0.01


@pytest.mark.slow
def test_schedules_benchmark_runs_every_family_with_and_without_distillation():
    out = smoke("schedules")
    rows = [line.split() for line in out.splitlines()[1:7]]
    assert [row[1] for row in rows] == ["iterative", "iterative+distil", "gradual",
                                        "gradual+distil", "both", "both+distil"]
    models = {row[1]: int(row[-1]) for row in rows}
    # one trial each: two iterations, or four epochs of a gradual schedule
    assert models["iterative"] == 2 and models["gradual"] == 4
    assert "mean (spread = max - min) over seeds [0]" in out


@pytest.mark.slow
def test_allocation_benchmark_runs_every_way_in_both_parts(tmp_path):
    smoke("allocation", "--json", str(tmp_path / "a.json"))
    figures = json.loads((tmp_path / "a.json").read_text())
    assert set(figures) == {"resnet20 budget stages", "resnet20 budget sensitivity",
                            "resnet20 front uniform", "resnet20 front global"}
    for key, summary in figures.items():
        run = summary["runs"][0]
        if " budget " in key:  # projected: the model landed on half the dense MACs
            assert 0.4 < run["macs_kept"] <= 0.5 and 0 <= run["best_val"] <= 1
        else:
            assert 0 <= run["hypervolume"] <= 1


@pytest.mark.slow
def test_breakdown_benchmark_times_every_part_at_two_data_sizes(tmp_path):
    out = smoke("breakdown", "--json", str(tmp_path / "b.json"))
    figures = json.loads((tmp_path / "b.json").read_text())
    start = figures.pop("fresh_start")  # a fresh process, spawned to its first trial
    assert all(positive(s) for s in start["spawn_to_first_trial_s"] + start["import_torch_s"])
    assert start["spawn_to_first_trial_s"][0] > start["import_torch_s"][0]
    assert set(figures) == {f"{study} x{factor}" for study in ("l1-iterative",
                                                               "structured-filters")
                            for factor in (1, 2)}
    for key, run in figures.items():
        parts = run["parts_s"]
        assert all(positive(parts[part]) for part in ("data", "dense", "tracker start",
                                                      "training", "evaluation", "tracking",
                                                      "storage", "front"))
        assert sum(parts.values()) == pytest.approx(run["total_s"])
        assert run["iterations"] == 2
        # Timed only where a figure can use it: the structured study, not the unstructured.
        assert ("timing" in parts) == key.startswith("structured"), parts
    assert "| training share |" in out and "a fresh process" in out


@pytest.mark.slow
@pytest.mark.skipif(servers.INITDB is None, reason="PostgreSQL server binaries not installed")
def test_cluster_benchmark_runs_workers_on_a_prepared_postgresql_study(tmp_path):
    out = smoke("cluster", "--json", str(tmp_path / "c.json"))
    figures = json.loads((tmp_path / "c.json").read_text())
    assert figures["workers"] == 2 and figures["complete"] >= figures["n_trials"]
    assert figures["storage_errors"] == 0 and figures["trials_lost"] == 0
    assert figures["workers_that_ran_a_trial"] >= 1
    assert positive(figures["first_worker_to_first_trial_s"]) or figures[
        "first_worker_to_first_trial_s"] is None
    assert positive(figures["trials_per_hour"]) and positive(figures["peak_pss_gib"])
    assert "| workers | trials |" in out
