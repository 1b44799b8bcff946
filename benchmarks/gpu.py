"""What a GPU gives prunesearch: pipelines, a trial's time by part, trials per hour by --jobs.

Measures in one run, on the GPU at hand, and prints a table (and writes JSON):
  A) training throughput of the default model (cifar_cnn, width 32) on CIFAR-shaped images held
     on the GPU, whole epochs taking turns: prunesearch's `train.train_epochs` vs the same step
     written bare (batches normalised in advance), at fp32 batch 128 and at bf16 batch 512; the
     notebook pipeline (DataLoader + torchvision transforms, pin_memory, 8 workers); evaluation;
  B) one trial of a shortened l1-iterative, by part: retraining, evaluation, cost measurement,
     and the rest (Optuna, MLflow, pruning, the study's own work);
  C) trials per hour of a small study with --jobs 1, 2 and 4 sharing the one GPU.
Targets (issue 11): A) prunesearch >= 0.85 of the bare step at the same batch and precision,
>= 100,000 img/s with bf16, >= 5x the notebook pipeline; B) training dominates.

    python -m benchmarks.gpu --data-dir DIR [--json speed-cuda.json]   # on a CUDA GPU
    python -m benchmarks.gpu --device cpu --smoke   # every section, tiny, on the CPU

scripts/gpu-check.sh runs it. A --data-dir without CIFAR-10 gets --gpu-images random
CIFAR-shaped images (timing only).
"""

import dataclasses
import functools
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

from benchmarks import common
from prunesearch.config import studyfile
from prunesearch.pruning import costs, loop
from prunesearch.training import data as data_module
from prunesearch.training import models, train
from prunesearch.training.sources import cifar
from prunesearch.views import study_view
from prunesearch.testing import data as testing_data
from prunesearch.testing import studies

@dataclasses.dataclass(frozen=True)
class Scale:
    """How big each section runs: the real measurement, or --smoke (every code path, tiny)."""

    rounds: int = 2  # whole epochs per pipeline in (A)
    width: int = 32  # of the model (A) trains
    notebook_workers: int = 8  # the notebook DataLoader's, pinned memory
    jobs: tuple[int, ...] = (1, 2, 4)  # (C)
    jobs_trials: int = 8
    smoke: bool = False


SMOKE = Scale(rounds=1, width=4, notebook_workers=0, jobs=(2,), jobs_trials=2, smoke=True)


def synchronized(work):
    """`work`, then wait for the GPU: so that a wall-clock timing covers what it queued."""
    def run():
        work()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    return run


def bare_epoch(model, optimizer, batches, precision: str) -> None:
    model.train()
    for images, labels in batches:
        with torch.autocast(images.device.type, dtype=torch.bfloat16,
                            enabled=precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def pipelines(split: data_module.Split, device: torch.device, scale: Scale) -> dict:
    """(A): images per second of each pipeline, and the ratios the targets name (medians of
    per-round ratios, the pipelines taking turns)."""
    on_device = split.to(device)
    contenders = {}
    for precision, batch in (("fp32", 128), ("bf16", 512)):
        settings = train.OptimizerSettings(lr=0.01, batch_size=batch, momentum=0.9,
                                           weight_decay=0, precision=precision)
        ours, bare = (models.build("cifar_cnn", width=scale.width).to(device) for _ in range(2))
        generator = data_module.generator_on(device, 0)
        prepared = list(data_module.train_batches(on_device, batch_size=batch,
                                                  generator=generator, augmented=True))
        optimizer = common.sgd(bare)
        contenders[f"prunesearch_{precision}_b{batch}"] = synchronized(
            lambda m=ours, s=settings, g=generator: train.train_epochs(
                m, on_device, epochs=1, settings=s, generator=g))
        contenders[f"bare_{precision}_b{batch}"] = synchronized(
            lambda m=bare, o=optimizer, b=prepared, p=precision: bare_epoch(m, o, b, p))
    notebook = models.build("cifar_cnn", width=scale.width).to(device)
    loader = common.notebook_loader(split, augmented=True, workers=scale.notebook_workers,
                                    device=device)
    notebook_optimizer = common.sgd(notebook)
    contenders["notebook_fp32_b128"] = synchronized(
        lambda: common.train_on(notebook, notebook_optimizer, loader, device))
    evaluated = models.build("cifar_cnn", width=scale.width).to(device)
    contenders["evaluate"] = synchronized(lambda: train.evaluate(evaluated, on_device))
    for work in contenders.values():  # warm-up: kernels chosen, workers started
        work()
    seconds = common.take_turns(contenders, scale.rounds)
    rates = {name: [len(split) / s for s in times] for name, times in seconds.items()}
    ratio = functools.partial(common.median_ratio, rates)
    return {"notebook_workers": scale.notebook_workers,
            **{f"{name}_img_s": statistics.median(r) for name, r in rates.items()},
            "of_bare_fp32_b128": ratio("prunesearch_fp32_b128", "bare_fp32_b128"),
            "of_bare_bf16_b512": ratio("prunesearch_bf16_b512", "bare_bf16_b512"),
            "bf16_b512_vs_notebook": ratio("prunesearch_bf16_b512", "notebook_fp32_b128"),
            "bf16_b512_vs_fp32_b128": ratio("prunesearch_bf16_b512", "prunesearch_fp32_b128")}


def trial_breakdown(data_dir: Path, device: str, scale: Scale) -> dict:
    """(B): one trial of l1-iterative (its dense training cached first), seconds by part."""
    spec = studyfile.load("l1-iterative")
    spec = common.smoke_sized(spec) if scale.smoke else spec
    spec = dataclasses.replace(spec, n_trials=1, latency_device=device,  # costs are a part
                               data=dataclasses.replace(spec.data, train_subset=None))
    spent = dict.fromkeys(("retraining", "evaluation", "costs"), 0.0)

    def timed(part, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                synchronized(lambda: None)()
                spent[part] += time.perf_counter() - start
        return wrapper

    with tempfile.TemporaryDirectory() as folder, \
            mock.patch.object(loop, "train_epochs", timed("retraining", loop.train_epochs)), \
            mock.patch.object(loop, "evaluate", timed("evaluation", loop.evaluate)), \
            mock.patch.object(costs, "measure", timed("costs", costs.measure)):
        study = common.run_study(spec, Path(folder), data_dir, device=device)
        trial, = study_view.finished(study)
    total = trial.duration.total_seconds()
    return {"schedule": trial.params, "trial_s": total, **{f"{k}_s": v for k, v in spent.items()},
            "rest_s": total - sum(spent.values()),
            "training_share": spent["retraining"] / total}


def jobs_study(path: Path, *, device: str, scale: Scale) -> Path:
    """(C)'s study: two-iteration trials of the default model, two dense epochs at batch 512
    (with --smoke: a width-4 model, one dense epoch at batch 32)."""
    size = ({"model": {"width": 4}, "dense": {"epochs": 1, "batch_size": 32, "lr": 0.1},
             "data": {"val_size": 50}} if scale.smoke else
            {"model": {"width": 32}, "dense": {"epochs": 2, "batch_size": 512, "lr": 0.1},
             "data": {"val_size": 0.1}})
    return studies.study_file(
        path, base=None, name="jobs", seed=0, n_trials=scale.jobs_trials,
        latency_device=device, **size,
        space={"method": ["l1_unstructured", "ln_structured"],
               "amount": {"low": 0.2, "high": 0.6}, "iterations": 1 if scale.smoke else 2,
               "retrain_epochs": 1,
               "reinit": "finetune", "retrain_lr": 0.02})


def trials_per_hour(data_dir: Path, device: str, scale: Scale) -> dict:
    """(C): the same small study with --jobs N on one device, its dense model cached first;
    trials per hour of wall time, process start-up included."""
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        study = jobs_study(folder / "jobs.toml", device=device, scale=scale)
        # 0: a one-trial run that trains and caches the dense model first, so that the timed
        # runs load it (at --smoke size the first timed run trains it: its figure means nothing)
        for n in ((0,) if not scale.smoke else ()) + scale.jobs:
            run = folder / f"run-{n}"
            common.empty_mlflow_store(run / "mlflow.db")  # its migrations are not the point
            command = [sys.executable, "-m", "prunesearch", "optimize", "--study", str(study),
                       "--device", device, "--data-dir", str(data_dir),
                       "--cache-dir", str(folder / "cache"), "--jobs", str(max(n, 1)),
                       *(["--n-trials", "1"] if n == 0 else [])]
            start = time.perf_counter()
            done = subprocess.run(command, cwd=run, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"--jobs {n}: exit {done.returncode}: {done.stderr[-2000:]}")
            if n:
                figures[f"jobs_{n}_trials_per_hour"] = 3600 * scale.jobs_trials / (
                    time.perf_counter() - start)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu: the same steps without a GPU (with --smoke: proves them)")
    parser.add_argument("--data-dir", type=Path, default=data_module.default_data_dir())
    parser.add_argument("--json", type=Path, default=Path("speed-cuda.json"))
    parser.add_argument("--rounds", type=int, default=Scale.rounds)
    parser.add_argument("--gpu-images", type=int, default=50_000,
                        help="a --data-dir without CIFAR-10: this many random images")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (--device cpu runs the same steps)")
    scale = SMOKE if args.smoke else Scale(rounds=args.rounds)
    with common.data_dir_for(args) as data_dir, tempfile.TemporaryDirectory() as scratch:
        if cifar.find_batches_dir(data_dir) is None:
            data_dir = testing_data.random_cifar_folder(Path(scratch), train=args.gpu_images)
        figures = measure(torch.device(args.device), data_dir, scale)
    common.write_json(args.json, figures)
    print_table(figures)


def measure(device: torch.device, data_dir: Path, scale: Scale) -> dict:
    """Every section, in order, each printed to stderr as it ends."""
    split = data_module.load(data_dir=data_dir, val_size=0.1, train_subset=None, seed=0).train
    figures = {"torch": torch.__version__, "device": torch.cuda.get_device_name()
               if device.type == "cuda" else "cpu", "train_images": len(split),
               "smoke": scale.smoke}
    sections = [
        ("A_pipelines", lambda: pipelines(split, device, scale)),
        ("B_trial_breakdown", lambda: trial_breakdown(data_dir, device.type, scale)),
        ("C_jobs", lambda: trials_per_hour(data_dir, device.type, scale)),
    ]
    return common.run_sections(figures, sections)


def print_table(r: dict) -> None:
    a, b, c = r["A_pipelines"], r["B_trial_breakdown"], r["C_jobs"]
    print(f"{r['device']}, torch {r['torch']}, {r['train_images']} training images"
          + (" (--smoke: these figures mean nothing)" if r["smoke"] else ""))
    print("| measure | figure | target |")
    print("| --- | ---: | --- |")
    for precision, batch, key in (("fp32", 128, "of_bare_fp32_b128"),
                                  ("bf16", 512, "of_bare_bf16_b512")):
        print(f"| A) {precision} batch {batch}: prunesearch / bare step (img/s) | "
              f"{a[f'prunesearch_{precision}_b{batch}_img_s']:,.0f} / "
              f"{a[f'bare_{precision}_b{batch}_img_s']:,.0f} = {a[key]:.2f} | >= 0.85 |")
    print(f"| A) notebook, {a['notebook_workers']} workers (img/s); prunesearch bf16 b512 vs it | "
          f"{a['notebook_fp32_b128_img_s']:,.0f}; {a['bf16_b512_vs_notebook']:.1f}x | >= 5x |")
    print(f"| A) bf16 b512 vs fp32 b128 | {a['bf16_b512_vs_fp32_b128']:.2f}x | |")
    print(f"| A) evaluation (img/s) | {a['evaluate_img_s']:,.0f} | |")
    print(f"| B) trial (s): retraining / evaluation / costs / rest | {b['trial_s']:.1f}: "
          f"{b['retraining_s']:.1f} / {b['evaluation_s']:.1f} / {b['costs_s']:.1f} / "
          f"{b['rest_s']:.1f} | training dominates |")
    jobs = [key.split("_")[1] for key in c]
    print(f"| C) trials per hour, --jobs {' / '.join(jobs)} | " + " / ".join(
        f"{value:.0f}" for value in c.values()) + " | |")


if __name__ == "__main__":
    main()
