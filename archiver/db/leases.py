"""The queries of a shared run (``crawl --worker``): its workers, its queue, its host leases.

A mixin of ``Database``, like ``run_queries``. Several worker processes (on one machine
over one SQLite file, or on several over one PostgreSQL database) share one ``runs``
row. The run's due URLs are its queue (``run_urls``: one row per URL, ``checked`` set in
the transaction that records the URL's one check), and its hosts are leased
(``host_leases``): only the worker holding a host's unexpired lease fetches that host,
so the per-host limit holds across all workers together. A worker renews its leases
while it works; one that dies loses them at expiry and another claims them.

How claims are serialised differs by engine, and only here: SQLite has one writer at a
time (``transaction`` is ``BEGIN IMMEDIATE``), so a claim's SELECT and UPDATE are never
interleaved with another's; PostgreSQL locks the rows a claim reads (``FOR UPDATE SKIP
LOCKED``: a concurrent claim skips them instead of waiting) when the backend sets
``row_locks``. Every time is made in Python (``clock.iso``) and bound; the SQL is the
portable subset of ``docs/postgres.md``.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archiver.db.run_queries import _FULL_FETCH_FAILED, _due_url
from archiver.records import DueUrl

__all__ = ["LeaseRow", "Leases", "SharedRun", "WorkerRow"]

#: Rows per multi-row INSERT (three values each: under SQLite's old 999-value limit).
_CHUNK = 300

#: The advisory lock keys of a PostgreSQL backend (``row_locks``): opening or joining a
#: shared run, and indexing (two workers inserting the same new URL would collide).
JOIN_LOCK_KEY = 0x61726368_6A6F696E  # "archjoin"
INDEX_LOCK_KEY = 0x61726368_696E6478  # "archindx"


@dataclass(frozen=True, slots=True)
class SharedRun:
    """The run a worker took part in: its id, when it started (the due rule's "now" for
    every worker of it), whether this worker opened it, and the worker's own id."""

    run_id: int
    started: str
    opened: bool
    worker_id: int


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A worker as ``status`` shows it; ``state`` is derived, never stored (a worker that
    died cannot write it): running, abandoned (its lease expired), done, failed."""

    id: int
    run_id: int
    name: str
    machine: str | None
    pid: int | None
    started: str
    heartbeat: str
    expires: str
    ended: str | None
    exit_code: int | None
    checked: int
    state: str
    hosts: int  # hosts it holds now


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """A host of an open shared run that still has URLs to check."""

    run_id: int
    host: str
    worker: str | None  # the holder's name; None: free
    expires: str | None
    expired: bool
    urls_left: int


class Leases:
    """The shared-run queries of ``Database``."""

    execute: Callable[..., Any]
    transaction: Callable[[], AbstractContextManager[None]]
    #: The SQLite indexing lock's file descriptor while this connection holds it.
    _index_lock_fd: int | None = None

    @property
    def row_locks(self) -> bool:
        """Whether the backend locks rows (PostgreSQL's ``row_locks``): then claims add
        ``FOR UPDATE SKIP LOCKED``, a worker's end locks its run's row, and the advisory
        locks are taken. SQLite's single writer serialises the same statements without."""
        return bool(getattr(getattr(self, "backend", None), "row_locks", False))

    def _q(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """One statement through the backend (``?`` placeholders on both engines)."""
        return self.execute(sql, tuple(params))

    # -- joining ---------------------------------------------------------------

    def join_shared_run(
        self,
        command: str,
        *,
        name: str,
        machine: str,
        pid: int,
        now: str,
        expires: str,
    ) -> SharedRun:
        """Registers a worker in the open shared run that still has a live worker, or in a
        new one it opens. An open shared run whose workers all expired is left open (so
        ``status`` shows it abandoned) and its queue dropped: its unchecked URLs are still
        due, so the new run's indexing queues them again."""
        with self.transaction():
            if self.row_locks:
                self._q("SELECT pg_advisory_xact_lock(?)", (JOIN_LOCK_KEY,))
            opened = False
            live = self._q(
                "SELECT r.id, r.started FROM runs r WHERE r.shared = 1 AND r.ended IS NULL"
                " AND r.command = ? AND EXISTS (SELECT 1 FROM workers w WHERE w.run_id = r.id"
                " AND w.ended IS NULL AND w.expires >= ?) ORDER BY r.id DESC LIMIT 1",
                (command, now),
            ).fetchone()
            if live is not None:
                run_id, started = int(live[0]), str(live[1])
            else:
                for (dead,) in self._q(
                    "SELECT id FROM runs WHERE shared = 1 AND ended IS NULL", ()
                ).fetchall():
                    self._drop_queue(int(dead))
                row = self._q(
                    "INSERT INTO runs (command, pid, started, shared) VALUES (?, ?, ?, 1)"
                    " RETURNING id",
                    (command, pid, now),
                ).fetchall()
                run_id, started, opened = int(row[0][0]), now, True
            worker = self._q(
                "INSERT INTO workers (run_id, name, machine, pid, started, heartbeat, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (run_id, name, machine, pid, now, now, expires),
            ).fetchall()
        return SharedRun(run_id, started, opened, int(worker[0][0]))

    def _drop_queue(self, run_id: int) -> None:
        self._q("DELETE FROM host_leases WHERE run_id = ?", (run_id,))
        self._q("DELETE FROM run_urls WHERE run_id = ?", (run_id,))

    def try_indexing_lock(self) -> bool:
        """Takes the lock a worker indexes under, if free; True when taken. Workers index
        one after another, so the later ones find the run's sources indexed
        (``indexed_sources``) instead of reading them again; on PostgreSQL two workers
        inserting the same new post or URL would also collide on the unique key. It is
        an advisory lock there, an ``flock`` on a file beside a SQLite database (the
        kernel drops either when the process dies). Never waits: a worker polls for it
        from its event loop, so its heartbeat goes on meanwhile (a blocking wait stopped
        the heartbeat, and the waiting worker looked abandoned)."""
        if self.row_locks:
            row = self._q("SELECT pg_try_advisory_lock(?)", (INDEX_LOCK_KEY,)).fetchone()
            return bool(row[0])
        location = getattr(self, "location", None)
        if not isinstance(location, Path):
            return True
        path = location.with_name(location.name + ".index-lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._index_lock_fd = fd
        return True

    def release_indexing_lock(self) -> None:
        if self.row_locks:
            self._q("SELECT pg_advisory_unlock(?)", (INDEX_LOCK_KEY,))
            return
        fd = getattr(self, "_index_lock_fd", None)
        if fd is not None:
            self._index_lock_fd = None
            os.close(fd)  # closing the only descriptor of it drops the flock

    def indexed_sources(self, run_id: int) -> dict[str, int]:
        """The sources some worker of the run finished indexing (by ``Source`` key), and
        how many posts each had: a joining worker skips them. A source is added only once
        its indexing (and queueing) is complete, so a worker that died halfway leaves it
        for the next to index."""
        row = self._q("SELECT indexed FROM runs WHERE id = ?", (run_id,)).fetchone()
        return {str(k): int(v) for k, v in json.loads(row[0]).items()} if row and row[0] else {}

    def adopt_posts(self, source: str) -> None:
        """Adds the live posts of a source another worker indexed to this connection's
        posts of the run (``begin_run_posts``), without reading them: what the worker
        counts as broken at its end (``count_not_ok``, ``--fail-on any``) is then the
        same as if it had indexed them."""
        self._q(
            "INSERT INTO run_posts SELECT id FROM posts WHERE source = ? AND gone_since IS NULL"
            " ON CONFLICT DO NOTHING",
            (source,),
        )

    def mark_indexed(self, run_id: int, key: str, posts: int) -> None:
        """Records that a source of the run is indexed and its URLs queued. Call inside a
        transaction (on PostgreSQL, under the indexing lock: one writer of the list)."""
        done = self.indexed_sources(run_id)
        done[key] = posts
        self._q(
            "UPDATE runs SET indexed = ? WHERE id = ?", (json.dumps(done, sort_keys=True), run_id)
        )

    # -- the queue -------------------------------------------------------------

    def add_run_urls(self, run_id: int, rows: Iterable[tuple[int, str]]) -> int:
        """Queues due URLs ``(url_id, fetch host)`` for the run; a URL already queued (and
        perhaps checked) by any worker stays as it is, so each is checked once a run.
        Returns how many were new. Call inside a transaction."""
        items = list(rows)
        added = 0
        hosts: set[str] = set()
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            values = ",".join("(?, ?, ?)" for _ in chunk)
            params = [v for url_id, host in chunk for v in (run_id, url_id, host)]
            new = self._q(
                f"INSERT INTO run_urls (run_id, url_id, host) VALUES {values}"
                " ON CONFLICT (run_id, url_id) DO NOTHING RETURNING host",
                params,
            ).fetchall()
            added += len(new)
            hosts.update(str(h) for (h,) in new)
        ordered = sorted(hosts)
        for start in range(0, len(ordered), _CHUNK):
            chunk_hosts = ordered[start : start + _CHUNK]
            values = ",".join("(?, ?)" for _ in chunk_hosts)
            self._q(
                f"INSERT INTO host_leases (run_id, host) VALUES {values}"
                " ON CONFLICT (run_id, host) DO NOTHING",
                [v for h in chunk_hosts for v in (run_id, h)],
            )
        return added

    def mark_checked(self, run_id: int, url_id: int) -> bool:
        """Claims the one recorded check of a URL in this run: True for the first caller
        only (the others drop their result). Call inside the transaction that records it:
        on PostgreSQL the row stays locked until it commits, and a second caller then
        finds it checked. A URL the run did not queue is not this run's to record."""
        return bool(
            self._q(
                "UPDATE run_urls SET checked = 1 WHERE run_id = ? AND url_id = ? AND checked = 0"
                " RETURNING url_id",
                (run_id, url_id),
            ).fetchall()
        )

    def unchecked(self, run_id: int) -> int:
        """How many queued URLs of the run have no recorded check yet."""
        row = self._q(
            "SELECT COUNT(*) FROM run_urls WHERE run_id = ? AND checked = 0", (run_id,)
        ).fetchone()
        return int(row[0] or 0)

    def unchecked_elsewhere(self, run_id: int, worker_id: int) -> int:
        """How many unchecked URLs of the run are on hosts this worker does not hold: while
        there are any, it waits (their holder may die, and its leases expire)."""
        row = self._q(
            "SELECT COUNT(*) FROM run_urls r JOIN host_leases h"
            " ON h.run_id = r.run_id AND h.host = r.host"
            " WHERE r.run_id = ? AND r.checked = 0"
            " AND (h.worker_id IS NULL OR h.worker_id != ?)",
            (run_id, worker_id),
        ).fetchone()
        return int(row[0] or 0)

    def fair_share(self, run_id: int, now: str) -> int:
        """How many hosts one worker should hold: the run's hosts with unchecked URLs over
        its live workers, rounded up (at least 1). A worker holding more gives a host
        back at the end of a page, so one that joined late, or hosts that are few and
        large, still spread over every worker."""
        row = self._q(
            "SELECT (SELECT COUNT(DISTINCT host) FROM run_urls WHERE run_id = ? AND checked = 0),"
            " (SELECT COUNT(*) FROM workers WHERE run_id = ? AND ended IS NULL AND expires >= ?)",
            (run_id, run_id, now),
        ).fetchone()
        hosts, workers = int(row[0] or 0), max(1, int(row[1] or 0))
        return max(1, -(-hosts // workers))

    def host_urls(
        self, run_id: int, host: str, *, after: int = 0, limit: int = 1000
    ) -> list[DueUrl]:
        """The next ``limit`` unchecked URLs of a leased host, by id, after id ``after``
        (a page at a time: a host with 90,000 URLs is not read into memory at once)."""
        sql = (
            "SELECT u.id, 1, u.url, u.fetch_url, u.expect, u.state, u.sha256, u.etag,"
            " u.last_modified, u.last_checked, u.confirm_count, u.confirm_last, u.recheck,"
            f" {_FULL_FETCH_FAILED}"
            " FROM run_urls r JOIN urls u ON u.id = r.url_id"
            " WHERE r.run_id = ? AND r.host = ? AND r.checked = 0 AND r.url_id > ?"
            " ORDER BY r.url_id LIMIT ?"
        )
        return [_due_url(row) for row in self._q(sql, (False, run_id, host, after, limit))]

    # -- leases ----------------------------------------------------------------

    def claim_hosts(
        self, run_id: int, worker_id: int, limit: int, now: str, expires: str
    ) -> list[str]:
        """Leases up to ``limit`` hosts of the run that have unchecked URLs and no live
        lease (free, or expired: their holder stopped renewing), until ``expires``."""
        if limit <= 0:
            return []
        lock = " FOR UPDATE OF h SKIP LOCKED" if self.row_locks else ""
        with self.transaction():
            hosts = [
                str(r[0])
                for r in self._q(
                    "SELECT h.host FROM host_leases h WHERE h.run_id = ?"
                    " AND (h.worker_id IS NULL OR h.expires < ?)"
                    " AND EXISTS (SELECT 1 FROM run_urls r WHERE r.run_id = h.run_id"
                    " AND r.host = h.host AND r.checked = 0)"
                    f" ORDER BY h.taken, h.host LIMIT ?{lock}",
                    (run_id, now, limit),
                ).fetchall()
            ]
            for host in hosts:
                self._q(
                    "UPDATE host_leases SET worker_id = ?, expires = ?, taken = taken + 1"
                    " WHERE run_id = ? AND host = ?",
                    (worker_id, expires, run_id, host),
                )
        return hosts

    def renew(self, run_id: int, worker_id: int, now: str, expires: str) -> set[str]:
        """The worker's heartbeat: its own expiry and its leases', moved to ``expires``.
        Returns the hosts it still holds (a lease another worker took over is gone)."""
        with self.transaction():
            self._q(
                "UPDATE workers SET heartbeat = ?, expires = ? WHERE id = ?",
                (now, expires, worker_id),
            )
            rows = self._q(
                "UPDATE host_leases SET expires = ? WHERE run_id = ? AND worker_id = ?"
                " RETURNING host",
                (expires, run_id, worker_id),
            ).fetchall()
        return {str(r[0]) for r in rows}

    def release_host(self, run_id: int, worker_id: int, host: str) -> None:
        """Gives a host back (its URLs are all checked, or this worker is ending)."""
        with self.transaction():
            self._q(
                "UPDATE host_leases SET worker_id = NULL, expires = NULL"
                " WHERE run_id = ? AND host = ? AND worker_id = ?",
                (run_id, host, worker_id),
            )

    # -- ending ------------------------------------------------------------------

    def end_worker(
        self,
        shared: SharedRun,
        now: str,
        exit_code: int,
        *,
        checked: int,
        posts: int | None = None,
        message: str | None = None,
    ) -> bool:
        """Records a worker's end and gives its leases back; the last worker out (no other
        live worker, no URL left unchecked) closes the run. True when this one did.

        The run's figures are the checks recorded in it (every worker's); its exit code
        the highest of its workers'."""
        run_id = shared.run_id
        with self.transaction():
            if self.row_locks:  # two workers ending at once: one after the other
                self._q("SELECT id FROM runs WHERE id = ? FOR UPDATE", (run_id,))
            self._q(
                "UPDATE workers SET ended = ?, heartbeat = ?, exit_code = ?, checked = ?"
                " WHERE id = ?",
                (now, now, exit_code, checked, shared.worker_id),
            )
            self._q(
                "UPDATE host_leases SET worker_id = NULL, expires = NULL"
                " WHERE run_id = ? AND worker_id = ?",
                (run_id, shared.worker_id),
            )
            others = self._q(
                "SELECT COUNT(*) FROM workers WHERE run_id = ? AND ended IS NULL AND expires >= ?",
                (run_id, now),
            ).fetchone()[0]
            if others or self.unchecked(run_id):
                return False
            counts = {
                str(state): int(n)
                for state, n in self._q(
                    "SELECT state, COUNT(*) FROM checks WHERE run_id = ? GROUP BY state",
                    (run_id,),
                ).fetchall()
            }
            figures = self._q(
                "SELECT CAST(COALESCE(SUM(bytes), 0) AS BIGINT),"
                " (SELECT COUNT(*) FROM run_urls WHERE run_id = ?),"
                " (SELECT MAX(exit_code) FROM workers WHERE run_id = ?)"
                " FROM checks WHERE run_id = ?",
                (run_id, run_id, run_id),
            ).fetchone()
            self._q(
                "UPDATE runs SET ended = ?, exit_code = ?, posts = ?, urls = ?, counts = ?,"
                " bytes = ?, message = ? WHERE id = ? AND ended IS NULL",
                (
                    now,
                    int(figures[2] if figures[2] is not None else exit_code),
                    posts,
                    int(figures[1]),
                    json.dumps(counts),
                    int(figures[0]),
                    message,
                    run_id,
                ),
            )
            self._drop_queue(run_id)
        return True

    # -- status ------------------------------------------------------------------

    def workers_of(self, run_ids: Sequence[int], now: str) -> list[WorkerRow]:
        """The workers of these runs, oldest first, with the state ``status`` shows."""
        if not run_ids:
            return []
        marks = ",".join("?" for _ in run_ids)
        rows = self._q(
            "SELECT w.id, w.run_id, w.name, w.machine, w.pid, w.started, w.heartbeat,"
            " w.expires, w.ended, w.exit_code, w.checked,"
            " (SELECT COUNT(*) FROM host_leases h WHERE h.run_id = w.run_id"
            " AND h.worker_id = w.id)"
            f" FROM workers w WHERE w.run_id IN ({marks}) ORDER BY w.id",
            list(run_ids),
        ).fetchall()
        out = []
        for r in rows:
            ended, expires, code = r[8], str(r[7]), r[9]
            if ended is None:
                state = "running" if expires >= now else "abandoned"
            else:
                state = "done" if code in (0, 1) else "failed"
            out.append(
                WorkerRow(
                    id=int(r[0]),
                    run_id=int(r[1]),
                    name=str(r[2]),
                    machine=r[3],
                    pid=r[4],
                    started=str(r[5]),
                    heartbeat=str(r[6]),
                    expires=expires,
                    ended=ended,
                    exit_code=code,
                    checked=int(r[10]),
                    state=state,
                    hosts=int(r[11]),
                )
            )
        return out

    def open_leases(self, now: str) -> list[LeaseRow]:
        """The hosts of open shared runs that still have unchecked URLs."""
        rows = self._q(
            "SELECT h.run_id, h.host, w.name, h.expires,"
            " (SELECT COUNT(*) FROM run_urls r WHERE r.run_id = h.run_id AND r.host = h.host"
            " AND r.checked = 0)"
            " FROM host_leases h JOIN runs ru ON ru.id = h.run_id"
            " LEFT JOIN workers w ON w.id = h.worker_id"
            " WHERE ru.ended IS NULL ORDER BY h.run_id, h.host",
            (),
        ).fetchall()
        return [
            LeaseRow(
                int(r[0]),
                str(r[1]),
                r[2],
                r[3],
                r[3] is not None and str(r[3]) < now,
                int(r[4]),
            )
            for r in rows
            if int(r[4])
        ]

    def shared_runs(self, run_ids: Sequence[int]) -> set[int]:
        """Which of these runs are shared (``crawl --worker``)."""
        if not run_ids:
            return set()
        marks = ",".join("?" for _ in run_ids)
        return {
            int(r[0])
            for r in self._q(
                f"SELECT id FROM runs WHERE shared = 1 AND id IN ({marks})", list(run_ids)
            ).fetchall()
        }
