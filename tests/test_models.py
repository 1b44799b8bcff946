"""The registry's networks: their size as published, and every pruning method on each of them,
residual sums included (a channel removed from a sum goes from every layer adding to it)."""

import dataclasses
import inspect

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunesearch.pruning import costs
from prunesearch.pruning import methods
from prunesearch.training import models
from prunesearch.config import preflight, studyfile
from prunesearch.pruning.export import shrink
from prunesearch.pruning.graph.channels import couplings, channel_sets, live_channels

from conftest import contents
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


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_the_registry_width_is_the_builders_own_default(name):
    """The registry writes each network's published width down, so that a study file is read
    without importing torch: it must be the one the builder takes when given none."""
    assert inspect.signature(models.get(name)).parameters["width"].default == \
        models.default_width(name)


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
    summed = [group for group in channel_sets(targets, found) if len(group) > 1]
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
n_trials = 1
objectives = ["val_accuracy", "macs_reduction"]
[data]
val_size = 50
[model]
name = "resnet20"
width = 4
[dense]
epochs = 1
batch_size = 32
[space]
method = "global_structured"
amount = 0.4
iterations = 1
retrain_epochs = 1
reinit = "rewind"
"""


@pytest.mark.slow
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


OWN_MODEL = '''
from torch import nn


def tiny_net(channels=4, hidden=8):
    net = nn.Sequential()
    net.body = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(channels, hidden), nn.ReLU())
    net.head = nn.Linear(hidden, 10)
    return net


def not_a_model():
    return 42


def wrong_output():
    return nn.Sequential(nn.Flatten(), nn.Linear(3072, 7))


NOT_CALLABLE = 3
'''

OWN_STUDY = """
name = "own"
seed = 0
n_trials = 1
[data]
val_size = 50
[model]
{model}
[dense]
epochs = 1
batch_size = 32
[space]
method = "ln_structured"
amount = 0.5
iterations = 1
retrain_epochs = 1
reinit = "finetune"
"""


def test_your_own_model_from_a_file_next_to_the_study_is_pruned_and_exported(workdir):
    from click.testing import CliRunner

    from prunesearch.cli import main

    (workdir / "nets.py").write_text(OWN_MODEL)
    (workdir / "own.toml").write_text(OWN_STUDY.format(
        model='name = "nets.py:tiny_net"\nclassifier = "head"\nchannels = 6'))
    spec = preflight.run(studyfile.load(str(workdir / "own.toml"))).spec
    assert spec.model.options == {"channels": 6} and spec.model.classifier == "head"
    result = CliRunner().invoke(main, ["optimize", "--study", "own.toml"])
    assert result.exit_code == 0, result.output
    exported = CliRunner().invoke(main, ["export", "--study", "own", "--trial", "0",
                                         "--output", "out"])
    assert exported.exit_code == 0, exported.output
    state = torch.load(workdir / "out" / "state_dict.pt")
    assert state["body.0.weight"].shape[0] == 3  # half of the 6 filters, removed
    assert state["head.weight"].shape == (10, 4)  # the 10 classes stay; half the 8 hidden go


def test_a_torchvision_model_gets_a_cifar_stem_and_prunes(tmp_path):
    (tmp_path / "tv.toml").write_text(OWN_STUDY.format(model='name = "torchvision:resnet18"'))
    spec = preflight.run(studyfile.load(str(tmp_path / "tv.toml"))).spec
    assert spec.model.classifier == "fc"
    model = models.from_spec(dataclasses.asdict(spec.model))
    assert model.conv1.kernel_size == (3, 3) and isinstance(model.maxpool, nn.Identity)
    targets, prune_by = pruner("ln_structured", model, classifier="fc")
    prune_by(0.5)
    slim = shrink(model.eval(), EXAMPLE, classifier="fc").eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (model(images) - slim(images)).abs().max() <= 1e-4
    assert slim.fc.out_features == 10 and slim.conv1.out_channels == 32


BAD_MODELS = {
    "cannot import": ('name = "no_such_module:build"', "model.name",
                      "cannot import no_such_module (ModuleNotFoundError"),
    "missing file": ('name = "absent.py:build"', "model.name", "no such file"),
    "not callable": ('name = "nets.py:NOT_CALLABLE"', "model.name", "is not callable"),
    "no module returned": ('name = "nets.py:not_a_model"', "model.name",
                           "returned a int, not a torch.nn.Module"),
    "wrong output": ('name = "nets.py:wrong_output"', "model.name",
                     "returns (2, 7), not 2 x 10 class scores"),
    "bad keyword": ('name = "nets.py:tiny_net"\ndepth = 3', "model.name",
                    "unexpected keyword argument 'depth'"),
    "classifier not found": ('name = "nets.py:tiny_net"\nclassifier = "fc"',
                             "model.classifier", "no linear or conv layer called 'fc'"),
    "unknown torchvision model": ('name = "torchvision:resnet7"', "model.name",
                                  "torchvision has no classification model 'resnet7'"),
}


@pytest.mark.parametrize("model, key, message", BAD_MODELS.values(), ids=BAD_MODELS.keys())
def test_a_model_that_cannot_be_used_is_one_line_exit_2_and_writes_nothing(workdir, model,
                                                                           key, message):
    from click.testing import CliRunner

    from prunesearch.cli import main

    (workdir / "nets.py").write_text(OWN_MODEL)
    (workdir / "bad.toml").write_text(OWN_STUDY.format(model=model))
    before = contents(workdir)
    result = CliRunner().invoke(main, ["optimize", "--study", "bad.toml"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: bad.toml: " + key), lines
    assert message in lines[0]
    assert contents(workdir) == before
