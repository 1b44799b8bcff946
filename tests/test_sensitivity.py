"""`prunesearch sensitivity`: each unit of a trained network pruned alone (pruning.sensitivity)."""

import json

import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from torch import nn

from prunesearch.cli import main
from prunesearch.pruning import methods, sensitivity
from prunesearch.pruning.loop import prunable_targets
from prunesearch.pruning.graph.channels import couplings, channel_sets
from prunesearch.training import models

from conftest import write_study
from test_pruning import EXAMPLE


class Toy(nn.Module):
    """Layer `b` barely touches the output (scaled by 1e-4): pruning it changes nothing."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 8, 3, padding=1)
        self.classifier = nn.Linear(8, 10)

    def forward(self, x):
        h = torch.relu(self.a(x))
        h = torch.relu(self.c(h + 1e-4 * self.b(h)))
        return self.classifier(h.mean((2, 3)))


def fidelity(reference: nn.Module, images: torch.Tensor):
    """A score in place of accuracy: 1 - how far a model's logits moved from the dense
    model's, relatively (the dense model scores 1)."""
    with torch.no_grad():
        dense = reference.eval()(images)

    def evaluate(model):
        with torch.no_grad():
            moved = (model.eval()(images) - dense).abs().mean() / dense.abs().mean()
        return 1 - float(moved)
    return evaluate


def test_the_layer_that_barely_matters_ranks_least_sensitive():
    torch.manual_seed(0)
    model = Toy()
    images = torch.randn(256, 3, 32, 32)
    units = sensitivity.scan(model, "l1_unstructured",
                             methods.get("l1_unstructured").Options(),
                             example_input=EXAMPLE, evaluate=fidelity(model, images),
                             batches=lambda count: ())
    assert [unit.name for unit in units][-1] == "b"
    assert units[-1].drop(1.0) < 1e-3 < 0.01 < units[-2].drop(1.0)
    assert {unit.name for unit in units} == {"a", "b", "c", "classifier"}
    assert torch.count_nonzero(model.b.weight) == model.b.weight.numel()  # left as it was


def test_a_residual_stage_is_one_unit_for_structured_methods():
    torch.manual_seed(0)
    model = models.build("resnet20", width=4)
    images = torch.randn(64, 3, 32, 32)
    units = sensitivity.scan(model, "ln_structured", methods.get("ln_structured").Options(),
                             example_input=EXAMPLE, evaluate=fidelity(model, images),
                             batches=lambda count: (), amounts=(0.5,))
    targets = prunable_targets(model, include_classifier=False)
    expected = channel_sets(targets, couplings(model, targets, EXAMPLE))
    assert len(units) == len(expected) < len(targets)
    stages = [unit for unit in units if len(unit.layers) > 1]
    assert stages and all(unit.name.endswith(f" +{len(unit.layers) - 1}") for unit in stages)


def test_sensitivity_through_the_cli_writes_and_logs_its_report(workdir):
    path = write_study(workdir, settings='latency_device = "none"')
    result = CliRunner().invoke(main, ["sensitivity", "--study", str(path), "--amounts", "0.5",
                                       "--amounts", "0.9", "--output", "report"])
    assert result.exit_code == 0, result.output
    assert "each unit pruned alone" in result.output and "mean drop" in result.output
    # What allocation sensitivity would prune of each unit at 50% overall, extremes marked.
    assert "allocated at 50%" in result.output
    assert "(most)" in result.output and "(least)" in result.output
    report = json.loads((workdir / "report" / "sensitivity.json").read_text())
    assert report["method"] == "l1_unstructured" and report["amounts"] == [0.5, 0.9]
    assert len(report["units"]) == 7  # six convolutions and the classifier, layer by layer
    assert (workdir / "report" / "sensitivity.png").stat().st_size > 0
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.data.tags["prunesearch.role"] == "sensitivity"
    assert {f.path for f in client.list_artifacts(run.info.run_id)} >= {
        "sensitivity.json", "sensitivity.png", "sensitivity.txt"}


@pytest.mark.parametrize("option, message", [
    (["--method", "l3_magic"], "'l3_magic' is not one of"),
    (["--amounts", "1.5"], "Invalid value for '--amounts'"),
])
def test_bad_options_are_refused_in_one_line(workdir, option, message):
    path = write_study(workdir)
    result = CliRunner().invoke(main, ["sensitivity", "--study", str(path), *option])
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (workdir / "sensitivity-tiny").exists()
