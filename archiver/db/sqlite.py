"""The database: every write a run makes, over the SQLite or the PostgreSQL backend.

Owns the tables and the transactions around them. Each fetch result is
recorded in one transaction (check row, response headers, version, blob,
URL state), so a killed run leaves either all of it or none. Blobs are
committed to the store *before* the transaction that names them, so no row
ever points at a missing blob. Nothing here touches the network or the store; the
engine's own code (connection, transactions, migration) is in its backend module.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from archiver.db.archive import ArchiveQueries
from archiver.db.backend import open_backend
from archiver.db.leases import Leases
from archiver.db.location import Location, as_location
from archiver.db.run_queries import RunQueries
from archiver.db.schema import STEPS, Step
from archiver.errors import DatabaseError
from archiver.records import CheckRecord, RecheckReason, RefRow, UrlState

if TYPE_CHECKING:
    from archiver.validate_deep import DeepCheck

__all__ = ["STATES", "Database", "PostRow", "PostStat", "read_snapshot"]

#: Every state a URL can be in.
STATES = tuple(state.value for state in UrlState)


def _migration(step: Step) -> Callable[[sqlite3.Connection], None]:
    """A step as a function of the connection, applying it through sqlite-utils."""

    def migrate(conn: sqlite3.Connection) -> None:
        from archiver.db.sqlite_migrate import apply_step, utils_for

        apply_step(utils_for(conn), step)

    migrate.__name__ = f"migrate_{step.name}"
    return migrate


#: Ordered schema migrations (``schema.STEPS``); each runs once, recorded in ``_migrations``.
MIGRATIONS: list[tuple[str, Callable[[sqlite3.Connection], None]]] = [
    (step.name, _migration(step)) for step in STEPS
]


T = TypeVar("T")


def read_snapshot(path: Location, read: Callable[[Database], T], *, attempts: int = 3) -> T:
    """``read`` on a read-only connection, again if a writer checkpointed meanwhile.

    An immutable SQLite read takes no lock, so a crawl's checkpoint during it could show
    a mix of old and new pages; the database file's identity, size and mtime tell. A
    PostgreSQL read is one snapshot: never stale.
    """
    for _ in range(attempts):
        db = Database(path, readonly=True)
        try:
            result = read(db)
            if not db.stale:
                return result
        finally:
            db.close()
    # Still racing a busy writer: read through its -wal with the usual locks.
    db = Database(path, readonly=True, side_files=True)
    try:
        return read(db)
    finally:
        db.close()


def as_database_error(exc: BaseException) -> BaseException:
    """A driver's error as the ``DatabaseError`` the command line reports; others unchanged.

    A write can fail outside ``transaction`` too (a full disk during a read's temp table),
    and the caller need not know which driver raised it. psycopg is looked up, never
    imported: if it is not loaded, none of its errors can have been raised.
    """
    if isinstance(exc, sqlite3.Error):
        return DatabaseError(f"cannot write the database: {exc}")
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        from archiver.db.postgres import database_error

        return database_error("cannot write the database", exc)
    return exc


@dataclass(frozen=True, slots=True)
class PostStat:
    """A post file's ``os.stat`` when its bytes were read, and the wall clock just before
    (``read_ns``): what tells a later run it need not read them again."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    read_ns: int


@dataclass(frozen=True)
class PostRow:
    id: int
    content_sha256: str | None
    extractor_version: str | None
    gone: bool = False
    stat: PostStat | None = None


#: At most this many values bound in one statement (SQLite allows 999 in old builds).
_CHUNK = 500


def _stat_values(stat: PostStat | None) -> tuple[int | None, ...]:
    if stat is None:
        return (None,) * 5
    return (stat.size, stat.mtime_ns, stat.ctime_ns, stat.inode, stat.read_ns)


class Database(ArchiveQueries, RunQueries, Leases):
    """The archive database. Opening it creates or migrates the schema.

    ``location`` is a SQLite file (a path) or a PostgreSQL database (a ``postgresql://``
    URL or ``PostgresUrl``); ``backend`` is the engine's, and nothing outside this
    package needs to know which. ``readonly=True`` (report, status, restore URL -o,
    export) writes nothing at all: no schema, no migration; on SQLite not even the
    ``-wal``/``-shm`` files when no other connection has the database open, on
    PostgreSQL one read-only snapshot for the whole read.
    """

    def __init__(
        self, location: Location | str, *, readonly: bool = False, side_files: bool = False
    ) -> None:
        self.location = as_location(location)
        #: What messages name the database by (a ``PostgresUrl`` shows no password).
        self.path = self.location
        self.readonly = readonly
        self.backend = open_backend(self.location, readonly=readonly, side_files=side_files)
        self.execute = self.backend.execute
        self.executemany = self.backend.executemany
        self.stream = self.backend.stream

    @property
    def conn(self) -> Any:
        """The connection, for tests that inspect the database directly: SQLite's own, or
        on PostgreSQL one whose ``execute`` takes the same ``?`` query text."""
        return getattr(self.backend, "portable", self.backend.conn)

    @property
    def stale(self) -> bool:
        """True when a read may have raced a writer's checkpoint: read again."""
        return self.backend.stale

    def close(self) -> None:
        self.backend.close()

    def transaction(self) -> AbstractContextManager[None]:
        """One atomic unit of work; a crash inside it leaves no trace."""
        return self.backend.transaction()

    # -- queries -----------------------------------------------------------

    def rows(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        cur = self.execute(sql, params if isinstance(params, dict) else tuple(params))
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = self.execute(sql, tuple(params)).fetchone()
        return None if row is None else row[0]

    def post(self, source: str, path: str) -> PostRow | None:
        row = self.execute(
            "SELECT id, content_sha256, extractor_version FROM posts WHERE source=? AND path=?",
            (source, path),
        ).fetchone()
        return None if row is None else PostRow(*row)

    def folder_posts(self, source: str, paths: Sequence[str]) -> dict[str, PostRow]:
        """The known posts among ``paths`` of a folder source, with their recorded stat:
        one query per ``_CHUNK`` paths."""
        out: dict[str, PostRow] = {}
        for start in range(0, len(paths), _CHUNK):
            chunk = paths[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.execute(
                "SELECT path, id, content_sha256, extractor_version, gone_since IS NOT NULL,"
                " stat_size, stat_mtime_ns, stat_ctime_ns, stat_inode, stat_read_ns"
                f" FROM posts WHERE source=? AND path IN ({marks})",
                (source, *chunk),
            ):
                stat = None if row[5] is None or None in row[6:] else PostStat(*row[5:])
                out[row[0]] = PostRow(row[1], row[2], row[3], bool(row[4]), stat)
        return out

    # -- writes ------------------------------------------------------------

    def url_id(self, url: str, now: str, expect: str = "any") -> int:
        """The id of a URL, creating it as ``pending``; upgrades ``expect`` to the stricter kind."""
        row = self.execute("SELECT id, expect FROM urls WHERE url=?", (url,)).fetchone()
        if row is not None:
            if row[1] == "any" and expect != "any":
                self.execute("UPDATE urls SET expect=? WHERE id=?", (expect, row[0]))
            return int(row[0])
        host = urlsplit(url).hostname or ""
        row = self.execute(
            "INSERT INTO urls (url, host, expect, first_seen) VALUES (?, ?, ?, ?) RETURNING id",
            (url, host, expect, now),
        ).fetchone()
        return int(row[0])

    def save_post(
        self,
        *,
        source: str,
        path: str,
        content_sha256: str,
        extractor_version: str,
        refs: Sequence[RefRow],
        now: str,
        stat: PostStat | None = None,
    ) -> int:
        """Records a (re-)parsed post, its references and where [remap] sends each URL;
        ``stat``: the post file's, when its bytes were read (a folder post).

        Call inside a transaction.
        """
        existing = self.post(source, path)
        stats = _stat_values(stat)
        if existing is None:
            post_id = int(
                self.execute(
                    "INSERT INTO posts (source, path, content_sha256, extractor_version,"
                    " first_seen, last_seen, stat_size, stat_mtime_ns, stat_ctime_ns,"
                    " stat_inode, stat_read_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " RETURNING id",
                    (source, path, content_sha256, extractor_version, now, now, *stats),
                ).fetchone()[0]
            )
        else:
            post_id = existing.id
            self.execute(
                "UPDATE posts SET content_sha256=?, extractor_version=?, last_seen=?,"
                " gone_since=NULL, stat_size=?, stat_mtime_ns=?, stat_ctime_ns=?, stat_inode=?,"
                " stat_read_ns=? WHERE id=?",
                (content_sha256, extractor_version, now, *stats, post_id),
            )
            self.execute("DELETE FROM refs WHERE post_id=?", (post_id,))
        self.executemany(
            'INSERT INTO refs (post_id, url_id, line, kind, text, as_written, start, "end")'
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    post_id,
                    self.url_id(r.url, now, r.expect),
                    r.line,
                    r.kind,
                    r.text,
                    r.as_written,
                    r.start,
                    r.end,
                )
                for r in refs
            ],
        )
        self.record_fetch_urls(refs)
        return post_id

    def record_fetch_urls(self, refs: Iterable[RefRow]) -> None:
        """Stores where each URL is fetched from (``None``: from itself, no [remap] rule).

        Call inside a transaction.
        """
        self.executemany(
            "UPDATE urls SET fetch_url=? WHERE url=? AND fetch_url IS DISTINCT FROM ?",
            [(r.fetch_url, r.url, r.fetch_url) for r in refs],
        )

    def touch_post(self, post_id: int, now: str) -> None:
        """A post seen again unchanged: it is here (not gone), and not re-parsed."""
        self.execute("UPDATE posts SET last_seen=?, gone_since=NULL WHERE id=?", (now, post_id))

    def touch_posts(self, post_ids: Sequence[int], now: str) -> None:
        """Folder posts seen again unchanged, one statement per ``_CHUNK``. Call inside a
        transaction."""
        for start in range(0, len(post_ids), _CHUNK):
            chunk = post_ids[start : start + _CHUNK]
            self.execute(
                f"UPDATE posts SET last_seen=? WHERE id IN ({','.join('?' * len(chunk))})",
                (now, *chunk),
            )

    def record_post_stats(self, stats: Iterable[tuple[int, PostStat]]) -> None:
        """New stats of posts read again and found unchanged (touched, or copied back).
        Call inside a transaction."""
        self.executemany(
            "UPDATE posts SET stat_size=?, stat_mtime_ns=?, stat_ctime_ns=?, stat_inode=?,"
            " stat_read_ns=? WHERE id=?",
            [(*_stat_values(stat), post_id) for post_id, stat in stats],
        )

    def mark_due(self, url_ids: Iterable[int], reason: RecheckReason) -> None:
        """Makes these URLs due at the next run (a full fetch), whatever their last check.

        Call inside a transaction.
        """
        self.executemany(
            "UPDATE urls SET recheck=? WHERE id=?", [(reason.value, i) for i in url_ids]
        )

    def mark_due_by_blob(self, sha256s: Iterable[str], reason: RecheckReason) -> None:
        """Makes due every URL whose archived copy is one of these blobs. Call in a transaction."""
        self.executemany(
            "UPDATE urls SET recheck=? WHERE sha256=?", [(reason.value, s) for s in sha256s]
        )

    def start_run(self, command: str, pid: int, now: str) -> int:
        with self.transaction():
            row = self.execute(
                "INSERT INTO runs (command, pid, started) VALUES (?, ?, ?) RETURNING id",
                (command, pid, now),
            ).fetchone()
        return int(row[0])

    def end_run(self, run_id: int, now: str, exit_code: int, **figures: Any) -> None:
        counts = figures.pop("counts", None)
        with self.transaction():
            self.execute(
                "UPDATE runs SET ended=?, exit_code=?, posts=?, urls=?, counts=?, bytes=?,"
                " new_blobs=?, message=? WHERE id=?",
                (
                    now,
                    exit_code,
                    figures.get("posts"),
                    figures.get("urls"),
                    json.dumps(counts) if counts is not None else None,
                    figures.get("bytes"),
                    figures.get("new_blobs"),
                    figures.get("message"),
                    run_id,
                ),
            )

    def deep_checked(self, sha256: str) -> bool:
        """Whether this blob is stored and its deep check recorded (it need not run again)."""
        row = self.execute(
            "SELECT deep_check IS NOT NULL FROM blobs WHERE sha256=?", (sha256,)
        ).fetchone()
        return bool(row and row[0])

    def set_deep_check(self, sha256: str, deep: DeepCheck) -> None:
        """Records what the parsers said of a blob (``validate_deep``). Call in a transaction."""
        self.execute(
            "UPDATE blobs SET deep_check=?, deep_reason=?, pages=?, title=?, width=?, height=?,"
            " format=? WHERE sha256=?",
            (
                deep.verdict,
                deep.reason or None,
                deep.pages,
                deep.title,
                deep.width,
                deep.height,
                deep.format,
                sha256,
            ),
        )

    def record_check(self, check: CheckRecord) -> int:
        """Writes one check of a URL and, unless ``check.changes_url`` is False, its new
        state. Call inside a transaction.

        When ``check.archived``, the outcome's blob is already committed to the store, and
        it and the URL's version are recorded; a 304 renews the version held.
        """
        r, url_id, now, became = check.outcome, check.url_id, check.now, check.became
        sha = r.sha256 if r.state == "ok" and check.archived else None
        row = self.execute(
            "INSERT INTO checks (url_id, run_id, checked_at, state, http_status, error_class,"
            " error, bytes, sha256, elapsed, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " RETURNING id",
            (
                url_id,
                check.run_id,
                now,
                check.state if check.changes_url else r.state,
                r.http_status,
                r.error_class,
                r.error,
                r.bytes_received,
                sha,
                r.elapsed,
                r.attempts,
            ),
        ).fetchone()
        check_id = int(row[0])
        if r.state == "ok" and r.status_line:
            self.execute(
                "INSERT INTO responses (check_id, url, final_url, status_line, headers)"
                " VALUES (?, ?, ?, ?, ?)",
                (check_id, r.url, r.final_url, r.status_line, json.dumps(list(r.headers))),
            )
        if not check.changes_url:
            return check_id  # states.may_clear: what the URL's row says stands
        if r.state == "ok":
            # Only an archived body is a version; a probe (``check``) hashes a prefix at most.
            if r.not_modified:
                sha = check.held_sha256
            if sha:
                if not r.not_modified:
                    self.execute(
                        "INSERT INTO blobs (sha256, size, content_type, first_stored)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (sha, r.size, r.content_type, now),
                    )
                if check.deep is not None:
                    self.set_deep_check(sha, check.deep)
                self.execute(
                    "INSERT INTO versions (url_id, sha256, first_seen, last_seen, check_id)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (url_id, sha256)"
                    " DO UPDATE SET last_seen=excluded.last_seen",
                    (url_id, sha, now, now, check_id),
                )
            if r.not_modified:
                self.execute(
                    "UPDATE urls SET state='ok', http_status=?, error_class=NULL, error=NULL,"
                    " last_checked=?, last_ok=?, failing_since=NULL, fail_count=0,"
                    " confirm_count=0, confirm_last=NULL, became=?, recheck=NULL WHERE id=?",
                    (r.http_status, now, now, became, url_id),
                )
            elif sha is None:
                # A probe (``check``): the link works, but what we hold (its hash, type and
                # validators) still describes the last archived copy, so leave those alone.
                self.execute(
                    "UPDATE urls SET state='ok', http_status=?, error_class=NULL, error=NULL,"
                    " final_url=?, last_checked=?, last_ok=?, failing_since=NULL,"
                    " fail_count=0, confirm_count=0, confirm_last=NULL, became=?,"
                    " recheck=CASE WHEN recheck='undone' THEN NULL ELSE recheck END WHERE id=?",
                    (r.http_status, r.final_url, now, now, became, url_id),
                )
            else:
                self.execute(
                    "UPDATE urls SET state='ok', http_status=?, error_class=NULL, error=NULL,"
                    " sha256=?, size=?, content_type=?, final_url=?, etag=?,"
                    " last_modified=?, last_checked=?, last_ok=?, failing_since=NULL,"
                    " fail_count=0, confirm_count=0, confirm_last=NULL, became=?, recheck=NULL"
                    " WHERE id=?",
                    (
                        r.http_status,
                        sha,
                        r.size,
                        r.content_type,
                        r.final_url,
                        r.etag,
                        r.last_modified,
                        now,
                        now,
                        became,
                        url_id,
                    ),
                )
        else:
            self.execute(
                "UPDATE urls SET state=?, http_status=?, error_class=?, error=?, last_checked=?,"
                " final_url=?, failing_since=COALESCE(failing_since, ?), fail_count=fail_count+1,"
                " confirm_count=?, confirm_last=?, became=?,"
                " recheck=CASE WHEN recheck='undone' THEN NULL ELSE recheck END WHERE id=?",
                (
                    check.state,
                    r.http_status,
                    r.error_class,
                    r.error,
                    now,
                    r.final_url,
                    now,
                    check.confirm_count,
                    check.confirm_last,
                    became,
                    url_id,
                ),
            )
        return check_id
