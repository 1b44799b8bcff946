"""The contract every registered pruning method keeps, the loop's masks and the re-init options."""

import pytest
import torch

from prunesearch import methods, models, reinit
from prunesearch.data import load
from prunesearch.loop import prunable_targets, run
from prunesearch.schedule import Schedule
from prunesearch.train import OptimizerSettings

METHODS = sorted(methods.REGISTRY)
SETTINGS = OptimizerSettings(lr=0.05, batch_size=32, momentum=0.9, weight_decay=5e-4)


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return models.build("cifar_cnn", width=4)


def masks(targets):
    return [module.weight_mask.clone() for module, _ in targets]


def pruned_fraction(targets) -> float:
    zeros = sum(int((module.weight_mask == 0).sum()) for module, _ in targets)
    return zeros / sum(module.weight_mask.numel() for module, _ in targets)


@pytest.mark.parametrize("name", METHODS)
def test_weight_is_weight_orig_times_mask(name):
    model = tiny_model()
    targets = prunable_targets(model, include_classifier=True)
    methods.get(name).apply(model, targets, 0.4)
    for module, _ in targets:
        assert torch.equal(module.weight, module.weight_orig * module.weight_mask)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("amount", [0.2, 0.5])
def test_k_rounds_give_one_minus_one_minus_a_to_the_k_and_masks_only_shrink(name, amount):
    model = tiny_model()
    targets = prunable_targets(model, include_classifier=True)
    previous = None
    for k in range(1, 5):
        methods.get(name).apply(model, targets, amount)
        current = masks(targets)
        if previous is not None:
            for before, after in zip(previous, current):
                assert torch.all(after <= before)  # nothing pruned ever comes back
        previous = current
        assert pruned_fraction(targets) == pytest.approx(1 - (1 - amount) ** k, abs=0.01)


@pytest.mark.parametrize("name", METHODS)
def test_pruned_entries_get_zero_gradient(name):
    model = tiny_model()
    targets = prunable_targets(model, include_classifier=True)
    methods.get(name).apply(model, targets, 0.5)
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    for module, _ in targets:
        assert torch.all(module.weight_orig.grad[module.weight_mask == 0] == 0)


def pruned_and_kept_magnitudes(module):
    weight, alive = module.weight_orig.detach().abs(), module.weight_mask.bool()
    return weight[~alive], weight[alive]


def test_l1_unstructured_prunes_the_smallest_weights_of_each_layer_equally():
    model = tiny_model()
    targets = prunable_targets(model, include_classifier=True)
    methods.get("l1_unstructured").apply(model, targets, 0.5)
    for module, _ in targets:
        pruned, kept = pruned_and_kept_magnitudes(module)
        assert pruned.max() <= kept.min()
        assert len(pruned) / module.weight.numel() == pytest.approx(0.5, abs=0.01)


def test_global_l1_uses_one_threshold_across_layers():
    model = tiny_model()
    targets = prunable_targets(model, include_classifier=True)
    methods.get("global_l1").apply(model, targets, 0.5)
    pruned, kept = zip(*(pruned_and_kept_magnitudes(module) for module, _ in targets))
    assert torch.cat(pruned).max() <= torch.cat(kept).min()
    per_layer = [float((module.weight_mask == 0).float().mean()) for module, _ in targets]
    assert max(per_layer) - min(per_layer) > 0.1  # not the same fraction in every layer


def test_random_unstructured_ignores_magnitude_and_follows_the_seed():
    def pruned_masks(seed):
        model = tiny_model()
        targets = prunable_targets(model, include_classifier=True)
        torch.manual_seed(seed)
        methods.get("random_unstructured").apply(model, targets, 0.5)
        return model, targets

    model, targets = pruned_masks(seed=0)
    pruned, kept = pruned_and_kept_magnitudes(targets[-2][0])
    assert pruned.max() > kept.min()
    _, again = pruned_masks(seed=0)
    assert all(torch.equal(a.weight_mask, b.weight_mask) for (a, _), (b, _) in zip(targets, again))


def test_classifier_can_be_left_out():
    model = tiny_model()
    targets = prunable_targets(model, include_classifier=False)
    assert all(module is not model.classifier for module, _ in targets)
    assert len(prunable_targets(model, include_classifier=True)) == len(targets) + 1


@pytest.fixture(scope="module")
def tiny_data(cifar_dir):
    return load(data_dir=cifar_dir, val_size=50, train_subset=None, seed=0)


def schedule(**changes) -> Schedule:
    values = dict(method="l1_unstructured", amount=0.4, iterations=2, retrain_epochs=1,
                  reinit="finetune", retrain_lr=0.05)
    return Schedule(**{**values, **changes})


def test_pruned_weights_stay_exactly_zero_through_retraining(tiny_data):
    model = tiny_model()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    result = run(schedule=schedule(), model=model, data=tiny_data, rewind_state=init,
                 fresh_state=lambda i: init, optimizer=SETTINGS, augmented=True, seed=0)
    for module, _ in prunable_targets(model, include_classifier=True):
        assert torch.all(module.weight[module.weight_mask == 0] == 0)
        assert hasattr(module, "weight_orig")  # masks are not folded before export
    assert result.final.sparsity == pytest.approx(1 - 0.6 ** 2, abs=0.01)
    assert [r.iteration for r in result.iterations] == [1, 2]


def pruned_copy():
    """A model pruned once, with its surviving weights' trained values."""
    model = tiny_model(seed=1)
    targets = prunable_targets(model, include_classifier=True)
    methods.get("l1_unstructured").apply(model, targets, 0.5)
    return model, targets


def test_rewind_restores_initial_values_on_surviving_weights_exactly():
    rewind_state = tiny_model(seed=7).state_dict()
    model, targets = pruned_copy()
    reinit.apply("rewind", model, rewind_state=rewind_state, fresh_state=lambda: 1 / 0)
    names = {module: name for name, module in model.named_modules()}
    for module, _ in targets:
        alive = module.weight_mask.bool()
        expected = rewind_state[f"{names[module]}.weight"]
        assert torch.equal(module.weight[alive], expected[alive])
        assert torch.all(module.weight[~alive] == 0)


def test_random_reinit_changes_surviving_weights_and_keeps_masks():
    model, targets = pruned_copy()
    before = [module.weight.detach().clone() for module, _ in targets]
    fresh = tiny_model(seed=99).state_dict()
    reinit.apply("random", model, rewind_state={}, fresh_state=lambda: fresh)
    for (module, _), old in zip(targets, before):
        alive = module.weight_mask.bool()
        assert not torch.equal(module.weight[alive], old[alive])
        assert torch.all(module.weight[~alive] == 0)


def test_finetune_keeps_surviving_weights():
    model, targets = pruned_copy()
    before = [module.weight.detach().clone() for module, _ in targets]
    reinit.apply("finetune", model, rewind_state={}, fresh_state=lambda: 1 / 0)
    for (module, _), old in zip(targets, before):
        assert torch.equal(module.weight, old)


@pytest.mark.parametrize("option", reinit.OPTIONS)
def test_loop_runs_every_reinit_option(tiny_data, option):
    model = tiny_model()
    init = {k: v.clone() for k, v in tiny_model(seed=3).state_dict().items()}
    result = run(schedule=schedule(reinit=option), model=model, data=tiny_data,
                 rewind_state=init, fresh_state=lambda i: init, optimizer=SETTINGS,
                 augmented=False, seed=0)
    assert 0 <= result.final.val_accuracy <= 1


@pytest.mark.parametrize("name", METHODS)
def test_loop_runs_every_method(tiny_data, name):
    model = tiny_model()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    result = run(schedule=schedule(method=name), model=model, data=tiny_data,
                 rewind_state=init, fresh_state=lambda i: init, optimizer=SETTINGS,
                 augmented=False, seed=0)
    assert result.final.sparsity == pytest.approx(1 - 0.6 ** 2, abs=0.01)


def test_loop_reports_every_retraining_epoch_and_iteration(tiny_data):
    model = tiny_model()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    epochs, iterations = [], []
    run(schedule=schedule(iterations=2, retrain_epochs=2), model=model, data=tiny_data,
        rewind_state=init, fresh_state=lambda i: init, optimizer=SETTINGS, augmented=False,
        seed=0, on_epoch=lambda i, e, loss: epochs.append((i, e)),
        on_iteration=lambda result: iterations.append(result.iteration))
    assert epochs == [(1, 1), (1, 2), (2, 1), (2, 2)] and iterations == [1, 2]
