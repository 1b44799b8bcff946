"""Ctrl-C and SIGTERM as a request to stop.

The handler raises KeyboardInterrupt at once, as Python's own does, and also remembers the
request: Python can raise it inside code that swallows exceptions (a weakref callback during
garbage collection, a __del__), and then `check()`, called between training steps and between
trials, still stops the work a moment later instead of letting it run on. Inside `held()` it
only remembers: a write to a store cut in two can leave its database locked, and a trial
created but never told stays RUNNING. `released()` lifts that for work that may stop anywhere.
"""

from contextlib import contextmanager

_requested = False
_holding = 0


def handler(signum, frame) -> None:
    global _requested
    _requested = True
    if not _holding:
        raise KeyboardInterrupt


def check(*_) -> None:
    """Raise KeyboardInterrupt if a stop was requested (usable as an Optuna callback)."""
    if _requested:
        raise KeyboardInterrupt


@contextmanager
def held():
    """Let the block finish before a stop request that arrives during it takes effect: for
    writes to a database, which an interruption midway can leave holding its lock (an SQLite
    MLflow store then refuses every later write, also the one ending the run KILLED), and for
    Optuna's bookkeeping around a trial. Usable as a decorator."""
    global _holding
    already_requested = _requested
    _holding += 1
    try:
        yield
    finally:
        _holding -= 1
    if _requested and not already_requested and not _holding:
        raise KeyboardInterrupt


@contextmanager
def released():
    """Inside a held block, let a stop request take effect at once again, including one that
    arrived while held: for a trial's own work, which its caller ends cleanly however it stops."""
    global _holding
    outer, _holding = _holding, 0
    try:
        check()
        yield
    finally:
        _holding = outer
