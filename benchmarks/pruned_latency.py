"""Measure, in one quiet process, how much faster each trial's pruned model runs than the dense
model on this CPU.

A trial measures its own speed-up while it runs, but a study's trials run minutes apart, often
beside other work; this script re-measures every complete trial of a study back to back, the
way a trial does (costs.time_against: alternating dense and pruned blocks, in a quiet moment),
with as many rounds as asked.

    python benchmarks/pruned_latency.py --study compare-methods [--storage URL] [--rounds 5]
"""

import argparse

import torch

from prunesearch import costs, export, models, quiet, results, storage
from prunesearch.records import StudyRecord, TrialRecord


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", required=True, help="the study's name in the storage")
    parser.add_argument("--storage", default=None, help="Optuna storage URL")
    parser.add_argument("--rounds", type=int, default=15, help="dense/pruned alternations")
    args = parser.parse_args()

    study = storage.open_study(args.study, args.storage)
    spec = StudyRecord.of(study).model
    example = torch.zeros(1, 3, 32, 32)
    dense = export.shrink(models.build(spec["name"], width=spec["width"]), example).eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.rounds} rounds "
          f"of dense and pruned blocks of {costs.LATENCY_BLOCK_S} s at batch 1 and at "
          f"{costs.LATENCY_BIG_BATCH}; fastest block, speed-up +- interquartile range")
    print(f"dense {spec['name']} width {spec['width']}: "
          f"{sum(p.numel() for p in dense.parameters()):,} parameters, "
          f"{costs.macs(dense, example) / 1e6:.1f} M MACs per image")
    print(f"{'trial':>5} {'method':<20} {'amount':>6} {'sparsity':>8} {'MACs cut':>8} "
          f"{'dense b1':>8} {'b1 ms':>7} {'b1 x':>12} {'dense b64':>9} {'b64 ms':>7} "
          f"{'b64 x':>12}")
    for trial in results.completed(study):
        model, _ = results.trial_model(study, trial.number)
        slim = export.shrink(model, example).eval()
        record = TrialRecord.of(trial)
        final = record.final
        with quiet.moment():
            figures = [costs.time_against(slim, dense, example, batch, rounds=args.rounds)
                       for batch in (1, costs.LATENCY_BIG_BATCH)]
        schedule = record.schedule
        print(f"{trial.number:>5} {schedule['method']:<20} {schedule['amount']:>6.2f} "
              f"{final['sparsity']:>8.1%} {final['macs_reduction']:>8.1%}"
              + "".join(f" {t.reference_ms:>8.2f} {t.latency_ms:>7.2f} {t.speedup:>5.2f}x"
                        f"+-{t.spread:.2f}" for t in figures))


if __name__ == "__main__":
    main()
