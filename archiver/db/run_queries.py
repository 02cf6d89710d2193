"""The queries a run makes beyond saving posts and checks: which URLs are due, which posts
are gone, which URLs are still referenced, how many are broken, and what is known of a
crawled page.

A mixin of ``Database`` (it needs only ``self.execute``), so the rules it implements stay
beside the SQL that implements them and away from the schema. The due query is
``states.is_due`` in SQL; ``tests/test_states.py`` holds the two to the same answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from archiver.clock import iso
from archiver.db.backend import Cursor
from archiver.records import DueUrl, IdSet, RecheckReason, UrlState
from archiver.states import FAILED, Due

if TYPE_CHECKING:
    from archiver.validate import Expected

__all__ = ["PageAnswer", "RunQueries", "SitePost"]

_FAILED = ", ".join(f"'{s.value}'" for s in sorted(FAILED))

#: ``states.is_due`` over a row of ``urls u``; its parameters: everything, confirm_before,
#: recheck_before.
_DUE = (
    "? OR u.last_checked IS NULL OR u.state = 'pending' OR u.recheck IS NOT NULL"
    " OR (u.state = 'ok' AND u.sha256 IS NULL)"
    " OR CASE WHEN u.state IN ('failing', 'error') THEN u.last_checked <= ?"
    " ELSE u.last_checked <= ? END"
)

#: For a check: whether the last full fetch (a crawl's check) of a URL in a failed state,
#: of which we hold no copy (or which is invalid, copy or none), failed
#: (``states.may_clear``). Looked up only for such URLs.
_FULL_FETCH_FAILED = (
    f"CASE WHEN ? AND (u.sha256 IS NULL OR u.state = 'invalid') AND u.state IN ({_FAILED})"
    " THEN"
    " COALESCE((SELECT CASE WHEN c.state != 'ok' THEN 1 ELSE 0 END FROM checks c"
    " JOIN runs r ON r.id = c.run_id WHERE c.url_id = u.id AND r.command = 'crawl'"
    " ORDER BY c.id DESC LIMIT 1), 0)"
    " ELSE 0 END"
)

#: Above this many posts the ids are read from the run's temp table, not bound.
_BOUND_IDS = 500


@dataclass(frozen=True, slots=True)
class SitePost:
    """What is known of a crawled page (a post of a url source)."""

    id: int
    content_sha256: str | None
    extractor_version: str | None
    gone: bool
    etag: str | None
    last_modified: str | None
    #: ``(url, pagination)`` of the links the page had at its last full answer.
    links: tuple[tuple[str, bool], ...]


@dataclass(frozen=True, slots=True)
class PageAnswer:
    """A page's last answer, as a site crawl records it on the page's post."""

    http_status: int | None
    error: str | None
    final_url: str | None
    #: Validators and links: only from a full 2xx (None: keep what is held).
    etag: str | None = None
    last_modified: str | None = None
    links: Sequence[tuple[str, bool]] | None = None


class RunQueries:
    """The run-facing queries of ``Database``."""

    execute: Callable[..., Cursor]
    executemany: Callable[[str, Iterable[Sequence[Any]]], None]

    # -- the run's posts and what is due -----------------------------------

    def begin_run_posts(self) -> None:
        """Starts this connection's list of the posts a run reads (a temp table)."""
        self.execute("CREATE TEMP TABLE IF NOT EXISTS run_posts (id INTEGER PRIMARY KEY)")
        self.execute("DELETE FROM run_posts")

    def due_urls(
        self, post_ids: Iterable[int], due: Due, seen: IdSet, *, probe: bool = False
    ) -> list[DueUrl]:
        """The due URLs (``states.is_due``) these posts link that are not in ``seen``, in id
        order; every URL they link is added to ``seen`` (each is considered once a run).

        The posts join the run's posts (``begin_run_posts``).
        """
        ids = list(post_ids)
        if not ids:
            return []
        self.executemany(
            "INSERT INTO run_posts VALUES (?) ON CONFLICT DO NOTHING", [(i,) for i in ids]
        )
        bound = len(ids) < _BOUND_IDS
        marks = ",".join("?" * len(ids)) if bound else "SELECT id FROM run_posts"
        bound_ids = ids if bound else []
        # Which URLs the posts link, ids alone, then whole rows of the due ones only: on
        # an unchanged re-run none is due, and reading every row whole to drop it in
        # Python was most of the cost. (One query joining the due flag to the ids, or
        # DISTINCT, measured slower than the two.)
        linked = self.execute(
            f"SELECT url_id FROM refs WHERE post_id IN ({marks})", bound_ids
        ).fetchall()
        new = seen.claim(int(url_id) for (url_id,) in linked)
        if not new:
            return []
        params = [
            probe,
            *bound_ids,
            due.everything,
            iso(due.confirm_before),
            iso(due.recheck_before),
        ]
        sql = (
            "SELECT u.id, 1, u.url, u.fetch_url, u.expect, u.state, u.sha256, u.etag,"
            " u.last_modified, u.last_checked, u.confirm_count, u.confirm_last, u.recheck,"
            f" {_FULL_FETCH_FAILED}"
            " FROM urls u"
            f" WHERE u.id IN (SELECT url_id FROM refs WHERE post_id IN ({marks})) AND ({_DUE})"
            " ORDER BY u.id"
        )
        return [_due_url(row) for row in self.execute(sql, params) if row[0] in new]

    def count_not_ok(self) -> int:
        """How many URLs the run's posts link are broken (neither ok nor blocked)."""
        row = self.execute(
            "SELECT COUNT(*) FROM urls u WHERE u.referenced = 1"
            " AND u.state NOT IN ('ok', 'blocked') AND EXISTS (SELECT 1 FROM refs r"
            " JOIN run_posts rp ON rp.id = r.post_id WHERE r.url_id = u.id)"
        ).fetchone()
        return int(row[0] or 0)

    def update_referenced(self) -> None:
        """Sets ``urls.referenced``: whether some post still links the URL. Only the rows
        whose value changes are written (an unchanged run writes none, where rewriting
        every row cost 0.2 s at 110,000 URLs)."""
        self.execute(
            "UPDATE urls SET referenced = CASE WHEN referenced = 1 THEN 0 ELSE 1 END"
            " WHERE referenced != CASE WHEN EXISTS"
            " (SELECT 1 FROM refs WHERE refs.url_id = urls.id) THEN 1 ELSE 0 END"
        )

    # -- posts that are gone -----------------------------------------------

    def live_posts(self, source: str) -> list[tuple[int, str]]:
        """``(id, path)`` of the source's posts not marked gone."""
        return self.execute(
            "SELECT id, path FROM posts WHERE source=? AND gone_since IS NULL", (source,)
        ).fetchall()

    def mark_posts_gone(self, post_ids: Iterable[int], now: str) -> None:
        """Posts that vanished keep their row (reports say so) but lose their links; blobs
        stay. Call inside a transaction."""
        ids = [(i,) for i in post_ids]
        self.executemany("DELETE FROM refs WHERE post_id=?", ids)
        self.executemany("UPDATE posts SET gone_since=? WHERE id=?", [(now, i) for (i,) in ids])

    # -- crawled pages -----------------------------------------------------

    def site_post(self, source: str, url: str) -> SitePost | None:
        """What is known of the page ``url`` of a url source, if it was ever saved."""
        row = self.execute(
            "SELECT id, content_sha256, extractor_version, gone_since, page_etag,"
            " page_last_modified, page_links FROM posts WHERE source=? AND path=?",
            (source, url),
        ).fetchone()
        if row is None:
            return None
        links = tuple((str(u), bool(p)) for u, p in json.loads(row[6] or "[]"))
        return SitePost(row[0], row[1], row[2], row[3] is not None, row[4], row[5], links)

    def record_page(self, post_id: int, answer: PageAnswer, now: str) -> None:
        """Records a page's last answer on its post. Call inside a transaction."""
        self.execute(
            "UPDATE posts SET page_status=?, page_error=?, page_final_url=?, page_checked=?"
            " WHERE id=?",
            (answer.http_status, answer.error, answer.final_url, now, post_id),
        )
        if answer.links is not None:
            links = json.dumps([[url, int(pagination)] for url, pagination in answer.links])
            self.execute(
                "UPDATE posts SET page_etag=?, page_last_modified=?, page_links=? WHERE id=?",
                (answer.etag, answer.last_modified, links, post_id),
            )


def _due_url(row: Sequence[Any]) -> DueUrl:
    (url_id, _, url, fetch_url, expect, state, sha256, etag, last_modified) = row[:9]
    (last_checked, confirm_count, confirm_last, recheck, full_fetch_failed) = row[9:]
    target = str(fetch_url or url)
    return DueUrl(
        url_id=int(url_id),
        url=str(url),
        fetch_url=target,
        fetch_host=urlsplit(target).hostname or "",
        expect=cast("Expected", expect),
        state=UrlState(state),
        sha256=sha256,
        etag=etag,
        last_modified=last_modified,
        last_checked=last_checked,
        confirm_count=int(confirm_count),
        confirm_last=confirm_last,
        recheck=RecheckReason(recheck) if recheck else None,
        full_fetch_failed=bool(full_fetch_failed),
    )
