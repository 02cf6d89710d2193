"""A small live site on loopback for discovery tests: listing pages, posts, sitemaps, feeds.

``build_site(server, cdn)`` scripts ``server`` (127.0.0.1) as an events site and
``cdn`` (127.0.0.2) as another host serving some of its assets. The layout, and
what each part is there to prove:

    /robots.txt                  disallows /private/
    /events/                     listing page 1: posts, a "Next »" link, a PDF, traps
    /events/page/2/              listing page 2: <link rel=next>, a "Prev" link back
    /events/page/3/              listing page 3: numbered pager
    /events/meetup-1/ .. -4/     posts: relative and absolute links, <base href>, srcset,
                                 data-src, data-original, og:image; 1 and 2 link to each
                                 other (a cycle)
    /private/secret/             a post robots.txt forbids
    /loop/a <-> /loop/b          a redirect loop between pages
    /big/                        a page over the size cap of ``site_config``
    /data                        a JSON document behind an extension-less link
    /sitemap_index.xml           a sitemap index -> /sitemaps/posts.xml.gz (gzipped)
    /index.xml, /atom.xml        RSS 2.0 and Atom feeds

``Site`` names the expected posts and asset URLs so tests can assert exact sets.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import media
from server import LoopbackServer, Reply, conditional

from archiver.config import Config, FetchConfig

PDF = media.deck("slides", 1400)
PNG = media.picture("PNG", 1)
JPEG = media.picture("JPEG", 2)
WEBP = media.picture("WEBP", 3)
LAST_MODIFIED = "Wed, 01 Jan 2025 00:00:00 GMT"
PAGE_CAP = 64 * 1024  # max_page_size in ``site_config``


def page(title: str, body: str, head: str = "") -> bytes:
    return (
        f"<!doctype html>\n<html><head><title>{title}</title>{head}</head>\n"
        f"<body>\n<h1>{title}</h1>\n{body}\n</body></html>\n"
    ).encode()


def site_config(tmp_path: Path, **kw: object) -> Config:
    cfg = Config(
        db=tmp_path / "state" / "archive.db",
        store=tmp_path / "state" / "store",
        fetch=FetchConfig(retries=2, connect_timeout=5, read_timeout=5, max_page_size=PAGE_CAP),
    )
    return replace(cfg, **kw)  # type: ignore[arg-type]


@dataclass
class Site:
    """URLs of the site, and what discovery must find from each entry point."""

    server: LoopbackServer
    cdn: LoopbackServer
    pages: dict[str, bytes] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.server.url(path)

    @property
    def listing(self) -> str:
        return self.url("/events/")

    @property
    def listing_pages(self) -> set[str]:
        return {self.url(p) for p in ("/events/", "/events/page/2/", "/events/page/3/")}

    @property
    def posts(self) -> set[str]:
        return {self.url(f"/events/meetup-{i}/") for i in (1, 2, 3, 4)}

    def assets_of(self, post: str) -> set[str]:
        """The asset URLs each page refers to, exactly."""
        s, c = self.url, self.cdn.url
        return {
            s("/events/"): {s("/files/deck0.pdf"), s("/img/thumb1.png")},
            s("/events/page/2/"): set(),
            s("/events/page/3/"): set(),
            s("/events/meetup-1/"): {s("/img/m1.png"), s("/files/m1.pdf"), c("/cdn/og1.jpg")},
            s("/events/meetup-2/"): {
                s("/static/m2/cover.png"),
                s("/static/m2/a.png"),
                s("/static/m2/b.png"),
            },
            s("/events/meetup-3/"): {s("/img/lazy3.jpg"), s("/img/orig3.webp")},
            s("/events/meetup-4/"): {c("/cdn/m4.pdf")},
            s("/private/secret/"): {s("/files/secret.pdf")},
        }[post]

    def serve_page(self, path: str, body: bytes) -> None:
        """Serves an HTML page that honours conditional requests."""
        self.pages[path] = body
        self.server.route(
            path,
            conditional(
                body,
                etag=f'"{hashlib.sha256(body).hexdigest()[:12]}"',
                last_modified=LAST_MODIFIED,
                content_type="text/html; charset=utf-8",
            ),
        )


def build_site(server: LoopbackServer, cdn: LoopbackServer) -> Site:
    site = Site(server, cdn)
    s, c = server.url, cdn.url
    server.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /private/\n"))
    site.serve_page(
        "/events/",
        page(
            "Events",
            f"""<ul>
  <li><a href="meetup-1/"><img src="/img/thumb1.png" alt="">Meetup 1</a></li>
  <li><a href="/events/meetup-2/#top">Meetup 2</a></li>
  <li><a href="{s("/private/secret/")}">Members only</a></li>
  <li><a href="{c("/elsewhere/")}">Another site</a></li>
  <li><a href="/files/deck0.pdf">All slides</a></li>
  <li><a href="/loop/a">Moved</a> <a href="/big/">Photo wall</a> <a href="/data">Data</a></li>
  <li><a href="mailto:events@example.org">Mail us</a> <a href="#">Top</a></li>
</ul>
<nav><a href="page/2/">Next »</a></nav>""",
        ),
    )
    site.serve_page(
        "/events/page/2/",
        page(
            "Events, page 2",
            '<a href="/events/meetup-3/">Meetup 3</a>\n<a href="/events/">Prev</a>',
            head='<link rel="next" href="/events/page/3/">',
        ),
    )
    site.serve_page(
        "/events/page/3/",
        page(
            "Events, page 3",
            '<a href="/events/meetup-4/">Meetup 4</a>\n'
            '<div class="pagination"><a href="/events/">1</a> <a href="/events/page/2/">2</a>'
            " <span>3</span></div>",
        ),
    )
    site.serve_page(
        "/events/meetup-1/",
        page(
            "Meetup 1",
            '<img src="../../img/m1.png" alt="room">\n'
            '<p><a href="/files/m1.pdf">Slides</a>; see also <a href="../meetup-2/">Meetup 2</a>'
            ' and <a href="/events/">all events</a></p>',
            head=f'<meta property="og:image" content="{c("/cdn/og1.jpg")}">',
        ),
    )
    site.serve_page(
        "/events/meetup-2/",
        page(
            "Meetup 2",
            '<img src="cover.png" srcset="a.png 1x, b.png 2x" alt="cover">\n'
            '<a href="/events/meetup-1/">Meetup 1</a>',
            head='<base href="/static/m2/">',
        ),
    )
    site.serve_page(
        "/events/meetup-3/",
        page(
            "Meetup 3",
            '<img class="lazy" data-src="/img/lazy3.jpg"'
            ' src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">\n'
            '<img data-original="/img/orig3.webp">',
        ),
    )
    site.serve_page(
        "/events/meetup-4/",
        page("Meetup 4", f'<a href="{c("/cdn/m4.pdf")}">Slides (PDF)</a>'),
    )
    site.serve_page(
        "/private/secret/", page("Secret", '<a href="/files/secret.pdf">Secret slides</a>')
    )
    server.route("/loop/a", Reply.redirect("/loop/b"))
    server.route("/loop/b", Reply.redirect("/loop/a"))
    filler = "<p>" + "photo " * (PAGE_CAP // 5) + "</p>"
    server.route("/big/", Reply(body=page("Photo wall", filler), content_type="text/html"))
    server.route("/data", Reply(body=b'{"events": []}', content_type="application/json"))
    # Assets.
    for path, body, kind in (
        ("/files/deck0.pdf", PDF, "application/pdf"),
        ("/files/m1.pdf", PDF + b"m1", "application/pdf"),
        ("/files/secret.pdf", PDF + b"secret", "application/pdf"),
        ("/img/thumb1.png", PNG + b"t", "image/png"),
        ("/img/m1.png", PNG + b"1", "image/png"),
        ("/static/m2/cover.png", PNG + b"c", "image/png"),
        ("/static/m2/a.png", PNG + b"a", "image/png"),
        ("/static/m2/b.png", PNG + b"b", "image/png"),
        ("/img/lazy3.jpg", JPEG, "image/jpeg"),
        ("/img/orig3.webp", WEBP, "image/webp"),
    ):
        server.route(path, Reply(body=body, content_type=kind))
    cdn.route("/cdn/og1.jpg", Reply(body=JPEG + b"og", content_type="image/jpeg"))
    cdn.route("/cdn/m4.pdf", Reply(body=PDF + b"m4", content_type="application/pdf"))
    # Sitemaps and feeds.
    posts_xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        f"  <url><loc>{s('/events/meetup-1/')}</loc><lastmod>2025-01-01</lastmod></url>\n"
        f"  <url><loc>{s('/events/meetup-3/')}</loc></url>\n"
        f"  <url><loc>{s('/private/secret/')}</loc></url>\n"
        f"  <url><loc>{c('/elsewhere/')}</loc></url>\n"
        "</urlset>\n"
    ).encode()
    server.route(
        "/sitemaps/posts.xml.gz",
        Reply(body=gzip.compress(posts_xml, mtime=0), content_type="application/gzip"),
    )
    server.route(
        "/sitemap_index.xml",
        Reply(
            body=(
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
                f"  <sitemap><loc>{s('/sitemaps/posts.xml.gz')}</loc></sitemap>\n"
                f"  <sitemap><loc>{s('/sitemap_index.xml')}</loc></sitemap>\n"
                "</sitemapindex>\n"
            ).encode(),
            content_type="application/xml",
        ),
    )
    server.route(
        "/index.xml",
        Reply(
            body=(
                '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>\n'
                "<title>Events</title><link>/</link>\n"
                f"<item><title>Meetup 2</title><link>{s('/events/meetup-2/')}</link></item>\n"
                f"<item><title>Meetup 4</title><guid>{s('/events/meetup-4/')}</guid></item>\n"
                "</channel></rss>\n"
            ).encode(),
            content_type="application/rss+xml",
        ),
    )
    server.route(
        "/atom.xml",
        Reply(
            body=(
                '<?xml version="1.0" encoding="utf-8"?>\n'
                '<feed xmlns="http://www.w3.org/2005/Atom"><title>Events</title>\n'
                '<link rel="self" href="/atom.xml"/>\n'
                '<entry><title>Meetup 1</title><link rel="alternate" href="/events/meetup-1/"/>'
                "</entry>\n"
                f'<entry><title>Meetup 3</title><link href="{s("/events/meetup-3/")}"/></entry>\n'
                "</feed>\n"
            ).encode(),
            content_type="application/atom+xml",
        ),
    )
    return site
