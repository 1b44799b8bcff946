"""What a GPU gives prunesearch; run as `python benchmarks/speed.py --device cuda`.

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
"""

import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

from prunesearch import costs, loop, models, results, studyfile, train
from prunesearch import data as data_module

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  benchmarks/speed.py: its pipelines, turn-taking and study runner

NOTEBOOK_WORKERS = 8


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


def notebook_epoch(model, optimizer, loader, device) -> None:
    model.train()
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def pipelines(split: data_module.Split, device: torch.device, rounds: int,
              notebook_workers: int = NOTEBOOK_WORKERS) -> dict:
    """(A): images per second of each pipeline, and the ratios the targets name (medians of
    per-round ratios, the pipelines taking turns)."""
    on_device = split.to(device)
    contenders = {}
    for precision, batch in (("fp32", 128), ("bf16", 512)):
        settings = train.OptimizerSettings(lr=0.01, batch_size=batch, momentum=0.9,
                                           weight_decay=0, precision=precision)
        ours, bare = (models.build("cifar_cnn", width=32).to(device) for _ in range(2))
        generator = data_module.generator_on(device, 0)
        prepared = list(data_module.train_batches(on_device, batch_size=batch,
                                                  generator=generator, augmented=True))
        optimizer = speed.sgd(bare)
        contenders[f"prunesearch_{precision}_b{batch}"] = synchronized(
            lambda m=ours, s=settings, g=generator: train.train_epochs(
                m, on_device, epochs=1, settings=s, generator=g))
        contenders[f"bare_{precision}_b{batch}"] = synchronized(
            lambda m=bare, o=optimizer, b=prepared, p=precision: bare_epoch(m, o, b, p))
    notebook = models.build("cifar_cnn", width=32).to(device)
    loader = torch.utils.data.DataLoader(
        speed.NotebookDataset(split, augmented=True), batch_size=128, shuffle=True,
        num_workers=notebook_workers, pin_memory=device.type == "cuda",
        persistent_workers=notebook_workers > 0)
    notebook_optimizer = speed.sgd(notebook)
    contenders["notebook_fp32_b128"] = synchronized(
        lambda: notebook_epoch(notebook, notebook_optimizer, loader, device))
    evaluated = models.build("cifar_cnn", width=32).to(device)
    contenders["evaluate"] = synchronized(lambda: train.evaluate(evaluated, on_device))
    for work in contenders.values():  # warm-up: kernels chosen, workers started
        work()
    seconds = speed.take_turns(contenders, rounds)
    rates = {name: [len(split) / s for s in times] for name, times in seconds.items()}
    ratio = lambda a, b: statistics.median(x / y for x, y in zip(rates[a], rates[b]))
    return {**{f"{name}_img_s": statistics.median(r) for name, r in rates.items()},
            "of_bare_fp32_b128": ratio("prunesearch_fp32_b128", "bare_fp32_b128"),
            "of_bare_bf16_b512": ratio("prunesearch_bf16_b512", "bare_bf16_b512"),
            "bf16_b512_vs_notebook": ratio("prunesearch_bf16_b512", "notebook_fp32_b128"),
            "bf16_b512_vs_fp32_b128": ratio("prunesearch_bf16_b512", "prunesearch_fp32_b128")}


def trial_breakdown(data_dir: Path, device: str, *, train_images: int | None) -> dict:
    """(B): one trial of l1-iterative (its dense training cached first), seconds by part."""
    spec = studyfile.load("l1-iterative")
    spec = dataclasses.replace(spec, n_trials=1, latency_device="cuda" if device == "cuda"
                               else "cpu",
                               data=dataclasses.replace(spec.data, train_subset=train_images))
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
        study = speed.run_study(spec, Path(folder), data_dir, device=device)
        trial, = results.completed(study)
    total = trial.duration.total_seconds()
    return {"schedule": trial.params, "trial_s": total, **{f"{k}_s": v for k, v in spent.items()},
            "rest_s": total - sum(spent.values()),
            "training_share": spent["retraining"] / total}


JOBS_STUDY = """
name = "jobs"
seed = 0
n_trials = {n_trials}
latency_device = "{latency_device}"
[data]
val_size = 0.1
[model]
width = 32
[dense]
epochs = 2
batch_size = 512
lr = 0.1
[space]
method = ["l1_unstructured", "ln_structured"]
amount = {{ low = 0.2, high = 0.6 }}
iterations = 2
retrain_epochs = 1
reinit = "finetune"
retrain_lr = 0.02
"""


def trials_per_hour(data_dir: Path, device: str, jobs: tuple[int, ...], n_trials: int) -> dict:
    """(C): the same small study with --jobs N on one device, its dense model cached first;
    trials per hour of wall time, process start-up included."""
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        study = folder / "jobs.toml"
        study.write_text(JOBS_STUDY.format(n_trials=n_trials, latency_device=device))
        for n in (0, *jobs):  # 0: a one-trial run that trains and caches the dense model
            run = folder / f"run-{n}"
            run.mkdir()
            command = [sys.executable, "-m", "prunesearch", "optimize", "--study", str(study),
                       "--device", device, "--data-dir", str(data_dir),
                       "--cache-dir", str(folder / "cache"), "--jobs", str(max(n, 1)),
                       *(["--n-trials", "1"] if n == 0 else [])]
            start = time.perf_counter()
            done = subprocess.run(command, cwd=run, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"--jobs {n}: exit {done.returncode}: {done.stderr[-2000:]}")
            if n:
                figures[f"jobs_{n}_trials_per_hour"] = 3600 * n_trials / (
                    time.perf_counter() - start)
    return figures


def cifar_shaped_folder(folder: Path, images: int) -> Path:
    """A cifar-10-batches-py folder of random images (timing only: nothing learns from it)."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    batches = folder / data_module.BATCHES_DIR
    batches.mkdir(parents=True, exist_ok=True)
    per_file = images // len(data_module.TRAIN_FILES)
    for name, count in [(n, per_file) for n in data_module.TRAIN_FILES] + [
            (data_module.TEST_FILE, 10_000)]:
        labels = (np.arange(count) % 10).tolist()
        data = rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)
        (batches / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
    return folder


def run(args) -> dict:
    device = torch.device(args.device)
    data_dir = args.data_dir
    scratch = tempfile.TemporaryDirectory()
    if data_module.find_batches_dir(data_dir) is None:
        data_dir = cifar_shaped_folder(Path(scratch.name), args.gpu_images)
    split = data_module.load(data_dir=data_dir, val_size=0.1, train_subset=None, seed=0).train
    figures = {"torch": torch.__version__, "device": torch.cuda.get_device_name()
               if device.type == "cuda" else "cpu", "train_images": len(split)}
    sections = [
        ("A_pipelines", lambda: pipelines(split, device, args.rounds)),
        ("B_trial_breakdown", lambda: trial_breakdown(data_dir, args.device,
                                                      train_images=None)),
        ("C_jobs", lambda: trials_per_hour(data_dir, args.device, (1, 2, 4), n_trials=8)),
    ]
    for name, measure in sections:
        start = time.perf_counter()
        figures[name] = measure()
        print(f"{name} ({time.perf_counter() - start:.0f} s): {figures[name]}", file=sys.stderr)
    scratch.cleanup()
    print_table(figures)
    return figures


def print_table(r: dict) -> None:
    a, b, c = r["A_pipelines"], r["B_trial_breakdown"], r["C_jobs"]
    print(f"{r['device']}, torch {r['torch']}, {r['train_images']} training images")
    print("| measure | figure | target |")
    print("| --- | ---: | --- |")
    for precision, batch, key in (("fp32", 128, "of_bare_fp32_b128"),
                                  ("bf16", 512, "of_bare_bf16_b512")):
        print(f"| A) {precision} batch {batch}: prunesearch / bare step (img/s) | "
              f"{a[f'prunesearch_{precision}_b{batch}_img_s']:,.0f} / "
              f"{a[f'bare_{precision}_b{batch}_img_s']:,.0f} = {a[key]:.2f} | >= 0.85 |")
    print(f"| A) notebook, {NOTEBOOK_WORKERS} workers (img/s); prunesearch bf16 b512 vs it | "
          f"{a['notebook_fp32_b128_img_s']:,.0f}; {a['bf16_b512_vs_notebook']:.1f}x | >= 5x |")
    print(f"| A) bf16 b512 vs fp32 b128 | {a['bf16_b512_vs_fp32_b128']:.2f}x | |")
    print(f"| A) evaluation (img/s) | {a['evaluate_img_s']:,.0f} | |")
    print(f"| B) trial (s): retraining / evaluation / costs / rest | {b['trial_s']:.1f}: "
          f"{b['retraining_s']:.1f} / {b['evaluation_s']:.1f} / {b['costs_s']:.1f} / "
          f"{b['rest_s']:.1f} | training dominates |")
    print("| C) trials per hour, --jobs 1 / 2 / 4 | " + " / ".join(
        f"{c[f'jobs_{n}_trials_per_hour']:.0f}" for n in (1, 2, 4)) + " | |")
