"""The gradual schedule family (Zhu & Gupta 2017): pruning while training along the cubic
ramp (pruning.gradual), each epoch's model a candidate."""

import json
import math

import optuna
import pytest
import torch
from click.testing import CliRunner

from prunesearch.cli import main
from prunesearch.pruning import gradual, loop
from prunesearch.pruning.schedule import Schedule
from prunesearch.pruning.trial import Latency, TrialSettings
from prunesearch.training import models
from prunesearch.training.data import ImageData, Split
from prunesearch.training.train import OptimizerSettings

STORAGE = "sqlite:///prunesearch.db"


@pytest.mark.parametrize("final, steps, ramp_end, every", [
    (0.8, 100, 0.75, 5), (0.5, 37, 1.0, 4), (0.9, 10, 0.5, 20)])
def test_the_ramp_is_the_cubic_of_zhu_and_gupta_and_reaches_the_final_sparsity(
        final, steps, ramp_end, every):
    events = gradual.event_steps(steps, ramp_end, every)
    assert events[0] == every and all(b - a == every for a, b in zip(events, events[1:]))
    assert events[-1] <= max(round(ramp_end * steps), every)
    n_dt = events[-1]
    for t in events:
        assert gradual.target(t, n_dt, final) == pytest.approx(
            final + (0 - final) * (1 - t / n_dt) ** 3, abs=1e-6)
    assert gradual.target(events[-1], n_dt, final) == pytest.approx(final, abs=1e-12)
    # Each event prunes a fraction of what remains; together they reach the target exactly.
    remaining, reached = 1.0, 0.0
    for t in events:
        now = gradual.target(t, n_dt, final)
        remaining *= 1 - gradual.amount_between(reached, now)
        reached = now
        assert 1 - remaining == pytest.approx(now, abs=1e-6)


def tiny_data(seed: int = 0) -> ImageData:
    generator = torch.Generator().manual_seed(seed)

    def split(size):
        return Split(torch.randint(0, 256, (size, 3, 32, 32), generator=generator,
                                   dtype=torch.uint8),
                     torch.randint(0, 10, (size,), generator=generator))
    return ImageData(train=split(64), val=split(32), test=split(32), fingerprint="tiny")


def test_weights_follow_the_ramp_epoch_by_epoch_and_pruned_ones_stay_zero():
    torch.manual_seed(0)
    model = models.build("cifar_cnn", width=8)
    data = tiny_data()
    schedule = Schedule(method="l1_unstructured", schedule="gradual", final_sparsity=0.8,
                        gradual_epochs=4, ramp_end=0.75, prune_every=2, reinit="finetune")
    settings = OptimizerSettings(lr=0.01, batch_size=16, momentum=0.9, weight_decay=5e-4)
    masks = []

    def on_iteration(result, each):
        if result.iteration:
            masks.append({name: buffer.clone() for name, buffer in model.named_buffers()
                          if name.endswith("weight_mask")})

    trials = TrialSettings(data=data, dense_accuracy=(0.1, 0.1), rewind_state={},
                           fresh_state=lambda seed: {}, optimizer=settings, augmented=False,
                           seed=0, latency=Latency("none"))
    result = loop.run(trials, schedule, model, on_iteration=on_iteration)
    steps_per_epoch = math.ceil(64 / 16)
    events = gradual.event_steps(4 * steps_per_epoch, 0.75, 2)
    assert [r.iteration for r in result.iterations] == [1, 2, 3, 4]
    for epoch, figures in enumerate(result.iterations, start=1):
        done = [t for t in events if t <= epoch * steps_per_epoch]
        target = gradual.target(done[-1], events[-1], 0.8) if done else 0.0
        # per layer, torch rounds each event's count to a whole weight
        assert figures.sparsity == pytest.approx(target, abs=0.02)
    assert result.final.sparsity == pytest.approx(0.8, abs=0.02)
    for earlier, later in zip(masks, masks[1:]):  # masks only shrink: pruned stays pruned
        assert all(torch.all(later[name] <= earlier[name]) for name in earlier)
    for name, module in model.named_modules():
        if hasattr(module, "weight_mask"):
            assert torch.all(module.weight[module.weight_mask == 0] == 0)


MIXED = """
name = "families"
n_trials = 6
seed = 0
latency_device = "none"
early_stopping = "mo-asha"
[data]
val_size = 50
[model]
width = 4
[dense]
epochs = 1
batch_size = 32
[space]
method = "l1_unstructured"
schedule = ["iterative", "gradual"]
amount = 0.5
iterations = 2
retrain_epochs = 1
final_sparsity = { low = 0.5, high = 0.8 }
gradual_epochs = 2
prune_every = 3
reinit = "finetune"
"""


@pytest.mark.slow
def test_one_study_weighs_both_families_each_sampling_its_own_keys(workdir):
    (workdir / "families.toml").write_text(MIXED)
    result = CliRunner().invoke(main, ["optimize", "--study", "families.toml"])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="families", storage=STORAGE)
    trials = [t for t in study.trials if t.state.name == "COMPLETE"]
    families = {t.params.get("schedule", "iterative") for t in trials}
    assert families == {"iterative", "gradual"}
    for trial in trials:
        schedule = trial.user_attrs["schedule"]
        if schedule["schedule"] == "gradual":
            assert "amount" not in schedule and "final_sparsity" in trial.params
            assert [f["iteration"] for f in trial.user_attrs["curve"]][0] == 1
        else:
            assert "final_sparsity" not in schedule and "final_sparsity" not in trial.params
    gradual_trial = next(t for t in trials if t.user_attrs["schedule"]["schedule"] == "gradual"
                         and len(t.user_attrs["curve"]) == 2)
    exported = CliRunner().invoke(main, ["export", "--study", "families", "--trial",
                                         str(gradual_trial.number), "--iteration", "1",
                                         "--output", "epoch1"])
    assert exported.exit_code == 0, exported.output
    summary = json.loads((workdir / "epoch1" / "trial.json").read_text())
    assert summary["iteration"] == 1 and summary["schedule"]["schedule"] == "gradual"


@pytest.mark.parametrize("edit, key, allowed", [
    (('schedule = ["iterative", "gradual"]', 'schedule = "gradual"'), "space.amount",
     "only read by schedule iterative"),
    (('final_sparsity = { low = 0.5, high = 0.8 }\n', ""), "space.final_sparsity",
     "required (schedule gradual)"),
    (('reinit = "finetune"', 'reinit = ["finetune", "rewind"]'), "space.reinit",
     "takes reinit finetune only"),
    (('final_sparsity = { low = 0.5, high = 0.8 }', "final_sparsity = 1.0"),
     "space.final_sparsity", "(0, 1)"),
    (("prune_every = 3", "prune_every = 0"), "space.prune_every", ">= 1"),
])
def test_bad_family_keys_are_refused_in_one_line(workdir, edit, key, allowed):
    text = MIXED.replace(*edit)
    if edit[1] == 'schedule = "gradual"':
        text = text.replace("amount = 0.5\niterations = 2\nretrain_epochs = 1\n",
                            "amount = 0.5\n")
    (workdir / "bad.toml").write_text(text)
    result = CliRunner().invoke(main, ["validate", "--study", "bad.toml"])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and key in line and allowed in line
