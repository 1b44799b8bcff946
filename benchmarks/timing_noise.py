"""How steady this machine's timing is: a network timed against an identical copy by
timing.time_against, many times over, its speed-up estimated two ways (median of the paired
per-round ratios, as shipped, and the ratio of the fastest blocks); the true figure is 1.0.
Prints the share of tries within 0.9-1.1 and the extremes, and the noise figure the
max_speedup_noise budget reads (the rounds' interquartile range / the speed-up), at each of
the default latency batch sizes.

    python -m benchmarks.timing_noise [--tries 25] [--network torchvision:convnext_tiny]
    python -m benchmarks.timing_noise --smoke   # two tries of one round
"""

import copy
import statistics

import torch

from benchmarks import common
from prunesearch.pruning import timing
from prunesearch.pruning.figures import BATCH_SIZES
from prunesearch.training import models
from prunesearch.training.models import custom


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--tries", type=int, default=25)
    parser.add_argument("--network", default="cifar_cnn",
                        help="a registry name or torchvision:NAME")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: as a worker of --jobs 2 on 2 cores)")
    args = parser.parse_args(argv)
    tries, rounds = (2, 1) if args.smoke else (args.tries, timing.LATENCY_ROUNDS)
    torch.set_num_threads(args.threads)
    model = (custom.build(args.network, num_classes=10, cifar_stem=True, options={})
             if models.is_custom(args.network) else models.build(args.network)).eval()
    twin = copy.deepcopy(model)
    within = lambda values: sum(0.9 <= v <= 1.1 for v in values) / len(values)
    print(f"{args.network}, {torch.get_num_threads()} thread(s), {tries} tries of {rounds} "
          "rounds")
    for batch in reversed(BATCH_SIZES):
        timings = [timing.time_against(model, twin, torch.randn(1, 3, 32, 32), batch,
                                      rounds=rounds) for _ in range(tries)]
        medians = [timing.speedup for timing in timings]
        minima = [timing.reference_ms / timing.latency_ms for timing in timings]
        noise = [timing.spread / timing.speedup for timing in timings]
        print(f"batch {batch} ({statistics.median(t.latency_ms for t in timings):.2f} ms): "
              f"median of paired rounds within 0.9-1.1 in {within(medians):.0%} "
              f"({min(medians):.2f}-{max(medians):.2f}); ratio of fastest blocks "
              f"{within(minima):.0%} ({min(minima):.2f}-{max(minima):.2f}); speedup_noise "
              f"median {statistics.median(noise):.3f}, largest {max(noise):.3f}")


if __name__ == "__main__":
    main()
