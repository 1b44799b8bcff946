"""Quiet moments for timing: latency is measured while no other prunesearch process on this
machine computes.

A speed-up is a ratio of two timings. With `--jobs N`, or two studies on one machine, a worker
that times its model while another trains on the same cores measures the other's load, not
its model: unstructured trials, whose true speed-up is 1.0, recorded 0.30x and 4.34x. So work
that computes (training steps and evaluation batches, `paced`; the front drawn after a trial,
`working`) runs under a shared host-wide hold, let go at least every HOLD_S between steps, and
timing takes the hold exclusively: it waits for every worker to
reach the end of its current hold, and no new hold starts meanwhile (filelock's SQLite
ReadWriteLock: a pending writer blocks new readers, so timing is never starved).

Opt-in: PRUNESEARCH_TIMING_GATE=on. benchmarks/timing.py measured that it costs a third of
the trials per hour in a timing-heavy study and, with speed-ups taken as the median of paired
rounds (costs.time_against), did not make them steadier (docs/performance.md).
"""

import getpass
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

log = logging.getLogger(__name__)

GATE_ENV = "PRUNESEARCH_TIMING_GATE"
HOLD_S = 0.5  # the longest a computing process keeps a waiting timer out
WAIT_S = 120.0  # past this, time anyway (a process stopped with SIGSTOP holds forever)
_POLL_S = 1.0  # a wait is cut into polls of this length, so a second Ctrl-C is not held up


def lock_path() -> Path:
    """One lock per user and machine: every study and worker of this user shares it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this user id (some containers)
        user = "anonymous"
    return Path(tempfile.gettempdir()) / f"prunesearch-timing-{user}.lock"


_lock: filelock.ReadWriteLock | None = None
_unusable = False


def _gate() -> filelock.ReadWriteLock | None:
    """This process's handle on the host-wide lock; None when off or unusable (said once)."""
    global _lock, _unusable
    if os.environ.get(GATE_ENV, "off") != "on" or _unusable:
        return None
    if _lock is None:
        try:
            _lock = filelock.ReadWriteLock(lock_path())
        except (OSError, ValueError) as error:
            _unusable = True
            log.warning("timing without a quiet moment: the lock %s cannot be used (%s)",
                        lock_path(), error)
            return None
    return _lock


def _acquire(acquire) -> bool:
    """Wait for `acquire` up to WAIT_S in polls; False (and one line) if it never came."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            acquire(timeout=_POLL_S)
            return True
        except filelock.Timeout:
            if time.monotonic() >= deadline:
                log.warning("no quiet moment on this machine within %.0f s (another process "
                            "holds %s); going on without one", WAIT_S, lock_path())
                return False


def paced(items: Iterable) -> Iterator:
    """Yield `items` (training steps, evaluation batches) under a shared hold, renewed every
    HOLD_S so a waiting timer gets in between. Close it (contextlib.closing) to let go at once
    when the loop is left early."""
    gate = _gate()
    if gate is None:
        yield from items
        return
    held = _acquire(gate.acquire_read)
    since = time.monotonic()
    try:
        for item in items:
            if held and time.monotonic() - since > HOLD_S:
                gate.release()
                held = _acquire(gate.acquire_read)
                since = time.monotonic()
            yield item
    finally:
        if held:
            gate.release()


def working():
    """Run the block (a short burst of work: drawing the front, logging) under a shared hold:
    a timer waits for it to end."""
    return _held("read")


def moment():
    """Run the block while no paced work of this user on this machine computes."""
    return _held("write")


@contextmanager
def _held(mode: str):
    gate = _gate()
    held = gate is not None and _acquire(getattr(gate, f"acquire_{mode}"))
    try:
        yield
    finally:
        if held:
            gate.release()
