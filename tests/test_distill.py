"""Distillation from the dense model while the pruned one retrains (training.distill)."""

import copy

import optuna
import pytest
import torch
from click.testing import CliRunner

from prunesearch.cli import main
from prunesearch.training import models
from prunesearch.training.data import Split
from prunesearch.training.distill import Distillation
from prunesearch.training.train import OptimizerSettings, train_epochs

from conftest import write_study

SETTINGS = OptimizerSettings(lr=0.05, batch_size=16, momentum=0.9, weight_decay=5e-4)


def split(seed: int = 0, size: int = 48) -> Split:
    generator = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (size, 3, 32, 32), generator=generator,
                               dtype=torch.uint8),
                 torch.randint(0, 10, (size,), generator=generator))


def trained(data: Split, distillation=None, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    student = models.build("cifar_cnn", width=4)
    train_epochs(student, data, epochs=2, settings=SETTINGS,
                 generator=torch.Generator().manual_seed(1), distillation=distillation)
    return student.state_dict()


def teacher() -> torch.nn.Module:
    torch.manual_seed(5)
    return models.build("cifar_cnn", width=8)


def test_alpha_zero_is_plain_retraining_bit_for_bit():
    data = split()
    plain = trained(data)
    off = trained(data, Distillation.of(teacher(), alpha=0.0, temperature=4.0))
    assert all(torch.equal(plain[key], off[key]) for key in plain)


def test_alpha_one_learns_from_the_teacher_alone_and_never_changes_it():
    data = split()
    frozen = teacher()
    before = copy.deepcopy(frozen.state_dict())
    soft = trained(data, Distillation.of(frozen, alpha=1.0, temperature=2.0))
    shuffled = Split(data.images, data.labels[torch.randperm(len(data.labels))])
    relabelled = trained(shuffled, Distillation.of(frozen, alpha=1.0, temperature=2.0))
    assert all(torch.equal(soft[key], relabelled[key]) for key in soft)  # labels unread
    assert not all(torch.equal(soft[key], trained(data)[key]) for key in soft)
    assert all(torch.equal(before[key], value) for key, value in frozen.state_dict().items())
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())


def test_the_loss_is_the_mix_of_cross_entropy_and_the_tempered_kl():
    distillation = Distillation.of(teacher(), alpha=0.25, temperature=3.0)
    images = torch.randn(6, 3, 32, 32)
    labels = torch.arange(6)
    logits = torch.randn(6, 10)
    with torch.no_grad():
        t = distillation.teacher(images) / 3.0  # in eval mode
    p = t.softmax(1)
    kl = (p * (p.log() - (logits / 3.0).log_softmax(1))).sum(1).mean() * 9
    ce = torch.nn.functional.cross_entropy(logits, labels)
    got = distillation.loss(logits, images, labels)
    assert got.item() == pytest.approx((0.75 * ce + 0.25 * kl).item(), rel=1e-5)


def test_a_study_searches_distillation_and_names_it_in_its_runs(workdir):
    path = write_study(workdir, settings='latency_device = "none"', retrain_epochs="1")
    text = path.read_text().replace('reinit = ["finetune", "rewind", "random"]',
                                    'reinit = "finetune"\ndistill_alpha = [0.0, 0.7]\n'
                                    'distill_temperature = 3.0')
    path.write_text(text.replace("n_trials = 2", "n_trials = 4"))
    result = CliRunner().invoke(main, ["optimize", "--study", str(path)])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="tiny", storage="sqlite:///prunesearch.db")
    alphas = {t.params["distill_alpha"] for t in study.trials}
    assert alphas == {0.0, 0.7}
    names = CliRunner().invoke(main, ["pareto", "--study", "tiny", "--all", "--format", "json"])
    assert "distill_temperature" in names.output


@pytest.mark.parametrize("space, key, allowed", [
    ("distill_alpha = 1.5", "space.distill_alpha", "[0, 1]"),
    ("distill_temperature = 0", "space.distill_temperature", "> 0"),
    ("distill_temperature = 2.0", "space.distill_temperature", "read only when"),
])
def test_bad_distillation_settings_are_refused_in_one_line(workdir, space, key, allowed):
    path = write_study(workdir)
    path.write_text(path.read_text().replace("[space]", f"[space]\n{space}"))
    result = CliRunner().invoke(main, ["validate", "--study", str(path)])
    assert result.exit_code == 2
    line = result.output.strip()
    assert "\n" not in line and key in line and allowed in line
