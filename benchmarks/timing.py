"""Speed-ups you can trust under load (issue 16): unstructured trials, whose zeros run through
the same dense kernels (true speed-up 1.0), in a `--jobs` study on this machine, once with quiet
moments for timing (PRUNESEARCH_TIMING_GATE=on) and once without (the default), from the same
cached dense model.

Prints, for each: the share of trials whose speed-up objective (batch 64) is within 0.9-1.1
(target: at least 95%), the same for every iteration's batch-1 and batch-64
figures, the median recorded spread, the extremes, and trials per hour (what waiting costs).

    python benchmarks/timing.py --data-dir ../shared/data/cifar10-subset [--trials 24] [--jobs 2]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
from optuna.trial import TrialState

from prunesearch.records import TrialRecord

STUDY = """
name = "timing"
description = "unstructured trials under --jobs: how steady is the speed-up?"
seed = 0
n_trials = 24
sampler = "random"
objectives = ["val_accuracy", "speedup"]

[data]
val_size = 0.1
train_subset = {train_subset}

[model]
name = "cifar_cnn"

[dense]
epochs = 1

[space]
method = ["l1_unstructured", "global_l1", "random_unstructured"]
amount = {{ low = 0.2, high = 0.9 }}
iterations = {{ low = 1, high = 2 }}
retrain_epochs = 1
reinit = "finetune"
"""
LOW, HIGH = 0.9, 1.1


def run_study(folder: Path, *, gate: str, trials: int, jobs: int, data_dir: Path) -> dict:
    storage = f"sqlite:///{folder / f'gate-{gate}.db'}"
    command = [sys.executable, "-m", "prunesearch", "optimize", "--study",
               str(folder / "timing.toml"), "--n-trials", str(trials), "--jobs", str(jobs),
               "--storage", storage, "--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--data-dir", str(data_dir), "--cache-dir", str(folder / "cache")]
    subprocess.run(command, check=True, cwd=folder, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PRUNESEARCH_TIMING_GATE": gate})
    study = optuna.load_study(study_name="timing", storage=storage)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    finals = [TrialRecord.of(t).final["speedup_b64"] for t in done]
    curves = [i for t in done for i in TrialRecord.of(t).curve]
    every = [i[key] for i in curves for key in ("speedup_b1", "speedup_b64")]
    spreads = [i[key] for i in curves for key in ("speedup_b1_spread", "speedup_b64_spread")]
    hours = (max(t.datetime_complete for t in done)
             - min(t.datetime_start for t in done)).total_seconds() / 3600
    share = lambda values: sum(LOW <= v <= HIGH for v in values) / len(values)
    return {"gate": gate, "trials": len(done), "final_within": share(finals),
            "all_within": share(every), "figures": len(every),
            "median_spread": statistics.median(spreads), "min": min(every), "max": max(every),
            "trials_per_hour": len(done) / hours}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=1000,
                        help="training images per trial epoch (short trials, many timings)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "timing.toml").write_text(STUDY.format(train_subset=args.train_subset))
        rows = [run_study(folder, gate=gate, trials=args.trials, jobs=args.jobs,
                          data_dir=args.data_dir.resolve()) for gate in ("on", "off")]
    print(f"{args.trials} unstructured trials per row, --jobs {args.jobs} on {os.cpu_count()} "
          f"cores, cifar_cnn width 32; within = speed-up in [{LOW}, {HIGH}]")
    print("| quiet moments | trials | final b64 within | every figure within (n) | "
          "median spread | min - max | trials/hour |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['gate']} | {r['trials']} | {r['final_within']:.0%} | "
              f"{r['all_within']:.0%} ({r['figures']}) | {r['median_spread']:.3f} | "
              f"{r['min']:.2f} - {r['max']:.2f} | {r['trials_per_hour']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
