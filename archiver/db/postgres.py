"""The PostgreSQL backend: psycopg 3, explicit transactions, errors as ``DatabaseError``.

Opened by ``Database`` for a ``postgresql://`` location. What it promises, beside the
SQLite backend's promises:

- The connection is in autocommit mode and READ COMMITTED (``postgres_schema.connect``,
  with a ``connect_timeout``); ``transaction`` is ``BEGIN`` ... ``COMMIT``, rolled back
  on any exception. A statement outside a transaction commits on its own, as SQLite's
  autocommit does. Writers do not queue on a file lock as SQLite's do: the run lock
  (``run_lock``, an advisory lock) keeps runs apart, as the lock file does for SQLite.
- A writable open migrates ``schema.STEPS`` (``postgres_schema.migrate``); a read-only
  open checks that none is pending, then reads in one ``REPEATABLE READ READ ONLY``
  transaction: the whole read sees one snapshot (``stale`` is always False).
- Each query's text is written once for both engines: ``dialect.to_psycopg`` turns its
  ``?`` into ``%s`` (cached), and the parameters are always a sequence.
- A driver error becomes ``DatabaseError`` naming the database without its password
  (``PostgresUrl``), and the password is scrubbed from the driver's text too.
- Text holding NUL, which PostgreSQL's text cannot store and SQLite can, is stored with
  U+FFFD in its place (a hostile server's error text, say) rather than failing the run.

psycopg is imported by this module only, and only when a PostgreSQL database is opened.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.types.string import StrDumperUnknown

from archiver.db import postgres_schema
from archiver.db.dialect import to_psycopg
from archiver.db.location import PostgresUrl
from archiver.db.schema import STEPS
from archiver.errors import DatabaseError, LockedError

__all__ = ["PostgresBackend", "database_error", "lock_holder", "run_lock"]

#: Seconds a connection attempt may take before the command gives up (libpq's option).
CONNECT_TIMEOUT = 10

#: Rows a server-side cursor fetches per round trip (``stream``).
STREAM_BATCH = 2000

#: The run lock's advisory key: the migration key's neighbour (``postgres_schema.LOCK_KEY``).
RUN_LOCK_KEY = postgres_schema.LOCK_KEY - 1

#: ``application_name`` of the connection holding the run lock: who holds it, for messages.
_HOLDER = "archiver run pid={pid} started={started}"


class _NulSafeStr(StrDumperUnknown):
    """Python text as psycopg sends it, NUL (which PostgreSQL's text refuses) as U+FFFD."""

    def dump(self, obj: str) -> bytes:
        out = super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)
        return bytes(out) if out is not None else b""


def _scrubbed(text: str, url: PostgresUrl) -> str:
    password = url.password
    text = text.strip().replace("\n", " ")
    return text.replace(password, "***") if password else text


def database_error(what: str, exc: BaseException, url: PostgresUrl | None = None) -> DatabaseError:
    """``exc`` (a psycopg error) as one line: ``what``, the database, the driver's reason."""
    where = f" {url}" if url is not None else ""
    reason = _scrubbed(str(exc), url) if url is not None else str(exc).strip().replace("\n", " ")
    return DatabaseError(f"{what}{where}: {reason}")


def _connect(url: PostgresUrl, **options: Any) -> psycopg.Connection[Any]:
    try:
        conn = psycopg.connect(url.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT, **options)
    except psycopg.Error as exc:
        raise database_error("cannot open database", exc, url) from None
    except (ValueError, UnicodeError) as exc:  # libpq's own parse of the DSN
        raise DatabaseError(f"cannot open database {url}: {exc}") from None
    conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
    conn.adapters.register_dumper(str, _NulSafeStr)
    return conn


class PortableConnection:
    """What ``Database.conn`` is on PostgreSQL: ``execute``/``executemany`` taking the one
    query text (``?`` placeholders) as SQLite's connection does; the rest is psycopg's."""

    def __init__(self, backend: PostgresBackend) -> None:
        self._backend = backend

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self._backend.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._backend.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend.conn, name)


class PostgresBackend:
    """An open PostgreSQL database."""

    #: Concurrent writers do not queue for the whole database as SQLite's do: shared
    #: runs lock the rows they claim (``archiver.db.leases``).
    row_locks = True

    def __init__(self, url: PostgresUrl, *, readonly: bool) -> None:
        self.url = url
        self.readonly = readonly
        self._cursors = 0
        self.conn = _connect(url)
        try:
            if readonly:
                self._check_schema()
                self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            else:
                try:
                    postgres_schema.migrate(self.conn)
                except DatabaseError as exc:
                    raise DatabaseError(f"{exc} ({url})") from None
        except BaseException:
            self.conn.close()
            raise

    def _check_schema(self) -> None:
        """A read-only command cannot migrate: it asks for the run that can."""
        try:
            if self.conn.execute("SELECT to_regclass('_migrations')").fetchone() == (None,):
                tables = self.conn.execute(
                    "SELECT COUNT(*) FROM information_schema.tables"
                    " WHERE table_schema = current_schema()"
                ).fetchone()
                what = "is empty" if not tables or not tables[0] else "has no archiver schema"
                raise DatabaseError(
                    f"database {self.url} {what}: run 'archiver crawl' to create its schema"
                )
            done = postgres_schema.applied_steps(self.conn)
        except psycopg.Error as exc:
            raise database_error("cannot read database", exc, self.url) from None
        missing = [step.name for step in STEPS if step.name not in done]
        if missing:
            raise DatabaseError(
                f"database {self.url} has an older schema ({len(missing)} migrations behind):"
                " run 'archiver crawl' to upgrade it"
            )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        try:
            return self.conn.execute(to_psycopg(sql), params)  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise database_error("database query failed on", exc, self.url) from exc

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if not rows:
            return
        try:
            with self.conn.cursor() as cur:
                cur.executemany(to_psycopg(sql), rows)  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise database_error("database query failed on", exc, self.url) from exc

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Any]:
        """The rows of a long read. Inside the read-only snapshot, through a server-side
        cursor fetching ``STREAM_BATCH`` rows at a time (a client cursor would hold the
        whole result, a million report rows, in memory); elsewhere, as ``execute``."""
        if not self.readonly:
            yield from self.execute(sql, params)
            return
        self._cursors += 1
        try:
            with self.conn.cursor(name=f"archiver_stream_{self._cursors}") as cur:
                cur.itersize = STREAM_BATCH
                cur.execute(to_psycopg(sql), params)  # type: ignore[arg-type]
                yield from cur
        except psycopg.Error as exc:
            raise database_error("database query failed on", exc, self.url) from exc

    @property
    def portable(self) -> PortableConnection:
        return PortableConnection(self)

    @property
    def stale(self) -> bool:
        return False  # a read-only open reads one snapshot

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit of work; a crash inside it leaves no trace."""
        try:
            with self.conn.transaction():
                yield
        except psycopg.Error as exc:
            raise database_error("cannot write database", exc, self.url) from exc


# -- the run lock ------------------------------------------------------------------


@contextlib.contextmanager
def run_lock(
    url: PostgresUrl, *, wait: float, poll: float, started: str, shared: bool = False
) -> Iterator[None]:
    """Holds the database's run lock (a session advisory lock) for the duration; shared
    (``pg_advisory_lock_shared``) by the workers of a shared run, else alone.

    The lock belongs to a connection of its own, kept open while the run lasts: the
    server releases it when that connection ends, so a killed run never leaves it held
    (as the kernel does for SQLite's lock file). Its ``application_name`` says who
    holds it, for the message the next run prints and for ``lock_holder``.
    """
    name = _HOLDER.format(pid=os.getpid(), started=started)
    conn = _connect(url, application_name=name[:63])
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                take = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
                row = conn.execute(f"SELECT {take}(%s)", (RUN_LOCK_KEY,)).fetchone()
            except psycopg.Error as exc:
                raise database_error("cannot take the run lock of", exc, url) from None
            if row and row[0]:
                break
            if time.monotonic() >= deadline:
                raise LockedError(
                    f"another run ({_describe(_holder_name(conn))}) holds the lock of {url};"
                    " try again when it has finished (crawl and check can wait for it:"
                    " --wait SECONDS)"
                )
            time.sleep(poll)
        yield
    finally:
        conn.close()


#: Held by a worker while it opens the database, binds the store and joins the run.
SETUP_LOCK_KEY = RUN_LOCK_KEY - 1


@contextlib.contextmanager
def setup_lock(url: PostgresUrl) -> Iterator[None]:
    """``run.lock.setup_lock`` on a server: workers starting together on a new database
    and store would each give the store an identity of their own. A session advisory
    lock on a connection of its own, waited for (each worker holds it for a moment)."""
    conn = _connect(url)
    try:
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK_KEY,))
        except psycopg.Error as exc:
            raise database_error("cannot take the setup lock of", exc, url) from None
        yield
    finally:
        conn.close()


def _holder_name(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.database ="
        " (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
        (RUN_LOCK_KEY,),
    ).fetchone()
    return None if row is None else str(row[0] or "")


def _parse_holder(name: str | None) -> tuple[str, str]:
    fields = dict(part.partition("=")[::2] for part in (name or "").split()[2:])
    return fields.get("pid", "?"), fields.get("started", "?")


def _describe(name: str | None) -> str:
    pid, started = _parse_holder(name)
    return f"pid {pid}, started at {started}"


def lock_holder(url: PostgresUrl) -> int | None:
    """The pid of the process holding the run lock, or None when nobody holds it.

    The pid is the one the holder wrote in its connection's ``application_name``: a
    process on another machine has one too, which is this machine's business no more.
    """
    conn = _connect(url)
    try:
        name = _holder_name(conn)
    except psycopg.Error as exc:
        raise database_error("cannot read the run lock of", exc, url) from None
    finally:
        conn.close()
    if name is None:
        return None
    pid = _parse_holder(name)[0]
    return int(pid) if pid.isdigit() else 0
