"""Many workers on one PostgreSQL study, as on a cluster: trials per hour, storage errors,
trials lost, memory, and how long a worker takes from its start to its first trial.

A throwaway PostgreSQL server (Debian's binaries) holds the study and an `mlflow server`'s
runs; `prunesearch prepare` prepares a study of tiny trials; then N `prunesearch optimize
--wait-for-prepare` processes start in the same instant, as a worker Job or a Slurm array
would start them.

    python -m benchmarks.cluster --workers 32 --trials 96   # this machine's figures
    python -m benchmarks.cluster --smoke                   # 2 workers, 2 trials: it runs
"""

import datetime
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna

from benchmarks import common
from prunesearch.testing import data as testing_data
from prunesearch.testing import servers, studies

TINY_TRIALS = {"description": "tiny trials, many workers", "seed": 0, "sampler": "tpe",
               "latency_device": "none", "model": {"width": 4},
               "dense": {"epochs": 1, "batch_size": 32}, "data": {"val_size": 50},
               "space": {"method": "l1_unstructured", "amount": {"low": 0.2, "high": 0.6},
                         "iterations": 1, "retrain_epochs": 1, "reinit": "finetune"}}
# Lines a worker writes when the study database or MLflow does not answer, or it fails
STORAGE_TROUBLE = re.compile(r"unreachable during|StorageInternalError|OperationalError|"
                             r"^error:|Traceback", re.MULTILINE)


def pss_bytes(pids: list[int]) -> int:
    """The memory of processes `pids` (those still running), together: proportional set
    size, each shared page split between the processes that map it (resident sizes would count
    torch's libraries once per worker)."""
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        found = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
        total += int(found.group(1)) * 1024 if found else 0
    return total


def run(folder: Path, *, workers: int, trials: int) -> dict:
    data_dir = testing_data.cifar_folder(folder / "data")
    study = studies.study_file(folder / "cluster.toml", base=None, name="cluster",
                               n_trials=trials, **TINY_TRIALS)
    with servers.postgres(max_connections=max(100, 8 * workers)) as database, \
            servers.mlflow_server(f"{database.url}/mlflow", folder / "artifacts",
                                  log=folder / "mlflow-server.log", workers=1 if workers <= 2 else 4) as tracking:
        storage = f"{database.url}/optuna"
        shared = ["--study", str(study), "--storage", storage, "--tracking-uri", tracking.url,
                  "--data-dir", str(data_dir), "--cache-dir", str(folder / "cache")]
        start = time.perf_counter()
        prepared = subprocess.run([sys.executable, "-m", "prunesearch", "prepare", *shared],
                                  capture_output=True, text=True)
        if prepared.returncode != 0:
            raise RuntimeError(f"prepare: exit {prepared.returncode}: {prepared.stderr[-2000:]}")
        prepare_s = time.perf_counter() - start

        logs = [folder / f"worker-{k}.log" for k in range(workers)]
        started_at, processes = [], []
        for log in logs:
            started_at.append(datetime.datetime.now())
            with open(log, "wb") as output:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "prunesearch", "optimize", *shared,
                     "--wait-for-prepare", "60"], stdout=output, stderr=subprocess.STDOUT))
        begun = time.perf_counter()
        peak, watching = [0], [True]

        def watch() -> None:
            while watching[0]:
                peak[0] = max(peak[0], pss_bytes([p.pid for p in processes]))
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        codes = [process.wait() for process in processes]
        wall_s = time.perf_counter() - begun
        watching[0] = False
        watcher.join()

        recorded = optuna.load_study(study_name="cluster", storage=storage).trials
        states = [t.state for t in recorded]
        complete = states.count(optuna.trial.TrialState.COMPLETE)
        retried = {t.user_attrs.get("retry_of") for t in recorded}
        lost = [t.number for t in recorded
                if t.state == optuna.trial.TrialState.RUNNING
                or (t.state == optuna.trial.TrialState.FAIL and t.number not in retried)]
        firsts = []
        for process, started in zip(processes, started_at):
            mine = [t.datetime_start for t in recorded
                    if (t.user_attrs.get("worker") or {}).get("pid") == process.pid
                    and t.datetime_start is not None]
            if mine:
                firsts.append((min(mine) - started).total_seconds())
        troubles = sum(len(STORAGE_TROUBLE.findall(log.read_text(errors="replace")))
                       for log in logs)
    return {"workers": workers, "n_trials": trials, "prepare_s": prepare_s,
            "wall_s": wall_s, "complete": complete, "trials": len(states),
            "trials_per_hour": 3600 * complete / wall_s,
            "exit_codes_nonzero": sum(1 for code in codes if code != 0),
            "storage_errors": troubles, "trials_lost": len(lost),
            "first_worker_to_first_trial_s": firsts[0] if firsts else None,
            "median_worker_to_first_trial_s": sorted(firsts)[len(firsts) // 2]
            if firsts else None,
            "workers_that_ran_a_trial": len(firsts),
            "peak_pss_gib": peak[0] / 2**30}


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--trials", type=int, default=96,
                        help="the study's n_trials (tiny trials: a width-4 CIFAR CNN)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if servers.INITDB is None or servers.PG_CTL is None:
        parser.error("PostgreSQL's server binaries are not installed (Debian: postgresql)")
    workers, trials = (2, 2) if args.smoke else (args.workers, args.trials)
    with tempfile.TemporaryDirectory() as folder:
        figures = run(Path(folder), workers=workers, trials=trials)
    if args.json:
        common.write_json(args.json, figures)
    print("| workers | trials | complete | trials/hour | storage errors | trials lost | "
          "first worker to its first trial (s) | median (s) | peak memory, PSS (GiB) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {workers} | {figures['trials']} | {figures['complete']} | "
          f"{figures['trials_per_hour']:.0f} | {figures['storage_errors']} | "
          f"{figures['trials_lost']} | {figures['first_worker_to_first_trial_s']:.1f} | "
          f"{figures['median_worker_to_first_trial_s']:.1f} | {figures['peak_pss_gib']:.1f} |"
          + (" (--smoke: these figures mean nothing)" if args.smoke else ""))
    print(json.dumps(figures), file=sys.stderr)


if __name__ == "__main__":
    main()
