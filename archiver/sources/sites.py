"""Indexing live sites: each HTML page a ``Discovery`` reaches becomes a post in the database.

Owns what is remembered about crawled pages (HTTP status, validators for the
next conditional request, the links they had) in the columns the
``201_site_pages`` migration (in ``db``) adds to ``posts``, and the rule for pages that
disappear: a page is gone when it answers 404/410 (or another permanent
failure), or when a *complete* walk of its source no longer reaches it. A page
that fails for a run, or a walk cut short (source down, robots.txt unreachable,
``max_pages``), changes nothing: offline is not gone. A gone page loses its
references, never its archived assets. The migration also adds ``urls.fetch_url``,
where a ``[remap]`` rule sends the fetch of a URL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from archiver.clock import Clock
from archiver.config import Source
from archiver.extract import Reference, extract
from archiver.net.fetch import Fetcher, FetchSettings
from archiver.net.localfiles import is_local
from archiver.net.rules import UrlRules
from archiver.sources.discover import Discovery, Known, Link, Page

if TYPE_CHECKING:
    import httpx  # only fetch.py and transport.py speak HTTP (tests/test_http_stack.py)

    from archiver.db.sqlite import Database

__all__ = ["SiteIndex", "index_site"]

#: Turns a page's references into the rows ``Database.save_post`` takes, URL rules applied.
RowsFn = Callable[[Sequence[Reference]], list[dict[str, Any]]]


@dataclass
class SiteIndex:
    """What indexing one site source did, for the run's summary."""

    post_ids: set[int] = field(default_factory=set)
    posts: int = 0
    parsed: int = 0


async def index_site(
    db: Database,
    source: Source,
    *,
    settings: FetchSettings,
    max_page_size: int,
    version: str,
    rows: RowsFn,
    now: str,
    warn: Callable[[str], None],
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
    ignore_robots: bool = False,
    rules: UrlRules | None = None,
) -> SiteIndex:
    """Discovers the source's pages, saves each as a post, and marks the ones that are gone.

    ``version`` is the parse version posts are saved under: a page saved under
    another one is fetched in full and parsed again.
    """
    label = source.label
    out = SiteIndex()
    indexer = _Indexer(db, label, version, rows, now, warn, out)
    page_settings = replace(settings, max_page_size=max_page_size)
    async with Fetcher(page_settings, transport=transport, clock=clock, warn=warn) as fetcher:
        discovery = Discovery(
            source,
            fetcher,
            on_page=indexer.page,
            known=indexer.known,
            warn=warn,
            rules=rules,
            ignore_robots=ignore_robots,
        )
        outcome = await discovery.run()
    with db.transaction():
        for row in db.rows(
            "SELECT id, path FROM posts WHERE source=? AND gone_since IS NULL", (label,)
        ):
            if row["id"] in out.post_ids or row["id"] in indexer.gone:
                continue
            if outcome.complete:
                warn(f"page gone: {row['path']} is no longer reached from {label}")
                _mark_gone(db, row["id"], now)
            else:
                out.post_ids.add(row["id"])  # not reached this time: kept, still checked
    return out


class _Indexer:
    """The database side of one discovery: answers ``known`` and records each ``Page``."""

    def __init__(
        self,
        db: Database,
        label: str,
        version: str,
        rows: RowsFn,
        now: str,
        warn: Callable[[str], None],
        out: SiteIndex,
    ) -> None:
        self.db, self.label, self.version, self.rows = db, label, version, rows
        self.now, self.warn, self.out = now, warn, out
        self.gone: set[int] = set()

    def _row(self, url: str) -> dict[str, Any] | None:
        found = self.db.rows(
            "SELECT id, content_sha256, extractor_version, gone_since, page_etag,"
            " page_last_modified, page_links FROM posts WHERE source=? AND path=?",
            (self.label, url),
        )
        return found[0] if found else None

    def known(self, url: str) -> Known | None:
        """Validators only for a page whose references we hold under the current version."""
        row = self._row(url)
        if row is None:
            return None
        links = tuple(Link(u, bool(p)) for u, p in json.loads(row["page_links"] or "[]"))
        if row["gone_since"] is not None or row["extractor_version"] != self.version:
            return Known(links=links)
        return Known(row["page_etag"], row["page_last_modified"], links)

    def page(self, page: Page) -> None:
        row = self._row(page.url)
        r = page.result
        if page.outcome in ("gone", "failed"):
            what = r.error or r.error_class or "failed"
            if row is None:
                self.warn(f"linked page could not be fetched: {page.url} ({what})")
                return
            with self.db.transaction():
                self._state(row["id"], page)
            if page.outcome == "failed":
                self.warn(
                    f"page could not be fetched this run, kept as it was: {page.url} ({what})"
                )
                self.out.post_ids.add(row["id"])
            elif row["gone_since"] is None:
                self.warn(f"page gone: {page.url} ({what}); its assets stay archived")
                with self.db.transaction():
                    _mark_gone(self.db, row["id"], self.now)
                self.gone.add(row["id"])
            return
        self.out.posts += 1
        unchanged = page.outcome == "unchanged" or (
            row is not None
            and row["content_sha256"] == page.sha256
            and row["extractor_version"] == self.version
            and row["gone_since"] is None
        )
        if row is not None and unchanged:
            with self.db.transaction():
                self.db.touch_post(row["id"], self.now)
                self._state(row["id"], page)
            self.out.post_ids.add(row["id"])
            return
        assert page.html is not None and page.sha256 is not None
        extraction = extract(page.html, "html", base_url=page.base_url)
        for w in extraction.warnings:
            self.warn(f"{page.url}:{w.line}: {w.message}")
        if extraction.skipped:  # not read within its budget: what we held stays
            if row is not None:
                with self.db.transaction():
                    self.db.touch_post(row["id"], self.now)
                self.out.post_ids.add(row["id"])
            return
        # A live page never names local files: a ``<base href="file:...">`` or a
        # ``file:`` link on a server's page is dropped, never read.
        refs = self.rows(
            [ref for ref in extraction.references if not ref.relative and not is_local(ref.url)]
        )
        with self.db.transaction():
            post_id = self.db.save_post(
                source=self.label,
                path=page.url,
                content_sha256=page.sha256,
                extractor_version=self.version,
                refs=refs,
                now=self.now,
            )
            self._state(post_id, page)
        self.out.parsed += 1
        self.out.post_ids.add(post_id)

    def _state(self, post_id: int, page: Page) -> None:
        """Records the page's last answer; validators and links only from a full 2xx."""
        r = page.result
        self.db.conn.execute(
            "UPDATE posts SET page_status=?, page_error=?, page_final_url=?, page_checked=?"
            " WHERE id=?",
            (r.http_status, r.error, r.final_url, self.now, post_id),
        )
        if page.outcome == "parsed":
            links = json.dumps([[link.url, int(link.pagination)] for link in page.links])
            self.db.conn.execute(
                "UPDATE posts SET page_etag=?, page_last_modified=?, page_links=? WHERE id=?",
                (r.etag, r.last_modified, links, post_id),
            )


def _mark_gone(db: Database, post_id: int, now: str) -> None:
    """A gone page keeps its row (reports say so) but loses its links; blobs stay."""
    db.conn.execute("DELETE FROM refs WHERE post_id=?", (post_id,))
    db.conn.execute("UPDATE posts SET gone_since=? WHERE id=?", (now, post_id))
