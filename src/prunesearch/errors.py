"""Errors a user can cause. The CLI prints them as one line and exits with `exit_code`."""


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


MISSING = _Missing()
"""Stands for a required key that a study file leaves out."""


class PrunesearchError(Exception):
    """A problem the user can fix; the message alone says what and how."""

    exit_code = 1


class StudyFileError(PrunesearchError):
    """A study file that cannot be used or found; the message starts with the file."""

    exit_code = 2

    def __init__(self, path, detail: str):
        self.path = path
        super().__init__(f"{path}: {detail}")

    @classmethod
    def bad_value(cls, path, key: str, value, allowed: str) -> "StudyFileError":
        """The usual case: names the key, the value found and what is allowed."""
        return cls(path, f"{key} = {value!r}: {allowed}")


class UsageError(PrunesearchError):
    """A bad command-line value or combination of values."""

    exit_code = 2


class DataError(PrunesearchError):
    """The data set is missing, unreadable or in the wrong layout."""


class StorageError(PrunesearchError):
    """An Optuna storage or MLflow tracking store that cannot be used."""


class ExportError(PrunesearchError):
    """A trial cannot be exported as recorded (not complete, weights missing, accuracy differs)."""


class TrialsFailing(PrunesearchError):
    """Trial after trial fails: the study stops rather than fail forever."""


class DiskFull(PrunesearchError):
    """No space left where something had to be written."""

    def __init__(self, folder, what: str):
        self.folder = folder
        super().__init__(f"disk full: no space left in {folder} while writing {what}; free "
                         "some space there and run the same command again (a trial that was "
                         "running is queued again)")
