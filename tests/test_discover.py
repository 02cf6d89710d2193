"""Discovery pieces on their own: links and pagination, sitemaps, feeds, robots.txt, scope,
and page fetching (``Fetcher.fetch_page``) against a real loopback server."""

from __future__ import annotations

import gzip
import zlib

import anyio
import pytest
from server import LoopbackServer, Reply, conditional

from archiver.clock import FakeClock
from archiver.config import Source
from archiver.net.fetch import Fetcher, FetchSettings, PageResult
from archiver.net.rules import UrlRules
from archiver.net.transport import Http11Transport
from archiver.sources.discover import Link, Scope, page_links
from archiver.sources.robots import Robots, origin, robots_url
from archiver.sources.sitemap import document_kind, gunzip, parse_feed, parse_sitemap

BASE = "https://site.example/events/"


def test_page_links_resolve_and_mark_pagination() -> None:
    html = """<html><head><link rel="next" href="page/2/"><link rel="stylesheet" href="x.css">
    </head><body>
    <a href="meetup-1/#photos">Meetup 1</a> <a href="meetup-1/">again</a>
    <a href="/files/deck.pdf">slides</a> <a href="/img/a.png">pic</a> <a href="/feed.xml">feed</a>
    <a href="mailto:a@b">mail</a> <a href="javascript:void(0)">js</a> <a href="#top">top</a>
    <a href="HTTPS://Site.Example:443/Events/x">case</a> <a href="">empty</a>
    <a href="?page=3">more</a> <a href="/events/older">Older posts</a>
    <a href="/about/">»</a> <a href="/events/archive/" aria-label="Next"></a>
    <nav class="pager"><a href="/events/">1</a> <a href="/events/p2">2</a></nav>
    <p><a href="/events/2019">2019</a></p>
    </body></html>"""
    assert page_links(html, BASE) == [
        Link("https://site.example/events/page/2/", True),
        Link("https://site.example/events/meetup-1/", False),
        Link("https://site.example/Events/x", False),
        Link("https://site.example/events/?page=3", True),
        Link("https://site.example/events/older", True),
        Link("https://site.example/about/", True),
        Link("https://site.example/events/archive/", True),
        Link("https://site.example/events/p2", True),
        Link("https://site.example/events/2019", False),
    ]


def test_page_links_use_base_href() -> None:
    html = '<base href="https://cdn.example/b/"><a href="post/">p</a>'
    assert page_links(html, BASE) == [Link("https://cdn.example/b/post/")]


def test_sitemap_urlset_index_and_text() -> None:
    urlset = b"""<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
      <url><loc> https://s/a </loc></url><url><loc>/b</loc></url><url></url></urlset>"""
    assert parse_sitemap(urlset, "https://s/sitemap.xml").pages == ["https://s/a", "https://s/b"]
    index = b"""<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
      <sitemap><loc>https://s/1.xml.gz</loc></sitemap></sitemapindex>"""
    listing = parse_sitemap(index, "https://s/")
    assert (listing.pages, listing.sitemaps) == ([], ["https://s/1.xml.gz"])
    assert parse_sitemap(b"https://s/a\nhttps://s/b\n", "https://s/").pages == [
        "https://s/a",
        "https://s/b",
    ]
    assert parse_sitemap(b"<urlset><url>", "https://s/").problem is not None
    assert parse_sitemap(b"<html></html>", "https://s/").problem == (
        "a <html> document, not a sitemap"
    )


def test_feeds_rss_rdf_atom() -> None:
    rss = b"""<rss version="2.0"><channel><item><link>https://s/a</link></item>
      <item><guid isPermaLink="false">tag:1</guid></item>
      <item><guid>https://s/c</guid></item></channel></rss>"""
    assert parse_feed(rss, "https://s/").pages == ["https://s/a", "https://s/c"]
    rdf = b"""<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
      xmlns="http://purl.org/rss/1.0/"><item><link>https://s/r</link></item></rdf:RDF>"""
    assert parse_feed(rdf, "https://s/").pages == ["https://s/r"]
    atom = b"""<feed xmlns="http://www.w3.org/2005/Atom">
      <entry><link rel="edit" href="/edit/1"/><link href="/posts/1"/></entry>
      <entry><link rel="enclosure" href="/x.mp3"/></entry></feed>"""
    assert parse_feed(atom, "https://s/feed").pages == ["https://s/posts/1"]


def test_atom_hrefs_resolve_against_xml_base_at_every_level() -> None:
    # RFC 4287 section 2: xml:base on the feed, an entry or a link changes the base, each
    # relative to the one above; without any, the feed's own URL is the base.
    atom = b"""<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://blog.example/">
      <entry><link href="posts/1"/></entry>
      <entry xml:base="2019/"><link href="meetup"/></entry>
      <entry xml:base="https://other.example/a/"><link xml:base="b/" href="c"/></entry>
      <entry><link href="https://abs.example/x"/></entry></feed>"""
    assert parse_feed(atom, "https://s/feed.xml").pages == [
        "https://blog.example/posts/1",
        "https://blog.example/2019/meetup",
        "https://other.example/a/b/c",
        "https://abs.example/x",
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "kind"),
    [
        (b'<?xml version="1.0"?>\n<!-- x --><urlset>', None, "sitemap"),
        (b"\xef\xbb\xbf<sitemapindex>", None, "sitemap"),
        (b"<?xml version='1.0'?><rss version='2.0'>", "text/xml", "feed"),
        (b'<feed xmlns="http://www.w3.org/2005/Atom">', None, "feed"),
        (b"<rdf:RDF>", None, "feed"),
        (b"<!DOCTYPE html>\n<html lang=en>", None, "html"),
        (b"  hello", "text/html", "html"),
        (b"%PDF-1.4", "application/pdf", None),
    ],
)
def test_document_kind_by_content(body: bytes, content_type: str | None, kind: str | None) -> None:
    assert document_kind(body, content_type) == kind


def test_gunzip_caps_what_it_unpacks() -> None:
    assert gunzip(gzip.compress(b"x" * 100), 100) == b"x" * 100
    assert gunzip(gzip.compress(b"x" * 10_000_000), 1000) is None  # a gzip bomb stops early
    assert gunzip(b"\x1f\x8b not gzip", 1000) is None
    assert gunzip(zlib.compress(b"x"), 10) is None


def test_robots() -> None:
    robots = Robots.parse(
        "User-agent: *\nDisallow: /private/\n\nUser-agent: archiver\nDisallow: /x"
    )
    assert robots.allowed("https://s/a", "archiver/1.0 (+https://x)") is True
    assert robots.allowed("https://s/x/y", "archiver/1.0 (+https://x)") is False
    assert robots.allowed("https://s/private/a", "otherbot") is False
    assert Robots.from_status(404).allowed("https://s/private/", "archiver") is True
    assert Robots.from_status(503).allowed("https://s/", "archiver") is False
    assert Robots.from_status(None, "Connection refused").why == (
        "robots.txt could not be fetched (Connection refused)"
    )
    assert origin("HTTPS://S.example:8443/a?b") == "https://s.example:8443"
    assert robots_url("http://s/a/b") == "http://s/robots.txt"


def test_scope() -> None:
    source = Source(
        url="https://www.site.example/events/", include=("/events/",), exclude=("/tags/",)
    )
    scope = Scope.of(source, UrlRules.compile(exclude=["drafts"]))
    assert scope.why_not("http://site.example/events/a") is None  # www and http: same site
    assert scope.why_not("https://cdn.site.example/events/a") == "another site"
    assert scope.why_not("https://site.example/events/tags/x") == "exclude"
    assert scope.why_not("https://site.example/events/drafts/x") == "exclude_urls"
    assert scope.why_not("https://site.example/blog/x") == "not included"
    assert scope.why_not("https://site.example/blog/page/2", pagination=True) is None
    assert (
        scope.with_site("https://site.example:8443/").why_not("https://site.example:8443/events/")
        is None
    )


def fetch(
    server: LoopbackServer,
    path: str,
    *,
    max_size: int = 1000,
    validators: dict[str, str] | None = None,
) -> PageResult:
    settings = FetchSettings(retries=2, connect_timeout=5, read_timeout=5, max_page_size=max_size)

    async def go() -> PageResult:
        async with Fetcher(settings, clock=FakeClock()) as f:
            return await f.fetch_page(server.url(path), validators=validators)

    return anyio.run(go)


def test_page_fetcher_reads_html_that_the_asset_fetcher_would_call_a_soft_404(
    server: LoopbackServer,
) -> None:
    server.route("/p/", Reply(body=b"<html>hi</html>", content_type="text/html; charset=utf-8"))
    page = fetch(server, "/p/")
    assert (page.result.state, page.body, page.result.content_type) == (
        "ok",
        b"<html>hi</html>",
        "text/html",
    )


def test_page_fetcher_retries_and_follows_redirects(server: LoopbackServer) -> None:
    server.route("/busy", Reply(status=503, headers=[("Retry-After", "7")]), Reply.redirect("/p"))
    server.route("/p", Reply(body=b"ok"))
    page = fetch(server, "/busy")
    r = page.result
    assert (r.state, r.attempts, r.final_url, page.body) == ("ok", 2, server.url("/p"), b"ok")


def test_page_fetcher_failures_are_values(server: LoopbackServer) -> None:
    server.route("/a", Reply.redirect("/b"))
    server.route("/b", Reply.redirect("/a"))
    loop = fetch(server, "/a").result
    assert (loop.state, loop.error_class) == ("dead", "redirect-loop")
    server.route("/big", Reply(body=b"x" * 5000))
    big = fetch(server, "/big").result
    assert (big.state, big.error_class, big.transient) == ("error", "too-large", False)
    server.route("/stream", Reply(body=b"x" * 5000, until_close=True))
    assert fetch(server, "/stream").result.error_class == "too-large"
    gone = fetch(server, "/nothing-here").result
    assert (gone.state, gone.http_status, gone.attempts) == ("dead", 404, 1)
    server.route("/down", Reply(status=502))
    down = fetch(server, "/down").result
    assert (down.state, down.attempts, down.transient) == ("error", 3, True)


def test_page_fetcher_conditional(server: LoopbackServer) -> None:
    lm = "Wed, 01 Jan 2025 00:00:00 GMT"
    server.route("/p", conditional(b"<p>", etag='"v1"', last_modified=lm, content_type="text/html"))
    first = fetch(server, "/p")
    assert (first.result.etag, first.result.last_modified) == ('"v1"', lm)
    again = fetch(server, "/p", validators={"If-None-Match": '"v1"'})
    assert again.result.not_modified and again.body == b""


def test_page_fetcher_keeps_no_partial_body(server: LoopbackServer) -> None:
    server.route("/stream", Reply(body=b"x" * 5000, until_close=True))
    big = fetch(server, "/stream")
    assert (big.result.error, big.body) == ("page larger than the max_page_size of 1000 bytes", b"")
    server.route("/cut", Reply(body=b"<html>" + b"x" * 500, length=900))
    cut = fetch(server, "/cut")
    assert (cut.result.error_class, cut.result.attempts, cut.body) == ("truncated", 3, b"")


def test_pages_share_the_fetchers_connections(server: LoopbackServer) -> None:
    for i in range(3):
        server.route(f"/p{i}", Reply(body=b"<p>", content_type="text/html"))
    transport = Http11Transport()

    async def go() -> list[PageResult]:
        async with Fetcher(FetchSettings(), transport=transport, clock=FakeClock()) as f:
            pages = [await f.fetch_page(server.url(f"/p{i}")) for i in range(3)]
            return [*pages, await f.fetch_page("ftp://site.example/p")]

    *pages, ftp = anyio.run(go)
    assert [(p.result.state, p.body) for p in pages] == [("ok", b"<p>")] * 3
    assert transport.connections_opened == 1
    assert (ftp.result.state, ftp.result.error_class) == ("dead", "bad-url")
