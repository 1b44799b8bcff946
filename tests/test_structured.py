"""Structured pruning: whole channels die with what depends on them, the classifier keeps its
outputs, physical removal computes what the masked model computes, and costs fall as they
should."""


import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunesearch.pruning import costs
from prunesearch.pruning import methods
from prunesearch.pruning.export import shrink
from prunesearch.pruning.graph import channels
from prunesearch.pruning.graph.channels import live_channels
from prunesearch.pruning.methods.base import Context
from prunesearch.pruning.methods.options import NormOptions
from test_pruning import EXAMPLE, pruner, tiny_model

STRUCTURED = sorted(name for name, method in methods.REGISTRY.items() if method.structured)


def conv_bn_pairs(model):
    blocks = [block for block in model.features if isinstance(block, nn.Sequential)]
    return [(block[0], block[1]) for block in blocks]


@pytest.mark.parametrize("name", STRUCTURED)
def test_a_pruned_filter_outputs_exactly_zero_after_its_batchnorm(name):
    model = tiny_model(width=8)
    _, prune_by = pruner(name, model)
    prune_by(0.5)
    outputs = {}
    for conv, bn in conv_bn_pairs(model):
        bn.register_forward_hook(lambda m, _, out: outputs.__setitem__(m, out.detach()))
    for mode in (model.train, model.eval):
        mode()
        model(torch.randn(8, 3, 32, 32))
        for conv, bn in conv_bn_pairs(model):
            dead = [c for c in range(conv.out_channels) if c not in live_channels(conv)]
            assert dead, "every layer loses some channels at amount 0.5"
            assert torch.all(bn.weight_mask[dead] == 0) and torch.all(bn.bias_mask[dead] == 0)
            assert torch.all(outputs[bn][:, dead] == 0)


@pytest.mark.parametrize("name", STRUCTURED)
def test_classifier_outputs_are_never_pruned_and_every_layer_keeps_a_channel(name):
    model = tiny_model(width=8)
    targets, prune_by = pruner(name, model)
    for _ in range(8):
        prune_by(0.9)
    assert all(len(live_channels(module)) == 1 for module, _ in targets)
    classifier = model.classifier
    assert all(module is not classifier for module, _ in targets)
    assert not hasattr(classifier, "bias_mask")
    assert classifier.weight.count_nonzero(dim=1).min() == 1  # rows live, one input left
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", STRUCTURED)
def test_physical_removal_computes_what_the_masked_model_computes(name):
    model = tiny_model(width=8)
    targets, prune_by = pruner(name, model)
    prune_by(0.3)
    prune_by(0.3)
    model.train()
    model(torch.randn(32, 3, 32, 32))  # non-trivial BatchNorm running statistics
    slim = shrink(model, EXAMPLE)
    model.eval(), slim.eval()
    images = torch.randn(16, 3, 32, 32)
    with torch.no_grad():
        assert (model(images) - slim(images)).abs().max() <= 1e-4
    slim_convs = [m for m in slim.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in slim_convs] == [len(live_channels(m)) for m, _ in targets]
    assert not any(hasattr(m, "weight_mask") for m in slim.modules())
    assert costs.params_remaining(model) == sum(p.numel() for p in slim.parameters())
    assert costs.macs(slim, EXAMPLE) == costs.macs(model, EXAMPLE)


def test_dense_macs_agree_with_torch_flop_counter():
    model = tiny_model(width=8).eval()
    with FlopCounterMode(display=False) as counter:
        model(EXAMPLE)
    assert costs.macs(model, EXAMPLE) * 2 == counter.get_total_flops()


def test_macs_fall_as_the_square_of_the_channels_kept():
    # Both the inputs and the outputs of every inner conv shrink by (1 - a): MACs by (1 - a)^2.
    model = tiny_model(width=16)
    dense = costs.macs(model, EXAMPLE)
    _, prune_by = pruner("ln_structured", model)
    prune_by(0.5)
    assert costs.macs(model, EXAMPLE) / dense == pytest.approx(0.25, abs=0.03)


def test_unstructured_macs_fall_with_the_weights_and_the_model_keeps_its_shape():
    model = tiny_model(width=8)
    dense = costs.macs(model, EXAMPLE)
    _, prune_by = pruner("l1_unstructured", model)
    prune_by(0.5)
    assert costs.macs(model, EXAMPLE) / dense == pytest.approx(0.5, abs=0.02)
    measured = costs.measure(model, EXAMPLE, reference=tiny_model(width=8), batch_sizes=(2, 8))
    assert measured.params_remaining < sum(p.numel() for p in tiny_model(width=8).parameters())
    assert set(measured.timed) == {"latency_b2_ms", "speedup_b2", "speedup_b2_spread",
                                   "latency_b8_ms", "speedup_b8", "speedup_b8_spread"}
    assert measured.timed["latency_b2_ms"] > 0 and measured.timed["latency_b8_ms"] > 0
    untimed = costs.measure(model, EXAMPLE, reference=None)
    assert untimed.macs == measured.macs and untimed.sparsity == measured.sparsity
    assert untimed.timed == {}


def test_ln_structured_norm_changes_the_ranking():
    # Filter 0: one large weight (L1 3, L2 3); filter 1: spread out (L1 4, L2 2). L1 keeps
    # filter 1, L2 keeps filter 0.
    def model():
        m = nn.Sequential(nn.Conv2d(4, 2, 1, bias=False), nn.BatchNorm2d(2), nn.Flatten(),
                          nn.Linear(2 * 4, 2))
        with torch.no_grad():
            m[0].weight.copy_(torch.tensor([[3.0, 0, 0, 0], [1, 1, 1, 1]]).reshape(2, 4, 1, 1))
        return m

    example = torch.zeros(1, 4, 2, 2)
    kept = {}
    for norm in (1, 2):
        m = model()
        targets = [(m[0], "weight")]
        context = Context(options=NormOptions(norm=norm), couplings=channels.couplings(
            m, targets, example))
        methods.get("ln_structured").apply(m, targets, 0.5, context)
        kept[norm] = live_channels(m[0]).tolist()
    assert kept == {1: [1], 2: [0]}


def test_taylor_prunes_channels_that_do_not_change_the_loss_whatever_their_norm():
    model = tiny_model(width=8)
    first, bn = conv_bn_pairs(model)[0]
    with torch.no_grad():
        first.weight[:4] *= 100  # large filters...
        bn.weight[:4] = 0  # ...whose output is cut off: they cannot affect the loss
        bn.bias[:4] = 0
    targets, prune_by = pruner("taylor_structured", model)
    prune_by(0.5)
    assert live_channels(first).tolist() == [4, 5, 6, 7]
    by_norm = tiny_model(width=8)
    with torch.no_grad():
        conv_bn_pairs(by_norm)[0][0].weight[:4] *= 100
    _, prune_norm = pruner("ln_structured", by_norm)
    prune_norm(0.5)
    assert live_channels(conv_bn_pairs(by_norm)[0][0]).tolist() == [0, 1, 2, 3]


def test_global_structured_ranks_across_layers_and_prunes_exactly_its_share():
    model = tiny_model(width=16)
    targets, prune_by = pruner("global_structured", model)
    total = sum(module.weight.shape[0] for module, _ in targets)
    prune_by(0.3)
    live = [len(live_channels(module)) for module, _ in targets]
    assert total - sum(live) == round(0.3 * total)
    fractions = [n / module.weight.shape[0] for n, (module, _) in zip(live, targets)]
    assert max(fractions) - min(fractions) > 0.1  # layers end at different fractions


def test_global_structured_score_is_relative_to_the_layer_average():
    # Scaling a whole layer does not change which of its channels go, nor how many.
    def pruned_per_layer(scale):
        model = tiny_model(width=16, seed=2)
        targets, prune_by = pruner("global_structured", model)
        with torch.no_grad():
            targets[2][0].weight.mul_(scale)
        prune_by(0.3)
        return [live_channels(module).tolist() for module, _ in targets]

    assert pruned_per_layer(1.0) == pruned_per_layer(100.0)


def test_random_structured_follows_the_seed_and_ignores_the_norm():
    def live(seed):
        model = tiny_model(width=16)
        targets, prune_by = pruner("random_structured", model)
        torch.manual_seed(seed)
        prune_by(0.5)
        return [live_channels(module).tolist() for module, _ in targets]

    assert live(0) == live(0) and live(0) != live(1)
