"""The run lock of a database on a server, for ``run.lock``: it takes a file's lock itself.

Kept apart from ``location`` so that naming a location never loads a driver.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from archiver.db.location import PostgresUrl

__all__ = ["server_lock", "server_lock_holder", "server_setup_lock"]


def server_lock(
    location: PostgresUrl, *, wait: float, poll: float, started: str, shared: bool = False
) -> AbstractContextManager[None]:
    """The run lock of a database on a server (``run.lock`` takes it, as it takes a file's);
    ``shared``: a worker's (``crawl --worker``)."""
    from archiver.db.backend import postgres_module

    lock: AbstractContextManager[None] = postgres_module().run_lock(
        location, wait=wait, poll=poll, started=started, shared=shared
    )
    return lock


def server_lock_holder(location: PostgresUrl) -> int | None:
    """The pid holding a server database's run lock, or None."""
    from archiver.db.backend import postgres_module

    holder: int | None = postgres_module().lock_holder(location)
    return holder


def server_setup_lock(location: PostgresUrl) -> AbstractContextManager[None]:
    """A worker's setup lock on a server database (``run.lock.setup_lock``)."""
    from archiver.db.backend import postgres_module

    lock: AbstractContextManager[None] = postgres_module().setup_lock(location)
    return lock
