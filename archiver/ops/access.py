"""Opening an archive (its database and store) for a command, with the checks it needs.

One place for what every command that reads or writes an existing archive must do
first: refuse a missing database (rather than create an empty one), refuse a store
that belongs to another database, and, when reading, create nothing on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from archiver.config import Config
from archiver.db import Database, read_snapshot
from archiver.db import exists as database_exists
from archiver.errors import ConfigError
from archiver.store import BlobStore, open_store
from archiver.store.identity import bind_store

__all__ = ["open_archive", "read_archive"]

T = TypeVar("T")


def _no_warnings(_: str) -> None:
    pass


def _existing(cfg: Config) -> None:
    if not database_exists(cfg.db):
        raise ConfigError(f"no database at {cfg.db}: run 'archiver crawl' first or pass --db")


@contextmanager
def open_archive(
    cfg: Config, warn: Callable[[str], None] = _no_warnings
) -> Iterator[tuple[Database, BlobStore]]:
    """The archive opened for writing (restore, verify, gc); the store made if need be."""
    _existing(cfg)
    database = Database(cfg.db)
    try:
        # Checked before the store is made: a wrong --store is refused, not created empty.
        store = open_store(cfg)
        for message in bind_store(database, store, shared=cfg.shared_store, write=True):
            warn(message)
        store.create()
        yield database, store
    finally:
        database.close()


def read_archive(
    cfg: Config,
    read: Callable[[Database, BlobStore], T],
    warn: Callable[[str], None] = _no_warnings,
) -> T:
    """``read`` on the archive opened read-only: nothing is created on disk.

    ``read`` may run more than once (see ``db.read_snapshot``): it must only read, or
    write something it replaces whole.
    """
    _existing(cfg)
    store = open_store(cfg)

    def checked(database: Database) -> T:
        for message in bind_store(database, store, shared=cfg.shared_store, write=False):
            warn(message)
        return read(database, store)

    return read_snapshot(cfg.db, checked)
