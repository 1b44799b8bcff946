"""Ctrl-C and SIGTERM as a request to stop, honoured within a second wherever the process is.

The signal handler records the request. The work calls `check()` at chosen points (every
training step, every evaluation batch, every latency round, between prune-retrain iterations,
between trials), and there `StopRequested` is raised. So a stop never lands inside a database
write, a schema migration or Optuna's bookkeeping: whatever a store is doing when the signal
comes, it finishes. Waiting is done with `sleep`, which wakes on the request, and work that
touches no store (reading the data, waiting for a file lock) runs inside `abortable()`, where
the handler raises at once. A second request raises at once anywhere: the user insists.

The exit code says which signal stopped the process: 130 for Ctrl-C (SIGINT), 143 for SIGTERM.
"""

import contextlib
import signal
import threading

_requested: int | None = None  # the signal that asked to stop
_woken = threading.Event()  # set with _requested: wakes `sleep`
_abortable = 0  # depth of `abortable()` blocks the main thread is in


class StopRequested(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, taken at a point where stopping leaves everything whole."""


def handler(signum, frame) -> None:
    global _requested
    if _requested is not None:
        raise StopRequested(f"stopped at once by a second {signal.Signals(signum).name}")
    _requested = signum
    _woken.set()
    if _abortable:
        raise StopRequested(f"stopped by {signal.Signals(signum).name}")


def install() -> None:
    """Route Ctrl-C and SIGTERM to `handler` (SIGTERM then stops a worker the way Ctrl-C
    does: its running trial is ended and queued again). Installed explicitly for both, so
    that a process started in the background, where SIGINT arrives ignored, still stops."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


def requested() -> bool:
    return _requested is not None


def exit_code() -> int:
    """The conventional exit code of a process stopped by the signal that asked: 128 + its
    number (130 for SIGINT, 143 for SIGTERM); 130 when no signal asked (a KeyboardInterrupt
    raised by Python's own handler)."""
    return 128 + (_requested or signal.SIGINT)


def check(*_) -> None:
    """Raise StopRequested if a stop was requested (usable as an Optuna callback)."""
    if _requested is not None:
        raise StopRequested


def sleep(seconds: float) -> None:
    """Wait `seconds`, or less: a stop request ends the wait with StopRequested."""
    if _woken.wait(seconds):
        raise StopRequested


@contextlib.contextmanager
def abortable():
    """A block that writes to no store (reading data, waiting for a lock): a stop request
    raises StopRequested in it at once, and one made before it raises on entry."""
    global _abortable
    check()
    _abortable += 1
    try:
        yield
    finally:
        _abortable -= 1
