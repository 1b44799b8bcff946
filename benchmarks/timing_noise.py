"""How steady this machine's timing is: the default model timed against an identical copy by
timing.time_against, many times over, its speed-up estimated two ways (median of the paired
per-round ratios, as shipped, and the ratio of the fastest blocks); the true figure is 1.0.
Prints the share of tries within 0.9-1.1 and the extremes, at batch 64 and batch 1.

    python -m benchmarks.timing_noise [--tries 25]
    python -m benchmarks.timing_noise --smoke   # two tries of one round
"""

import copy

import torch

from benchmarks import common
from prunesearch.pruning import timing
from prunesearch.training import models


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--tries", type=int, default=25)
    args = parser.parse_args(argv)
    tries, rounds = (2, 1) if args.smoke else (args.tries, timing.LATENCY_ROUNDS)
    torch.set_num_threads(1)  # as a worker of --jobs 2 on 2 cores
    model = models.build("cifar_cnn").eval()
    twin = copy.deepcopy(model)
    within = lambda values: sum(0.9 <= v <= 1.1 for v in values) / len(values)
    for batch in reversed(timing.BATCH_SIZES):
        timings = [timing.time_against(model, twin, torch.randn(1, 3, 32, 32), batch,
                                      rounds=rounds) for _ in range(tries)]
        medians = [timing.speedup for timing in timings]
        minima = [timing.reference_ms / timing.latency_ms for timing in timings]
        print(f"batch {batch}: median of paired rounds within 0.9-1.1 in {within(medians):.0%} "
              f"({min(medians):.2f}-{max(medians):.2f}); ratio of fastest blocks "
              f"{within(minima):.0%} ({min(minima):.2f}-{max(minima):.2f}) of {tries} tries")


if __name__ == "__main__":
    main()
