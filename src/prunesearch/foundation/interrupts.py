"""Ctrl-C and SIGTERM as a request to stop, honoured where the work chooses.

The signal handler only records the request. The work calls `check()` at chosen points (every
training step, every evaluation batch, between prune-retrain iterations, between trials), and
there `StopRequested` is raised. So a stop never lands inside a database write, a schema
migration or Optuna's bookkeeping: whatever a store is doing when the signal comes, it
finishes. A second request while the first is pending raises at once: the user insists, for
example while the process waits on a store that does not answer.
"""

import signal

_requested = False


class StopRequested(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, taken at a point where stopping leaves everything whole."""


def handler(signum, frame) -> None:
    global _requested
    if _requested:
        raise StopRequested(f"stopped at once by a second {signal.Signals(signum).name}")
    _requested = True


def install() -> None:
    """Route Ctrl-C and SIGTERM to `handler` (SIGTERM then stops a worker the way Ctrl-C
    does: its running trial is ended and queued again)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


def requested() -> bool:
    return _requested


def check(*_) -> None:
    """Raise StopRequested if a stop was requested (usable as an Optuna callback)."""
    if _requested:
        raise StopRequested
