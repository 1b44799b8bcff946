"""Measure, in one process, how much faster each trial's pruned model runs than the dense model
on this CPU.

A trial measures its own speed-up while it runs, but a study's trials run minutes apart, often
beside other work; this script re-measures every finished trial of a study back to back, the
way a trial does (timing.time_against: alternating dense and pruned blocks, median of the
paired rounds), with as many rounds as asked.

    python -m benchmarks.pruned_latency --study compare-methods [--storage URL] [--rounds 5]
    python -m benchmarks.pruned_latency --smoke   # a one-trial smoke study, then one round
"""

import contextlib
import tempfile
from pathlib import Path

import optuna
import torch

from benchmarks import common
from prunesearch.config import studyfile
from prunesearch.pruning import costs, export, timing
from prunesearch.pruning.figures import BATCH_SIZES
from prunesearch.stores import storage
from prunesearch.stores.records import StudyRecord
from prunesearch.training import models
from prunesearch.views import study_view
from prunesearch.testing import data as testing_data


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--study", help="the study's name in the storage")
    parser.add_argument("--storage", default=None, help="Optuna storage URL")
    parser.add_argument("--rounds", type=int, default=15, help="dense/pruned alternations")
    args = parser.parse_args(argv)
    if args.study is None and not args.smoke:
        parser.error("--study is required (or --smoke, which runs a tiny study first)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with contextlib.ExitStack() as stack:
        if args.smoke:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            data_dir = testing_data.cifar_folder(folder / "data")
            spec = common.smoke_sized(studyfile.load("smoke"))
            common.run_study(spec, folder, data_dir)
            args.study, args.storage, args.rounds = spec.name, f"sqlite:///{folder / 'o.db'}", 1
        report(storage.open_study(args.study, args.storage), args.rounds)


def report(study, rounds: int) -> None:
    """A line per finished trial: its model's speed-up at batch 1 and 64, +- spread."""
    spec = StudyRecord.of(study).model
    example = torch.zeros(1, 3, 32, 32)
    dense = export.shrink(models.from_spec(spec), example).eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {rounds} rounds "
          f"of dense and pruned blocks of {timing.LATENCY_BLOCK_S} s at batch "
          f"{' and '.join(map(str, BATCH_SIZES))}; speed-up (median of paired rounds) +- interquartile range")
    print(f"dense {spec['name']} width {spec['width']}: "
          f"{sum(p.numel() for p in dense.parameters()):,} parameters, "
          f"{costs.macs(dense, example) / 1e6:.1f} M MACs per image")
    print(f"{'trial':>5} {'method':<20} {'amount':>6} {'sparsity':>8} {'MACs cut':>8}"
          + "".join(f" {'dense b' + str(b):>9} {'b' + str(b) + ' ms':>7} {'b' + str(b) + ' x':>12}"
                    for b in BATCH_SIZES))
    for trial in study_view.finished(study):
        model, row = study_view.trial_model(study, trial.number)
        slim = export.shrink(model, example).eval()
        figures = [timing.time_against(slim, dense, example, batch, rounds=rounds)
                   for batch in BATCH_SIZES]
        print(f"{trial.number:>5} {row.schedule['method']:<20} {row.schedule['amount']:>6.2f} "
              f"{row.figures.sparsity:>8.1%} {row.figures.macs_reduction:>8.1%}"
              + "".join(f" {t.reference_ms:>8.2f} {t.latency_ms:>7.2f} {t.speedup:>5.2f}x"
                        f"+-{t.spread:.2f}" for t in figures))


if __name__ == "__main__":
    main()
