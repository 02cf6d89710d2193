"""The SQLite backend: one file in WAL mode, one writer at a time, reads without a trace.

What it promises, unchanged since before the backend seam: a writable open creates
the file and migrates the schema (through sqlite-utils, imported only when a step is
pending); ``transaction`` is ``BEGIN IMMEDIATE`` (writers queue on the file's lock,
30 s); a read-only open writes nothing, not even ``-wal``/``-shm`` files when no other
connection is live (``immutable``, with ``stale`` telling when a checkpoint raced it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver.db.schema import STEPS
from archiver.errors import DatabaseError

if TYPE_CHECKING:
    import sqlite_utils

__all__ = ["SqliteBackend", "now_applied"]


def now_applied() -> str:
    """When a migration was applied, as SQLite's ``datetime('now')`` wrote it (UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class SqliteBackend:
    """An open SQLite database file."""

    def __init__(self, path: Path, *, readonly: bool, side_files: bool) -> None:
        self.path = path
        self._opened_as: tuple[int, int, int] | None = None
        try:
            if readonly:
                self.conn = self._open_readonly(side_files)
                self._bind()
                self._check_schema()
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self._bind()
            self.conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a commit is durable against a killed process (it is in
            # the OS's page cache) and the database is never corrupted; only a power loss
            # may drop the last commits, which a re-run redoes. Blobs are fsynced before
            # any row names them, so a lost row leaves a spare blob, never a dangling row.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(
                f"cannot open database {self.path}: {exc} (is it an archiver database?)"
            ) from exc
        except OSError as exc:
            raise DatabaseError(f"cannot open database {self.path}: {exc}") from exc

    def _bind(self) -> None:
        # The driver's own method, not a wrapper: the hot path pays no extra call.
        self.execute: Callable[..., sqlite3.Cursor] = self.conn.execute

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.cursor().executemany(sql, rows)

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Any]:
        """A cursor: SQLite steps through the rows as they are read."""
        return iter(self.conn.execute(sql, params))

    def _open_readonly(self, side_files: bool) -> sqlite3.Connection:
        """A connection that cannot write, and creates no file beside the database.

        A read-only connection to a WAL database creates ``-wal``/``-shm`` files it can
        never remove, owned by whoever ran the command (a later crawl by another user
        may then be unable to write them), and fails in a read-only directory. When no
        ``-wal`` file exists, the database file holds every commit, so it is read as
        ``immutable`` (no locks, no side files); ``stale`` tells whether a writer
        checkpointed into it meanwhile. Otherwise another connection is live (or died)
        and its side files already exist: read through them, taking the usual locks
        (``side_files=True`` always does, creating them if need be).
        """
        uri = self.path.resolve().as_uri() + "?mode=ro"
        if not side_files and not Path(f"{self.path}-wal").exists():
            st = self.path.stat()
            self._opened_as = (st.st_ino, st.st_size, st.st_mtime_ns)
            uri += "&immutable=1"
        return sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)

    @property
    def stale(self) -> bool:
        """True when an immutable read may have raced a writer's checkpoint: read again."""
        if self._opened_as is None:
            return False
        try:
            st = self.path.stat()
        except OSError:
            return True
        return (st.st_ino, st.st_size, st.st_mtime_ns) != self._opened_as

    def _check_schema(self) -> None:
        """A read-only command cannot migrate: it asks for the run that can."""
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
        if "_migrations" not in tables:
            what = "is empty" if not tables else "has no archiver schema"
            raise DatabaseError(
                f"database {self.path} {what}: run 'archiver crawl' to create its schema"
            )
        done = {r[0] for r in self.conn.execute("SELECT name FROM _migrations")}
        missing = [step.name for step in STEPS if step.name not in done]
        if missing:
            raise DatabaseError(
                f"database {self.path} has an older schema ({len(missing)} migrations behind):"
                " run 'archiver crawl' to upgrade it"
            )

    def utils(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for the migration steps.

        Imported on first use: its import costs ~70 ms (it compiles a large regex), a
        quarter of an hourly no-change crawl, which needs only the connection.
        """
        from archiver.db.sqlite_migrate import utils_for

        return utils_for(self.conn)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit of work; a crash inside it leaves no trace."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self.conn.execute("ROLLBACK")
                raise DatabaseError(f"cannot write database {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)"
        )
        done = {r[0] for r in self.conn.execute("SELECT name FROM _migrations")}
        pending = [step for step in STEPS if step.name not in done]
        if not pending:
            return  # the usual case: sqlite-utils is not even imported
        from archiver.db import sqlite_migrate

        utils = self.utils()
        for step in pending:
            with self.transaction():
                # Read again under the write lock: another process opening the same new
                # file (two cron jobs, workers starting together) may have applied it
                # since ``done`` was read, and applying it twice fails.
                if self.conn.execute(
                    "SELECT 1 FROM _migrations WHERE name = ?", (step.name,)
                ).fetchone():
                    continue
                sqlite_migrate.apply_step(utils, step)
                self.conn.execute(
                    "INSERT INTO _migrations VALUES (?, ?)", (step.name, now_applied())
                )
