"""Optuna storage URLs: resolve, check before anything is created, open with heartbeats and
riding out database outages (see outages).

Passwords are masked in every message: they end up in logs.
"""

import functools
import json
import logging
import threading
import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from prunesearch.stores import outages
from prunesearch.errors import StorageError

log = logging.getLogger(__name__)

DEFAULT_STORAGE_FILE = "prunesearch.db"
HEARTBEAT_S = 60  # a running trial writes a heartbeat this often (seconds)
HEARTBEAT_GRACE_S = 180  # ...and another worker fails it after this long without one


def resolve(storage: str | None) -> str:
    """--storage, else a SQLite file in the working directory (as an absolute URL)."""
    return storage or f"sqlite:///{Path(DEFAULT_STORAGE_FILE).resolve()}"


def open_storage(url: str, *, must_exist: bool = False, on_stale=None,
                 outage_wait_s: float = outages.DEFAULT_WAIT_S) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage (SQLite, PostgreSQL, MySQL) with heartbeats on; `on_stale(study,
    trial)` runs for a trial whose worker stopped beating; each call retried through an
    outage of up to `outage_wait_s` seconds.

    With `must_exist`, a SQLite file that is not there is an error rather than created.
    """
    if must_exist and url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise StorageError(f"no study storage at {url} ({path.resolve()} does not exist); "
                               "run `prunesearch optimize` first or pass --storage")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = _RetryingRDBStorage(
                url, heartbeat_interval=HEARTBEAT_S, grace_period=HEARTBEAT_GRACE_S,
                heartbeat_stale_trial_callback=on_stale,
                engine_kwargs={"pool_pre_ping": True,  # a restarted server's dead connections
                               "connect_args": connect_args(url)})
        storage.outage_wait_s = outage_wait_s
        return storage
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        raise _unusable(url, error) from None


def check(url: str, *, outage_wait_s: float = outages.DEFAULT_WAIT_S,
          reached_before: bool = False) -> None:
    """Refuse now what `open_storage` would, without creating anything: so that a bad
    --storage leaves no tracking store behind, nor a bad tracking URI a study storage.

    A database server that has not answered this process once (connection refused, unknown
    host, wrong password, no such database) is far more often a wrong address than an outage:
    refused at once, in one line. With `reached_before` (a worker of --jobs, whose starter
    reached it), one that does not answer is waited for up to `outage_wait_s`."""
    try:
        # Parses the URL and imports the driver; a host that drops packets fails in
        # CONNECT_TIMEOUT_S, not the system's minutes.
        engine = sqlalchemy.create_engine(url, connect_args=connect_args(url))
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        raise _unusable(url, error) from None
    try:
        if engine.dialect.name == "sqlite":
            database = engine.url.database
            if database and database != ":memory:" and not Path(database).parent.is_dir():
                raise StorageError(f"storage {shown(url)!r} cannot be used: the folder "
                                   f"{Path(database).parent} does not exist")
        else:
            outages.call(f"study database {shown(url)}", "the first connection",
                          lambda: engine.connect().close(),
                          wait_s=outage_wait_s if reached_before else 0,
                          is_transient=outages.database_transient)
    except outages.ServiceUnavailable as outage:
        if reached_before:
            raise _unusable(url, outage.error) from None
        raise StorageError(
            f"study database {shown(url)} cannot be reached ({outages.reason(outage.error)}); "
            "it has not answered once, so this is taken as a wrong address, not an outage "
            "(--outage-wait covers services that answered): check its host, port, user, "
            "password and database name") from None
    except sqlalchemy.exc.SQLAlchemyError as error:
        raise _unusable(url, error) from None
    finally:
        engine.dispose()


def load_study(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        raise StorageError(f"no study {name!r} in this storage; studies there: "
                           f"{', '.join(names) or 'none'}") from None


def open_study(name: str, storage: str | None) -> optuna.Study:
    """An existing study, for the commands that only read one."""
    return load_study(name, open_storage(resolve(storage), must_exist=True))


def study_attribute(url: str, study_name: str, key: str):
    """User attribute `key` of study `study_name`, or None where the study, the attribute or
    Optuna's tables are not there yet. One query that creates nothing (an Optuna storage would
    create its tables, SQLite its file); a database that does not answer raises SQLAlchemy's
    error."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    engine = sqlalchemy.create_engine(url, connect_args=connect_args(url))
    try:
        with engine.connect() as connection:
            if not sqlalchemy.inspect(connection).has_table("study_user_attributes"):
                return None
            found = connection.execute(_STUDY_ATTRIBUTE,
                                       {"name": study_name, "key": key}).scalar()
    finally:
        engine.dispose()
    return json.loads(found) if found is not None else None


_STUDY_ATTRIBUTE = sqlalchemy.text(  # Optuna's RDB schema, as it has been since Optuna 1
    "SELECT a.value_json FROM study_user_attributes a JOIN studies s "
    "ON s.study_id = a.study_id WHERE s.study_name = :name AND a.key = :key")


def has_password(url: str) -> bool:
    try:
        return make_url(url).password is not None
    except sqlalchemy.exc.ArgumentError:
        return False


def shown(url: str) -> str:
    """`url` with its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


CONNECT_TIMEOUT_S = 10  # a database host that does not answer at all


def connect_args(url: str) -> dict:
    """The driver's connection arguments: a connect timeout where the driver takes one."""
    return {"connect_timeout": CONNECT_TIMEOUT_S} if url.startswith("postgresql") else {}


def _unusable(url: str, error: Exception) -> StorageError:
    reason = str(error).splitlines()[0]
    if url.startswith("postgresql") and isinstance(error, ImportError):
        reason = "no PostgreSQL driver: pip install 'prunesearch[postgres]'"
    return StorageError(f"storage {shown(url)!r} cannot be used ({reason}); expected an "
                        "SQLAlchemy URL such as sqlite:///prunesearch.db or "
                        "postgresql://user:password@host/database")


class _RetryingRDBStorage(optuna.storages.RDBStorage):
    """RDBStorage whose every call to the database rides out an outage (outages.call). A
    call made inside another (RDBStorage's own nesting) is not retried again on its own."""

    outage_wait_s = outages.DEFAULT_WAIT_S
    _inside = threading.local()

    def set_trial_state_values(self, trial_id, state, values=None) -> bool:
        """As RDBStorage's; a retry that finds the trial already in `state` was preceded by an
        attempt that got through, its answer lost with the connection."""
        attempts = 0

        def once():
            nonlocal attempts
            attempts += 1
            try:
                return optuna.storages.RDBStorage.set_trial_state_values(self, trial_id, state,
                                                                         values)
            except optuna.exceptions.UpdateFinishedTrialError:
                if attempts > 1 and self.get_trial(trial_id).state == state:
                    return True
                raise

        return self._retried("set_trial_state_values", once)

    def record_heartbeat(self, trial_id: int) -> None:
        """Best effort: a beat that cannot be written is said once and skipped (the trial's own
        calls stop the worker when the outage lasts)."""
        try:
            self._retried("record_heartbeat", optuna.storages.RDBStorage.record_heartbeat,
                          self, trial_id)
        except outages.ServiceUnavailable as error:
            log.warning("heartbeat of trial %d not recorded: %s", trial_id, error)

    def _retried(self, name: str, function, *args, **kwargs):
        if getattr(self._inside, "active", False):
            return function(*args, **kwargs)
        self._inside.active = True
        try:
            return outages.call(f"study database {shown(self.url)}", name, function, *args,
                                 wait_s=self.outage_wait_s,
                                 is_transient=outages.database_transient, **kwargs)
        finally:
            self._inside.active = False


def _retrying(name: str):
    @functools.wraps(getattr(optuna.storages.RDBStorage, name))
    def retried(self, *args, **kwargs):
        method = getattr(optuna.storages.RDBStorage, name)
        return self._retried(name, method, self, *args, **kwargs)

    return retried


_NOT_DATABASE_CALLS = {"get_heartbeat_interval", "get_heartbeat_stale_trial_callback",
                       "remove_session", "upgrade", "get_all_versions", "get_head_version",
                       "get_current_version"}
for _name, _member in vars(optuna.storages.RDBStorage).items():
    if (callable(_member) and not _name.startswith("__") and _name not in _NOT_DATABASE_CALLS
            and _name not in vars(_RetryingRDBStorage)
            and (not _name.startswith("_") or _name in {
                "_create_new_trial", "_get_best_trial_id", "_get_stale_trial_ids",
                "_get_trials", "_set_trial_param"})):  # what optuna's cache calls
        setattr(_RetryingRDBStorage, _name, _retrying(_name))
