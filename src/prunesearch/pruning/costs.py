"""What a pruned model costs: weights, parameters, multiply-accumulates and measured latency.

- weight sparsity: fraction of conv and linear weights at zero (the classifier's included even
  when left unpruned; biases and BatchNorm not counted);
- parameters remaining: every parameter entry (weights, biases, BatchNorm scale and shift) not
  zeroed by a mask; for structured pruning that is exactly the parameter count of the
  physically smaller model;
- MACs: multiply-accumulates of the conv and linear layers for one image, counting only
  nonzero weights (each does one MAC per output position); after structured pruning that is
  the smaller model's dense count; BatchNorm, ReLU and pooling are not counted;
- latency: wall time of a forward pass on the study's `latency_device` (CPU by default, a
  CUDA GPU, synchronised, or ONNX Runtime on the CPU, the model exported to ONNX), in eval
  mode, at each of the study's `latency_batch_sizes` (figures.BATCH_SIZES by default), of the
  model as it would be deployed (`export.shrink`: masks folded, pruned channels removed;
  unstructured zeros stay and run through the same dense kernels, so they do not make it
  faster). It is timed against the
  dense model in LATENCY_ROUNDS rounds of one block each (pruning.timing.time_against:
  `torch.utils.benchmark.Timer`, synchronised, warm-up first, order alternating): latency is
  the fastest block's time per run (the least disturbed); the speed-up is the median of the
  per-round ratios dense / this (each round's two blocks run back to back, so drift cancels;
  timing a model against an identical copy on an idle 2-core machine, it fell within 0.9-1.1
  in 92% of 25 tries at batch 64, the ratio of the fastest blocks in 76%:
  benchmarks/latency.py (noise)), its spread their interquartile range. With latency_device
  NOT_TIMED nothing is timed and these figures are NaN (MLflow leaves them out).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from prunesearch.foundation import interrupts
from prunesearch.pruning import export, onnx_runtime
from prunesearch.pruning.figures import BATCH_SIZES
from prunesearch.pruning.timing import time_against
from prunesearch.pruning.watching import watched_forward

PRUNABLE_TYPES = export.PRUNABLE_TYPES
ONNX_RUNTIME = "onnxruntime"  # the latency_device that times the model exported to ONNX


@dataclass(frozen=True)
class Costs:
    sparsity: float
    weights_remaining: int
    params_remaining: int
    macs: int
    timed: dict = field(default_factory=dict)  # per batch size: Timing.figures


def prunable_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, PRUNABLE_TYPES)]


def weight_counts(model: nn.Module) -> tuple[int, int]:
    """(nonzero, total) entries of the conv and linear weights, masks applied."""
    nonzero = total = 0
    for _, module in prunable_modules(model):
        nonzero += int(module.weight.count_nonzero())
        total += module.weight.numel()
    return nonzero, total


def params_remaining(model: nn.Module) -> int:
    """Parameter entries not zeroed by a mask."""
    count = 0
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            mask = getattr(module, name.removesuffix("_orig") + "_mask", None)
            count += int(mask.count_nonzero()) if name.endswith("_orig") and mask is not None \
                else parameter.numel()
    return count


def macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """Multiply-accumulates of the conv and linear layers for one image, nonzero weights only."""
    found = positions(model, example_input)
    return sum(int(module.weight.count_nonzero()) * found[module]
               for _, module in prunable_modules(model))


def positions(model: nn.Module, example_input: torch.Tensor) -> dict[nn.Module, int]:
    """For each conv and linear layer, the positions it computes each output at for one image:
    each of its weights does one multiply-accumulate per position."""
    found = {}

    def record(module, _, output):
        # A conv computes each output channel at every position of its map; a linear layer at
        # every position its input has besides the features (ConvNeXt applies them per pixel).
        found[module] = (output[0, 0].numel() if isinstance(module, nn.Conv2d)
                         else output[0].numel() // output.shape[-1])

    watched_forward(model, example_input[:1],
                    [module.register_forward_hook(record) for _, module in prunable_modules(model)])
    return found


def deployed(model: nn.Module, example_input: torch.Tensor, *,
             latency_device: torch.device | str = "cpu",
             classifier: str = "classifier"):
    """`model` as it would ship (`export.shrink`), on `latency_device`: what is timed."""
    return runnable(export.shrink(model, example_input, classifier=classifier), example_input,
                    latency_device)


def runnable(slim: nn.Module, example_input: torch.Tensor, latency_device):
    """A shrunk model where it is timed: on a torch device, or exported to ONNX Runtime."""
    if latency_device == ONNX_RUNTIME:
        return onnx_runtime.OnnxModel.of(slim, example_input)
    return slim.to(latency_device)


def measure(model: nn.Module, example_input: torch.Tensor, *, reference: nn.Module | None,
            latency_device: torch.device | str = "cpu", classifier: str = "classifier",
            batch_sizes: Sequence[int] = BATCH_SIZES) -> Costs:
    """Every figure of the module docstring for `model` (masked or dense), on any device;
    latency timed on `latency_device` at each of `batch_sizes` against `reference` (the dense
    model, `deployed`), or not at all when `reference` is None; `classifier` names the output
    layer. It writes to no store, so a stop request ends it at once (seconds, for a big model
    timed)."""
    with interrupts.abortable():
        return _measure(model, example_input, reference=reference, latency_device=latency_device,
                        classifier=classifier, batch_sizes=batch_sizes)


def _measure(model, example_input, *, reference, latency_device, classifier,
             batch_sizes) -> Costs:
    nonzero, total = weight_counts(model)
    if reference is None:
        # Nothing to time: the MACs of the masked model are those of the smaller one (they
        # count nonzero weights; tests/test_structured.py holds them equal), so the model is
        # not rebuilt smaller, which takes seconds for a large network.
        timed = {}
        counted = macs(model, example_input[:1])
    else:
        slim = export.shrink(model, example_input, classifier=classifier)
        on_device = runnable(slim, example_input, latency_device)
        device_input = example_input[:1].to(
            "cpu" if latency_device == ONNX_RUNTIME else latency_device)
        timed = {}
        for batch in batch_sizes:
            timed |= time_against(on_device, reference, device_input, batch).figures(batch)
        counted = macs(slim, example_input[:1])
    return Costs(
        sparsity=1 - nonzero / total,
        weights_remaining=nonzero,
        params_remaining=params_remaining(model),
        macs=counted,
        timed=timed,
    )
