"""Latency of a model timed against a reference, as a trial and an export measure it: in
alternating blocks, the fastest block's time per run, the speed-up as the median of the
paired rounds' ratios and its spread (pruning.costs says why)."""

import logging
import statistics
from dataclasses import dataclass

import torch

from prunesearch.pruning.figures import timed_names

# torch.utils.benchmark imports cpp_extension, which warns on every CPU-only machine that it
# found no CUDA runtime: nothing prunesearch needs, and a stray line in every command's output.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils import benchmark  # noqa: E402

LATENCY_ROUNDS = 7  # blocks per model and batch size
LATENCY_BLOCK_S = 0.005  # seconds of runs per block (at least one run)


@dataclass(frozen=True)
class Timing:
    """A model's latency timed against a reference (see the module docstring)."""

    latency_ms: float  # the fastest block's time per run
    reference_ms: float
    speedup: float  # median of the per-round ratios reference / model
    spread: float  # their interquartile range

    def figures(self, batch: int) -> dict[str, float]:
        """The timing as a trial's figures at batch size `batch` (figures.IterationResult)."""
        return dict(zip(timed_names(batch), (self.latency_ms, self.speedup, self.spread)))


def time_against(model, reference, example_input: torch.Tensor,
                 batch_size: int, *, rounds: int = LATENCY_ROUNDS) -> Timing:
    """Time `model` and `reference` (modules, or onnx_runtime.OnnxModel) at `batch_size` in
    alternating blocks, on the device `example_input` is on."""
    images = torch.randn(batch_size, *example_input.shape[1:], device=example_input.device)
    model.eval()
    reference.eval()
    with torch.inference_mode():
        timers = [benchmark.Timer(stmt="model(images)", globals={"model": m, "images": images},
                                  num_threads=torch.get_num_threads())
                  for m in (model, reference)]
        # Warm-up (first-call allocations, kernel choice), which also sizes the blocks.
        per_run = max(timer.timeit(2).mean for timer in timers)
        number = max(1, round(LATENCY_BLOCK_S / per_run))
        seconds = ([], [])
        for round_ in range(rounds):
            for k in (0, 1) if round_ % 2 == 0 else (1, 0):
                seconds[k].append(timers[k].timeit(number).mean)
    ratios = sorted(r / m for m, r in zip(*seconds))
    quartile = len(ratios) // 4
    return Timing(latency_ms=1000 * min(seconds[0]), reference_ms=1000 * min(seconds[1]),
                  speedup=statistics.median(ratios),
                  spread=ratios[-1 - quartile] - ratios[quartile])
