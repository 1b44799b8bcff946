"""Optuna storage URLs: resolve, check before anything is created, open with heartbeats.

Passwords are masked in every message: they end up in logs.
"""

import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from prunesearch.errors import StorageError

DEFAULT_STORAGE_FILE = "prunesearch.db"
HEARTBEAT_S = 60  # a running trial writes a heartbeat this often (seconds)
HEARTBEAT_GRACE_S = 180  # ...and another worker fails it after this long without one


def resolve(storage: str | None) -> str:
    """--storage, else a SQLite file in the working directory (as an absolute URL)."""
    return storage or f"sqlite:///{Path(DEFAULT_STORAGE_FILE).resolve()}"


def open_storage(url: str, *, must_exist: bool = False, on_stale=None
                 ) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage (SQLite, PostgreSQL, MySQL) with heartbeats on; `on_stale(study,
    trial)` runs for a trial whose worker stopped beating.

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
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_S, grace_period=HEARTBEAT_GRACE_S,
                heartbeat_stale_trial_callback=on_stale)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        raise _unusable(url, error) from None


def check(url: str) -> None:
    """Refuse now what `open_storage` would, without creating anything: so that a bad
    --storage leaves no tracking store behind, nor a bad tracking URI a study storage."""
    try:
        engine = sqlalchemy.create_engine(url)  # parses the URL and imports the driver
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as error:
        raise _unusable(url, error) from None
    try:
        if engine.dialect.name == "sqlite":
            database = engine.url.database
            if database and database != ":memory:" and not Path(database).parent.is_dir():
                raise StorageError(f"storage {shown(url)!r} cannot be used: the folder "
                                   f"{Path(database).parent} does not exist")
        else:
            with engine.connect():
                pass
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


def shown(url: str) -> str:
    """`url` with its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def _unusable(url: str, error: Exception) -> StorageError:
    reason = str(error).splitlines()[0]
    if url.startswith("postgresql") and isinstance(error, ImportError):
        reason = "no PostgreSQL driver: pip install 'prunesearch[postgres]'"
    return StorageError(f"storage {shown(url)!r} cannot be used ({reason}); expected an "
                        "SQLAlchemy URL such as sqlite:///prunesearch.db or "
                        "postgresql://user:password@host/database")
