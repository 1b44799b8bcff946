"""A study prepared once for many workers (`prunesearch prepare`), and workers that wait for it.

Fifty workers that start together on a new study would each create the study, its MLflow
experiment and study run, and train the dense model. `prepare` does all of it once and then
records `StudyRecord.prepared`; a worker started with `--wait-for-prepare` does none of it
before that record is there. The dense checkpoint also goes to the study run, so a worker on a
node whose cache folder is not shared fetches it there rather than training it again.
"""

import dataclasses
import logging
import os
import shlex
import socket
import time

import sqlalchemy

from prunesearch.errors import StorageError
from prunesearch.foundation import interrupts
from prunesearch.stores import storage as storage_module

log = logging.getLogger(__name__)
POLL_S = 1.0  # how often a waiting worker looks at the storage
DENSE_FOLDER = "dense"  # the study run's artifact folder holding the dense checkpoint


def record(dense_cache: str, dense_val_accuracy: float) -> dict:
    """What `StudyRecord.prepared` holds: when, where, and the dense cache file it made."""
    return {"at": time.time(), "host": socket.gethostname(), "pid": os.getpid(),
            "dense_cache": dense_cache, "dense_val_accuracy": dense_val_accuracy}


def prepared(name: str, storage_url: str) -> dict | None:
    """Study `name`'s `prepared` record, or None: not prepared yet, not created yet, or a
    database without Optuna's tables yet; nothing is created by looking."""
    return storage_module.study_attribute(storage_url, name, "prepared")


def wait(name: str, storage_url: str, seconds: float) -> dict:
    """Study `name`'s `prepared` record once `prunesearch prepare` has written it; waits at most
    `seconds` (a stop request ends the wait at once), riding out a database that does not
    answer yet meanwhile."""
    deadline = time.monotonic() + seconds
    said, last_error = False, None
    while True:
        try:
            found = prepared(name, storage_url)
            last_error = None
        except sqlalchemy.exc.SQLAlchemyError as error:
            found, last_error = None, error
        if found is not None:
            if said:
                log.info("study %s is prepared: starting trials", name)
            return found
        if time.monotonic() >= deadline:
            why = (f"; the last try to read it failed: {str(last_error).splitlines()[0]}"
                   if last_error is not None else "")
            raise StorageError(
                f"study {name!r} in {storage_module.shown(storage_url)} was not prepared "
                f"within {seconds:g} s (--wait-for-prepare){why}; run `prunesearch prepare "
                f"--study ...` with the same --storage first, or wait longer")
        if not said:
            log.info("study %s is not prepared yet: waiting up to %g s for `prunesearch "
                     "prepare`", name, seconds)
            said = True
        interrupts.sleep(min(POLL_S, max(deadline - time.monotonic(), 0.0)))


WORKERS_WAIT_S = 3600.0  # the --wait-for-prepare of the command `prepare` prints


def described(prepared: dict) -> str:
    """`prepared` for a person: when and where, the dense model it cached."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(prepared["at"]))
    return (f"{when} on {prepared['host']}; dense model {prepared['dense_cache']}, val "
            f"{100 * prepared['dense_val_accuracy']:.1f}%")


def worker_command(settings) -> str:
    """The command a worker of the study runs: prepare's RunSettings as `optimize` spells them
    (RunSettings.to_argv), waiting for the preparation. A storage URL with a password is left
    to $PRUNESEARCH_STORAGE, never printed."""
    argv = dataclasses.replace(settings, wait_for_prepare=WORKERS_WAIT_S).to_argv()
    words = [shlex.quote(word) for word in argv]
    if storage_module.has_password(settings.storage_url):
        words[argv.index("--storage") + 1] = '"$PRUNESEARCH_STORAGE"'
    return " ".join(["prunesearch", *words])
