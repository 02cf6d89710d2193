"""The SQLite database: schema, migrations, and every write a run makes.

Owns the tables and the transactions around them. Each fetch result is
recorded in one transaction (check row, response headers, version, blob,
URL state), so a killed run leaves either all of it or none. Blobs are
committed to the store *before* the transaction that names them, so no row
ever points at a missing blob. Nothing here touches the network or the store.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from archiver.db.archive import ArchiveQueries
from archiver.db.leases import Leases
from archiver.db.run_queries import RunQueries
from archiver.db.schema import STEPS, Step
from archiver.errors import DatabaseError
from archiver.records import CheckRecord, RecheckReason, RefRow, UrlState

if TYPE_CHECKING:
    import sqlite_utils

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


def read_snapshot(path: Path, read: Callable[[Database], T], *, attempts: int = 3) -> T:
    """``read`` on a read-only connection, again if a writer checkpointed meanwhile.

    An immutable read takes no lock, so a crawl's checkpoint during it could show a
    mix of old and new pages; the database file's identity, size and mtime tell.
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
    and the caller need not know which driver raised it.
    """
    if isinstance(exc, sqlite3.Error):
        return DatabaseError(f"cannot write the database: {exc}")
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

    ``readonly=True`` (report, status, restore URL -o, export) writes nothing at all:
    no schema, no migration, and not even SQLite's ``-wal``/``-shm`` files when no
    other connection has the database open (see ``_open_readonly``).
    """

    def __init__(
        self, path: Path | str, *, readonly: bool = False, side_files: bool = False
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._opened_as: tuple[int, int, int] | None = None
        try:
            if readonly:
                self.conn = self._open_readonly(side_files)
                self._check_schema()
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
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

    @functools.cached_property
    def utils(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for commands that inspect the database.

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
        from archiver.db.sqlite_migrate import apply_step

        for step in pending:
            with self.transaction():
                apply_step(self.utils, step)
                self.conn.execute(
                    "INSERT INTO _migrations VALUES (?, datetime('now'))", (step.name,)
                )

    # -- queries -----------------------------------------------------------

    def rows(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params if isinstance(params, dict) else tuple(params))
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        row = self.conn.execute(sql, tuple(params)).fetchone()
        return None if row is None else row[0]

    def post(self, source: str, path: str) -> PostRow | None:
        row = self.conn.execute(
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
            for row in self.conn.execute(
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
        row = self.conn.execute("SELECT id, expect FROM urls WHERE url=?", (url,)).fetchone()
        if row is not None:
            if row[1] == "any" and expect != "any":
                self.conn.execute("UPDATE urls SET expect=? WHERE id=?", (expect, row[0]))
            return int(row[0])
        host = urlsplit(url).hostname or ""
        cur = self.conn.execute(
            "INSERT INTO urls (url, host, expect, first_seen) VALUES (?, ?, ?, ?)",
            (url, host, expect, now),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

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
            cur = self.conn.execute(
                "INSERT INTO posts (source, path, content_sha256, extractor_version, first_seen,"
                " last_seen, stat_size, stat_mtime_ns, stat_ctime_ns, stat_inode, stat_read_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (source, path, content_sha256, extractor_version, now, now, *stats),
            )
            assert cur.lastrowid is not None
            post_id = cur.lastrowid
        else:
            post_id = existing.id
            self.conn.execute(
                "UPDATE posts SET content_sha256=?, extractor_version=?, last_seen=?,"
                " gone_since=NULL, stat_size=?, stat_mtime_ns=?, stat_ctime_ns=?, stat_inode=?,"
                " stat_read_ns=? WHERE id=?",
                (content_sha256, extractor_version, now, *stats, post_id),
            )
            self.conn.execute("DELETE FROM refs WHERE post_id=?", (post_id,))
        self.conn.executemany(
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
        self.conn.executemany(
            "UPDATE urls SET fetch_url=? WHERE url=? AND fetch_url IS NOT ?",
            [(r.fetch_url, r.url, r.fetch_url) for r in refs],
        )

    def touch_post(self, post_id: int, now: str) -> None:
        """A post seen again unchanged: it is here (not gone), and not re-parsed."""
        self.conn.execute(
            "UPDATE posts SET last_seen=?, gone_since=NULL WHERE id=?", (now, post_id)
        )

    def touch_posts(self, post_ids: Sequence[int], now: str) -> None:
        """Folder posts seen again unchanged, one statement per ``_CHUNK``. Call inside a
        transaction."""
        for start in range(0, len(post_ids), _CHUNK):
            chunk = post_ids[start : start + _CHUNK]
            self.conn.execute(
                f"UPDATE posts SET last_seen=? WHERE id IN ({','.join('?' * len(chunk))})",
                (now, *chunk),
            )

    def record_post_stats(self, stats: Iterable[tuple[int, PostStat]]) -> None:
        """New stats of posts read again and found unchanged (touched, or copied back).
        Call inside a transaction."""
        self.conn.executemany(
            "UPDATE posts SET stat_size=?, stat_mtime_ns=?, stat_ctime_ns=?, stat_inode=?,"
            " stat_read_ns=? WHERE id=?",
            [(*_stat_values(stat), post_id) for post_id, stat in stats],
        )

    def mark_due(self, url_ids: Iterable[int], reason: RecheckReason) -> None:
        """Makes these URLs due at the next run (a full fetch), whatever their last check.

        Call inside a transaction.
        """
        self.conn.executemany(
            "UPDATE urls SET recheck=? WHERE id=?", [(reason.value, i) for i in url_ids]
        )

    def mark_due_by_blob(self, sha256s: Iterable[str], reason: RecheckReason) -> None:
        """Makes due every URL whose archived copy is one of these blobs. Call in a transaction."""
        self.conn.executemany(
            "UPDATE urls SET recheck=? WHERE sha256=?", [(reason.value, s) for s in sha256s]
        )

    def start_run(self, command: str, pid: int, now: str) -> int:
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO runs (command, pid, started) VALUES (?, ?, ?)", (command, pid, now)
            )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def end_run(self, run_id: int, now: str, exit_code: int, **figures: Any) -> None:
        counts = figures.pop("counts", None)
        with self.transaction():
            self.conn.execute(
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
        row = self.conn.execute(
            "SELECT deep_check IS NOT NULL FROM blobs WHERE sha256=?", (sha256,)
        ).fetchone()
        return bool(row and row[0])

    def set_deep_check(self, sha256: str, deep: DeepCheck) -> None:
        """Records what the parsers said of a blob (``validate_deep``). Call in a transaction."""
        self.conn.execute(
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
        cur = self.conn.execute(
            "INSERT INTO checks (url_id, run_id, checked_at, state, http_status, error_class,"
            " error, bytes, sha256, elapsed, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        )
        check_id = cur.lastrowid
        assert check_id is not None
        if r.state == "ok" and r.status_line:
            self.conn.execute(
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
                    self.conn.execute(
                        "INSERT OR IGNORE INTO blobs (sha256, size, content_type, first_stored)"
                        " VALUES (?, ?, ?, ?)",
                        (sha, r.size, r.content_type, now),
                    )
                if check.deep is not None:
                    self.set_deep_check(sha, check.deep)
                self.conn.execute(
                    "INSERT INTO versions (url_id, sha256, first_seen, last_seen, check_id)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (url_id, sha256)"
                    " DO UPDATE SET last_seen=excluded.last_seen",
                    (url_id, sha, now, now, check_id),
                )
            if r.not_modified:
                self.conn.execute(
                    "UPDATE urls SET state='ok', http_status=?, error_class=NULL, error=NULL,"
                    " last_checked=?, last_ok=?, failing_since=NULL, fail_count=0,"
                    " confirm_count=0, confirm_last=NULL, became=?, recheck=NULL WHERE id=?",
                    (r.http_status, now, now, became, url_id),
                )
            elif sha is None:
                # A probe (``check``): the link works, but what we hold (its hash, type and
                # validators) still describes the last archived copy, so leave those alone.
                self.conn.execute(
                    "UPDATE urls SET state='ok', http_status=?, error_class=NULL, error=NULL,"
                    " final_url=?, last_checked=?, last_ok=?, failing_since=NULL,"
                    " fail_count=0, confirm_count=0, confirm_last=NULL, became=?,"
                    " recheck=CASE WHEN recheck='undone' THEN NULL ELSE recheck END WHERE id=?",
                    (r.http_status, r.final_url, now, now, became, url_id),
                )
            else:
                self.conn.execute(
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
            self.conn.execute(
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
