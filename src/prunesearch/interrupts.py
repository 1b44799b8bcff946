"""Ctrl-C and SIGTERM as a request to stop.

The handler raises KeyboardInterrupt at once, as Python's own does, and also remembers the
request: Python can raise it inside code that swallows exceptions (a weakref callback during
garbage collection, a __del__), and then `check()`, called between training steps and between
trials, still stops the work a moment later instead of letting it run on.
"""

_requested = False


def handler(signum, frame) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def check(*_) -> None:
    """Raise KeyboardInterrupt if a stop was requested (usable as an Optuna callback)."""
    if _requested:
        raise KeyboardInterrupt
