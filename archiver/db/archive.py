"""The queries behind the commands that read or tend the archive, as SQLite runs them.

Report, status, restore, mirror, rewrite, verify, gc, export and the store binding
ask these methods and get ``views`` records back; none of them knows a table or a
column. Long results are streamed from a cursor or narrowed by a join, never by an
IN-list of every id, so a report of a million URLs reads each row once. Methods
that write say "call inside a transaction": their caller owns the unit of work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from archiver.db.backend import Cursor
from archiver.db.views import (
    ActiveRewrite,
    ArchiveTarget,
    BlobUse,
    Copy,
    ExportVersion,
    LinkUse,
    OldestCheck,
    PostUse,
    ReportRow,
    RewriteRef,
    RewriteSpan,
    RunRecord,
    StatusFigures,
    UrlName,
    UrlQuery,
)

__all__ = ["ArchiveQueries"]

_COPY_COLUMNS = (
    "v.url_id, u.url, v.sha256, b.size, b.content_type, v.first_seen, v.last_seen,"
    " v.check_id, b.sha256 IS NOT NULL AS known, b.verified_at, b.verify_ok"
)

#: The URL's and its blob's columns of a report row, in ``ReportRow``'s order (mostly).
_ROW_COLUMNS = (
    "u.id, u.url, u.state, u.http_status, u.error, u.error_class, u.sha256,"
    " u.size, u.content_type, u.last_checked, u.last_ok, u.failing_since,"
    " u.referenced, u.host, u.fetch_url, b.pages, b.title, b.width, b.height,"
    " b.format, b.deep_check, u.confirm_count, u.confirm_last"
)
#: A use's columns after ``_ROW_COLUMNS`` (``PostUse``, then the ref's id).
_USE_COLUMNS = "p.source, p.path, r.line, r.kind, COALESCE(r.text, ''), r.id"
#: A version's columns after the use's (``Copy`` from its sha256 on); null: none.
_VERSION_COLUMNS = (
    "v.sha256, vb.size, vb.content_type, v.first_seen, v.last_seen, v.check_id,"
    " vb.sha256 IS NOT NULL, vb.verified_at, vb.verify_ok"
)
#: Newest version first, as ``copies`` lists them.
_VERSION_ORDER = "v.last_seen DESC, v.first_seen DESC, v.sha256"
#: What every report row query joins after its URL: the URL's blob, its versions and
#: theirs (a row per version; none: one row of nulls).
_COPY_JOINS = (
    " LEFT JOIN blobs b ON b.sha256 = u.sha256 LEFT JOIN versions v ON v.url_id = u.id"
    " LEFT JOIN blobs vb ON vb.sha256 = v.sha256"
)
_USE_AT, _REF_AT, _VERSION_AT = 23, 28, 29


def _copy(r: Sequence[Any]) -> Copy:
    """A ``Copy`` from a row of ``_COPY_COLUMNS``."""
    return Copy(*r[:8], bool(r[8]), r[9], r[10])  # type: ignore[call-arg]


#: The report's uses in its order, read rather than sorted: the posts by path (index
#: ``posts_path``), each post's uses, each use's URL. ``CROSS JOIN`` keeps that loop
#: order in SQLite (PostgreSQL plans as it likes; the ORDER BY decides either way), so
#: only the rows of one path at a time are sorted, never a million at once.
_USES_IN_ORDER = (
    "posts {p} CROSS JOIN refs {r} CROSS JOIN urls u",
    "{r}.post_id = {p}.id AND u.id = {r}.url_id",
)
#: The use ``fr`` in ``fp`` is its URL's first (by path, line, then id): where the report
#: lists the URL.
_FIRST_USE = (
    "NOT EXISTS (SELECT 1 FROM refs r2 JOIN posts p2 ON p2.id = r2.post_id"
    " WHERE r2.url_id = u.id AND (p2.path, r2.line, r2.id) < (fp.path, fr.line, fr.id))"
)


def _uses_in_order(p: str, r: str) -> tuple[str, str]:
    """(FROM, join condition) of ``_USES_IN_ORDER`` with these aliases for post and use."""
    source, on = _USES_IN_ORDER
    return source.format(p=p, r=r), on.format(p=p, r=r)


def _rows_sql(source: str, where: str, order: str, *, uses: bool = True) -> str:
    """A report row query: the URLs of ``source`` (``u``; with ``uses``, joined to
    their uses as ``r`` and ``p``) with their copies, a row per (URL, use, version),
    sorted by ``order`` and then the versions' order."""
    use_columns = _USE_COLUMNS if uses else "NULL, NULL, NULL, NULL, NULL, NULL"
    return (
        f"SELECT {_ROW_COLUMNS}, {use_columns}, {_VERSION_COLUMNS} FROM {source}{_COPY_JOINS}"
        f" WHERE {where} ORDER BY {order}, {_VERSION_ORDER}"
    )


def _grouped(
    rows: Iterable[Any], pick: Callable[[list[Copy]], Copy | None], *, by_use: bool
) -> Iterator[tuple[PostUse | None, ReportRow]]:
    """Report rows from a cursor of ``_rows_sql``, sorted so that each URL's rows
    (``by_use``: each use's) are together, its uses and versions in order.

    With ``by_use`` a row's ``posts`` is empty and the use comes beside it; else
    ``posts`` has every use and the use beside is None.
    """
    key: Any = None
    head: Any = None
    posts: list[PostUse] = []
    versions: list[Copy] = []
    ref_id: Any = None
    first_ref: Any = None
    for r in rows:
        rid = r[_REF_AT]
        k = (r[0], rid) if by_use else r[0]
        if k != key:
            if head is not None:
                yield _report_row(head, posts, versions, pick, by_use)
            key, head, posts, versions = k, r, [], []
            ref_id = first_ref = rid
            if rid is not None:
                posts.append(PostUse(*r[_USE_AT:_REF_AT]))  # type: ignore[call-arg]
        elif rid != ref_id:  # the URL's next use
            ref_id = rid
            posts.append(PostUse(*r[_USE_AT:_REF_AT]))  # type: ignore[call-arg]
        # Its versions: those beside its first use (each use repeats them).
        if rid == first_ref and r[_VERSION_AT] is not None:
            v = r[_VERSION_AT:]
            versions.append(Copy(r[0], r[1], *v[:6], bool(v[6]), v[7], v[8]))  # type: ignore[call-arg]
    if head is not None:
        yield _report_row(head, posts, versions, pick, by_use)


def _report_row(
    r: Any,
    posts: list[PostUse],
    versions: list[Copy],
    pick: Callable[[list[Copy]], Copy | None],
    by_use: bool,
) -> tuple[PostUse | None, ReportRow]:
    good = pick(versions) if versions else None
    # Positional: a million rows build faster than by keyword.
    row = ReportRow(  # type: ignore[call-arg]
        *r[1:12],
        bool(r[12]),
        () if by_use else tuple(posts),
        r[13],
        good is not None,
        good.sha256 if good else None,
        good.verified_at if good else None,
        len(versions),
        *r[14:21],
        r[21] or 0,
        r[22],
    )
    return (posts[0] if by_use else None), row


def _url_where(q: UrlQuery) -> tuple[str, list[Any]]:
    """The condition on ``urls u`` a query means, and its parameters."""
    where = f"u.state IN ({','.join('?' for _ in q.states)})"
    params: list[Any] = list(q.states)
    if q.host is not None:
        where += " AND u.host = ?"
        params.append(q.host)
    if q.since:
        where += " AND u.failing_since IS NOT NULL AND u.failing_since >= ?"
        params.append(q.since)
    if q.changed:
        where += " AND (SELECT COUNT(*) FROM versions v2 WHERE v2.url_id = u.id) > 1"
    if not q.unreferenced:
        where += " AND u.referenced = 1"
    return where, params


class ArchiveQueries:
    """Mixed into ``Database``: it supplies ``execute`` (one query, ``?`` placeholders,
    on whichever backend runs) and ``executemany``."""

    execute: Callable[..., Cursor]
    executemany: Callable[[str, Iterable[Sequence[Any]]], None]
    #: ``stream(sql, params)``: the rows of a long read, fetched in batches as iterated.
    stream: Callable[..., Iterator[Any]]

    # -- report --------------------------------------------------------------

    def max_url_id(self) -> int:
        """The largest URL id (0 when there is none): the report sizes its seen-set by it."""
        return int(self.execute("SELECT COALESCE(MAX(id), 0) FROM urls").fetchone()[0])

    def report_order(self, q: UrlQuery) -> Iterator[tuple[int, str, str]]:
        """(url id, URL, post path) of every use of the URLs ``q`` covers, streamed by
        post path, line and URL: a URL's first use says where the report lists it."""
        where, params = _url_where(q)
        yield from self.stream(
            "SELECT u.id, u.url, p.path FROM refs r JOIN posts p ON p.id = r.post_id"
            f" JOIN urls u ON u.id = r.url_id WHERE {where} ORDER BY p.path, r.line, u.url",
            params,
        )

    def unused_urls(self, q: UrlQuery) -> Iterator[tuple[int, str]]:
        """(id, URL) of the URLs ``q`` covers that no post uses, by URL."""
        where, params = _url_where(q)
        yield from self.stream(
            f"SELECT u.id, u.url FROM urls u WHERE {where}"
            " AND NOT EXISTS (SELECT 1 FROM refs r WHERE r.url_id = u.id) ORDER BY u.url",
            params,
        )

    def report_rows(
        self,
        ids: Sequence[int],
        pick: Callable[[list[Copy]], Copy | None],
        *,
        posts: bool = True,
        keep: Callable[[str], bool] | None = None,
    ) -> dict[int, ReportRow]:
        """The report's row of each URL of ``ids`` (a batch: a few hundred), by id.

        ``pick`` chooses the restorable copy among its versions (newest first), or None;
        ``posts=False`` leaves ``posts`` empty (the caller has the use in hand), and
        ``keep`` keeps only the uses in posts whose path it accepts.
        """
        marks = ",".join("?" * len(ids))
        uses: dict[int, list[PostUse]] = {}
        if posts:
            for r in self.execute(
                "SELECT r.url_id, p.source, p.path, r.line, r.kind, COALESCE(r.text, '')"
                f" FROM refs r JOIN posts p ON p.id = r.post_id WHERE r.url_id IN ({marks})"
                " ORDER BY r.url_id, p.path, r.line, r.start, r.id",
                ids,
            ):
                if keep is None or keep(r[2]):
                    uses.setdefault(r[0], []).append(PostUse(*r[1:]))
        held: dict[int, list[Copy]] = {}
        for r in self.execute(
            f"SELECT {_COPY_COLUMNS} FROM versions v JOIN urls u ON u.id = v.url_id"
            f" LEFT JOIN blobs b ON b.sha256 = v.sha256 WHERE v.url_id IN ({marks})"
            " ORDER BY v.url_id, v.last_seen DESC, v.first_seen DESC, v.sha256",
            ids,
        ):
            held.setdefault(r[0], []).append(_copy(r))
        out = {}
        for r in self.execute(
            f"SELECT {_ROW_COLUMNS} FROM urls u LEFT JOIN blobs b ON b.sha256 = u.sha256"
            f" WHERE u.id IN ({marks})",
            ids,
        ):
            out[r[0]] = _report_row(r, uses.get(r[0], []), held.get(r[0], []), pick, False)[1]
        return out

    def report_stream(
        self, q: UrlQuery, pick: Callable[[list[Copy]], Copy | None]
    ) -> Iterator[ReportRow]:
        """The report's row of every URL ``q`` covers, in its order, all uses in ``posts``:
        by first use (post path, line, URL), then the URLs no post uses, by URL.

        One cursor with the uses and versions joined (a row per use and version, grouped
        here), read in the order of the posts' paths (``_USES_IN_ORDER``): each URL at
        its first use, found by ``_FIRST_USE``. Nothing is looked up by id a batch at a
        time (at 1,000,000 URLs those lookups cost most of a report), and nothing sorts
        all the rows at once (that cost about half of what was left).
        """
        where, params = _url_where(q)
        source, on = _uses_in_order("fp", "fr")
        sql = _rows_sql(
            f"{source} JOIN refs r ON r.url_id = u.id JOIN posts p ON p.id = r.post_id",
            f"{on} AND {where} AND {_FIRST_USE}",
            "fp.path, fr.line, u.url, p.path, r.line, r.start, r.id",
        )
        for _, row in _grouped(self.stream(sql, params), pick, by_use=False):
            yield row
        yield from self.unused_rows(q, pick)

    def unused_rows(
        self, q: UrlQuery, pick: Callable[[list[Copy]], Copy | None]
    ) -> Iterator[ReportRow]:
        """The report's row of each URL ``q`` covers that no post uses, by URL (streamed)."""
        where, params = _url_where(q)
        where += " AND NOT EXISTS (SELECT 1 FROM refs r WHERE r.url_id = u.id)"
        sql = _rows_sql("urls u", where, "u.url", uses=False)
        for _, row in _grouped(self.stream(sql, params), pick, by_use=False):
            yield row

    def use_rows(
        self, q: UrlQuery, pick: Callable[[list[Copy]], Copy | None]
    ) -> Iterator[tuple[PostUse, ReportRow]]:
        """Every use of the URLs ``q`` covers with its URL's row (``posts`` empty), by
        post path, line, URL and column: the post-by-post formats' order, one cursor."""
        where, params = _url_where(q)
        source, on = _uses_in_order("p", "r")
        sql = _rows_sql(source, f"{on} AND {where}", "p.path, r.line, u.url, r.start, r.id")
        for use, row in _grouped(self.stream(sql, params), pick, by_use=True):
            assert use is not None
            yield use, row

    def link_uses(
        self, q: UrlQuery, sources: Iterable[str] | None = None, *, by_path: bool = False
    ) -> Iterator[LinkUse]:
        """Every use of the URLs ``q`` covers (in the posts of ``sources``, when given),
        streamed from the cursor by source, path, line and column; ``by_path``: by path,
        line, URL and column, the order of the report's post-by-post formats."""
        where, params = _url_where(q)
        if sources is not None:
            names = list(sources)
            where += f" AND p.source IN ({','.join('?' for _ in names)})"
            params += names
        order = "p.path, r.line, u.url" if by_path else "p.source, p.path, r.line"
        cur = self.stream(
            "SELECT u.id, u.url, u.host, u.state, u.http_status, u.error, u.error_class,"
            " p.source, p.path, r.line, r.kind, COALESCE(r.text, '') FROM refs r"
            " JOIN posts p ON p.id = r.post_id JOIN urls u ON u.id = r.url_id"
            f" WHERE {where} ORDER BY {order}, r.start, r.id",
            params,
        )
        for r in cur:
            yield LinkUse(*r[:7], PostUse(*r[7:]))  # type: ignore[call-arg]

    def post_paths(self) -> Iterator[str]:
        """Every recorded post's path, sorted, once each (streamed: stop when suited)."""
        for r in self.execute("SELECT DISTINCT path FROM posts ORDER BY path"):
            yield r[0]

    def urls_on_host(self, host: str) -> Iterator[str]:
        """The URLs on a (lower-case) host, whatever their port (streamed)."""
        for r in self.execute("SELECT url FROM urls WHERE host = ?", (host,)):
            yield r[0]

    # -- copies --------------------------------------------------------------

    def find_url_id(self, url: str) -> int | None:
        """The id of a recorded URL, spelt exactly so; None when no post ever linked it."""
        row = self.execute("SELECT id FROM urls WHERE url=?", (url,)).fetchone()
        return None if row is None else int(row[0])

    def copies(self, urls: UrlQuery | int | None = None) -> dict[int, list[Copy]]:
        """Every version of one URL, of the URLs a query covers, or of all; newest first."""
        sql = (
            f"SELECT {_COPY_COLUMNS} FROM versions v JOIN urls u ON u.id = v.url_id"
            " LEFT JOIN blobs b ON b.sha256 = v.sha256"
        )
        params: list[Any] = []
        if isinstance(urls, UrlQuery):
            where, params = _url_where(urls)
            sql += f" WHERE {where}"
        elif urls is not None:
            sql += " WHERE v.url_id = ?"
            params = [urls]
        sql += " ORDER BY v.url_id, v.last_seen DESC, v.first_seen DESC, v.sha256"
        out: dict[int, list[Copy]] = {}
        for r in self.execute(sql, params):
            copy = _copy(r)
            out.setdefault(copy.url_id, []).append(copy)
        return out

    def archive_target(self, url_id: int) -> ArchiveTarget:
        """What the web archive is asked about a recorded URL."""
        row = self.execute(
            "SELECT id, url, expect, last_ok FROM urls WHERE id = ?", (url_id,)
        ).fetchone()
        return ArchiveTarget(*row)

    def add_outside_version(
        self,
        url_id: int,
        *,
        sha256: str,
        size: int,
        content_type: str | None,
        source: str,
        now: str,
    ) -> None:
        """Records a blob (already committed to the store) as the newest version of a URL,
        got from ``source`` rather than its URL, and makes it the URL's copy; the URL's
        state and its last answer stay as they are. Call inside a transaction."""
        self.execute(
            "INSERT INTO blobs (sha256, size, content_type, first_stored)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (sha256, size, content_type, now),
        )
        self.execute(
            "INSERT INTO versions (url_id, sha256, first_seen, last_seen, check_id, source)"
            " VALUES (?, ?, ?, ?, NULL, ?) ON CONFLICT (url_id, sha256)"
            " DO UPDATE SET last_seen=excluded.last_seen, source=excluded.source",
            (url_id, sha256, now, now, source),
        )
        self.execute(
            "UPDATE urls SET sha256=?, size=?, content_type=? WHERE id=?",
            (sha256, size, content_type, url_id),
        )

    def urls_in_states(self, states: tuple[str, ...]) -> list[UrlName]:
        """Every URL (referenced or not) in these states, ordered by URL."""
        marks = ",".join("?" for _ in states)
        cur = self.execute(
            f"SELECT id, url FROM urls WHERE state IN ({marks}) ORDER BY url", states
        )
        return [UrlName(*r) for r in cur]

    # -- verify --------------------------------------------------------------

    def blobs_to_verify(self) -> list[str]:
        """Every blob's sha256, the least recently verified (never verified: first) first."""
        return [
            r[0]
            for r in self.execute(
                "SELECT sha256 FROM blobs ORDER BY verified_at IS NOT NULL, verified_at, sha256"
            )
        ]

    def blob_content_types(self) -> dict[str, str | None]:
        """Every blob's sha256 and the (sniffed) type it was stored as."""
        return dict(self.execute("SELECT sha256, content_type FROM blobs").fetchall())

    def set_verification(self, sha256: str, ok: bool, now: str) -> None:
        """Records a blob's hash check (reports stop calling a damaged copy restorable).

        Call inside a transaction.
        """
        self.execute(
            "UPDATE blobs SET verified_at=?, verify_ok=? WHERE sha256=?", (now, int(ok), sha256)
        )

    def dangling_versions(self) -> list[BlobUse]:
        """Versions naming a blob no blob row knows, by URL."""
        cur = self.execute(
            "SELECT u.url, v.sha256 FROM versions v JOIN urls u ON u.id = v.url_id"
            " WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = v.sha256)"
            " ORDER BY u.url, v.sha256"
        )
        return [BlobUse(*r) for r in cur]

    def dangling_urls(self) -> list[BlobUse]:
        """URLs whose current copy names a blob no blob row knows, by URL."""
        cur = self.execute(
            "SELECT u.url, u.sha256 FROM urls u WHERE u.sha256 IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = u.sha256) ORDER BY u.url"
        )
        return [BlobUse(*r) for r in cur]

    def urls_that_served(self, sha256: str) -> list[str]:
        """The URLs that once served this blob, the most recent first."""
        cur = self.execute(
            "SELECT u.url FROM versions v JOIN urls u ON u.id = v.url_id WHERE v.sha256=?"
            " ORDER BY v.last_seen DESC",
            (sha256,),
        )
        return [r[0] for r in cur]

    # -- gc and the store binding ----------------------------------------------

    def blob_shas(self) -> Iterator[str]:
        """Every blob the database names."""
        for r in self.execute("SELECT sha256 FROM blobs"):
            yield r[0]

    def named_blobs(self) -> set[str]:
        """Every blob a version or a URL names (gc must keep them)."""
        return {
            r[0]
            for r in self.execute(
                "SELECT sha256 FROM versions UNION SELECT sha256 FROM urls WHERE sha256 IS NOT NULL"
            )
        }

    def blobs_first_stored(self) -> dict[str, str]:
        """When each blob row was first written, by sha256."""
        return dict(self.execute("SELECT sha256, first_stored FROM blobs").fetchall())

    def forget_blob(self, sha256: str) -> bool:
        """Deletes the blob's row unless a version or URL names it; True when deleted.

        Call inside a transaction: a run may name the blob until its write lock is held.
        """
        named = self.execute(
            "SELECT 1 FROM versions WHERE sha256=? UNION SELECT 1 FROM urls WHERE sha256=?",
            (sha256, sha256),
        ).fetchone()
        if named:
            return False
        self.execute("DELETE FROM blobs WHERE sha256=?", (sha256,))
        return True

    def meta(self, key: str) -> str | None:
        """A value of the database's own (``database_id``, ``store_id``), None when unset."""
        row = self.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def add_meta(self, key: str, value: str) -> None:
        """Sets a value that was unset. Call inside a transaction."""
        self.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- status --------------------------------------------------------------

    def status_figures(self, runs: int) -> StatusFigures:
        """Sizes, states, the oldest check and the last ``runs`` runs, newest first."""
        cur = self.execute(
            "SELECT id, command, pid, started, ended, exit_code, posts, urls, counts, bytes,"
            " new_blobs, message FROM runs ORDER BY id DESC LIMIT ?",
            (runs,),
        )
        last_runs = tuple(
            RunRecord(*r[:8], json.loads(r[8]) if r[8] else {}, *r[9:])  # type: ignore[call-arg]
            for r in cur
        )
        states = {
            str(r[0]): int(r[1])
            for r in self.execute(
                "SELECT state, COUNT(*) FROM urls WHERE referenced=1 GROUP BY state"
            )
        }
        oldest = self.execute(
            "SELECT url, last_checked FROM urls WHERE referenced=1"
            " ORDER BY last_checked IS NOT NULL, last_checked, id LIMIT 1"
        ).fetchone()
        counts = self.execute(
            "SELECT (SELECT COUNT(*) FROM posts WHERE gone_since IS NULL),"
            " (SELECT COUNT(*) FROM urls WHERE referenced=1),"
            " (SELECT COUNT(*) FROM urls WHERE referenced=0),"
            " (SELECT COUNT(*) FROM blobs),"
            " (SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs)"
        ).fetchone()
        return StatusFigures(
            posts=int(counts[0]),
            urls=int(counts[1]),
            unreferenced_urls=int(counts[2]),
            states=states,
            blobs=int(counts[3]),
            blob_bytes=int(counts[4]),
            oldest_check=OldestCheck(*oldest) if oldest else None,
            runs=last_runs,
        )

    # -- export --------------------------------------------------------------

    def export_versions(self) -> Iterator[ExportVersion]:
        """Every version whose blob row exists, with its response, by URL then age."""
        cur = self.stream(
            "SELECT u.url, v.sha256, v.first_seen, b.size, b.content_type, c.checked_at,"
            " r.url AS response_url, r.final_url, r.status_line, r.headers"
            " FROM versions v JOIN urls u ON u.id = v.url_id"
            " JOIN blobs b ON b.sha256 = v.sha256"
            " LEFT JOIN checks c ON c.id = v.check_id"
            " LEFT JOIN responses r ON r.check_id = v.check_id"
            " ORDER BY u.url, v.first_seen, v.sha256"
        )
        for r in cur:
            headers = tuple((str(n), str(v)) for n, v in json.loads(r[9])) if r[9] else ()
            yield ExportVersion(*r[:9], headers)  # type: ignore[call-arg]

    # -- mirror --------------------------------------------------------------

    def mirror_paths(self) -> dict[int, str]:
        """The mirror path handed out to each URL, by URL id."""
        return dict(self.execute("SELECT url_id, path FROM mirror_paths").fetchall())

    def set_mirror_paths(self, paths: Iterable[tuple[int, str]], replace: set[int]) -> None:
        """Records new mirror paths; ``replace`` names URLs whose old path goes.

        The case-folded key keeps two paths that differ only in case apart (they are
        one file on macOS and Windows). Call inside a transaction.
        """
        paths = list(paths)
        self.executemany(
            "DELETE FROM mirror_paths WHERE url_id=?", [(i,) for i, _ in paths if i in replace]
        )
        self.executemany(
            "INSERT INTO mirror_paths (url_id, path, key) VALUES (?, ?, ?)",
            [(i, p, p.casefold()) for i, p in paths],
        )

    # -- rewrite -------------------------------------------------------------

    def rewrite_refs(self, states: tuple[str, ...]) -> list[RewriteRef]:
        """Links of posts still there to URLs in these states, by source, path, offset."""
        marks = ",".join("?" for _ in states)
        cur = self.execute(
            'SELECT r.post_id, r.url_id, r.as_written, r.start, r."end", u.url, p.source,'
            " p.path, p.content_sha256, mp.path AS mirror_path FROM refs r"
            " JOIN urls u ON u.id = r.url_id JOIN posts p ON p.id = r.post_id"
            " LEFT JOIN mirror_paths mp ON mp.url_id = r.url_id"
            f" WHERE u.state IN ({marks}) AND p.gone_since IS NULL"
            " ORDER BY p.source, p.path, r.start",
            states,
        )
        return [RewriteRef(*r) for r in cur]

    def rewritten_posts(self) -> dict[int, str]:
        """Each rewritten post's hash right after our last write, by post id."""
        return dict(self.execute("SELECT post_id, sha256 FROM rewrite_posts").fetchall())

    def active_rewrite_spans(self, post_id: int) -> list[RewriteSpan]:
        """Where each active rewrite of a post is in it."""
        cur = self.execute(
            "SELECT id, start, \"end\" FROM rewrites WHERE post_id=? AND status='active'",
            (post_id,),
        )
        return [RewriteSpan(*r) for r in cur]

    def active_rewrites(self) -> list[ActiveRewrite]:
        """Every rewrite that can be undone, by source, path and offset."""
        cur = self.execute(
            'SELECT w.id, w.post_id, w.url_id, w.old_text, w.new_text, w.start, w."end", u.url,'
            " p.source, p.path, rp.sha256 FROM rewrites w JOIN urls u ON u.id = w.url_id"
            " JOIN posts p ON p.id = w.post_id"
            " LEFT JOIN rewrite_posts rp ON rp.post_id = w.post_id"
            " WHERE w.status = 'active' ORDER BY p.source, p.path, w.start"
        )
        return [ActiveRewrite(*r) for r in cur]

    def end_rewrites(self, ids: Iterable[int | None], now: str, *, undone: bool) -> None:
        """Ends rewrites: ``undone`` (put back by us) or abandoned. Call inside a transaction."""
        status = "undone" if undone else "abandoned"
        self.executemany(
            "UPDATE rewrites SET status=?, undone_at=? WHERE id=?",
            [(status, now, rid) for rid in ids],
        )

    def add_rewrite(
        self, post_id: int, url_id: int, old: str, new: str, start: int, now: str
    ) -> None:
        """Records that ``old`` became ``new`` at ``start``. Call inside a transaction."""
        self.execute(
            'INSERT INTO rewrites (post_id, url_id, old_text, new_text, start, "end",'
            " rewritten_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (post_id, url_id, old, new, start, start + len(new), now),
        )

    def move_rewrite(self, rewrite_id: int, start: int, end: int) -> None:
        """Where an active rewrite's text now is. Call inside a transaction."""
        self.execute('UPDATE rewrites SET start=?, "end"=? WHERE id=?', (start, end, rewrite_id))

    def set_rewritten_post(self, post_id: int, sha256: str) -> None:
        """Remembers the post's hash after our write while it has active rewrites.

        Call inside a transaction.
        """
        active = self.execute(
            "SELECT COUNT(*) FROM rewrites WHERE post_id=? AND status='active'", (post_id,)
        ).fetchone()[0]
        if active:
            self.execute(
                "INSERT INTO rewrite_posts (post_id, sha256) VALUES (?, ?)"
                " ON CONFLICT (post_id) DO UPDATE SET sha256=excluded.sha256",
                (post_id, sha256),
            )
        else:
            self.execute("DELETE FROM rewrite_posts WHERE post_id=?", (post_id,))
