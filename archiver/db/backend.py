"""The seam between ``Database`` and the engine under it: SQLite or PostgreSQL.

A backend owns the connection, the unit of work (``transaction``), the schema's
migration (or, read-only, the check that none is pending) and the translation of its
driver's errors into ``DatabaseError``. ``Database`` and its query mixins only call
``execute(sql, params)`` and ``executemany(sql, rows)`` with one query text, written
with ``?`` placeholders in the SQL both engines accept (``dialect.CATALOGUE``), and
read the cursor it returns: ``fetchone``, ``fetchall``, iteration, ``description``.
Which backend runs is chosen here, by the location, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from archiver.db.location import Location

__all__ = ["Backend", "Cursor", "open_backend"]


class Cursor(Protocol):
    """What a query returns, on either driver."""

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Backend(Protocol):
    """One open database: SQLite (``sqlite_backend``) or PostgreSQL (``postgres``)."""

    #: The driver's connection (tests inspect it; queries go through ``execute``).
    conn: Any

    @property
    def execute(self) -> Callable[..., Cursor]:
        """``execute(sql, params=())``: one statement, ``?`` placeholders."""

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    @property
    def stale(self) -> bool: ...

    def close(self) -> None: ...


def open_backend(location: Location, *, readonly: bool, side_files: bool) -> Backend:
    """The backend for ``location``, opened: created and migrated unless ``readonly``."""
    if isinstance(location, Path):
        from archiver.db.sqlite_backend import SqliteBackend

        return SqliteBackend(location, readonly=readonly, side_files=side_files)
    from archiver.db.postgres import PostgresBackend

    return PostgresBackend(location, readonly=readonly)
