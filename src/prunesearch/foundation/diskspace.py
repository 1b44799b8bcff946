"""A full disk, named: which folder, and what was being written there (errors.DiskFull)."""

import errno
from contextlib import contextmanager
from pathlib import Path

from prunesearch.errors import DiskFull

_FULL = {errno.ENOSPC, errno.EDQUOT}


def full_disk_error(error: BaseException | None) -> BaseException | None:
    """The error in `error`'s chain that says the disk is full (an OSError, or SQLite's
    "database or disk is full"), else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if (isinstance(error, OSError) and error.errno in _FULL) \
                or "database or disk is full" in str(error):
            return error
        error = error.__cause__ or error.__context__
    return None


def folder_of(error: BaseException, default) -> Path | str:
    """The folder of the file being written when `error` came, where the error names it
    (shutil names the destination second)."""
    name = getattr(error, "filename2", None) or getattr(error, "filename", None)
    return Path(name).parent if name else default


@contextmanager
def writing(folder: Path | str, what: str):
    """Turn a full disk inside the block into DiskFull(folder, what)."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as error:
        full = full_disk_error(error)
        if full is None:
            raise
        raise DiskFull(folder_of(full, folder), what) from None
