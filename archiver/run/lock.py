"""One run at a time per database and store.

Owns the lock file beside a SQLite database. It is an OS lock (``flock``), so the
kernel releases it when the process dies: a killed run never leaves a stale
lock. The file records who holds it, for the message the next run prints. A database
on a server has a lock of its own (``Location.server_lock``: a PostgreSQL advisory lock),
taken through the same two functions.

Workers of a shared run (``crawl --worker``) hold it shared, so they run together, while
a plain crawl, gc, verify --repair or restore --rewrite still needs it alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from archiver.clock import iso
from archiver.db.location import Location
from archiver.db.locks import server_lock, server_lock_holder, server_setup_lock
from archiver.errors import ConfigError, LockedError

__all__ = ["lock_holder", "run_lock", "setup_lock"]


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 200).decode("utf-8", "replace").strip()
    pid, _, started = text.partition(" ")
    return f"pid {pid or '?'}, started at {started or '?'}"


def _open_lock_file(path: Path) -> int:
    """The lock file's descriptor, the file (and its folder) made if missing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot create lock file {path}: {exc.strerror}") from exc


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def lock_holder(db_path: Location) -> int | None:
    """The pid of the process holding the run lock, or None when nobody holds it.

    Reads only (the lock file is neither created nor written). To tell, it takes the
    lock alone for an instant (workers hold it shared): a run starting at that very
    instant without ``--wait`` would see it held, so call this only when a recorded run
    may be dead.
    """
    if not isinstance(db_path, Path):
        return server_lock_holder(db_path)
    try:
        fd = os.open(lock_path(db_path), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held shared by workers too
        except BlockingIOError:
            pid = os.pread(fd, 40, 0).decode("ascii", "replace").partition(" ")[0]
            return int(pid) if pid.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def run_lock(
    db_path: Location, *, wait: float = 0.0, poll: float = 0.2, shared: bool = False
) -> Iterator[None]:
    """Holds ``<db>.lock`` (or the server's lock) for the duration; waits up to ``wait``
    seconds for it.

    ``shared``: a worker's hold, which other workers share; every other run's excludes
    them all. (On a server: ``pg_advisory_lock_shared`` and ``pg_advisory_lock``.)
    """
    if not isinstance(db_path, Path):
        with server_lock(
            db_path, wait=wait, poll=poll, started=iso(datetime.now(UTC)), shared=shared
        ):
            yield
        return
    path = lock_path(db_path)
    fd = _open_lock_file(path)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockedError(
                        f"another run ({_holder(fd)}) holds the lock {path};"
                        " try again when it has finished (crawl and check can wait for it:"
                        " --wait SECONDS)"
                    ) from None
                time.sleep(poll)
        stamp = iso(datetime.now(UTC))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {stamp}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def setup_lock(db: Location) -> Iterator[None]:
    """Held by a worker while it opens the database, binds the store and joins the run:
    workers starting together on a new database would each create its schema and give
    the store an identity of their own. ``<db>.setup.lock``, exclusive, waited for (each
    holds it for a moment); on a server, an advisory lock."""
    if not isinstance(db, Path):
        with server_setup_lock(db):
            yield
        return
    fd = _open_lock_file(db.with_name(db.name + ".setup.lock"))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
