"""What a pruned model costs: weights, parameters, multiply-accumulates and measured latency.

- weight sparsity: fraction of conv and linear weights at zero (the classifier's included even
  when left unpruned; biases and BatchNorm not counted);
- parameters remaining: every parameter entry (weights, biases, BatchNorm scale and shift) not
  zeroed by a mask; for structured pruning that is exactly the parameter count of the
  physically smaller model;
- MACs: multiply-accumulates of the conv and linear layers for one image, counting only
  nonzero weights (each does one MAC per output position); after structured pruning that is
  the smaller model's dense count; BatchNorm, ReLU and pooling are not counted;
- latency: median wall time of a forward pass on the study's `latency_device` (CPU by
  default, or a CUDA GPU, synchronised), in eval mode, at batch 1 and at batch
  LATENCY_BIG_BATCH, timed by `torch.utils.benchmark.Timer` (warm-up, blocks of runs sized to
  the clock, the caller's thread count), of the model as it would be deployed
  (`export.shrink`: masks folded, pruned channels removed; unstructured zeros stay and run
  through the same dense kernels, so they do not make it faster).
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils import benchmark

from prunesearch import export

PRUNABLE_TYPES = export.PRUNABLE_TYPES
LATENCY_BIG_BATCH = 64
LATENCY_MIN_RUN_S = 0.1  # seconds of timed runs per figure, after the Timer's warm-up


@dataclass(frozen=True)
class Costs:
    sparsity: float
    weights_remaining: int
    params_remaining: int
    macs: int
    latency_b1_ms: float
    latency_b64_ms: float


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
    positions = {}

    def record(module, _, output):
        positions[module] = output[0, 0].numel() if isinstance(module, nn.Conv2d) else 1

    handles = [module.register_forward_hook(record) for _, module in prunable_modules(model)]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(example_input[:1])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return sum(int(module.weight.count_nonzero()) * positions[module]
               for _, module in prunable_modules(model))


def latency_ms(model: nn.Module, example_input: torch.Tensor, batch_size: int) -> float:
    """Median wall time (milliseconds) of a forward pass of `model` at `batch_size`, on the
    device `model` and `example_input` are on (the Timer synchronises a GPU)."""
    images = torch.randn(batch_size, *example_input.shape[1:], device=example_input.device)
    model.eval()
    with torch.inference_mode():
        timer = benchmark.Timer(stmt="model(images)", globals={"model": model, "images": images},
                                num_threads=torch.get_num_threads())
        return 1000 * timer.blocked_autorange(min_run_time=LATENCY_MIN_RUN_S).median


def measure(model: nn.Module, example_input: torch.Tensor, *,
            latency_device: torch.device | str = "cpu", classifier: str = "classifier") -> Costs:
    """Every figure of the module docstring for `model` (masked or dense), on any device;
    latency timed on `latency_device`; `classifier` names the output layer."""
    nonzero, total = weight_counts(model)
    shipped = export.shrink(model, example_input, classifier=classifier)
    on_device = shipped.to(latency_device)
    device_input = example_input[:1].to(latency_device)
    return Costs(
        sparsity=1 - nonzero / total,
        weights_remaining=nonzero,
        params_remaining=params_remaining(model),
        macs=macs(on_device, device_input),
        latency_b1_ms=latency_ms(on_device, device_input, 1),
        latency_b64_ms=latency_ms(on_device, device_input, LATENCY_BIG_BATCH),
    )
