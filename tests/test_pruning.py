"""The contract every registered pruning method keeps, the loop's masks and the re-init options."""

import optuna
import pytest
import torch

from prunesearch.pruning import methods
from prunesearch.training import models
from prunesearch.pruning import reinit
from prunesearch.training.data import load
from prunesearch.pruning.methods.base import Context
from prunesearch.pruning.methods.options import NormOptions
from prunesearch.pruning.graph.channels import couplings, live_channels
from prunesearch.pruning.loop import prunable_targets, run
from prunesearch.pruning.schedule import REINIT_OPTIONS, Choice, Fixed, Schedule
from prunesearch.pruning.trial import TrialSettings
from prunesearch.config.space import suggest
from prunesearch.training.train import OptimizerSettings

METHODS = sorted(methods.REGISTRY)
SETTINGS = OptimizerSettings(lr=0.05, batch_size=32, momentum=0.9, weight_decay=5e-4)
EXAMPLE = torch.zeros(1, 3, 32, 32)


def tiny_model(seed: int = 0, width: int = 4):
    torch.manual_seed(seed)
    return models.build("cifar_cnn", width=width)


def random_batches(count: int = 2):
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(16, 3, 32, 32, generator=generator),
             torch.randint(0, 10, (16,), generator=generator)) for _ in range(count)]


def pruner(name: str, model, *, include_classifier: bool = True, norm: int = 1,
           classifier: str = "classifier", round_to: int = 1):
    """(targets, prune(amount)) for method `name` on `model`, set up as the loop does."""
    method = methods.get(name)
    targets = prunable_targets(model, include_classifier=include_classifier
                               and not method.structured, classifier=classifier)
    options = {"norm": norm} if method.Options is NormOptions else {}
    if method.structured:
        options["round_to"] = round_to
    found = couplings(model, targets, EXAMPLE) if method.structured else {}
    if method.structured:  # as the loop does: what it cannot prune stays whole
        targets = [target for target in targets if target[0] in found]
    context = Context(options=method.Options(**options), batches=random_batches,
                      couplings=found)
    return targets, lambda amount: method.apply(model, targets, amount, context)


def pruned_fraction(name: str, targets) -> float:
    """What the method counts: weights, or output channels for a structured method."""
    if methods.get(name).structured:
        live = sum(len(live_channels(module)) for module, _ in targets)
        return 1 - live / sum(module.weight.shape[0] for module, _ in targets)
    zeros = sum(int((module.weight_mask == 0).sum()) for module, _ in targets)
    return zeros / sum(module.weight_mask.numel() for module, _ in targets)


def all_masks(model) -> dict:
    return {(module, name): module.get_buffer(name + "_mask").clone()
            for module in model.modules() for name, _ in module.named_parameters(recurse=False)
            if name.endswith("_orig") for name in [name.removesuffix("_orig")]}


# Every registered network at a tiny width (resnet56 is resnet20 with more blocks: left out,
# it would triple these tests' time for no path of its own).
MODELS = sorted(set(models.REGISTRY) - {"resnet56"})


def tiny_network(model_name: str):
    torch.manual_seed(0)
    return models.build(model_name, width=4)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("name", METHODS)
def test_every_masked_tensor_is_its_orig_times_its_mask(name, model_name):
    model = tiny_network(model_name)
    _, prune_by = pruner(name, model)
    prune_by(0.4)
    for (module, tensor), mask in all_masks(model).items():
        assert torch.equal(getattr(module, tensor), getattr(module, tensor + "_orig") * mask)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("amount", [0.2, 0.5])
def test_k_rounds_give_one_minus_one_minus_a_to_the_k_and_masks_only_shrink(name, amount):
    # Width 16: structured methods round to whole channels per layer, within 0.03 here.
    model = tiny_model(width=16)
    targets, prune_by = pruner(name, model)
    previous = {}
    for k in range(1, 5):
        prune_by(amount)
        current = all_masks(model)
        for key, before in previous.items():
            assert torch.all(current[key] <= before)  # nothing pruned ever comes back
        previous = current
        assert pruned_fraction(name, targets) == pytest.approx(1 - (1 - amount) ** k, abs=0.03)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("name", METHODS)
def test_pruned_entries_get_zero_gradient(name, model_name):
    model = tiny_network(model_name)
    _, prune_by = pruner(name, model)
    prune_by(0.5)
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    for (module, tensor), mask in all_masks(model).items():
        assert torch.all(getattr(module, tensor + "_orig").grad[mask == 0] == 0)


def pruned_and_kept_magnitudes(module):
    weight, alive = module.weight_orig.detach().abs(), module.weight_mask.bool()
    return weight[~alive], weight[alive]


def test_l1_unstructured_prunes_the_smallest_weights_of_each_layer_equally():
    targets, prune_by = pruner("l1_unstructured", tiny_model())
    prune_by(0.5)
    for module, _ in targets:
        pruned, kept = pruned_and_kept_magnitudes(module)
        assert pruned.max() <= kept.min()
        assert len(pruned) / module.weight.numel() == pytest.approx(0.5, abs=0.01)


def test_global_l1_uses_one_threshold_across_layers():
    targets, prune_by = pruner("global_l1", tiny_model())
    prune_by(0.5)
    pruned, kept = zip(*(pruned_and_kept_magnitudes(module) for module, _ in targets))
    assert torch.cat(pruned).max() <= torch.cat(kept).min()
    per_layer = [float((module.weight_mask == 0).float().mean()) for module, _ in targets]
    assert max(per_layer) - min(per_layer) > 0.1  # not the same fraction in every layer


def test_random_unstructured_ignores_magnitude_and_follows_the_seed():
    def pruned_masks(seed):
        model = tiny_model()
        targets, prune_by = pruner("random_unstructured", model)
        torch.manual_seed(seed)
        prune_by(0.5)
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


def trial(data, init, *, augmented: bool = False) -> TrialSettings:
    """What a study's trials share, by hand: `init` both rewound to and as a fresh start."""
    return TrialSettings(data=data, dense_accuracy=(0.5, 0.5), rewind_state=init,
                         fresh_state=lambda seed: init, optimizer=SETTINGS, augmented=augmented,
                         seed=0)


def schedule(**changes) -> Schedule:
    values = dict(method="l1_unstructured", amount=0.4, iterations=2, retrain_epochs=1,
                  reinit="finetune", retrain_lr=0.05)
    return Schedule(**{**values, **changes})


@pytest.mark.slow
def test_pruned_weights_stay_exactly_zero_through_retraining(tiny_data):
    model = tiny_model()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    result = run(trial(tiny_data, init, augmented=True), schedule(), model)
    for module, _ in prunable_targets(model, include_classifier=True):
        assert torch.all(module.weight[module.weight_mask == 0] == 0)
        assert hasattr(module, "weight_orig")  # masks are not folded before export
    assert result.final.sparsity == pytest.approx(1 - 0.6 ** 2, abs=0.01)
    assert [r.iteration for r in result.iterations] == [1, 2]


def pruned_copy():
    """A model pruned once, with its surviving weights' trained values."""
    model = tiny_model(seed=1)
    targets, prune_by = pruner("l1_unstructured", model)
    prune_by(0.5)
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


@pytest.mark.parametrize("option", REINIT_OPTIONS)
def test_loop_runs_every_reinit_option(tiny_data, option):
    model = tiny_model()
    init = {k: v.clone() for k, v in tiny_model(seed=3).state_dict().items()}
    result = run(trial(tiny_data, init), schedule(reinit=option), model)
    assert 0 <= result.final.val_accuracy <= 1


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS)
def test_loop_runs_every_method(tiny_data, name):
    model = tiny_model()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    result = run(trial(tiny_data, init), schedule(method=name), model)
    targets = prunable_targets(model, include_classifier=not methods.get(name).structured)
    assert pruned_fraction(name, targets) == pytest.approx(1 - 0.6 ** 2, abs=0.1)
    assert result.final.macs < result.dense.macs
    assert 0 < result.final.params_remaining < result.dense.params_remaining


def test_loop_reports_every_retraining_epoch_and_iteration(tiny_data):
    model = tiny_model()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    epochs, iterations = [], []
    run(trial(tiny_data, init), schedule(iterations=2, retrain_epochs=2), model,
        on_epoch=lambda i, e, loss: epochs.append((i, e)),
        on_iteration=lambda result, each: iterations.append(result.iteration))
    assert epochs == [(1, 1), (1, 2), (2, 1), (2, 2)] and iterations == [0, 1, 2]


def test_method_options_are_sampled_only_for_the_methods_that_read_them():
    space = {"method": Choice(("l1_unstructured", "ln_structured")), "norm": Choice((1, 2)),
             "prune_classifier": Choice((True, False)), "amount": Fixed(0.3),
             "iterations": Fixed(1), "retrain_epochs": Fixed(0), "reinit": Fixed("finetune")}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        trial = study.ask()
        schedule = suggest(trial, space)
        study.tell(trial, 0.0)
        structured = schedule.method == "ln_structured"
        assert ("norm" in trial.params) == structured
        assert ("prune_classifier" in trial.params) == (not structured)
        assert ("norm" in schedule.as_dict()) == structured
    assert {t.params["method"] for t in study.trials} == {"l1_unstructured", "ln_structured"}


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("name", METHODS)
def test_a_method_only_adds_masks_and_never_changes_the_weights_it_masks(name, model_name):
    model = tiny_network(model_name)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    _, prune_ = pruner(name, model)
    prune_(0.3)
    after = model.state_dict()
    for key, value in before.items():  # each pruned tensor lives on as <name>_orig
        assert torch.equal(after[key + "_orig" if key + "_orig" in after else key], value)
    origs = {key: value.clone() for key, value in after.items() if key.endswith("_orig")}
    prune_(0.3)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in origs.items())
