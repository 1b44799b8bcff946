"""Whether searched or sensitivity-guided per-layer amounts beat uniform ones and global ranking
(issue 40), on filter pruning at equal retraining.

Four ways: `uniform` (ln_structured, every unit the same), `global` (global_structured: one
ranking across layers), `stages` (ln_structured, a searched factor per stage) and `sensitivity`
(ln_structured, water-filling on the study's sensitivity scan, its weight searched). Every
trial prunes once then retrains --epochs epochs, on the same dense model per network and seed.

- budget: each way a TPE study of --trials trials at max_macs = 50% with project_to_budget,
  so every model lands on half the dense MACs: the best validation accuracy of its models, and
  that model's test accuracy (reported, never selected on).
- front: each way a study of --front-trials trials, amount searched, no budget: the
  hypervolume of its (validation accuracy, MACs removed) front from (chance, 0).

Printed per network and seed, then mean and sd over seeds.

    python -m benchmarks.allocation --data-dir ../shared/data/cifar10-subset
        [--networks resnet20 vgg16_bn] [--seeds 0 1] [--trials 4] [--front-trials 12]
        [--epochs 2] [--dense-epochs 15] [--width 16] [--cache-dir DIR] [--json allocation.json]
    python -m benchmarks.allocation --smoke   # every way and part once, one trial, tiny data
"""

import statistics
import tempfile
from pathlib import Path

import optuna

from benchmarks import common
from prunesearch.config import studyfile
from prunesearch.config.objectives import OBJECTIVES
from prunesearch.testing import studies
from prunesearch.views import study_view
from prunesearch.views.overview import hypervolume

CHANCE = 0.1
WAYS = {"uniform": {"method": "ln_structured"},
        "global": {"method": "global_structured"},
        "stages": {"method": "ln_structured", "allocation": "stages",
                   "stage_factor": {"low": 0.5, "high": 1.5}},
        "sensitivity": {"method": "ln_structured", "allocation": "sensitivity",
                        "sensitivity_weight": {"low": 0.0, "high": 1.0}}}
PARTS = ("budget", "front")


def spec_for(folder: Path, args, network: str, way: str, part: str, seed: int):
    budget = part == "budget"
    space = {**WAYS[way], "amount": {"low": 0.2, "high": 0.6}, "iterations": 1,
             "retrain_epochs": 1 if args.smoke else args.epochs, "reinit": "finetune",
             "retrain_lr": 0.02}
    path = studies.study_file(
        folder / f"{network}-{way}-{part}-{seed}.toml", base=None,
        name=f"allocation-{network}-{way}-{part}-{seed}", seed=seed,
        n_trials=1 if args.smoke else (args.trials if budget else args.front_trials),
        sampler="tpe", latency_device="none", objectives=["val_accuracy", "macs_reduction"],
        **({"max_macs": "50%", "project_to_budget": True} if budget else {}),
        data={"val_size": 50 if args.smoke else 500},
        model={"name": network, "width": 4 if args.smoke else args.width},
        dense={"epochs": 1 if args.smoke else args.dense_epochs, "batch_size": 128},
        space=space)
    return studyfile.load(str(path))


def smoke_ways(part: str) -> list[str]:
    """At --smoke size each way runs in one part, and each part runs: allocations where a
    projection must land them, rankings in the front."""
    return ["stages", "sensitivity"] if part == "budget" else ["uniform", "global"]


def figures(study: optuna.Study, part: str) -> dict:
    models = study_view.candidates(study)
    if part == "front":
        return {"hypervolume": hypervolume(models, OBJECTIVES["macs_reduction"],
                                           accuracy_from=CHANCE), "models": len(models)}
    best = max(models, key=lambda row: row.figures.val_accuracy)
    return {"best_val": best.figures.val_accuracy, "its_test": best.figures.test_accuracy,
            "macs_kept": 1 - best.figures.macs_reduction, "models": len(models)}


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--networks", nargs="+", default=["resnet20", "vgg16_bn"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=list(WAYS))
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--front-trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dense-epochs", type=int, default=15)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where the dense models are cached, to share them between runs "
                             "(default: a temporary folder)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    networks, seeds = (["resnet20"], [0]) if args.smoke else (args.networks, args.seeds)
    results: dict[str, list[dict]] = {}
    with common.data_dir_for(args) as data_dir, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # One dense model per network and seed, shared by the ways (and runs, with --cache-dir).
        cache = args.cache_dir or folder / "cache"
        for network in networks:
            for seed in seeds:
                for part in args.parts:
                    for way in smoke_ways(part) if args.smoke else args.ways:
                        spec = spec_for(folder, args, network, way, part, seed)
                        stores = folder / spec.name
                        stores.mkdir()
                        found = figures(common.run_study(spec, stores, data_dir,
                                                         cache_dir=cache), part)
                        results.setdefault(f"{network} {part} {way}", []).append(found)
                        print(f"{network} seed {seed} {part} {way}: {found}", flush=True)
    print(f"\nmean ± sd over seeds {seeds} ({args.epochs} retraining epochs per trial):")
    summary = {}
    for key, runs in results.items():
        figure = "hypervolume" if " front " in key else "best_val"
        values = [run[figure] for run in runs]
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[key] = {f"{figure}_mean": statistics.fmean(values), f"{figure}_sd": sd,
                        "runs": runs}
        shown = f"{statistics.fmean(values):.4f} ± {sd:.4f}" if figure == "hypervolume" \
            else f"{100 * statistics.fmean(values):.2f} ± {100 * sd:.2f} %"
        extra = "" if figure == "hypervolume" else \
            f"  (its test {100 * statistics.fmean(r['its_test'] for r in runs):.2f} %)"
        print(f"{key:<32} {figure:<12} {shown}{extra}")
    if args.json:
        common.write_json(args.json, summary)


if __name__ == "__main__":
    main()
