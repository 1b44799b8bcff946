"""Turn a masked model into plain weights for deployment, and a structurally pruned one into a
genuinely smaller model (`shrink`).

The only place `prune.remove` is called: masks stay in place through every retraining phase
and are made permanent here, on the finished model.
"""

import copy
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune

from prunesearch.training.data import Split
from prunesearch.errors import ExportError
from prunesearch.pruning import onnx_runtime, timing
from prunesearch.pruning.figures import BATCH_SIZES
from prunesearch.pruning.methods.base import pruning_hooks
from prunesearch.training.train import evaluate
from prunesearch.pruning.graph.channels import couplings, drop_kept_statistics
from prunesearch.pruning.graph.tracing import Piece, Untraceable, piece_of, trace

PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


def without_masks(model: nn.Module) -> nn.Module:
    """A copy of `model` whose pruned weights are ordinary parameters (zeros where masked)."""
    # A masked weight computed by a forward pass with autograd on is not a graph leaf, and
    # deepcopy refuses those: recompute the masked tensors without autograd first.
    with torch.no_grad():
        for module, hook in pruning_hooks(model):
            setattr(module, hook._tensor_name, hook.apply_mask(module))
    exported = copy.deepcopy(model)
    for module, hook in list(pruning_hooks(exported)):
        prune.remove(module, hook._tensor_name)
    drop_kept_statistics(exported)
    return exported


def dead_channels(model: nn.Module, example_input: torch.Tensor, pieces: list[Piece],
                  classifier: str = "classifier") -> dict[str, list[int]]:
    """Per conv or linear layer (the output layer, named `classifier`, aside: its outputs are
    the classes), the output channels that output exactly zero: their weights, bias and
    following BatchNorm scale and shift are all zero, as structured pruning leaves them. Layers
    no structured method prunes (channels.unprunable) have none."""
    output_layer = dict(model.named_modules()).get(classifier)
    targets = [(module, "weight") for module in model.modules()
               if isinstance(module, PRUNABLE_TYPES) and module is not output_layer]
    found = couplings(model, targets, example_input, pieces)
    names = {module: name for name, module in model.named_modules()}
    return {names[module]: [channel for channel, dependents in enumerate(per_channel)
                            if all(_zero(dep) for dep in dependents if dep.dim == 0)]
            for module, per_channel in found.items()}


def _zero(dependent) -> bool:
    tensor = getattr(dependent.module, dependent.tensor_name)
    return bool(tensor.index_select(
        0, torch.tensor(dependent.index, device=tensor.device)).eq(0).all())


def shrink(model: nn.Module, example_input: torch.Tensor, *,
           classifier: str = "classifier") -> nn.Module:
    """A smaller dense copy of `model`: masks folded, then every channel that outputs exactly
    zero deleted with its dependents (bias, BatchNorm, the next layers' inputs) by
    torch-pruning's dependency graph. It computes what `model` computes; after unstructured
    pruning no channel is entirely zero, so only the masks are folded."""
    slim = without_masks(model)
    try:
        pieces = trace(slim, example_input)
    except Untraceable:  # no structured method runs on it (refused when the study is read)
        return slim
    dead = dead_channels(slim, example_input, pieces, classifier)
    modules = dict(slim.named_modules())
    removed = set()  # layers whose outputs a group removed already (a residual sum's members)
    for name, channels in dead.items():
        module = modules[name]
        if channels and module not in removed:
            graph = piece_of(pieces, module).graph
            prune_fn = graph.get_pruner_of_module(module).prune_out_channels
            group = graph.get_pruning_group(module, prune_fn, idxs=channels)
            removed |= {item.dep.target.module for item in group
                        if item.dep.handler.__name__ == "prune_out_channels"}
            group.prune()
    return slim


def save_weights(model: nn.Module, path: Path) -> Path:
    """The model's weights, masks made permanent, as a CPU state dict loadable into a freshly
    built model of the same name and width."""
    state = {key: value.detach().cpu() for key, value in without_masks(model).state_dict().items()}
    torch.save(state, path)
    return path


def write_package(model: nn.Module, example_input: torch.Tensor, test: Split, *,
                  recorded_test_accuracy: float, output_dir: Path, info: dict,
                  classifier: str = "classifier", onnx_dense: nn.Module | None = None,
                  structured: bool = False,
                  batch_sizes: Sequence[int] = BATCH_SIZES) -> tuple[nn.Module, dict]:
    """Shrink `model` (masks already folded or not), check that it still scores the recorded
    test accuracy, and write what a user needs without prunesearch (returned: the smaller
    model and the summary):

    - model.pt2: the program (torch.export, any batch size): `torch.export.load(path).module()`;
      or, given `onnx_dense` (the unpruned network, any weights), model.onnx instead, checked
      under ONNX Runtime (see `onnx_summary`, timed at `batch_sizes`);
    - state_dict.pt: the smaller model's weights;
    - trial.json: `info` plus the smaller model's weight shapes (`shapes`) and both
      accuracies.

    Nothing is written to `output_dir` unless every check passed.
    """
    slim = shrink(model, example_input, classifier=classifier).cpu().eval()
    measured = evaluate(slim, test)
    if abs(measured - recorded_test_accuracy) > 1 / len(test) + 1e-9:
        raise ExportError(
            f"the rebuilt model scores {measured:.4f} on the {len(test)} test images, but the "
            f"trial recorded {recorded_test_accuracy:.4f}; is --data-dir the data the study "
            "ran on?")
    summary = {**info, "test_accuracy_recorded": recorded_test_accuracy,
               "test_accuracy_measured": measured,
               "shapes": {name: list(module.weight.shape) for name, module in slim.named_modules()
                          if isinstance(module, PRUNABLE_TYPES)}}
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        if onnx_dense is None:
            batch = torch.export.Dim("batch")
            program = torch.export.export(slim, (test.inputs(slice(2)),),
                                          dynamic_shapes=({0: batch},))
            torch.export.save(program, staged / "model.pt2")
            summary["load"] = ("torch.export.load('model.pt2').module()(images), images "
                               "normalised as in prunesearch.training.data.normalize")
        else:
            summary["onnx"] = onnx_summary(slim, onnx_dense, test, staged / "model.onnx",
                                           measured=measured, structured=structured,
                                           batch_sizes=batch_sizes)
            summary["load"] = ("onnxruntime.InferenceSession('model.onnx').run(None, "
                               "{'images': images}), images float32 NCHW normalised as in "
                               "prunesearch.training.data.normalize")
        torch.save(slim.state_dict(), staged / "state_dict.pt")
        (staged / "trial.json").write_text(json.dumps(summary, indent=2))
        output_dir.mkdir(parents=True, exist_ok=True)
        for path in staged.iterdir():
            shutil.move(str(path), output_dir / path.name)
    return slim, summary


def onnx_summary(slim: nn.Module, dense: nn.Module, test: Split, path: Path, *,
                 measured: float, structured: bool,
                 batch_sizes: Sequence[int] = BATCH_SIZES) -> dict:
    """Write `slim` as ONNX at `path` and prove it: its logits match PyTorch's on test images
    (onnx_runtime.TOLERANCE), its test accuracy under ONNX Runtime is PyTorch's `measured`, and
    beside the dense network's ONNX file (`dense`, exported alike) its file size, parameters
    and ONNX Runtime latency at each of `batch_sizes`, timed against the dense one in paired
    rounds (timing.time_against).
    A structured model whose file is no smaller than the dense one's is an ExportError."""
    images = test.inputs(slice(64))
    deployed = onnx_runtime.OnnxModel(onnx_runtime.write(slim, images, path))
    difference = onnx_runtime.check_matches(deployed, slim, images)
    accuracy = evaluate(deployed, test)
    if abs(accuracy - measured) > 1e-9:
        raise ExportError(f"the ONNX model scores {accuracy:.4f} on the {len(test)} test images "
                          f"under ONNX Runtime, PyTorch's {measured:.4f}")
    with tempfile.TemporaryDirectory() as folder:
        reference = onnx_runtime.OnnxModel(onnx_runtime.write(
            dense.cpu().eval(), images, Path(folder) / "dense.onnx"))
        dense_bytes = reference.path.stat().st_size
        timings = {batch: timing.time_against(deployed, reference, images[:1], batch)
                   for batch in batch_sizes}
    size = path.stat().st_size
    if structured and size >= dense_bytes:
        raise ExportError(f"the ONNX file of this structurally pruned model is {size:,} bytes, "
                          f"no smaller than the dense model's {dense_bytes:,}: no channel was "
                          "removed")
    figures = {"file": path.name, "opset": onnx_runtime.OPSET, "bytes": size,
               "dense_bytes": dense_bytes,
               "params": sum(p.numel() for p in slim.parameters()),
               "dense_params": sum(p.numel() for p in dense.parameters()),
               "test_accuracy": accuracy, "max_abs_difference_from_torch": difference}
    for batch, timed in timings.items():
        figures |= {f"latency_b{batch}_ms": timed.latency_ms,
                    f"dense_latency_b{batch}_ms": timed.reference_ms,
                    f"speedup_b{batch}": timed.speedup}
    figures["batch_sizes"] = list(batch_sizes)
    return figures
