"""Measure, in one quiet process, how much faster each trial's pruned model runs than the dense
model on this CPU.

A trial measures its own speed-up while it runs, but a study's trials run minutes apart, often
beside other work; this script re-measures every complete trial of a study back to back,
alternating dense and pruned runs so that drift in the machine's speed hits both alike, and
reports the median of the per-round ratios.

    python benchmarks/pruned_latency.py --study compare-methods [--storage URL] [--rounds 5]
"""

import argparse
import statistics

import torch

from prunesearch import costs, export, models, results, storage
from prunesearch.records import StudyRecord, TrialRecord


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="the study's name in the storage")
    parser.add_argument("--storage", default=None, help="Optuna storage URL")
    parser.add_argument("--rounds", type=int, default=5, help="dense/pruned alternations")
    args = parser.parse_args()

    study = storage.open_study(args.study, args.storage)
    spec = StudyRecord.of(study).model
    example = torch.zeros(1, 3, 32, 32)
    dense = export.shrink(models.build(spec["name"], width=spec["width"]), example).eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of "
          f"{args.rounds} rounds, each timing dense then pruned (costs.latency_ms: "
          f"{costs.LATENCY_MIN_RUN_S} s of runs at batch 1 and at {costs.LATENCY_BIG_BATCH})")
    print(f"dense {spec['name']} width {spec['width']}: "
          f"{sum(p.numel() for p in dense.parameters()):,} parameters, "
          f"{costs.macs(dense, example) / 1e6:.1f} M MACs per image")
    print(f"{'trial':>5} {'method':<20} {'amount':>6} {'sparsity':>8} {'MACs cut':>8} "
          f"{'dense b1':>8} {'b1 ms':>7} {'b1 x':>6} {'dense b64':>9} {'b64 ms':>7} "
          f"{'b64 x':>6}")
    for trial in results.completed(study):
        model, _ = results.trial_model(study, trial.number)
        slim = export.shrink(model, example).eval()
        record = TrialRecord.of(trial)
        final = record.final
        figures = []
        for batch in (1, costs.LATENCY_BIG_BATCH):
            rounds = [(costs.latency_ms(dense, example, batch),
                       costs.latency_ms(slim, example, batch)) for _ in range(args.rounds)]
            figures += [statistics.median(d for d, _ in rounds),
                        statistics.median(p for _, p in rounds),
                        statistics.median(d / p for d, p in rounds)]
        schedule = record.schedule
        print(f"{trial.number:>5} {schedule['method']:<20} {schedule['amount']:>6.2f} "
              f"{final['sparsity']:>8.1%} {final['macs_reduction']:>8.1%} "
              f"{figures[0]:>8.2f} {figures[1]:>7.2f} {figures[2]:>5.2f}x "
              f"{figures[3]:>9.2f} {figures[4]:>7.2f} {figures[5]:>5.2f}x")


if __name__ == "__main__":
    main()
