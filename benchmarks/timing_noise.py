"""How steady this machine's timing is: the default model timed against an identical copy with
costs.time_against's rounds, many times over, its speed-up estimated two ways (median of the
paired per-round ratios, as shipped, and the ratio of the fastest blocks); the true figure is
1.0. Prints the share of tries within 0.9-1.1 and the extremes, at batch 64 and batch 1.

    python benchmarks/timing_noise.py [--tries 25]
"""

import argparse
import copy
import statistics

import torch
from torch.utils import benchmark

from prunesearch import costs, models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a worker of --jobs 2 on 2 cores
    model = models.build("cifar_cnn").eval()
    twin = copy.deepcopy(model)
    within = lambda values: sum(0.9 <= v <= 1.1 for v in values) / len(values)
    for batch in (costs.LATENCY_BIG_BATCH, 1):
        images = torch.randn(batch, 3, 32, 32)
        minima, medians = [], []
        with torch.inference_mode():
            timers = [benchmark.Timer("m(i)", globals={"m": m, "i": images}, num_threads=1)
                      for m in (model, twin)]
            per_run = max(timer.timeit(2).mean for timer in timers)
            number = max(1, round(costs.LATENCY_BLOCK_S / per_run))
            for _ in range(args.tries):
                seconds = ([], [])
                for round_ in range(costs.LATENCY_ROUNDS):
                    for k in (0, 1) if round_ % 2 == 0 else (1, 0):
                        seconds[k].append(timers[k].timeit(number).mean)
                minima.append(min(seconds[1]) / min(seconds[0]))
                medians.append(statistics.median(b / a for a, b in zip(*seconds)))
        print(f"batch {batch}: median of paired rounds within 0.9-1.1 in {within(medians):.0%} "
              f"({min(medians):.2f}-{max(medians):.2f}); ratio of fastest blocks "
              f"{within(minima):.0%} ({min(minima):.2f}-{max(minima):.2f}) of {args.tries} tries")


if __name__ == "__main__":
    main()
