"""Every method, re-init option, cost measurement, export and --jobs on a CUDA GPU, through the
real CLI. Skipped where there is no GPU; scripts/gpu-check.sh runs them on a machine with one."""

import subprocess
import sys

import optuna
import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from prunesearch.pruning import methods
from prunesearch.cli import main

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device here (scripts/gpu-check.sh runs these)")

GPU_STUDY = """
name = "gpu"
seed = 0
n_trials = 3
sampler = "grid"        # each re-init option exactly once
latency_device = "cuda"

[data]
val_size = 50

[model]
width = 4

[dense]
epochs = 2
batch_size = 32
precision = "auto"

[space]
method = "{method}"
amount = 0.3
iterations = 2
retrain_epochs = 1
reinit = ["finetune", "rewind", "random"]
"""


def assert_complete_and_nothing_running(workdir, *, complete: int) -> optuna.Study:
    study = optuna.load_study(study_name="gpu", storage=f"sqlite:///{workdir / 'prunesearch.db'}")
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert states.count(optuna.trial.TrialState.COMPLETE) >= complete
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("gpu").experiment_id])
    assert runs and all(run.info.status == "FINISHED" for run in runs)
    return study


@pytest.mark.parametrize("method", sorted(methods.REGISTRY))
def test_a_study_of_every_method_runs_on_the_gpu_and_exports(workdir, method):
    (workdir / "gpu.toml").write_text(GPU_STUDY.format(method=method))
    result = CliRunner().invoke(main, ["optimize", "--study", "gpu.toml", "--device", "cuda"])
    assert result.exit_code == 0, result.output
    assert "device cuda" in result.output
    study = assert_complete_and_nothing_running(workdir, complete=3)
    assert {t.params["reinit"] for t in study.trials} == {"finetune", "rewind", "random"}
    final = study.best_trials[0].user_attrs["final"]
    assert final["latency_b64_ms"] > 0 and 0 < final["sparsity"] < 1

    exported = CliRunner().invoke(main, ["export", "--study", "gpu.toml", "--trial",
                                         str(study.best_trials[0].number), "--output", "out"])
    assert exported.exit_code == 0, exported.output
    program = torch.export.load(str(workdir / "out" / "model.pt2")).module()
    assert program(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_jobs_share_one_gpu(workdir):
    (workdir / "gpu.toml").write_text(GPU_STUDY.format(method="ln_structured"))
    result = subprocess.run([sys.executable, "-m", "prunesearch", "optimize", "--study",
                             "gpu.toml", "--device", "cuda", "--jobs", "2"],
                            cwd=workdir, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert_complete_and_nothing_running(workdir, complete=3)


def test_bf16_training_on_the_gpu_learns_and_evaluates_in_fp32(workdir, cifar_dir):
    from prunesearch.training import data
    from prunesearch.training import models
    from prunesearch.training import train

    split = data.load(data_dir=cifar_dir, val_size=50, train_subset=None, seed=0).train.to("cuda")
    model = models.build("cifar_cnn", width=4).cuda()
    settings = train.OptimizerSettings(lr=0.05, batch_size=32, momentum=0.9, weight_decay=0,
                                       precision="bf16")
    losses = []
    train.train_epochs(model, split, epochs=3, settings=settings,
                       generator=data.generator_on("cuda", 0),
                       on_epoch=lambda epoch, loss: losses.append(loss))
    assert losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast, not a cast


def test_a_trial_out_of_gpu_memory_fails_frees_the_memory_and_the_next_one_runs(workdir,
                                                                                 monkeypatch):
    from prunesearch.pruning import loop

    retrain = loop.train_epochs
    calls = []

    def too_big_once(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # a real allocation the card cannot give
            model.hoard = torch.empty(2**42, device="cuda")
        return retrain(model, *args, **kwargs)

    monkeypatch.setattr(loop, "train_epochs", too_big_once)
    (workdir / "gpu.toml").write_text(GPU_STUDY.format(method="l1_unstructured").replace(
        'sampler = "grid"', 'sampler = "random"'))  # a failed grid point ends a grid study
    baseline = torch.cuda.memory_allocated()
    result = CliRunner().invoke(main, ["optimize", "--study", "gpu.toml", "--device", "cuda"])
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="gpu", storage=f"sqlite:///{workdir / 'prunesearch.db'}")
    failed, = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert failed.user_attrs["fail_reason"].startswith("out of GPU memory with model cifar_cnn")
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3
    assert torch.cuda.memory_allocated() - baseline < 64 * 2**20  # nothing of it held on to



def test_networks_traced_in_parts_and_masked_layer_norms_prune_on_the_gpu():
    """ShuffleNet (traced block by block, each behind a stand-in for its input) and ConvNeXt
    (masked LayerNorms) pruned on the GPU: masked and removed compute the same there."""
    for name in ("shufflenet_v2_x0_5", "convnext_tiny"):
        prune_and_remove_on(torch.device("cuda"), name)


def prune_and_remove_on(device: torch.device, name: str) -> None:
    from test_torchvision_networks import torchvision_net

    from prunesearch.pruning.export import shrink
    from prunesearch.pruning.loop import prunable_targets
    from prunesearch.pruning.methods.base import Context
    from prunesearch.pruning.graph.channels import couplings
    from prunesearch.pruning.methods.options import NormOptions

    model, classifier = torchvision_net(name)
    dense_parameters = sum(p.numel() for p in model.parameters())
    model.to(device)
    example = torch.zeros(1, 3, 32, 32, device=device)
    targets = prunable_targets(model, include_classifier=False, classifier=classifier)
    found = couplings(model, targets, example)
    targets = [target for target in targets if target[0] in found]
    assert targets  # the parts traced on the device, not refused for a stand-in on the CPU
    methods.get("ln_structured").apply(model, targets, 0.3,
                                       Context(options=NormOptions(), couplings=found))
    slim = shrink(model, example, classifier=classifier).eval()
    images = torch.randn(4, 3, 32, 32, device=device)
    with torch.no_grad():
        expected, got = model.eval()(images), slim(images)
    assert (expected - got).abs().max() <= 1e-3 * expected.abs().max().clamp_min(1)
    assert sum(p.numel() for p in slim.parameters()) < dense_parameters
