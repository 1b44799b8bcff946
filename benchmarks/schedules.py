"""Which schedule family finds the better front at equal retraining (issue 32): iterative vs
gradual vs both in one search, each with and without distillation from the dense model.

Every trial spends the same retraining: EPOCHS epochs (iterative: 2 iterations of 2 epochs;
gradual: one phase of 4 epochs, the ramp ending at 3/4 of it). Each way is a TPE study of
--trials trials per seed (the seed also draws the data split and trains that seed's dense
model, cached and shared by every way); its result is the hypervolume of its (validation
accuracy, sparsity) front over every model (every iteration, or every epoch) from (chance,
0), and the best validation accuracy at >= 80% sparsity. Printed per seed, then the mean and
spread over seeds.

    python -m benchmarks.schedules --data-dir ../shared/data/cifar10-subset [--seeds 0 1]
        [--trials 10] [--ways iterative gradual both ...] [--json schedules.json]
    python -m benchmarks.schedules --smoke   # every way, seed 0, one trial, tiny data
"""

import statistics
import tempfile
from pathlib import Path

import optuna

from benchmarks import common
from prunesearch.config import studyfile
from prunesearch.config.objectives import OBJECTIVES
from prunesearch.views import study_view
from prunesearch.views.overview import hypervolume
from prunesearch.testing import studies

CHANCE = 0.1
EPOCHS = 4
ITERATIVE = {"amount": {"low": 0.3, "high": 0.7}, "iterations": 2, "retrain_epochs": 2}
GRADUAL = {"final_sparsity": {"low": 0.5, "high": 0.91}, "gradual_epochs": EPOCHS,
           "ramp_end": 0.75, "prune_every": [2, 4, 8]}
FAMILIES = {"iterative": ITERATIVE, "gradual": GRADUAL, "both": {**ITERATIVE, **GRADUAL}}
DISTILL = {"distill_alpha": 0.5, "distill_temperature": 4.0}
WAYS = tuple(f"{family}{suffix}" for family in FAMILIES for suffix in ("", "+distil"))


def spec_for(folder: Path, way: str, seed: int, trials: int, smoke: bool):
    family, _, distil = way.partition("+")
    space = {"method": "l1_unstructured", **FAMILIES[family],
             "schedule": ["iterative", "gradual"] if family == "both" else family,
             "reinit": "finetune", "retrain_lr": 0.02, **(DISTILL if distil else {})}
    path = studies.study_file(
        folder / f"{way}-{seed}.toml", base=None, name=f"schedules-{way.replace('+', '-')}-{seed}",
        seed=seed, n_trials=trials, sampler="tpe", latency_device="none",
        data={"val_size": 50 if smoke else 500, **({} if smoke else {"train_subset": 1000})},
        model={"name": "cifar_cnn", "width": 4 if smoke else 16},
        dense={"epochs": 1 if smoke else 64, "batch_size": 128}, space=space)
    return studyfile.load(str(path))


def figures(study: optuna.Study) -> dict:
    models = study_view.candidates(study)
    high = [row.figures.val_accuracy for row in models if row.figures.sparsity >= 0.8]
    return {"hypervolume": hypervolume(models, OBJECTIVES["sparsity"], accuracy_from=CHANCE),
            "best_val_at_80": max(high, default=float("nan")), "models": len(models)}


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds, trials = ([0], 1) if args.smoke else (args.seeds, args.trials)
    results: dict[str, list[dict]] = {}
    with common.data_dir_for(args) as data_dir, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cache = folder / "cache"  # one dense model per seed, shared by the ways
        print(f"{'seed':>4}  {'way':<18} {'hypervolume':>11} {'best val @80%':>13} "
              f"{'models':>6}", flush=True)
        for seed in seeds:
            for way in args.ways:
                spec = spec_for(folder, way, seed, trials, args.smoke)
                stores = folder / f"{way}-{seed}"
                stores.mkdir()
                study = common.run_study(spec, stores, data_dir, cache_dir=cache)
                found = figures(study)
                results.setdefault(way, []).append(found)
                print(f"{seed:>4}  {way:<18} {found['hypervolume']:>11.4f} "
                      f"{100 * found['best_val_at_80']:>12.2f}% {found['models']:>6}",
                      flush=True)
    print(f"\nmean (spread = max - min) over seeds {seeds}, {trials} trials each, "
          f"{EPOCHS} retraining epochs per trial:")
    print(f"{'way':<18} {'hypervolume':>20} {'best val @80%':>20}")
    summary = {}
    for way, runs in results.items():
        volumes = [run["hypervolume"] for run in runs]
        best = [run["best_val_at_80"] for run in runs]
        summary[way] = {"hypervolume_mean": statistics.fmean(volumes),
                        "hypervolume_spread": max(volumes) - min(volumes),
                        "best_val_at_80_mean": statistics.fmean(best), "runs": runs}
        print(f"{way:<18} {statistics.fmean(volumes):>11.4f} ± {max(volumes) - min(volumes):<6.4f}"
              f" {100 * statistics.fmean(best):>11.2f}%")
    if args.json:
        common.write_json(args.json, summary)


if __name__ == "__main__":
    main()
