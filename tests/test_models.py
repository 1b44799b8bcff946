"""The registry's networks: their size as published, and every pruning method on each of them,
residual sums included (a channel removed from a sum goes from every layer adding to it)."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunesearch import costs, methods, models, studyfile
from prunesearch.export import shrink
from prunesearch.methods.channels import couplings, groups, live_channels
from test_pruning import EXAMPLE, pruner

# (parameters, MACs per 32x32 image) as published: He et al. 2016 / Torch-Pruning's CIFAR
# ResNet-56 (0.85 M, about 125 M), Li et al. 2017's VGG-16 (15.0 M, 313 M FLOPs counted as MACs).
PUBLISHED = {"resnet20": (0.27e6, 41e6), "resnet56": (0.85e6, 125e6),
             "vgg16_bn": (15.0e6, 313e6)}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_each_network_has_its_published_size(name):
    model = models.build(name, width=models.default_width(name)).eval()
    parameters, macs = PUBLISHED[name]
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(parameters, rel=0.02)
    assert costs.macs(model, EXAMPLE) == pytest.approx(macs, rel=0.02)
    with FlopCounterMode(display=False) as counter:
        model(EXAMPLE)
    # torch's own counter agrees; costs.macs counts nonzero weights only, and among 15 M
    # freshly drawn float32 weights a few can be exactly zero
    assert costs.macs(model, EXAMPLE) * 2 == pytest.approx(counter.get_total_flops(), rel=1e-6)


def test_a_study_file_without_a_width_gets_the_network_as_published(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('name = "r"\nn_trials = 1\n[model]\nname = "resnet56"\n[space]\n'
                    'method = "ln_structured"\namount = 0.5\niterations = 1\n'
                    'retrain_epochs = 0\nreinit = "finetune"\n')
    assert studyfile.load(str(path)).model.width == 16


@pytest.mark.parametrize("name", sorted(methods.REGISTRY))
@pytest.mark.parametrize("model_name", ["resnet20", "vgg16_bn"])
def test_every_method_prunes_every_network_and_removal_computes_the_same(model_name, name):
    torch.manual_seed(0)
    model = models.build(model_name, width=4)
    targets, prune_by = pruner(name, model)
    prune_by(0.3)
    prune_by(0.3)
    model.train()
    model(torch.randn(32, 3, 32, 32))  # non-trivial BatchNorm running statistics
    slim = shrink(model, EXAMPLE)
    model.eval(), slim.eval()
    images = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        assert (model(images) - slim(images)).abs().max() <= 1e-4
        assert slim(images).shape == (8, 10)
    assert costs.macs(slim, EXAMPLE) == costs.macs(model, EXAMPLE)
    if methods.get(name).structured:
        assert costs.params_remaining(model) == sum(p.numel() for p in slim.parameters())
        assert costs.macs(slim, EXAMPLE) < costs.macs(models.build(model_name, width=4),
                                                       EXAMPLE)


def test_layers_added_together_lose_the_same_channels():
    model = models.build("resnet20", width=4)
    targets, prune_by = pruner("ln_structured", model)
    prune_by(0.5)
    found = couplings(model, targets, EXAMPLE)
    summed = [group for group in groups(targets, found) if len(group) > 1]
    assert len(summed) == 3  # one residual stream per stage
    for group in summed:
        kept = {tuple(live_channels(module).tolist()) for module in group}
        assert len(kept) == 1  # the same channels in every layer of the sum
        assert len(next(iter(kept))) == group[0].out_channels // 2
    shortcut = model.stages[3].shortcut[1]
    assert isinstance(shortcut, nn.Conv2d) and any(shortcut in group for group in summed)


RESNET_STUDY = """
name = "resnet"
seed = 0
n_trials = 2
sampler = "grid"
objectives = ["val_accuracy", "macs_reduction"]
[data]
val_size = 50
[model]
name = "resnet20"
width = 4
[dense]
epochs = 2
batch_size = 32
[space]
method = ["global_structured", "taylor_structured"]
amount = 0.4
iterations = 2
retrain_epochs = 1
reinit = "rewind"
"""


def test_a_resnet_study_runs_and_exports_a_smaller_network(workdir):
    from click.testing import CliRunner

    from prunesearch.cli import main

    (workdir / "resnet.toml").write_text(RESNET_STUDY)
    result = CliRunner().invoke(main, ["optimize", "--study", "resnet.toml"])
    assert result.exit_code == 0, result.output
    exported = CliRunner().invoke(main, ["export", "--study", "resnet", "--trial", "0",
                                         "--output", "out"])
    assert exported.exit_code == 0, exported.output
    program = torch.export.load(str(workdir / "out" / "model.pt2")).module()
    assert program(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    state = torch.load(workdir / "out" / "state_dict.pt")
    assert state["stem.0.weight"].shape[0] < 4  # channels removed from the residual stream
