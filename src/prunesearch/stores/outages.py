"""Riding out outages of the services a study depends on: its database and its MLflow tracking
server (or store).

A call that fails because its service cannot be reached (a refused or dropped connection, a
server restarting, an SQLite file locked by another writer) is tried again with exponential
backoff (tenacity: 1 s doubling to 30 s), one line each time, for at most `wait_s` seconds in
all (`optimize --outage-wait`). Past that: ServiceUnavailable, the process calls that service
no more (it would only wait again), and the worker stops; a rerun continues the study. An
error that says the request itself is wrong is not retried, and a full disk is said at once
(errors.DiskFull): waiting does not free space.

An upsert that lost a race with another worker's (retry_lost_race) is a third case: tried again
at once, silently, since the row it wanted is now there to update.
"""

import logging
import time
from collections.abc import Callable

import tenacity

from prunesearch.errors import DiskFull, PrunesearchError
from prunesearch.foundation import interrupts
from prunesearch.foundation.diskspace import folder_of, full_disk_error

log = logging.getLogger(__name__)

DEFAULT_WAIT_S = 300.0
BACKOFF_FIRST_S, BACKOFF_MAX_S = 1.0, 30.0


class ServiceUnavailable(PrunesearchError):
    """A service stayed unreachable for the whole outage wait."""

    def __init__(self, service: str, what: str, waited_s: float, error: BaseException | None):
        self.service, self.error = service, error
        cause = f" ({reason(error)})" if error is not None else ""
        super().__init__(
            f"{service} unreachable for {waited_s:.0f} s, during {what}{cause}; this worker "
            "stops (a trial it could not record is queued again); once the service is back, "
            "run the same command to continue the study")


_given_up: set[str] = set()


def call(service: str, what: str, function: Callable, *args, wait_s: float,
         is_transient: Callable[[BaseException], bool], **kwargs):
    """`function(*args, **kwargs)`, retried while `is_transient(error)` for up to `wait_s`."""
    if service in _given_up:
        raise ServiceUnavailable(service, what, 0, None)
    started = time.monotonic()

    def say_retrying(state: tenacity.RetryCallState) -> None:
        log.warning("%s unreachable during %s (%s); retrying in %.0f s, for up to %.0f s in all",
                    service, what, reason(state.outcome.exception()), state.next_action.sleep,
                    wait_s)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(wait_s),
        wait=tenacity.wait_exponential(multiplier=BACKOFF_FIRST_S, max=BACKOFF_MAX_S),
        retry=tenacity.retry_if_exception(lambda e: is_transient(e) and not full_disk_error(e)),
        before_sleep=say_retrying, reraise=True,
        sleep=interrupts.sleep)  # a stop request ends the wait at once
    try:
        result = retrying(function, *args, **kwargs)
    except Exception as error:
        full = full_disk_error(error)
        if full is not None:
            raise DiskFull(folder_of(full, service), f"{what} ({service})") from None
        if not is_transient(error):
            raise
        _given_up.add(service)
        raise ServiceUnavailable(service, what, time.monotonic() - started, error) from None
    if retrying.statistics.get("attempt_number", 1) > 1:
        log.warning("%s reachable again after %.0f s; going on", service,
                    time.monotonic() - started)
    return result


RACE_ATTEMPTS = 5
# What a unique-key violation says, as SQLite, PostgreSQL and MySQL word it: through a tracking
# server it arrives as text only.
_UNIQUE_VIOLATION = ("UNIQUE constraint failed", "duplicate key value violates unique constraint",
                     "Duplicate entry")


def lost_write_race(error: BaseException) -> bool:
    """A unique-key violation: another writer inserted the same row between this one's read and
    its insert."""
    import sqlalchemy.exc

    return any(isinstance(e, sqlalchemy.exc.IntegrityError)
               or any(words in str(e) for words in _UNIQUE_VIOLATION) for e in causes(error))


def retry_lost_race(function: Callable) -> Callable:
    """`function`, an idempotent upsert, tried again when it loses a race (lost_write_race).

    MLflow's SQL store sets a tag, a latest metric or a dataset by reading the row and then
    inserting it; two workers writing the study run at the same moment both read nothing, and
    the later insert fails. Its retry reads the row and updates it. A short random pause lets the
    writers part ways."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(RACE_ATTEMPTS), wait=tenacity.wait_random(0, 0.1),
        retry=tenacity.retry_if_exception(lost_write_race), reraise=True).wraps(function)


def reason(error: BaseException) -> str:
    """The innermost cause's first line: what the operating system or server said."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def causes(error: BaseException | None):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def database_transient(error: BaseException) -> bool:
    """The database could not be reached or dropped the connection (SQLAlchemy's
    OperationalError also covers SQLite's "database is locked"), as opposed to a bad request."""
    import sqlalchemy.exc

    return any(isinstance(e, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                              sqlalchemy.exc.TimeoutError))
               or (isinstance(e, sqlalchemy.exc.DBAPIError) and e.connection_invalidated)
               for e in causes(error))
