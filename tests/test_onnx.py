"""The model a user ships as ONNX: exported by torch, checked and timed under ONNX Runtime
(pruning.onnx_runtime), `export --format onnx`, `latency_device = "onnxruntime"` and channel
rounding (`round_to`)."""

import json

import onnxruntime
import optuna
import pytest
import torch
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from prunesearch.cli import main
from prunesearch.errors import ExportError
from prunesearch.pruning import export, onnx_runtime
from prunesearch.pruning.graph import channels
from prunesearch.training import data as data_module
from prunesearch.training import models

from conftest import write_study
from test_pruning import EXAMPLE, pruner

STORAGE = "sqlite:///prunesearch.db"
SMALL_WIDTHS = {"cifar_cnn": 8, "resnet20": 4, "resnet56": 4, "vgg16_bn": 8}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_every_registered_model_pruned_exports_to_onnx_and_computes_what_torch_does(
        name, tmp_path):
    assert set(SMALL_WIDTHS) == set(models.REGISTRY)
    images = torch.randn(5, 3, 32, 32)
    for family in ("ln_structured", "l1_unstructured"):
        torch.manual_seed(0)
        model = models.build(name, width=SMALL_WIDTHS[name]).eval()
        _, prune = pruner(family, model)
        prune(0.5)
        slim = export.shrink(model, EXAMPLE).eval()
        path = onnx_runtime.write(slim, images, tmp_path / f"{family}.onnx")
        session = onnxruntime.InferenceSession(str(path))
        (logits,) = session.run(None, {"images": images.numpy()})
        with torch.no_grad():
            expected = model(images)
        # float32 rounding grows with the logits' scale: an untrained ResNet-56 half pruned
        # reaches thousands, where ONNX Runtime and torch differ by 1e-3 (relative 3e-6)
        # depending on their threads' summation order
        scale = expected.abs().max().item()
        torch.testing.assert_close(torch.from_numpy(logits), expected, rtol=1e-5,
                                   atol=1e-4 * max(1.0, scale / 100))


def test_writing_leaves_the_model_as_it_was(tmp_path):
    """A trial timed on onnxruntime goes on measuring the same module (on the GPU, in a
    trial): exporting works on a copy."""
    model = models.build("cifar_cnn", width=4).train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    onnx_runtime.write(model, EXAMPLE, tmp_path / "m.onnx")
    assert model.training
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_check_matches_refuses_an_onnx_model_that_computes_something_else(tmp_path):
    model = models.build("cifar_cnn", width=4).eval()
    other = models.build("cifar_cnn", width=4).eval()
    with torch.no_grad():
        other.classifier.bias += 1
    deployed = onnx_runtime.OnnxModel(onnx_runtime.write(other, EXAMPLE, tmp_path / "m.onnx"))
    with pytest.raises(ExportError, match="differ from PyTorch's by"):
        onnx_runtime.check_matches(deployed, model, torch.randn(4, 3, 32, 32))


def test_a_structured_export_no_smaller_than_the_dense_model_writes_nothing(tmp_path,
                                                                          cifar_dir):
    test = data_module.load_test(cifar_dir)
    model = models.build("cifar_cnn", width=4)  # nothing pruned
    recorded = export.evaluate(model.eval(), test)
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="no smaller than the dense model's"):
        export.write_package(model, EXAMPLE, test, recorded_test_accuracy=recorded,
                             output_dir=out, info={}, onnx_dense=models.build("cifar_cnn",
                                                                              width=4),
                             structured=True)
    assert not out.exists()


def invoke(*args, code: int = 0):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result


STRUCTURED = """
name = "ship"
n_trials = 1
objectives = ["val_accuracy", "speedup"]
latency_device = "onnxruntime"
latency_batch_sizes = [2, 8]
max_latency_ms = 1000
max_speedup_noise = 10

[data]
val_size = 50

[model]
width = 8

[dense]
epochs = 1
batch_size = 32

[space]
method = "ln_structured"
round_to = 4
amount = 0.5
iterations = 1
retrain_epochs = 0
reinit = "finetune"
"""


@pytest.mark.slow
def test_a_study_timed_on_onnx_runtime_exports_a_smaller_onnx_model_that_proves_it(workdir,
                                                                                   cifar_dir):
    (workdir / "ship.toml").write_text(STRUCTURED)
    assert "latency on onnxruntime at batch 2, 8, max_latency_ms = 1000, max_speedup_noise = 10" \
        in invoke("validate", "--study", "ship.toml").output
    invoke("optimize", "--study", "ship.toml")
    study = optuna.load_study(study_name="ship", storage=STORAGE)
    (trial,) = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    final = trial.user_attrs["final"]
    timed = {name for name in final if name.startswith(("latency_b", "speedup_b"))}
    assert timed == {"latency_b2_ms", "speedup_b2", "speedup_b2_spread",
                     "latency_b8_ms", "speedup_b8", "speedup_b8_spread"}
    assert final["latency_b2_ms"] > 0 and final["speedup_b8"] > 0
    # The objective is read at the largest batch size, the latency budget at the smallest.
    assert trial.values == [final["val_accuracy"], final["speedup_b8"]] == \
        [final["val_accuracy"], final["speedup"]]
    assert final["latency_ms"] == final["latency_b2_ms"]
    assert "speedup b8" in invoke("pareto", "--study", "ship", "--all").output
    assert trial.constraints["max_latency_ms"] < 0  # a second per image: kept
    assert trial.constraints["max_speedup_noise"] == pytest.approx(
        final["speedup_b8_spread"] / final["speedup_b8"] - 10)

    out = workdir / "shipped"
    printed = invoke("export", "--study", "ship", "--trial", str(trial.number), "--format",
                     "onnx", "--output", str(out), "--register", "ship-model").output
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "state_dict.pt",
                                                     "trial.json"]
    summary = json.loads((out / "trial.json").read_text())
    onnx = summary["onnx"]
    assert onnx["opset"] == onnx_runtime.OPSET and onnx["bytes"] == (out / "model.onnx").stat().st_size
    assert onnx["bytes"] < onnx["dense_bytes"] and onnx["params"] < onnx["dense_params"]
    assert onnx["test_accuracy"] == summary["test_accuracy_measured"]
    assert onnx["max_abs_difference_from_torch"] <= 1e-4
    assert onnx["batch_sizes"] == [2, 8]
    assert onnx["latency_b2_ms"] > 0 and onnx["dense_latency_b8_ms"] > 0
    assert f"{onnx['bytes']:,} bytes (dense {onnx['dense_bytes']:,})" in printed
    assert all(shape[0] % 4 == 0 for name, shape in summary["shapes"].items()
               if name != "classifier")  # round_to
    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    test = data_module.load_test(cifar_dir)
    (logits,) = session.run(None, {"images": data_module.normalize(test.images).numpy()})
    accuracy = float((torch.from_numpy(logits).argmax(1) == test.labels).float().mean())
    assert accuracy == pytest.approx(summary["test_accuracy_measured"])

    client = MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    version = client.get_model_version("ship-model", "1")
    assert version.tags["prunesearch.onnx.bytes"] == str(onnx["bytes"])
    assert "prunesearch.onnx.latency_b8_ms" in version.tags
    files = [f.path for f in client.list_artifacts(trial.user_attrs["mlflow_run_id"],
                                                   "registered-model")]
    assert "registered-model/model.onnx" in files


@pytest.mark.parametrize("method", ["ln_structured", "global_structured",
                                    "taylor_structured", "random_structured"])
def test_round_to_leaves_each_layer_a_multiple_of_its_channels(method):
    torch.manual_seed(0)
    model = models.build("cifar_cnn", width=16)  # 16, 16, 32, 32, 64, 64 channels
    targets, prune = pruner(method, model, round_to=8)
    for _ in range(2):
        prune(0.3)
        live = [len(channels.live_channels(module)) for module, _ in targets]
        assert all(n % 8 == 0 for n in live), live
    assert sum(live) < 16 + 16 + 32 + 32 + 64 + 64
    slim = export.shrink(model, EXAMPLE).eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(slim(images), model.eval()(images), atol=1e-4)


@pytest.mark.parametrize("live, count, round_to, expected", [
    (32, 10, 8, 16),  # 22 kept -> 16
    (32, 8, 8, 8),  # already a multiple
    (32, 0, 8, 0),
    (32, 31, 8, 24),  # one multiple always stays
    (6, 2, 8, 0),  # a layer narrower than round_to is left as it is
    (30, 7, 1, 7),
])
def test_rounding_keeps_a_multiple_and_never_less_than_one(live, count, round_to, expected):
    assert channels.rounded(live, count, round_to) == expected


def test_an_onnx_latency_study_needs_the_onnx_extra(workdir, monkeypatch):
    path = write_study(workdir, settings='latency_device = "onnxruntime"')
    monkeypatch.setattr(onnx_runtime, "available", lambda: False)
    result = invoke("validate", "--study", str(path), code=2)
    assert result.output.strip() == (
        f"error: {path}: latency_device = 'onnxruntime': needs ONNX Runtime: pip install "
        "'prunesearch[onnx]'")
