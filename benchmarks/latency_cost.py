"""What timing latency costs a search: the same trials with latency_device "cpu" and "none".

The search benchmark's study (benchmarks/search.py, seed 0: cifar_cnn width 16) on 2,000
training images and 32 dense epochs, its first --trials trials (TPE's random start-up trials,
so both runs train the same schedules), once timing latency and once not; prints each
trial's wall time and the ratio of the totals. The dense model is trained and cached before
either run.

    python -m benchmarks.latency_cost --data-dir ../shared/data/cifar10-subset [--trials 4]
    python -m benchmarks.latency_cost --smoke   # one tiny trial each way
"""

import dataclasses
import tempfile
from pathlib import Path

import optuna
import torch

from benchmarks import common, search
from prunesearch.search import dense


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--trials", type=int, default=4)
    args = parser.parse_args(argv)
    if args.data_dir is None and not args.smoke:
        parser.error("--data-dir is required (or --smoke, on tiny generated data)")
    trials = 1 if args.smoke else args.trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, common.data_dir_for(args) as data_dir:
        folder = Path(tmp)
        spec = search.spec_for(folder, "tpe", seed=0, train_subset=2000, dense_epochs=32,
                               smoke=args.smoke)
        dense.load_or_train(spec, common.load_data(spec, data_dir), cache_dir=folder / "cache",
                            device=torch.device("cpu"))
        runs = {}
        for device in ("cpu", "none"):
            (folder / device).mkdir()
            runs[device] = common.run_study(
                dataclasses.replace(spec, latency_device=device), folder / device, data_dir,
                n_trials=trials, cache_dir=folder / "cache").trials
    if [t.params for t in runs["cpu"]] != [t.params for t in runs["none"]]:
        parser.exit(1, "the two runs sampled different schedules: their times do not compare\n")
    seconds = {device: [t.duration.total_seconds() for t in done]
               for device, done in runs.items()}
    print("trial  latency timed (s)  not timed (s)")
    for k, (timed, untimed) in enumerate(zip(seconds["cpu"], seconds["none"])):
        print(f"{k:>5}  {timed:>17.1f}  {untimed:>13.1f}")
    timed, untimed = sum(seconds["cpu"]), sum(seconds["none"])
    print(f"total  {timed:>17.1f}  {untimed:>13.1f}   timed / not timed = {timed / untimed:.2f}x")


if __name__ == "__main__":
    main()
