"""What timing latency costs a search: the same trials with latency_device "cpu" and "none".

The search benchmark's study (benchmarks/search.py, seed 0: cifar_cnn width 16) on the
2,000 training images and 32 dense epochs its README figure was measured with, its first
--trials trials (TPE's random start-up trials, so both runs train the same schedules), once
timing latency and once not; prints each trial's wall time and the ratio of the totals. The
dense model is trained and cached before either run.

    python benchmarks/latency_cost.py --data-dir ../shared/data/cifar10-subset [--trials 4]
"""

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import optuna
import torch

from prunesearch import data as data_module
from prunesearch import dense

sys.path.insert(0, str(Path(__file__).parent))
import search  # noqa: E402  (the search benchmark's study)
import speed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec = search.spec_for(folder, "tpe", seed=0, train_subset=2000, dense_epochs=32)
        dense.load_or_train(spec, data_module.load(
            data_dir=args.data_dir, val_size=spec.data.val_size,
            train_subset=spec.data.train_subset, seed=spec.seed),
            cache_dir=folder / "cache", device=torch.device("cpu"))
        trials = {}
        for device in ("cpu", "none"):
            (folder / device).mkdir()
            trials[device] = speed.run_study(
                dataclasses.replace(spec, latency_device=device), folder / device,
                args.data_dir, n_trials=args.trials, cache_dir=folder / "cache").trials
    if [t.params for t in trials["cpu"]] != [t.params for t in trials["none"]]:
        sys.exit("the two runs sampled different schedules: their times do not compare")
    seconds = {device: [(t.datetime_complete - t.datetime_start).total_seconds() for t in runs]
               for device, runs in trials.items()}
    print("trial  latency timed (s)  not timed (s)")
    for k, (timed, untimed) in enumerate(zip(seconds["cpu"], seconds["none"])):
        print(f"{k:>5}  {timed:>17.1f}  {untimed:>13.1f}")
    timed, untimed = sum(seconds["cpu"]), sum(seconds["none"])
    print(f"total  {timed:>17.1f}  {untimed:>13.1f}   timed / not timed = {timed / untimed:.2f}x")


if __name__ == "__main__":
    main()
