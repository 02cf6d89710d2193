"""Discovering the posts of a live site: from a listing page, a sitemap or a feed to pages.

Owns the walk over a site: its scope (same site, ``include``/``exclude``, the
global ``exclude_urls``, ``max_depth``, ``max_pages``), following links and
pagination, reading sitemaps (indexes and gzipped ones too) and feeds,
honouring robots.txt, and the visited set that keeps link cycles and redirects
between pages from running forever. Pages are fetched with ``Fetcher.fetch_page``; what a
page refers to is ``extract``'s business and what to remember is the caller's:
this module never touches the database or the store. Every HTML page reached is
handed to the caller as a ``Page``, in a deterministic order.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin, urlsplit

import anyio
from bs4 import BeautifulSoup, Tag
from bs4.dammit import UnicodeDammit

from archiver.config import Source
from archiver.extract import is_asset_url, normalize_url
from archiver.net.fetch import Fetcher, FetchResult, PageResult
from archiver.net.rules import UrlRules, compile_pattern
from archiver.sources.robots import Robots, origin, robots_url
from archiver.sources.sitemap import (
    Listing,
    document_kind,
    gunzip,
    is_gzip,
    parse_feed,
    parse_sitemap,
)

__all__ = ["Discovery", "Known", "Link", "Outcome", "Page", "Scope", "page_links"]

#: What a URL is expected to be: ``auto`` is decided from the response.
Role = Literal["auto", "listing", "page", "post", "sitemap", "feed"]

# Links to these are files, not pages: never fetched as pages (assets are extracted instead).
_NOT_PAGES = frozenset(
    {
        "7z", "apk", "avi", "css", "csv", "dmg", "doc", "docx", "epub", "exe", "gz", "ics",
        "iso", "jar", "js", "json", "key", "m4a", "mkv", "mov", "mp3", "mp4", "odp", "ods",
        "odt", "ogg", "pps", "ppsx", "ppt", "pptx", "rar", "rss", "tar", "tgz", "txt", "wav",
        "webm", "woff", "woff2", "xls", "xlsx", "xml", "zip",
    }
)  # fmt: skip
_SKIP_SCHEMES = ("mailto:", "javascript:", "tel:", "data:", "#")
# Anchor texts of "next page" / "previous page" links, in the languages of the corpus.
_PAGER_TEXT = re.compile(
    r"(?:next|prev|previous|older|newer|more|next page|previous page|older posts|newer posts"
    r"|older entries|newer entries|load more|下一页|上一页|下页|上页|后一页|前一页|更多"
    r"|[›»→>]+|[‹«←<]+|(?:next|older|newer|prev)\s*[›»→>‹«←<]+|[‹«←<]+\s*(?:prev|newer))",
    re.IGNORECASE,
)
_PAGER_URL = re.compile(r"/page/\d+/?$|[?&](?:page|paged|p|pg)=\d+(?:&|$)", re.IGNORECASE)
_PAGER_CLASS = re.compile(r"pag(?:e|ing|ination|er)|nav", re.IGNORECASE)
_MAX_SITEMAP_NESTING = 4  # an index of indexes of indexes is already unusual
_ROLES: dict[str | None, Role] = {
    None: "auto",
    "listing": "listing",
    "post": "post",
    "sitemap": "sitemap",
    "feed": "feed",
}


@dataclass(frozen=True)
class Link:
    """A link found on a page: absolute, normalised, and whether it leads to the next page."""

    url: str
    pagination: bool = False


@dataclass(frozen=True)
class Known:
    """What an earlier run learnt about a page: validators to ask with, and the links it had."""

    etag: str | None = None
    last_modified: str | None = None
    links: tuple[Link, ...] = ()


@dataclass
class Page:
    """One HTML page reached, as the caller should record it.

    ``outcome`` is ``parsed`` (``html`` holds the text), ``unchanged`` (a 304 to
    our validators), ``gone`` (a permanent failure: 404, 410, redirect loop, unknown
    host) or ``failed`` (worth trying again next run: 5xx, timeout, too large).
    """

    url: str  # as discovered, normalised: the post's path
    depth: int
    result: FetchResult
    outcome: Literal["parsed", "unchanged", "gone", "failed"]
    html: str | None = None
    sha256: str | None = None
    links: tuple[Link, ...] = ()

    @property
    def base_url(self) -> str:
        """Where the page was in the end: relative links resolve against it."""
        return self.result.final_url or self.url


@dataclass
class Outcome:
    """How a source's discovery ended. Pages not reached are gone only when ``complete``."""

    complete: bool = True
    fetched: int = 0
    pages: int = 0
    problems: list[str] = field(default_factory=list)


def _extension(url: str) -> str:
    segment = urlsplit(url).path.rsplit("/", 1)[-1]
    return segment.rsplit(".", 1)[-1].lower() if "." in segment else ""


def _normal(url: str) -> str | None:
    try:
        normal = normalize_url(url)
    except ValueError:
        return None
    return normal if urlsplit(normal).scheme in ("http", "https") else None


def _site_key(url: str) -> str:
    """Host and port, without a leading ``www.``: http/https and www are the same site."""
    netloc = urlsplit(url).netloc.lower().rsplit("@", 1)[-1]
    return netloc.removeprefix("www.")


def page_links(html: str, page_url: str) -> list[Link]:
    """The links of an HTML page that could lead to other pages, in document order.

    Resolves against ``<base href>``; drops fragments, non-http(s) links, and links to
    files (PDFs, images, archives...). ``rel=next``/``prev``, pager texts ("next",
    "»", "下一页"), ``/page/N`` URLs and numbers inside a pager mark pagination.
    """
    soup = BeautifulSoup(html, "html.parser")
    base = page_url
    base_tag = soup.find("base", href=True)
    if isinstance(base_tag, Tag):
        base = urljoin(page_url, str(base_tag.get("href", "")).strip())
    out: list[Link] = []
    seen: set[str] = set()
    for tag in soup.find_all(["a", "area", "link"], href=True):
        if not isinstance(tag, Tag):
            continue
        rel = {r.lower() for r in (tag.get_attribute_list("rel") or []) if r}
        if tag.name == "link" and not rel & {"next", "prev", "previous"}:
            continue  # stylesheets, icons, feeds: not pages to follow
        href = str(tag.get("href", "")).strip()
        if not href or href.lower().startswith(_SKIP_SCHEMES):
            continue
        url = _normal(urljoin(base, href))
        if url is None or url in seen or url == _normal(page_url):
            continue
        if is_asset_url(url) or _extension(url) in _NOT_PAGES:
            continue
        seen.add(url)
        out.append(Link(url, _is_pager(tag, rel, url)))
    return out


def _is_pager(tag: Tag, rel: set[str], url: str) -> bool:
    if rel & {"next", "prev", "previous"} or _PAGER_URL.search(url):
        return True
    text = " ".join(tag.get_text(" ", strip=True).split())
    if not text:
        text = str(tag.get("aria-label") or tag.get("title") or "").strip()
    if _PAGER_TEXT.fullmatch(text):
        return True
    if text.isdigit() and len(text) <= 4:  # "1 2 3 ... 9" inside a pager
        for element in (tag, *list(tag.parents)[:3]):
            classes = " ".join(element.get_attribute_list("class") or [])
            if _PAGER_CLASS.search(classes) or element.name == "nav":
                return True
    return False


@dataclass(frozen=True)
class Scope:
    """Which URLs of a source may be fetched as pages."""

    sites: frozenset[str]
    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()
    rules: UrlRules = field(default_factory=UrlRules)

    @classmethod
    def of(cls, source: Source, rules: UrlRules) -> Scope:
        assert source.url is not None
        return cls(
            sites=frozenset({_site_key(source.url)}),
            include=tuple(
                compile_pattern(f"include[{i}]", p) for i, p in enumerate(source.include)
            ),
            exclude=tuple(
                compile_pattern(f"exclude[{i}]", p) for i, p in enumerate(source.exclude)
            ),
            rules=rules,
        )

    def with_site(self, url: str) -> Scope:
        """The scope widened to another name of the same site (the source redirected there)."""
        return Scope(self.sites | {_site_key(url)}, self.include, self.exclude, self.rules)

    def why_not(self, url: str, *, pagination: bool = False) -> str | None:
        """None when ``url`` is in scope, else a short reason; a pager skips ``include``."""
        if _site_key(url) not in self.sites:
            return "another site"
        if self.rules.excluded(url):
            return "exclude_urls"
        if any(p.search(url) for p in self.exclude):
            return "exclude"
        if self.include and not pagination and not any(p.search(url) for p in self.include):
            return "not included"
        return None


@dataclass(frozen=True)
class _Item:
    url: str
    role: Role
    depth: int
    nesting: int = 0  # sitemap index levels above this sitemap


class Discovery:
    """One source's walk; ``run`` hands each HTML page to ``on_page`` and says how it ended."""

    def __init__(
        self,
        source: Source,
        fetcher: Fetcher,
        *,
        on_page: Callable[[Page], None],
        known: Callable[[str], Known | None],
        warn: Callable[[str], None],
        rules: UrlRules | None = None,
        ignore_robots: bool = False,
    ) -> None:
        if source.url is None:
            raise ValueError("Discovery needs a url source")
        self.source = source
        self.fetcher = fetcher
        self.on_page = on_page
        self.known = known
        self.warn = warn
        self.scope = Scope.of(source, rules or UrlRules())
        self.ignore_robots = ignore_robots or source.ignore_robots
        self.outcome = Outcome()
        self._visited: set[str] = set()
        self._robots: dict[str, Robots] = {}
        self._skipped: Counter[str] = Counter()
        self._example: dict[str, str] = {}

    async def run(self) -> Outcome:
        """Walks the source in waves (all fetches of a wave run concurrently) until done."""
        assert self.source.url is not None
        start = _normal(self.source.url)
        if start is None:
            self._incomplete(f"{self.source.url}: not a URL that can be crawled")
            return self.outcome
        role = _ROLES[self.source.kind]
        self._visited.add(start)
        wave = [_Item(start, role, 0)]
        while wave:
            wave = await self._wave(wave)
        self._report_skipped()
        return self.outcome

    # -- one wave -----------------------------------------------------------------

    async def _wave(self, items: list[_Item]) -> list[_Item]:
        """Fetches ``items`` and returns what they lead to, in a deterministic order."""
        budget = self.source.max_pages - self.outcome.fetched
        if len(items) > budget:
            self._incomplete(
                f"{self.source.url}: stopped after max_pages={self.source.max_pages} pages;"
                " pages not reached are kept as they were (raise max_pages to go further)"
            )
            items = items[: max(budget, 0)]
        # In batches, so that only a batch of page bodies is ever held in memory at once.
        step = max(1, 2 * self.fetcher.settings.concurrency)
        following: list[_Item] = []
        for start in range(0, len(items), step):
            following.extend(await self._batch(items[start : start + step]))
        return following

    async def _batch(self, items: list[_Item]) -> list[_Item]:
        """Fetches ``items`` concurrently, then handles them in order."""
        await self._load_robots({origin(i.url) for i in items})
        allowed = [i for i in items if self._robots_allow(i)]
        responses: list[PageResult | None] = [None] * len(allowed)

        async def fetch(index: int, item: _Item) -> None:
            known = self._known(item)
            validators: dict[str, str] = {}
            if known is not None and known.etag:
                validators["If-None-Match"] = known.etag
            if known is not None and known.last_modified:
                validators["If-Modified-Since"] = known.last_modified
            responses[index] = await self.fetcher.fetch_page(
                item.url, validators=validators, stay=self._on_site
            )

        async with anyio.create_task_group() as tg:
            for index, item in enumerate(allowed):
                tg.start_soon(fetch, index, item)
        self.outcome.fetched += len(allowed)
        following: list[_Item] = []
        for item, response in zip(allowed, responses, strict=True):
            assert response is not None
            following.extend(self._handle(item, response))
        return following

    def _on_site(self, url: str) -> bool:
        """Whether a redirect to ``url`` stays on the site: one off it is never followed."""
        return _site_key(url) in self.scope.sites

    def _known(self, item: _Item) -> Known | None:
        # Only HTML pages are remembered; sitemaps and feeds are read whole every run.
        return self.known(item.url) if item.role in ("auto", "listing", "page", "post") else None

    def _handle(self, item: _Item, response: PageResult) -> list[_Item]:
        result = response.result
        is_source = item.depth == 0 and item.role in ("auto", "listing", "page", "post", "feed")
        final = _normal(result.final_url or item.url) or item.url
        if final != item.url:
            if item.depth == 0:  # the source moved within its site (https, www.): same site
                self.scope = self.scope.with_site(final)
            elif final in self._visited and result.state == "ok":
                return []  # two links to one page: the first one reached records it
            self._visited.add(final)
        if result.state != "ok":
            return self._failed(item, result, is_source)
        if result.not_modified:
            known = self._known(item)
            links = known.links if known is not None else ()
            self._page(Page(item.url, item.depth, result, "unchanged", links=links))
            # Only HTML pages are asked conditionally, so an unchanged source is a listing.
            role: Role = "listing" if item.role == "auto" else item.role
            return self._follow(_Item(item.url, role, item.depth), links)
        body = response.body
        if is_gzip(body):
            unpacked = gunzip(body, self.fetcher.settings.max_page_size)
            if unpacked is None:
                return self._failed_document(item, "a damaged or oversized gzip file")
            body = unpacked
        kind = document_kind(body, result.content_type)
        role = item.role
        if role == "auto":
            role = "listing" if kind == "html" else kind or "auto"
        if role == "sitemap":
            return self._sitemap(item, parse_sitemap(body, final))
        if role == "feed":
            return self._listing_doc(item, parse_feed(body, final), "feed")
        if kind != "html":
            if item.depth == 0:
                got = result.content_type or "an unknown type"
                return self._failed_document(item, f"not an HTML page, sitemap or feed ({got})")
            self._skip("not HTML", item.url)
            return []
        html = _decode(body, result)
        links = tuple(page_links(html, final))
        sha = hashlib.sha256(body).hexdigest()
        self._page(Page(item.url, item.depth, result, "parsed", html, sha, links))
        return self._follow(_Item(item.url, role, item.depth), links)

    def _follow(self, item: _Item, links: Iterable[Link]) -> list[_Item]:
        """The pages ``links`` lead to that are in scope and not yet visited."""
        if item.role == "post" or item.role == "auto":
            return []
        out = []
        for link in links:
            pager = link.pagination and item.role == "listing"
            depth = item.depth if pager else item.depth + 1
            if depth > self.source.max_depth:
                continue
            if link.url in self._visited:
                continue
            reason = self.scope.why_not(link.url, pagination=pager)
            if reason is not None:
                if reason != "another site":
                    self._skip(reason, link.url)
                continue
            self._visited.add(link.url)
            out.append(_Item(link.url, "listing" if pager else "page", depth))
        return out

    def _sitemap(self, item: _Item, listing: Listing) -> list[_Item]:
        if listing.problem is not None:
            return self._failed_document(item, listing.problem)
        out = self._listing_doc(item, listing, "sitemap")
        for url in listing.sitemaps:
            child = _normal(url)
            if child is None or child in self._visited:
                continue
            if item.nesting + 1 >= _MAX_SITEMAP_NESTING:
                self._skip("sitemap nesting", child)
                continue
            self._visited.add(child)
            out.append(_Item(child, "sitemap", item.depth, item.nesting + 1))
        return out

    def _listing_doc(self, item: _Item, listing: Listing, what: str) -> list[_Item]:
        """The pages a sitemap or feed lists, each a post read on its own."""
        if listing.problem is not None:
            return self._failed_document(item, f"not a readable {what}: {listing.problem}")
        out = []
        for url in listing.pages:
            page = _normal(url)
            if page is None or page in self._visited:
                continue
            reason = self.scope.why_not(page)
            if reason is not None:
                self._skip(reason, page)
                continue
            self._visited.add(page)
            out.append(_Item(page, "post", item.depth + 1))
        return out

    def _failed(self, item: _Item, result: FetchResult, is_source: bool) -> list[_Item]:
        """A page that did not come: gone for good, or to be tried again next run."""
        what = result.error or result.error_class or "failed"
        if is_source or item.role in ("sitemap", "feed"):
            return self._failed_document(item, what)
        gone = result.state == "dead"
        self._page(Page(item.url, item.depth, result, "gone" if gone else "failed"))
        if gone:
            return []
        # Keep walking through what the page linked to last time, so that a page down
        # for one run does not make everything behind it look gone.
        known = self._known(item)
        return self._follow(item, known.links if known is not None else ())

    def _failed_document(self, item: _Item, why: str) -> list[_Item]:
        """A source page, sitemap or feed that could not be read: nothing is known gone."""
        self._incomplete(f"{item.url}: {why}; pages found before are kept as they were")
        known = self._known(item)
        if known is not None and item.role in ("auto", "listing", "page"):
            return self._follow(_Item(item.url, "listing", item.depth), known.links)
        return []

    def _page(self, page: Page) -> None:
        self.outcome.pages += 1
        self.on_page(page)

    # -- robots.txt -----------------------------------------------------------------

    async def _load_robots(self, origins: set[str]) -> None:
        if self.ignore_robots:
            return
        missing = sorted(o for o in origins if o not in self._robots)

        async def load(o: str) -> None:
            response = await self.fetcher.fetch_page(robots_url(o), stay=self._on_site)
            r = response.result
            if r.state == "ok" and not r.not_modified:
                text = response.body.decode("utf-8", "replace")
                self._robots[o] = Robots.parse(text)
            else:
                self._robots[o] = Robots.from_status(r.http_status, r.error)

        async with anyio.create_task_group() as tg:
            for o in missing:
                tg.start_soon(load, o)
        for o in missing:
            robots = self._robots[o]
            if robots.groups is None and not robots.allow_all:
                self._incomplete(
                    f"{o}: {robots.why}; its pages are not fetched this run"
                    " (RFC 9309; --ignore-robots to crawl anyway)"
                )

    def _robots_allow(self, item: _Item) -> bool:
        if self.ignore_robots:
            return True
        robots = self._robots[origin(item.url)]
        if robots.allowed(item.url, self.fetcher.settings.user_agent):
            return True
        self._skip("robots.txt", item.url)
        return False

    # -- reporting --------------------------------------------------------------------

    def _incomplete(self, message: str) -> None:
        self.outcome.complete = False
        self.outcome.problems.append(message)
        self.warn(message)

    def _skip(self, reason: str, url: str) -> None:
        self._skipped[reason] += 1
        self._example.setdefault(reason, url)

    def _report_skipped(self) -> None:
        for reason, n in sorted(self._skipped.items()):
            if reason in ("exclude", "exclude_urls", "not included"):
                continue  # the user asked for these: not worth a warning
            hint = " (--ignore-robots to fetch them)" if reason == "robots.txt" else ""
            self.warn(
                f"{self.source.url}: skipped {n} page{'s' if n != 1 else ''}: {reason}{hint},"
                f" e.g. {self._example[reason]}"
            )


def _decode(body: bytes, result: FetchResult) -> str:
    """The page's text: the charset the server named, else what the page says, else guessed."""
    charset = None
    for name, value in result.headers:
        if name.lower() == "content-type" and "charset=" in value.lower():
            charset = value.lower().split("charset=", 1)[1].split(";")[0].strip(" \"'")
    dammit = UnicodeDammit(
        body, known_definite_encodings=[charset] if charset else [], is_html=True
    )
    return dammit.unicode_markup or body.decode("utf-8", "replace")
