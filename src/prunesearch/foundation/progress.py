"""Progress bars for long loops: drawn on a terminal, silent when stderr is not one (logs,
CI, pipes), where the one-line-per-epoch log is the progress."""

import sys
from collections.abc import Iterable

from tqdm import tqdm


def steps(iterable: Iterable, *, total: int, label: str) -> Iterable:
    return tqdm(iterable, total=total, desc=label, unit="batch", leave=False,
                disable=None, file=sys.stderr, dynamic_ncols=True)
