"""`optimize --jobs N`: N worker processes on one study on this machine.

The process that starts them has already created the study, its MLflow experiment and parent
run, and the dense model, so the workers race on none of them; each worker is a plain
`prunesearch optimize` of the same study (the way workers on other machines join it), told by
its environment which it is and how many torch threads it may use.
"""

import os
import signal
import subprocess
import sys
import time

from prunesearch.foundation import interrupts
from prunesearch.errors import PrunesearchError

WORKER_ENV = "PRUNESEARCH_WORKER"  # "k/N" in worker k of N started by --jobs
THREADS_ENV = "PRUNESEARCH_THREADS"  # torch threads a worker may use
POLL_S = 0.2  # how often the starting process looks at its workers and for a stop request


class WorkersFailed(PrunesearchError):
    """A worker stopped with an error (its own line says which, above)."""


def worker_label() -> str | None:
    """"k/N" in a worker started by --jobs, else None."""
    return os.environ.get(WORKER_ENV)


def limit_threads() -> None:
    """In a worker, use only its share of the cores."""
    if THREADS_ENV in os.environ:
        import torch

        torch.set_num_threads(int(os.environ[THREADS_ENV]))


def threads_for(jobs: int) -> int:
    """The cores split evenly: N workers of all cores' threads each would fight for them."""
    return max(1, (os.cpu_count() or 1) // jobs)


def run(argv: list[str], jobs: int) -> None:
    """Run `prunesearch *argv` as `jobs` workers until all end.

    Workers get a session of their own: a stop request reaches them once, forwarded from here
    as SIGTERM, and each ends its running trial cleanly before exiting; then StopRequested.
    """
    environment = {**os.environ, THREADS_ENV: str(threads_for(jobs))}
    workers = [subprocess.Popen([sys.executable, "-m", "prunesearch", *argv],
                                env={**environment, WORKER_ENV: f"{k}/{jobs}"},
                                start_new_session=True)
               for k in range(1, jobs + 1)]
    forwarded = False
    try:
        while any(worker.poll() is None for worker in workers):
            if interrupts.requested() and not forwarded:
                for worker in workers:
                    if worker.poll() is None:
                        worker.send_signal(signal.SIGTERM)
                forwarded = True
            time.sleep(POLL_S)
    finally:  # a second Ctrl-C here still leaves no worker behind
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait()
    interrupts.check()
    failed = [f"worker {k}: exit {worker.returncode}" for k, worker in enumerate(workers, 1)
              if worker.returncode != 0]
    if failed:
        raise WorkersFailed(f"{len(failed)} of {jobs} workers stopped with an error "
                            f"({', '.join(failed)}); their messages are above")
