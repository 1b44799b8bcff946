"""The networks users bring: torchvision's classifiers built from depthwise convolutions,
squeeze-and-excitation blocks, concatenations, grouped convolutions and convolutional output
layers. What structured pruning removes, it removes from every coupled layer alike, and the
physically smaller network computes what the masked one did; what it cannot prune it leaves
whole and says so before anything runs."""

import dataclasses

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunesearch.cli import main
from prunesearch.config import preflight, studyfile
from prunesearch.pruning import costs, methods
from prunesearch.pruning.export import shrink
from prunesearch.pruning.loop import prunable_targets
from prunesearch.pruning.graph.channels import (couplings, channel_sets, live_channels,
                                                  mask_dependents, prune_channels, unprunable)
from prunesearch.training import models
from prunesearch.training.models import custom

from conftest import contents
from test_pruning import EXAMPLE, pruner

STRUCTURED = sorted(name for name, method in methods.REGISTRY.items() if method.structured)
# One network per construct: depthwise convolutions in inverted residuals (MobileNetV2);
# squeeze-and-excitation (EfficientNet); concatenations and a convolution as output layer
# (SqueezeNet); grouped convolutions (RegNet; ResNeXt, whose 32 groups tie 32 channels);
# LayerNorm over the residual stream, linear layers applied per pixel and a scale outside any
# layer (ConvNeXt); a channel split and shuffle torch-pruning traces block by block only
# (ShuffleNet).
NETWORKS = ["mobilenet_v2", "efficientnet_b0", "squeezenet1_0", "regnet_x_400mf",
            "resnext50_32x4d", "convnext_tiny", "shufflenet_v2_x0_5"]


def torchvision_net(name: str, seed: int = 0) -> tuple[nn.Module, str]:
    torch.manual_seed(seed)
    model = custom.build(f"torchvision:{name}", num_classes=10, cifar_stem=True, options={})
    with torch.no_grad():  # a weight drawn exactly 0 (ResNeXt-50 has two) would not count
        for _, module in costs.prunable_modules(model):  # as a MAC, but the FLOP counter's
            module.weight[module.weight == 0] = 1e-6
    return model, custom.classifier_name(model, None)


def flop_counter_macs(model: nn.Module) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(EXAMPLE)
    return counter.get_total_flops() // 2


def assert_removal_computes_the_same(model: nn.Module, classifier: str) -> nn.Module:
    model.train()
    model(torch.randn(16, 3, 32, 32))  # non-trivial BatchNorm running statistics
    slim = shrink(model, EXAMPLE, classifier=classifier)
    model.eval(), slim.eval()
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected, got = model(images), slim(images)
    assert got.shape == (4, 10)
    assert (expected - got).abs().max() <= 1e-4 * expected.abs().max().clamp_min(1)
    return slim


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_structured_pruning_of_a_torchvision_network_removes_what_it_masked(name):
    model, classifier = torchvision_net(name)
    dense_macs = costs.macs(model, EXAMPLE)
    targets, prune_by = pruner("ln_structured", model, classifier=classifier)
    prune_by(0.3)
    slim = assert_removal_computes_the_same(model, classifier)

    assert costs.macs(slim, EXAMPLE) == costs.macs(model, EXAMPLE) < dense_macs
    assert costs.macs(slim, EXAMPLE) == flop_counter_macs(slim)
    assert costs.params_remaining(model) == sum(p.numel() for p in slim.parameters())
    output = dict(slim.named_modules())[classifier]
    assert (output.out_features if isinstance(output, nn.Linear) else output.out_channels) == 10


@pytest.mark.slow
@pytest.mark.parametrize("name", STRUCTURED)
def test_every_structured_method_prunes_depthwise_networks_coupled_layers_alike(name):
    model, classifier = torchvision_net("mobilenet_v2")
    targets, prune_by = pruner(name, model, classifier=classifier)
    found = couplings(model, targets, EXAMPLE)
    before = {module: set(live_channels(module).tolist()) for module, _ in targets}
    prune_by(0.3)
    after = {module: set(live_channels(module).tolist()) for module, _ in targets}
    prune_by(0.3)
    assert all(after[m] <= before[m] for m in before)  # masks only shrink
    assert all(set(live_channels(m).tolist()) <= after[m] for m in after)
    coupled = [group for group in channel_sets(targets, found) if len(group) > 1]
    depthwise = [m for m, _ in targets if m.groups > 1]
    # Every depthwise convolution is coupled to the layer that feeds it, and the residual
    # streams join their layers: each such group keeps the very same channels.
    assert all(any(m in group for group in coupled) for m in depthwise)
    for group in coupled:
        assert len({tuple(live_channels(module).tolist()) for module in group}) == 1
    assert_removal_computes_the_same(model, classifier)


@pytest.mark.parametrize("name", STRUCTURED)
def test_a_residual_stream_through_layer_norms_is_pruned_as_one_channel_space(name):
    """ConvNeXt's stream runs through LayerNorms (channels first and, inside the blocks,
    channels last) and a per-channel layer_scale: a removed channel leaves all of them, and
    the masked LayerNorms normalise over the channels kept, as the smaller ones do."""
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt

    torch.manual_seed(0)
    model = ConvNeXt([CNBlockConfig(16, 32, 2), CNBlockConfig(32, None, 2)], num_classes=10)
    classifier = "classifier.2"
    every = prunable_targets(model, include_classifier=False, classifier=classifier)
    assert unprunable(model, every, EXAMPLE) == {}
    targets, prune_by = pruner(name, model, classifier=classifier)
    with torch.no_grad():  # trained scales and shifts, not LayerNorm's ones and zeros
        for norm in (m for m in model.modules() if isinstance(m, nn.LayerNorm)):
            norm.weight.uniform_(0.5, 1.5), norm.bias.uniform_(-0.5, 0.5)
    prune_by(0.3)
    prune_by(0.3)
    streams = [(model.features[0][0], model.features[1]),  # stem, then stage 1's blocks
               (model.features[2][1], model.features[3])]  # downsampling conv, stage 2
    assert any(len(live_channels(head)) < head.out_channels for head, _ in streams)
    for head, blocks in streams:  # each block's depthwise conv and last linear layer
        live = live_channels(head).tolist()
        for block in blocks:
            assert live_channels(block.block[0]).tolist() == live == \
                live_channels(block.block[5]).tolist()
            scale = getattr(block, "layer_scale_mask", torch.ones(head.out_channels))
            assert scale.flatten().nonzero().flatten().tolist() == live
    slim = assert_removal_computes_the_same(model, classifier)
    assert costs.macs(slim, EXAMPLE) == costs.macs(model, EXAMPLE) == flop_counter_macs(slim)
    assert costs.params_remaining(model) == sum(p.numel() for p in slim.parameters())


def test_a_layer_norm_keeps_its_scales_on_the_channels_left():
    """Channels {6, 9, 10, 13} of 16 kept: a Python set iterates them as 9, 10, 13, 6, the
    order torch-pruning 1.6.1's own LayerNorm pruner would leave the scales and shifts in."""
    from torchvision.models.convnext import LayerNorm2d

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), LayerNorm2d(16), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten())
    model.classifier = nn.Linear(16, 10)
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5), model[1].bias.uniform_(-0.5, 0.5)
    targets = prunable_targets(model, include_classifier=False)
    found = couplings(model, targets, EXAMPLE)
    prune_channels(model[0], [c for c in range(16) if c not in (6, 9, 10, 13)])
    mask_dependents(model[0], found)
    slim = assert_removal_computes_the_same(model, "classifier")
    assert slim[1].weight.tolist() == model[1].weight[[6, 9, 10, 13]].tolist()


def shallow_regnet() -> tuple[nn.Module, str]:
    """torchvision's RegNetX-400MF design (group width 16, its width rule) at depth 6 (three
    stages of 1, 2 and 3 blocks; 0.27 M parameters), not 22: every grouped convolution and
    the layers feeding it as in the full one, at a fifth of the time to trace and prune."""
    from torchvision.models.regnet import BlockParams, RegNet

    torch.manual_seed(0)
    model = RegNet(BlockParams.from_init_params(depth=6, w_0=24, w_a=24.48, w_m=2.54,
                                                group_width=16), num_classes=10)
    return model, custom.classifier_name(model, None)


@pytest.mark.slow
@pytest.mark.parametrize("name", STRUCTURED)
def test_grouped_convolutions_lose_the_same_places_in_every_group(name):
    model, classifier = shallow_regnet()
    every = prunable_targets(model, include_classifier=False, classifier=classifier)
    assert unprunable(model, every, EXAMPLE) == {}
    targets, prune_by = pruner(name, model, classifier=classifier)
    found = couplings(model, targets, EXAMPLE)
    grouped = [m for m, _ in targets if 1 < m.groups < m.in_channels]
    feeding = [m for m in found.ties if m not in grouped]
    assert grouped and feeding  # the grouped convolutions, and the layers that feed them
    prune_by(0.3)
    prune_by(0.3)
    for module in found.ties:
        live = set(live_channels(module).tolist())
        assert len(live) < module.out_channels
        ties: dict[int, set[int]] = {}
        for channel, tie in enumerate(found.ties[module]):
            ties.setdefault(tie, set()).add(channel)
        assert all(channels <= live or not channels & live for channels in ties.values())
    for conv in grouped:  # every group of its filters keeps as many
        per_group = conv.out_channels // conv.groups
        kept = [len([c for c in live_channels(conv).tolist() if c // per_group == g])
                for g in range(conv.groups)]
        assert len(set(kept)) == 1 and kept[0] > 0
    slim = assert_removal_computes_the_same(model, classifier)
    assert costs.macs(slim, EXAMPLE) == costs.macs(model, EXAMPLE)


def test_the_group_of_a_channel_is_found_once_per_layer_as_it_was_per_channel():
    """Couplings come from one dependency group per layer, each dependent sorted back to its
    channel by torch-pruning's root indices: the same as asking channel by channel."""
    from prunesearch.pruning.graph.channels import _dependents
    from prunesearch.pruning.graph.tracing import trace

    model, classifier = torchvision_net("squeezenet1_0")  # concatenations remap indices
    targets, _ = pruner("ln_structured", model, classifier=classifier)
    (whole,) = trace(model, EXAMPLE)
    graph = whole.graph
    found = couplings(model, targets, EXAMPLE, [whole])
    for module, _ in targets[:6]:
        prune_fn = graph.get_pruner_of_module(module).prune_out_channels
        for channel in (0, module.out_channels - 1):
            one = [dep for item in graph.get_pruning_group(module, prune_fn, idxs=[channel])
                   for dep in _dependents(item.dep.target.module, item.dep.handler.__name__,
                                          item.idxs)]
            key = lambda d: (id(d.module), d.tensor_name, d.dim, d.index)  # noqa: E731
            assert sorted(found[module][channel], key=key) == sorted(one, key=key)


DEPTHWISE_NET = '''
from torch import nn


def build(width=8):
    """A depthwise-separable block: pointwise, depthwise, pointwise, as MobileNets are."""
    net = nn.Sequential()
    net.body = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, groups=width), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    net.classifier = nn.Linear(2 * width, 10)
    return net


def group_normed(width=8):
    """Every channel reaches a GroupNorm, whose statistics a masked channel would still count
    in: nothing a structured method can prune."""
    net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.GroupNorm(2, width),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten())
    net.classifier = nn.Linear(width, 10)
    return net
'''

STUDY = """
name = "{name}"
seed = 0
n_trials = 1
latency_device = "none"
[data]
val_size = 50
[model]
name = "{model}"
[dense]
epochs = 1
batch_size = 32
[space]
method = "{method}"
amount = 0.5
iterations = 1
retrain_epochs = 1
reinit = "finetune"
"""


def test_a_depthwise_model_in_a_module_next_to_the_study_is_pruned_and_exported(workdir):
    (workdir / "studies").mkdir()
    (workdir / "studies" / "dwnet.py").write_text(DEPTHWISE_NET)
    (workdir / "studies" / "dw.toml").write_text(
        STUDY.format(name="dw", model="dwnet:build", method="ln_structured"))
    spec = studyfile.load("dw")  # by name, from anywhere: the module sits by the study file
    assert spec.model.name == f"{workdir / 'studies' / 'dwnet.py'}:build"
    result = CliRunner().invoke(main, ["optimize", "--study", "dw"])
    assert result.exit_code == 0, result.output
    exported = CliRunner().invoke(main, ["export", "--study", "dw", "--trial", "0",
                                         "--output", "out"])
    assert exported.exit_code == 0, exported.output
    state = torch.load(workdir / "out" / "state_dict.pt", weights_only=True)
    assert state["body.0.weight"].shape[0] == 4  # half of the 8 filters, removed
    assert state["body.3.weight"].shape == (4, 1, 3, 3)  # the depthwise filters with them
    assert state["classifier.weight"].shape == (10, 8)


REFUSED = {
    "nothing prunable": ("dwnet.py:group_normed", "global_structured",
                         "has no layer that space.method global_structured can prune"),
    "auxiliary heads": ("torchvision:googlenet", "l1_unstructured",
                        "in training mode it returns a GoogLeNetOutputs"),
    "module not found": ("no_such_net:build", "l1_unstructured",
                         "looked for no_such_net.py next to the study file and in the "
                         "working directory"),
}


@pytest.mark.parametrize("model, method, message", REFUSED.values(), ids=REFUSED.keys())
def test_a_network_a_study_cannot_use_is_refused_when_the_file_is_read(workdir, model, method,
                                                                       message):
    (workdir / "dwnet.py").write_text(DEPTHWISE_NET)
    (workdir / "bad.toml").write_text(STUDY.format(name="bad", model=model, method=method))
    before = contents(workdir)
    result = CliRunner().invoke(main, ["optimize", "--study", "bad.toml"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines()
             if not line.lstrip().startswith(("warnings.warn", "/"))]  # torchvision's own
    assert len(lines) == 1 and lines[0].startswith("error: bad.toml: "), lines
    assert message in lines[0] and "Traceback" not in result.output
    assert contents(workdir) == before


def test_stems_and_output_layers_of_other_shapes_are_found_without_a_traceback(tmp_path):
    (tmp_path / "s.toml").write_text(STUDY.format(name="s", model="torchvision:squeezenet1_0",
                                                  method="ln_structured"))
    assert preflight.run(studyfile.load(str(tmp_path / "s.toml"))).spec.model.classifier == \
        "classifier.1"
    (tmp_path / "u.toml").write_text(STUDY.format(
        name="u", model="torchvision:shufflenet_v2_x0_5", method="l1_unstructured"))
    spec = studyfile.load(str(tmp_path / "u.toml"))  # conv1 is a Sequential: its conv changes
    model = models.from_spec(dataclasses.asdict(spec.model))
    assert model.conv1[0].stride == (1, 1) and isinstance(model.maxpool, nn.Identity)
    result = CliRunner().invoke(main, ["validate", "--study", str(tmp_path / "s.toml")])
    assert result.exit_code == 0 and "can be pruned" in result.output, result.output


def test_a_network_traced_in_pieces_prunes_only_channels_that_stay_inside_one():
    """torch-pruning cannot trace ShuffleNet whole (its channel split and shuffle, block after
    block), but each block alone: the channels inside a branch are pruned; those that leave a
    block, or come into it (a depthwise convolution on the block's input), are not."""
    from prunesearch.pruning.graph.tracing import trace

    model, classifier = torchvision_net("shufflenet_v2_x0_5")
    pieces = trace(model, EXAMPLE)
    assert "stage2.0" in [piece.name for piece in pieces] and len(pieces) > 1
    every = prunable_targets(model, include_classifier=False, classifier=classifier)
    refused = unprunable(model, every, EXAMPLE, pieces)
    block = model.stage2[0]
    assert block.branch2[0] not in refused and block.branch2[3] not in refused  # inside
    assert "outputs of stage2.0" in refused[block.branch2[5]]
    assert "tied to those coming into stage2.0" in refused[block.branch1[0]]
    assert len(refused) < len(every)


def test_a_network_no_part_of_which_traces_is_refused_in_one_line(workdir, monkeypatch):
    from prunesearch.pruning.graph import tracing

    def untraceable(model, example_input):
        raise tracing.Untraceable("torch-pruning cannot trace its channels (ZeroDivisionError)")

    monkeypatch.setattr(tracing, "_graph", untraceable)
    (workdir / "bad.toml").write_text(STUDY.format(name="bad", model="torchvision:mobilenet_v2",
                                                   method="ln_structured"))
    result = CliRunner().invoke(main, ["optimize", "--study", "bad.toml"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        "error: bad.toml: model.name = 'torchvision:mobilenet_v2' cannot be pruned by "
        "space.method ln_structured: torch-pruning cannot trace its channels "
        "(ZeroDivisionError); use an unstructured method")


@pytest.mark.parametrize("name", STRUCTURED)
def test_a_residual_sum_with_what_comes_into_a_part_traced_alone_stays(name, monkeypatch):
    """A network traced in parts whose part is a residual block with an identity shortcut:
    the channels its last convolution adds to the block's input are those coming in, so
    they stay; the block's inner channels are pruned, and removal computes what masks did."""
    from torchvision.models.resnet import BasicBlock

    from prunesearch.pruning.graph import tracing

    torch.manual_seed(0)
    model = nn.Sequential()
    model.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    model.block = BasicBlock(8, 8)
    model.pool, model.flat = nn.AdaptiveAvgPool2d(1), nn.Flatten()
    model.classifier = nn.Linear(8, 10)
    whole = tracing._graph

    def not_whole(module, example_input):  # as if torch-pruning failed on the network
        if module is model:
            raise tracing.Untraceable("torch-pruning cannot trace its channels (test)")
        return whole(module, example_input)

    monkeypatch.setattr(tracing, "_graph", not_whole)
    assert [piece.name for piece in tracing.trace(model, EXAMPLE)] == [
        "stem", "block", "classifier"]
    every = prunable_targets(model, include_classifier=False)
    refused = unprunable(model, every, EXAMPLE)
    assert set(refused) == {model.stem[0], model.block.conv2}
    assert "tied to those coming into block" in refused[model.block.conv2]
    assert "outputs of stem" in refused[model.stem[0]]
    _, prune_by = pruner(name, model)
    prune_by(0.5)
    assert len(live_channels(model.block.conv1)) < 8
    assert_removal_computes_the_same(model, "classifier")
