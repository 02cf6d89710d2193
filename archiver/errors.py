"""The exceptions archiver raises to its operator.

A failing link is never an exception: it is a ``FetchResult`` with a state.
Exceptions are for things that stop a run, and each maps to one exit code::

    ArchiverError                 (exit 3 unless a subclass says otherwise)
    ├── ConfigError               bad config file, option or source (exit 2)
    ├── StoreError                the blob store is unusable: disk full, permissions (exit 3)
    ├── DatabaseError             the state database (SQLite or PostgreSQL) is unusable (exit 3)
    ├── NetworkDownError          no (public) host of the run answered (exit 3)
    ├── RestoreError              unknown URL, no copy, damaged blob on restore (exit 1)
    ├── LockedError               another run holds the lock (exit 75)
    └── RunInterrupted            a signal stopped the run, recorded as interrupted (128 + signal)

    Stop (a BaseException, like KeyboardInterrupt)  SIGTERM asked the process to stop

Any other exception is a bug: the command line prints one line and exits 70.
"""

from __future__ import annotations

__all__ = [
    "ArchiverError",
    "ConfigError",
    "DatabaseError",
    "LockedError",
    "NetworkDownError",
    "RestoreError",
    "RunInterrupted",
    "Stop",
    "StoreError",
]


class ArchiverError(Exception):
    """Base class: something stopped the run. ``exit_code`` is what the CLI returns."""

    exit_code = 3


class ConfigError(ArchiverError):
    """The configuration or the command line is wrong; the user must fix it."""

    exit_code = 2


class StoreError(ArchiverError):
    """The blob store cannot be written or read (disk full, permissions, damage)."""


class DatabaseError(ArchiverError):
    """The state database (a SQLite file or a PostgreSQL server) cannot be opened, migrated
    or written."""


class NetworkDownError(ArchiverError):
    """No host of the run answered, or no public one did (only hosts on the machine's own
    networks): we are offline, and no public link's state was changed."""


class RestoreError(ArchiverError):
    """Unknown URL, no copy held, or a damaged blob: nothing was written (exit 1)."""

    exit_code = 1


class LockedError(ArchiverError):
    """Another archiver run holds the lock on this database and store."""

    exit_code = 75


class RunInterrupted(ArchiverError):
    """SIGINT or SIGTERM stopped a run; the checks it made and the run itself are recorded."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        #: What a shell reports for a process a signal stopped (130 for SIGINT, 143 for SIGTERM).
        self.exit_code = 128 + signum


class Stop(BaseException):
    """The command line's SIGTERM handler raises this, as Python raises KeyboardInterrupt
    for SIGINT: a BaseException, so no ``except Exception`` swallows it on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
