"""The benchmarks' sections on tiny data: they must keep running, and comparing like with like,
as the code they measure changes. Their figures come from running them, never from here."""

import importlib.util
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
