"""Latency, four ways, one section each (`python -m benchmarks.latency SECTION [options]`):

- `cost`: what timing latency costs a search. The search benchmark's study (benchmarks/search.py,
  seed 0: cifar_cnn width 16) on 2,000 training images and 32 dense epochs, its first --trials
  trials (TPE's random start-up trials, so both runs train the same schedules), once with
  latency_device "cpu" and once "none"; each trial's wall time and the ratio of the totals.
  The dense model is trained and cached before either run.
- `pruned`: each finished trial of a study re-timed in one process, back to back, the way a
  trial times itself (timing.time_against: alternating dense and pruned blocks, median of the
  paired rounds), with as many rounds as asked: a study's trials ran minutes apart, often
  beside other work.
- `noise`: how steady this machine's timing is. A network timed against an identical copy, many
  times over, its speed-up estimated two ways (median of the paired per-round ratios, as
  shipped, and the ratio of the fastest blocks); the true figure is 1.0. The share of tries
  within 0.9-1.1, the extremes, and the noise figure max_speedup_noise reads (the rounds'
  interquartile range / the speed-up), at each default batch size.
- `deployed`: how much of a structured model's MACs reduction becomes speed, in torch eager and
  under ONNX Runtime, with and without rounding channels to a multiple of 8. The dense model
  (random weights: latency does not depend on their values) pruned by ln_structured to 25 / 50
  / 75% of each layer's channels (one iteration), shrunk, and timed against the dense model;
  per row the MACs reduction and, per runtime and batch size, the speed-up and its fraction of
  the MACs reduction (1.0: every MAC removed is time saved).

    python -m benchmarks.latency cost --data-dir ../shared/data/cifar10-subset [--trials 4]
    python -m benchmarks.latency pruned --study compare-methods [--storage URL] [--rounds 15]
    python -m benchmarks.latency noise [--tries 25] [--network torchvision:convnext_tiny]
    python -m benchmarks.latency deployed [--networks cifar_cnn resnet20 vgg16_bn] [--rounds 15]
    python -m benchmarks.latency --smoke   # every section at smoke size, in order
"""

import argparse
import contextlib
import copy
import dataclasses
import statistics
import tempfile
from pathlib import Path

import optuna
import torch

from benchmarks import common, search
from prunesearch.config import studyfile
from prunesearch.pruning import costs, export, methods, onnx_runtime, timing
from prunesearch.pruning.figures import BATCH_SIZES
from prunesearch.pruning.graph.channels import couplings
from prunesearch.pruning.loop import prunable_targets
from prunesearch.pruning.methods.base import Context
from prunesearch.pruning.methods.options import NormOptions
from prunesearch.search import dense as dense_cache
from prunesearch.stores import storage
from prunesearch.stores.records import StudyRecord
from prunesearch.testing import data as testing_data
from prunesearch.training import models
from prunesearch.training.models import custom
from prunesearch.views import study_view

EXAMPLE = torch.zeros(1, 3, 32, 32)


# -- cost -------------------------------------------------------------------------------------

def cost(args) -> None:
    trials = 1 if args.smoke else args.trials
    with tempfile.TemporaryDirectory() as tmp, common.data_dir_for(args) as data_dir:
        folder = Path(tmp)
        spec = search.spec_for(folder, "tpe", seed=0, train_subset=2000, dense_epochs=32,
                               smoke=args.smoke)
        dense_cache.load_or_train(spec, common.load_data(spec, data_dir),
                                  cache_dir=folder / "cache", device=torch.device("cpu"))
        runs = {}
        for device in ("cpu", "none"):
            (folder / device).mkdir()
            runs[device] = common.run_study(
                dataclasses.replace(spec, latency_device=device), folder / device, data_dir,
                n_trials=trials, cache_dir=folder / "cache").trials
    if [t.params for t in runs["cpu"]] != [t.params for t in runs["none"]]:
        raise SystemExit("the two runs sampled different schedules: their times do not compare")
    seconds = {device: [t.duration.total_seconds() for t in done]
               for device, done in runs.items()}
    print("trial  latency timed (s)  not timed (s)")
    for k, (timed, untimed) in enumerate(zip(seconds["cpu"], seconds["none"])):
        print(f"{k:>5}  {timed:>17.1f}  {untimed:>13.1f}")
    timed, untimed = sum(seconds["cpu"]), sum(seconds["none"])
    print(f"total  {timed:>17.1f}  {untimed:>13.1f}   timed / not timed = {timed / untimed:.2f}x")


# -- pruned -----------------------------------------------------------------------------------

def pruned(args) -> None:
    with contextlib.ExitStack() as stack:
        if args.smoke:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            data_dir = testing_data.cifar_folder(folder / "data")
            spec = common.smoke_sized(studyfile.load("smoke"))
            common.run_study(spec, folder, data_dir)
            args.study, args.storage, args.rounds = spec.name, f"sqlite:///{folder / 'o.db'}", 1
        retime(storage.open_study(args.study, args.storage), args.rounds)


def retime(study, rounds: int) -> None:
    """A line per finished trial: its model's speed-up at each default batch size, +- spread."""
    spec = StudyRecord.of(study).model
    dense = export.shrink(models.from_spec(spec), EXAMPLE).eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {rounds} rounds "
          f"of dense and pruned blocks of {timing.LATENCY_BLOCK_S} s at batch "
          f"{' and '.join(map(str, BATCH_SIZES))}; speed-up (median of paired rounds) +- "
          "interquartile range")
    print(f"dense {spec['name']} width {spec['width']}: "
          f"{sum(p.numel() for p in dense.parameters()):,} parameters, "
          f"{costs.macs(dense, EXAMPLE) / 1e6:.1f} M MACs per image")
    print(f"{'trial':>5} {'method':<20} {'amount':>6} {'sparsity':>8} {'MACs cut':>8}"
          + "".join(f" {'dense b' + str(b):>9} {'b' + str(b) + ' ms':>7} {'b' + str(b) + ' x':>12}"
                    for b in BATCH_SIZES))
    for trial in study_view.finished(study):
        model, row = study_view.trial_model(study, trial.number)
        slim = export.shrink(model, EXAMPLE).eval()
        figures = [timing.time_against(slim, dense, EXAMPLE, batch, rounds=rounds)
                   for batch in BATCH_SIZES]
        print(f"{trial.number:>5} {row.schedule['method']:<20} {row.schedule['amount']:>6.2f} "
              f"{row.figures.sparsity:>8.1%} {row.figures.macs_reduction:>8.1%}"
              + "".join(f" {t.reference_ms:>8.2f} {t.latency_ms:>7.2f} {t.speedup:>5.2f}x"
                        f"+-{t.spread:.2f}" for t in figures))


# -- noise ------------------------------------------------------------------------------------

def noise(args) -> None:
    tries, rounds = (2, 1) if args.smoke else (args.tries, timing.LATENCY_ROUNDS)
    threads = torch.get_num_threads()
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
        medians = [timed.speedup for timed in timings]
        minima = [timed.reference_ms / timed.latency_ms for timed in timings]
        spread = [timed.spread / timed.speedup for timed in timings]
        print(f"batch {batch} ({statistics.median(t.latency_ms for t in timings):.2f} ms): "
              f"median of paired rounds within 0.9-1.1 in {within(medians):.0%} "
              f"({min(medians):.2f}-{max(medians):.2f}); ratio of fastest blocks "
              f"{within(minima):.0%} ({min(minima):.2f}-{max(minima):.2f}); speedup_noise "
              f"median {statistics.median(spread):.3f}, largest {max(spread):.3f}")
    torch.set_num_threads(threads)


# -- deployed ---------------------------------------------------------------------------------

def channels_pruned(name: str, width: int, amount: float, round_to: int) -> torch.nn.Module:
    """Network `name` with `amount` of each layer's channels removed by ln_structured, shrunk."""
    torch.manual_seed(0)
    model = models.build(name, width=width).eval()
    if amount:
        targets = prunable_targets(model, include_classifier=False)
        found = couplings(model, targets, EXAMPLE)
        targets = [target for target in targets if target[0] in found]
        methods.get("ln_structured").apply(
            model, targets, amount, Context(options=NormOptions(round_to=round_to),
                                            couplings=found))
    return export.shrink(model, EXAMPLE).eval()


def deployed(args) -> None:
    amounts, roundings, rounds = (0.25, 0.5, 0.75), (1, 8), args.rounds
    widths = {name: models.default_width(name) for name in args.networks}
    if args.smoke:
        amounts, rounds, widths = (0.5,), 1, {"cifar_cnn": 8}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {rounds} paired "
          f"rounds at batch {' and '.join(map(str, BATCH_SIZES))}; 'of MACs' = "
          "speed-up / MACs reduction")
    print(f"{'network':<10} {'cut':>4} {'round':>5} {'MACs x':>7} "
          + " ".join(f"{runtime + ' b' + str(batch):>20}" for runtime in ("eager", "ORT")
                     for batch in BATCH_SIZES))
    for name, width in widths.items():
        dense = channels_pruned(name, width, 0.0, 1)
        dense_macs = costs.macs(dense, EXAMPLE)
        references = {"eager": dense, "ORT": onnx_runtime.OnnxModel.of(dense, EXAMPLE)}
        for amount in amounts:
            for round_to in roundings:
                slim = channels_pruned(name, width, amount, round_to)
                reduction = dense_macs / costs.macs(slim, EXAMPLE)
                contenders = {"eager": slim, "ORT": onnx_runtime.OnnxModel.of(slim, EXAMPLE)}
                cells = []
                for runtime in ("eager", "ORT"):
                    for batch in BATCH_SIZES:
                        timed = timing.time_against(contenders[runtime], references[runtime],
                                                    EXAMPLE, batch, rounds=rounds)
                        cells.append(f"{timed.speedup:5.2f}x ({timed.speedup / reduction:4.2f} "
                                     "of MACs)")
                print(f"{name:<10} {amount:>4.0%} {round_to:>5} {reduction:>6.2f}x "
                      + " ".join(f"{cell:>20}" for cell in cells), flush=True)


# -- the command line -------------------------------------------------------------------------

SECTIONS = {"cost": cost, "pruned": pruned, "noise": noise, "deployed": deployed}


def parser() -> argparse.ArgumentParser:
    made = common.parser(__doc__)
    sections = made.add_subparsers(dest="section")
    for name in SECTIONS:
        sections.add_parser(name, parents=[common.parser(__doc__)], add_help=False)
    sections.choices["cost"].add_argument("--data-dir", type=Path)
    sections.choices["cost"].add_argument("--trials", type=int, default=4)
    sections.choices["pruned"].add_argument("--study", help="the study's name in the storage")
    sections.choices["pruned"].add_argument("--storage", default=None, help="Optuna storage URL")
    for name in ("pruned", "deployed"):
        sections.choices[name].add_argument("--rounds", type=int, default=15,
                                            help="dense/pruned alternations")
    sections.choices["noise"].add_argument("--tries", type=int, default=25)
    sections.choices["noise"].add_argument("--network", default="cifar_cnn",
                                           help="a registry name or torchvision:NAME")
    sections.choices["noise"].add_argument("--threads", type=int, default=1,
                                           help="torch threads (1: as a worker of --jobs 2 on "
                                                "2 cores)")
    sections.choices["deployed"].add_argument(
        "--networks", nargs="+", default=["cifar_cnn", "resnet20", "vgg16_bn"])
    return made


def main(argv: list[str] | None = None) -> None:
    made = parser()
    args = made.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.section is None:
        if not args.smoke:
            made.error("name a section (cost, pruned, noise, deployed), or --smoke for all")
        chosen = list(SECTIONS)
    else:
        chosen = [args.section]
        if args.section == "cost" and args.data_dir is None and not args.smoke:
            made.error("cost needs --data-dir (or --smoke, on tiny generated data)")
        if args.section == "pruned" and args.study is None and not args.smoke:
            made.error("pruned needs --study (or --smoke, which runs a tiny study first)")
    for name in chosen:
        print(f"== {name}", flush=True)
        section_args = args if args.section else made.parse_args([name, "--smoke"])
        SECTIONS[name](section_args)


if __name__ == "__main__":
    main()
