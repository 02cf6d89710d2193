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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from archiver.clock import Clock
from archiver.config import Source
from archiver.db.run_queries import PageAnswer
from archiver.extract import Reference, extract
from archiver.net.fetch import Fetcher, FetchSettings
from archiver.net.localfiles import is_local
from archiver.net.rules import UrlRules
from archiver.records import RefRow
from archiver.sources.discover import Discovery, Known, Link, Page

if TYPE_CHECKING:
    import httpx  # only fetch.py and transport.py speak HTTP (tests/test_http_stack.py)

    from archiver.db.run_queries import SitePost
    from archiver.db.sqlite import Database

__all__ = ["SiteIndex", "index_site"]

#: Turns a page's references into the rows ``Database.save_post`` takes, URL rules applied.
RowsFn = Callable[[Sequence[Reference]], list[RefRow]]


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
    async with Fetcher(settings, transport=transport, clock=clock, warn=warn) as fetcher:
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
        gone = []
        for post_id, path in db.live_posts(label):
            if post_id in out.post_ids or post_id in indexer.gone:
                continue
            if outcome.complete:
                warn(f"page gone: {path} is no longer reached from {label}")
                gone.append(post_id)
            else:
                out.post_ids.add(post_id)  # not reached this time: kept, still checked
        db.mark_posts_gone(gone, now)
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
        self.db, self.label, self.version, self.to_rows = db, label, version, rows
        self.now, self.warn, self.out = now, warn, out
        self.gone: set[int] = set()

    def _row(self, url: str) -> SitePost | None:
        return self.db.site_post(self.label, url)

    def known(self, url: str) -> Known | None:
        """Validators only for a page whose references we hold under the current version."""
        row = self._row(url)
        if row is None:
            return None
        links = tuple(Link(u, p) for u, p in row.links)
        if row.gone or row.extractor_version != self.version:
            return Known(links=links)
        return Known(row.etag, row.last_modified, links)

    def page(self, page: Page) -> None:
        row = self._row(page.url)
        r = page.result
        if page.outcome in ("gone", "failed"):
            what = r.error or r.error_class or "failed"
            if row is None:
                self.warn(f"linked page could not be fetched: {page.url} ({what})")
                return
            with self.db.transaction():
                self._state(row.id, page)
            if page.outcome == "failed":
                self.warn(
                    f"page could not be fetched this run, kept as it was: {page.url} ({what})"
                )
                self.out.post_ids.add(row.id)
            elif not row.gone:
                self.warn(f"page gone: {page.url} ({what}); its assets stay archived")
                with self.db.transaction():
                    self.db.mark_posts_gone([row.id], self.now)
                self.gone.add(row.id)
            return
        self.out.posts += 1
        unchanged = page.outcome == "unchanged" or (
            row is not None
            and row.content_sha256 == page.sha256
            and row.extractor_version == self.version
            and not row.gone
        )
        if row is not None and unchanged:
            with self.db.transaction():
                self.db.touch_post(row.id, self.now)
                self._state(row.id, page)
            self.out.post_ids.add(row.id)
            return
        assert page.html is not None and page.sha256 is not None
        extraction = extract(page.html, "html", base_url=page.base_url)
        for w in extraction.warnings:
            self.warn(f"{page.url}:{w.line}: {w.message}")
        if extraction.skipped:  # not read within its budget: what we held stays
            if row is not None:
                with self.db.transaction():
                    self.db.touch_post(row.id, self.now)
                self.out.post_ids.add(row.id)
            return
        # A live page never names local files: a ``<base href="file:...">`` or a
        # ``file:`` link on a server's page is dropped, never read.
        refs = self.to_rows(
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
        parsed = page.outcome == "parsed"
        self.db.record_page(
            post_id,
            PageAnswer(
                r.http_status,
                r.error,
                r.final_url,
                etag=r.etag,
                last_modified=r.last_modified,
                links=[(link.url, link.pagination) for link in page.links] if parsed else None,
            ),
            self.now,
        )
