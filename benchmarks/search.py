"""How fast a search finds a good front: hypervolume against wall time (issue 13).

The hypervolume is that of the (validation accuracy, sparsity) front, from the reference point
(accuracy 0.1, sparsity 0): the area the front dominates above chance. Ways to search, each
with sampler seeds 0, 1, 2 (a seed also draws the data split and trains its own dense model,
cached before the clock starts and shared by every way for that seed), each under the same
wall-time budget, one after another:

  random             random search; the front over the last iteration of each complete trial
                     (one run to the end of its schedule)
  tpe                TPE (prunesearch's default); the same front
  tpe+iterations     the same runs as tpe, the front over every iteration of every trial
                     (what prunesearch reports for it; tpe stays the target)
  tpe+es             TPE with early_stopping = "mo-asha" (reduction factor 3, or
                     --reduction-factor; rung_point "planned"); the same front, so a stopped
                     trial adds nothing
  tpe+es+iterations  the same runs as tpe+es, the front over every iteration of every
                     finished trial, stopped ones included (what prunesearch reports)
  tpe+esc, tpe+esc+iterations
                     the same with rung_point = "current" (not run by default: --ways)
  notebook           seed 0 only: random search written the way a notebook would (torchvision
                     DataLoader and transforms, the dense model trained again in every trial)

A trial's last model counts from the moment the trial ended; with +iterations each model
counts from the moment its iteration was logged (the MLflow metric's timestamp). For each
seed, the target is the hypervolume plain TPE reached at its budget; each way's time to reach
it is compared with TPE's budget. Each way's hypervolume is also averaged over the seeds at
1/4, 1/2, 3/4 and all of the budget. For seed 0 each way's time to the notebook loop's
hypervolume at its budget is compared with the notebook's own time to it. Trials time no
latency (latency_device "none", as a study without the speedup objective should run), unless
--latency-device cpu.

    python -m benchmarks.search --data-dir ../shared/data/cifar10-subset [--budget-s 300]
        [--seeds 0 1 2] [--ways random tpe tpe+es] [--train-subset 1000] [--dense-epochs 64]
        [--latency-device none] [--reduction-factor 3] [--json search.json]
        [--plot search.png]
    python -m benchmarks.search --smoke   # every way, seed 0, a trial or two each, tiny data

With the defaults (cifar_cnn width 16; of the subset's training images, 500 held out for
validation and 1,000 trained on, --train-subset; 64 dense epochs, --dense-epochs; schedules
of 1-5 iterations of 1-3 retraining epochs, as in studies/l1-iterative.toml; 300 s per
search) it takes about 56 minutes on 2 CPU cores (about 72 with --ways tpe+es tpe+esc).
"""

import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import torch
from mlflow.tracking import MlflowClient
from torch.nn.utils import prune

from benchmarks import common
from prunesearch.config import space, studyfile
from prunesearch.config.objectives import OBJECTIVES
from prunesearch.pruning import costs
from prunesearch.pruning.figures import IterationResult
from prunesearch.search import dense
from prunesearch.stores.records import TrialRecord
from prunesearch.training import models
from prunesearch.views import study_view
from prunesearch.views.overview import hypervolume
from prunesearch.views.rows import ModelRow, last_model, models_of
from prunesearch.testing import studies

CHANCE = 0.1
SPARSITY = OBJECTIVES["sparsity"]
# The schedules of studies/l1-iterative.toml, over both magnitude methods.
SPACE = {"method": ["l1_unstructured", "global_l1"], "amount": {"low": 0.2, "high": 0.7},
         "iterations": {"low": 1, "high": 5}, "retrain_epochs": {"low": 1, "high": 3},
         "reinit": ["finetune", "rewind"],
         "retrain_lr": {"low": 0.003, "high": 0.05, "log": True}}
# way: (sampler, early_stopping, rung_point)
SEARCHES = {"random": ("random", "none", "planned"), "tpe": ("tpe", "none", "planned"),
            "tpe+es": ("tpe", "mo-asha", "planned"), "tpe+esc": ("tpe", "mo-asha", "current")}
DEFAULT_WAYS = ("random", "tpe", "tpe+es")
FRACTIONS = (0.25, 0.5, 0.75, 1.0)  # of the budget, where mean_over_seeds reads the curves
# Of the subset's 4,670 training images left after validation. Fewer give more trials per
# budget but a weaker dense model; on 2,000 (32 dense epochs) about 35 trials fit in 300 s,
# too few for TPE to beat random search, so no way could be told from another.
TRAIN_SUBSET = 1000
# Near convergence: on 1,000 images seed 0's dense model reaches 49.4% validation at 32
# epochs, 55.0% at 64, 56.6% at 96 (on 2,000: 61.0% at 32, 41.4% at 8). An underfit one makes
# every search reward retraining more than pruning well.
DENSE_EPOCHS = 64
LATENCY_DEVICE = "none"  # no objective of the study above needs latency
REDUCTION_FACTOR = 3  # MO-ASHA's, the study files' default
COLOURS = {"random": "tab:gray", "tpe": "tab:blue", "tpe+iterations": "tab:cyan",
           "tpe+es": "tab:orange", "tpe+es+iterations": "tab:red", "tpe+esc": "tab:olive",
           "tpe+esc+iterations": "tab:green", "notebook": "black"}


def spec_for(folder: Path, way: str, seed: int, dense_epochs: int = DENSE_EPOCHS,
             latency_device: str = LATENCY_DEVICE, train_subset: int = TRAIN_SUBSET,
             reduction_factor: int = REDUCTION_FACTOR, smoke: bool = False):
    """The study `way` runs for `seed` (with `smoke`, at common.smoke_sized's size)."""
    sampler, early_stopping, rung_point = SEARCHES[way]
    path = studies.study_file(
        folder / f"{way}-{seed}.toml", base=None, name=f"search-{way.replace('+', '-')}-{seed}",
        seed=seed, n_trials=100_000, sampler=sampler, latency_device=latency_device,
        early_stopping=early_stopping, rung_point=rung_point,
        reduction_factor=reduction_factor,
        data={"val_size": 500, "train_subset": train_subset},
        model={"name": "cifar_cnn", "width": 16},
        dense={"epochs": dense_epochs, "batch_size": 128}, space=SPACE)
    spec = studyfile.load(str(path))
    return common.smoke_sized(spec, n_trials=spec.n_trials) if smoke else spec


def search(spec, folder: Path, data_dir: Path, budget_s: float) -> optuna.Study:
    """`spec` run through prunesearch until `budget_s` has passed (no trial starts after)."""
    return common.run_study(spec, folder, data_dir, timeout=budget_s)


def arrivals(study: optuna.Study, *, iterations: bool,
             tracking_uri: str | None = None) -> list[tuple[float, ModelRow]]:
    """(seconds since the first trial started, row) for every model the way counts: the last
    of each trial run to the end of its schedule (not stopped early), at the trial's end, or
    (`iterations`) every iteration of every finished trial at the time its figures were logged
    to MLflow at `tracking_uri`."""
    trials = [t for t in study.trials if t.datetime_start]
    start = min(t.datetime_start for t in trials).timestamp()
    client = MlflowClient(tracking_uri) if iterations else None
    found = []
    for trial in trials:
        record = TrialRecord.of(trial)
        if trial.state not in study_view.FINISHED or not record.curve:
            continue
        if iterations:
            logged = {m.step: m.timestamp / 1000 for m in
                      client.get_metric_history(record.mlflow_run_id, "val_accuracy")}
            found += [(logged[row.iteration] - start, row)
                      for row in models_of(study.study_name, trial)]
        elif not study_view.is_stopped(trial):
            found.append((trial.datetime_complete.timestamp() - start,
                          last_model(study.study_name, trial)))
    return sorted(found, key=lambda item: item[0])


def curve(found: list[tuple[float, ModelRow]], budget_s: float) -> list[tuple[float, float]]:
    """Hypervolume after each arrival within the budget: [(seconds, hypervolume)]."""
    points, rows = [(0.0, 0.0)], []
    for at, row in found:
        if at > budget_s:
            break
        rows.append(row)
        points.append((at, hypervolume(rows, SPARSITY, accuracy_from=CHANCE)))
    return points


def time_to(points: list[tuple[float, float]], target: float) -> float | None:
    return next((at for at, volume in points if volume >= target - 1e-12), None)


def volume_at(points: list[tuple[float, float]], seconds: float) -> float:
    """The hypervolume a curve had reached `seconds` into its search."""
    return max(volume for at, volume in points if at <= seconds)


def mean_over_seeds(curves: dict, budget_s: float) -> dict[str, list[float]]:
    """Each way's hypervolume at each of FRACTIONS of the budget, averaged over its seeds: a
    readout steadier than the time to one seed's target, which one late trial can set."""
    return {way: [statistics.mean(volume_at(points, fraction * budget_s) for points in runs)
                  for fraction in FRACTIONS] for way, runs in curves.items()}


def model_row(study: str, trial: int, iteration: int, **figures) -> ModelRow:
    """A model known only by some figures (the others NaN): the notebook loop's, whose
    trials record nothing else."""
    return ModelRow(study=study, trial=trial, iteration=iteration, schedule={},
                    figures=IterationResult.from_dict({"iteration": iteration, **figures}),
                    mlflow_run_id=None, stopped=False)


def notebook_search(spec, data_dir: Path, budget_s: float,
                    loader_workers: int = 2) -> list[tuple[float, ModelRow]]:
    """Random search over the same space, each trial as a notebook writes it."""
    data = common.load_data(spec, data_dir)
    sampler = optuna.samplers.RandomSampler(seed=spec.seed)
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=sampler)
    found, start = [], time.perf_counter()
    while time.perf_counter() - start < budget_s:
        trial = study.ask()
        schedule = space.suggest(trial, spec.space)
        torch.manual_seed(spec.seed)
        model = models.build(spec.model.name, width=spec.model.width)
        train = common.notebook_loader(data.train, augmented=True, workers=loader_workers)
        common.notebook_epochs(model, train, spec.dense.epochs, spec.dense.lr)
        for _ in range(schedule.iterations):
            modules = [(module, "weight") for _, module in costs.prunable_modules(model)]
            if schedule.method == "global_l1":
                prune.global_unstructured(modules, pruning_method=prune.L1Unstructured,
                                          amount=schedule.amount)
            else:
                for module, name in modules:
                    prune.l1_unstructured(module, name, amount=schedule.amount)
            common.notebook_epochs(model, train, schedule.retrain_epochs, schedule.retrain_lr)
        accuracy = common.notebook_accuracy(model, common.notebook_loader(
            data.val, augmented=False, shuffle=False, workers=loader_workers))
        nonzero, total = costs.weight_counts(model)
        study.tell(trial, [accuracy, 1 - nonzero / total])
        found.append((time.perf_counter() - start, model_row(
            "notebook", trial.number, schedule.iterations, val_accuracy=accuracy,
            sparsity=1 - nonzero / total)))
    return found


def plot(curves: dict[str, list[list[tuple[float, float]]]], budget_s: float,
         path: Path) -> None:
    """Each run's hypervolume as a step line to the end of its budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    for way, runs in curves.items():
        colour = COLOURS[way]
        for k, points in enumerate(runs):
            points = [*points, (budget_s, points[-1][1])]
            ax.step([at / 60 for at, _ in points], [v for _, v in points], where="post",
                    color=colour, alpha=0.8, label=way if k == 0 else None)
    ax.set_xlabel("wall time (minutes)")
    ax.set_ylabel(f"hypervolume of (val accuracy - {CHANCE}, sparsity) front")
    ax.set_title("Search speed: hypervolume against wall time (one line per seed)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summary(curves: dict, budget_s: float, seeds: list[int]) -> dict:
    """Per seed: TPE's hypervolume at its budget, and each way's time to reach it; for the
    first seed, where the notebook loop ran, also each way's time to the notebook's
    hypervolume at its budget."""
    table = {}
    for k, seed in enumerate(seeds):
        target = curves["tpe"][k][-1][1]
        notebook = curves["notebook"][k][-1][1] if k < len(curves["notebook"]) else None
        table[seed] = {"tpe_hypervolume": target, "notebook_hypervolume": notebook}
        for way, runs in curves.items():
            if way == "notebook" and k >= len(runs):
                continue
            reached = time_to(runs[k], target)
            table[seed][way] = {"hypervolume": runs[k][-1][1], "time_to_tpe_s": reached,
                                "of_tpe_budget": None if reached is None else reached / budget_s}
            if notebook is not None:
                table[seed][way]["time_to_notebook_s"] = time_to(runs[k], notebook)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--budget-s", type=float, default=300.0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ways", nargs="+", choices=list(SEARCHES), default=list(DEFAULT_WAYS),
                        help="how to search (tpe always runs: it is the target)")
    parser.add_argument("--dense-epochs", type=int, default=DENSE_EPOCHS,
                        help="dense training, cached per seed before the clocks start")
    parser.add_argument("--train-subset", type=int, default=TRAIN_SUBSET,
                        help="training images (of those the validation split leaves)")
    parser.add_argument("--latency-device", choices=["cpu", "none"], default=LATENCY_DEVICE,
                        help="cpu: trials also time latency, which no objective here needs")
    parser.add_argument("--reduction-factor", type=int, default=REDUCTION_FACTOR,
                        help="MO-ASHA's, for the ways with early stopping")
    parser.add_argument("--json", type=Path, default=Path("search.json"))
    parser.add_argument("--plot", type=Path, default=Path("search.png"))
    args = parser.parse_args(argv)
    if args.reduction_factor < 2:
        parser.error(f"--reduction-factor {args.reduction_factor}: must be an integer >= 2")
    if args.data_dir is None and not args.smoke:
        parser.error("--data-dir is required (or --smoke, on tiny generated data)")
    if args.smoke:  # a trial or two per way: every code path, no figure worth reading
        args.seeds, args.budget_s = args.seeds[:1], 1.0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ways = [way for way in SEARCHES if way in {"tpe", *args.ways}]
    curves = {name: [] for way in ways
              for name in ([way] if way == "random" else [way, f"{way}+iterations"])}
    configuration = {"dense_epochs": args.dense_epochs, "latency_device": args.latency_device,
                     "train_subset": args.train_subset,
                     "reduction_factor": args.reduction_factor, "smoke": args.smoke}
    with tempfile.TemporaryDirectory() as tmp, common.data_dir_for(args) as data_dir:
        folder = Path(tmp)
        for seed in args.seeds:
            for way in ways:
                spec = spec_for(folder, way, seed, **configuration)
                checkpoint = dense.load_or_train(spec, common.load_data(spec, data_dir),
                                                 cache_dir=folder / "cache",
                                                 device=torch.device("cpu"))
                study = search(spec, folder, data_dir, args.budget_s)
                curves[way].append(curve(arrivals(study, iterations=False), args.budget_s))
                if f"{way}+iterations" in curves:
                    curves[f"{way}+iterations"].append(curve(arrivals(
                        study, iterations=True, tracking_uri=common.tracking_uri(folder)),
                        args.budget_s))
                outcomes = study_view.counts(study.trials)
                best = max((row.figures.val_accuracy for row in study_view.candidates(study)),
                           default=float("nan"))  # nan: no trial finished
                print(f"seed {seed} {way}: {len(study.trials)} trials ({outcomes['COMPLETE']} "
                      f"complete, {outcomes['STOPPED']} stopped), hypervolume "
                      f"{curves[way][-1][-1][1]:.4f}; val accuracy: dense model "
                      f"{checkpoint.val_accuracy:.1%}, best pruned model {best:.1%}", flush=True)
        spec = spec_for(folder, "random", args.seeds[0], **configuration)
        curves["notebook"] = [curve(notebook_search(
            spec, data_dir, args.budget_s, loader_workers=0 if args.smoke else 2),
            args.budget_s)]
    table = summary(curves, args.budget_s, args.seeds)
    means = mean_over_seeds(curves, args.budget_s)
    args.json.write_text(json.dumps({"budget_s": args.budget_s, "seeds": table,
                                     "mean_over_seeds": means, "curves": curves}, indent=2))
    plot(curves, args.budget_s, args.plot)
    print(f"\nhypervolume from (val accuracy {CHANCE}, sparsity 0); budget {args.budget_s:.0f} s"
          " per search; time to reach plain TPE's hypervolume at its budget:")
    print(f"{'seed':>4}  {'way':<18} {'hypervolume':>11}  {'time to TPE':>11}  {'of budget':>9}")
    for seed, row in table.items():
        for way in curves:
            if way not in row:
                continue
            cell = row[way]
            reached, fraction = cell["time_to_tpe_s"], cell["of_tpe_budget"]
            reached = "never" if reached is None else f"{reached:.0f} s"
            fraction = "-" if fraction is None else f"{fraction:.2f}"
            print(f"{seed:>4}  {way:<18} {cell['hypervolume']:>11.4f}  {reached:>11}  "
                  f"{fraction:>9}")
    first = table[args.seeds[0]]
    for way in (name for name in curves if name.endswith("+iterations")):
        fractions = [row[way]["of_tpe_budget"] for row in table.values()]
        median = statistics.median(math.inf if f is None else f for f in fractions)
        print(f"median over seeds, {way}: " + ("never" if median == math.inf else
              f"{median:.2f} of TPE's budget") + " (target <= 0.5)")
        ours, notebook = (first[way]["time_to_notebook_s"],
                          first["notebook"]["time_to_notebook_s"])
        if first["notebook_hypervolume"]:  # 0: no notebook trial beat chance
            print(f"seed {args.seeds[0]}, to the notebook loop's hypervolume at its budget "
                  f"({first['notebook_hypervolume']:.4f}): notebook {notebook:.0f} s, {way} "
                  + ("never" if ours is None else
                     f"{ours:.1f} s, {notebook / ours:.1f}x faster") + " (target >= 5x)")
    print(f"\nmean hypervolume over seeds (notebook: seed {args.seeds[0]}) at these times; "
          f"plain TPE's at its budget: {means['tpe'][-1]:.4f}")
    print(f"{'way':<18} " + "".join(f"{fraction * args.budget_s:>8.0f} s"
                                    for fraction in FRACTIONS))
    for way, volumes in means.items():
        print(f"{way:<18} " + "".join(f"{volume:>10.4f}" for volume in volumes))
    print(f"wrote {args.json} and {args.plot}")


if __name__ == "__main__":
    main()
