"""End to end: crawling a live site on loopback (listing, sitemap, feeds) into a real database."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from server import LoopbackServer, Reply
from site_fixture import PDF, Site, build_site, page, site_config

from archiver.cli import cli
from archiver.clock import FakeClock
from archiver.config import Config, Source
from archiver.db import Database
from archiver.ops.report import ReportFilter, row_dict, url_rows
from archiver.run.crawl import RunSummary, crawl


@pytest.fixture
def site(server: LoopbackServer, server2: LoopbackServer) -> Site:
    return build_site(server, server2)


def run(
    cfg: Config, source: Source, clock: FakeClock | None = None, **kw: object
) -> tuple[RunSummary, list[str]]:
    warnings: list[str] = []
    summary = crawl(cfg, [source], clock=clock or FakeClock(), warn=warnings.append, **kw)  # type: ignore[arg-type]
    return summary, warnings


def posts(cfg: Config, source: str, *, gone: bool = False) -> dict[str, set[str]]:
    """Each live (or gone) post of a source with the URLs it refers to."""
    db = Database(cfg.db)
    try:
        rows = db.rows(
            "SELECT p.id, p.path FROM posts p WHERE p.source=? AND (p.gone_since IS NOT NULL)=?",
            (source, gone),
        )
        return {
            r["path"]: {
                u["url"]
                for u in db.rows(
                    "SELECT u.url FROM refs JOIN urls u ON u.id = refs.url_id WHERE post_id=?",
                    (r["id"],),
                )
            }
            for r in rows
        }
    finally:
        db.close()


def expected(site: Site, pages: set[str]) -> dict[str, set[str]]:
    return {p: site.assets_of(p) for p in pages}


def test_listing_follows_posts_and_pagination_within_scope(tmp_path: Path, site: Site) -> None:
    cfg = site_config(tmp_path)
    cfg = replace(cfg, fetch=replace(cfg.fetch, per_host=2))
    summary, warnings = run(cfg, Source(url=site.listing))
    assert site.server.max_in_flight <= 2  # pages keep the per-host limit too
    assert posts(cfg, site.listing) == expected(site, site.listing_pages | site.posts)
    assert summary.posts == 7 and summary.posts_parsed == 7
    assert summary.counts == {"ok": 11} and summary.exit_code == 0
    # Every page was asked for once: the cycle 1 <-> 2 and the links back to page 1 end.
    for path in ("/events/", "/events/page/2/", "/events/meetup-1/", "/events/meetup-2/"):
        assert site.server.stats(path).hits == 1, path
    # Assets are never fetched as pages, and forbidden or foreign pages not at all.
    assert site.server.stats("/files/deck0.pdf").hits == 1
    assert site.server.stats("/private/secret/").hits == 0
    assert site.cdn.stats("/elsewhere/").hits == 0
    loop, big, data = site.url("/loop/a"), site.url("/big/"), site.url("/data")
    assert warnings == [
        f"linked page could not be fetched: {loop} (redirect loop via {loop})",
        f"linked page could not be fetched: {big} (page larger than the max_page_size"
        " of 65536 bytes)",
        f"{site.listing}: skipped 1 page: not HTML, e.g. {data}",
        f"{site.listing}: skipped 1 page: robots.txt (--ignore-robots to fetch them),"
        f" e.g. {site.url('/private/secret/')}",
    ]
    # The oversized page was abandoned at the cap, not read to the end.
    assert site.server.stats("/big/").bytes_sent < 2 * 65536


def test_assets_are_archived_and_reported_with_the_page_as_post(tmp_path: Path, site: Site) -> None:
    cfg = site_config(tmp_path)
    run(cfg, Source(url=site.listing))
    db = Database(cfg.db)
    rows = {r["url"]: r for r in map(row_dict, url_rows(db, ReportFilter(states=("ok",))))}
    db.close()
    og = site.cdn.url("/cdn/og1.jpg")
    assert rows[og]["posts"] == [
        {
            "source": site.listing,
            "path": site.url("/events/meetup-1/"),
            "line": 2,
            "kind": "html-meta",
        }
    ]
    digest = hashlib.sha256(PDF + b"m4").hexdigest()
    assert (cfg.store / digest[:2] / digest).exists()


def test_sitemap_index_with_a_gzipped_sitemap(tmp_path: Path, site: Site) -> None:
    cfg = site_config(tmp_path)
    source = site.url("/sitemap_index.xml")
    _, warnings = run(cfg, Source(url=source))
    pages = {site.url("/events/meetup-1/"), site.url("/events/meetup-3/")}
    assert posts(cfg, source) == expected(site, pages)
    # Posts from a sitemap are read on their own: their links are not followed.
    assert site.server.stats("/events/meetup-2/").hits == 0
    assert site.server.stats("/sitemap_index.xml").hits == 1  # it lists itself: no loop
    assert warnings == [
        f"{source}: skipped 1 page: another site, e.g. {site.cdn.url('/elsewhere/')}",
        f"{source}: skipped 1 page: robots.txt (--ignore-robots to fetch them),"
        f" e.g. {site.url('/private/secret/')}",
    ]


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("/index.xml", ("/events/meetup-2/", "/events/meetup-4/")),
        ("/atom.xml", ("/events/meetup-1/", "/events/meetup-3/")),
    ],
)
def test_rss_and_atom_feeds_give_posts(
    tmp_path: Path, site: Site, path: str, found: tuple[str, ...]
) -> None:
    cfg = site_config(tmp_path)
    source = site.url(path)
    _, warnings = run(cfg, Source(url=source))
    assert posts(cfg, source) == expected(site, {site.url(p) for p in found})
    assert warnings == []


def test_kind_given_in_the_config_wins(tmp_path: Path, site: Site) -> None:
    cfg = site_config(tmp_path)
    one = site.url("/events/meetup-1/")
    run(cfg, Source(url=one, kind="post"))
    assert posts(cfg, one) == expected(site, {one})
    assert site.server.stats("/events/meetup-2/").hits == 0


def test_scope_depth_pages_include_exclude(tmp_path: Path, site: Site) -> None:
    cfg = site_config(tmp_path)
    # Depth 0: the listing and its pagination only.
    run(cfg, Source(url=site.listing, max_depth=0))
    assert set(posts(cfg, site.listing)) == site.listing_pages
    # include narrows what is followed (pagination excepted), exclude removes.
    cfg2 = site_config(tmp_path / "2")
    src = Source(url=site.listing, include=(r"/meetup-\d+/$",), exclude=(r"meetup-4",))
    run(cfg2, src)
    meetups = {site.url(f"/events/meetup-{i}/") for i in (1, 2, 3)}
    assert set(posts(cfg2, site.listing)) == site.listing_pages | meetups
    # max_pages stops the walk, and says so.
    cfg3 = site_config(tmp_path / "3")
    summary, warnings = run(cfg3, Source(url=site.listing, max_pages=3))
    assert summary.posts == 3
    assert f"{site.listing}: stopped after max_pages=3 pages" in warnings[0]


def test_ignore_robots(tmp_path: Path, site: Site) -> None:
    cfg = site_config(tmp_path)
    run(cfg, Source(url=site.listing), ignore_robots=True)
    secret = site.url("/private/secret/")
    assert posts(cfg, site.listing)[secret] == {site.url("/files/secret.pdf")}
    assert site.server.stats("/robots.txt").hits == 0


def test_unreachable_robots_txt_fetches_nothing_and_loses_nothing(
    tmp_path: Path, site: Site
) -> None:
    cfg = site_config(tmp_path)
    clock = FakeClock()
    run(cfg, Source(url=site.listing), clock)
    site.server.route("/robots.txt", Reply(status=503))
    clock.advance(86400)
    _, warnings = run(cfg, Source(url=site.listing), clock)
    assert (
        f"{site.url('')}: robots.txt could not be fetched (HTTP 503 Service Unavailable)"
        in (warnings[0])
    )
    assert site.server.stats("/events/").hits == 1
    assert set(posts(cfg, site.listing)) == site.listing_pages | site.posts
    assert posts(cfg, site.listing, gone=True) == {}


def test_rerun_asks_conditionally_and_reports_gone_pages(tmp_path: Path, site: Site) -> None:
    cfg = site_config(tmp_path)
    clock = FakeClock()
    run(cfg, Source(url=site.listing), clock)
    clock.advance(3600)
    second, warnings = run(cfg, Source(url=site.listing), clock)
    assert (second.posts, second.posts_parsed, second.checked) == (7, 0, 0)
    last = site.server.stats("/events/meetup-1/").requests[-1]
    assert last.headers["if-none-match"].startswith('"')
    assert last.headers["if-modified-since"] == "Wed, 01 Jan 2025 00:00:00 GMT"
    # A 304 for the listing still leads to every post: its links were remembered.
    assert site.server.stats("/events/meetup-4/").hits == 2
    # meetup-4 now answers 404; meetup-3 drops out of the listing's page 2.
    site.server.route("/events/meetup-4/", Reply(status=404))
    site.serve_page(
        "/events/page/2/",
        page("Events, page 2", '<a href="/events/page/3/">Next</a>'),
    )
    clock.advance(3600)
    _, warnings = run(cfg, Source(url=site.listing), clock)
    four, three = site.url("/events/meetup-4/"), site.url("/events/meetup-3/")
    assert f"page gone: {four} (HTTP 404 Not Found); its assets stay archived" in warnings
    assert f"page gone: {three} is no longer reached from {site.listing}" in warnings
    assert set(posts(cfg, site.listing, gone=True)) == {three, four}
    db = Database(cfg.db)
    gone = db.rows("SELECT page_status FROM posts WHERE path=?", (four,))
    pdf = db.rows(
        "SELECT state, sha256, referenced FROM urls WHERE url=?", (site.cdn.url("/cdn/m4.pdf"),)
    )
    db.close()
    assert gone == [{"page_status": 404}]
    assert pdf[0]["state"] == "ok" and pdf[0]["referenced"] == 0
    assert (cfg.store / pdf[0]["sha256"][:2] / pdf[0]["sha256"]).exists()
    # The page comes back: it is a post again, read in full.
    site.serve_page("/events/meetup-4/", page("Meetup 4", "<p>no slides</p>"))
    clock.advance(3600)
    run(cfg, Source(url=site.listing), clock)
    assert posts(cfg, site.listing)[four] == set()
    assert "if-none-match" not in site.server.stats("/events/meetup-4/").requests[-1].headers


def test_a_listing_that_is_down_marks_nothing_gone(tmp_path: Path, site: Site) -> None:
    cfg = site_config(tmp_path)
    clock = FakeClock()
    run(cfg, Source(url=site.listing), clock)
    site.server.route("/events/", Reply(status=503))
    clock.advance(3600)
    summary, warnings = run(cfg, Source(url=site.listing), clock)
    assert warnings[0] == (
        f"{site.listing}: HTTP 503 Service Unavailable; pages found before are kept as they were"
    )
    assert site.server.stats("/events/").hits == 1 + 3  # retried like an asset
    assert posts(cfg, site.listing, gone=True) == {}
    # The posts behind it were still reached through the links it had last time.
    assert summary.posts == 6


def test_a_source_that_is_not_a_page(tmp_path: Path, site: Site) -> None:
    cfg = site_config(tmp_path)
    source = site.url("/files/deck0.pdf")
    _, warnings = run(cfg, Source(url=source))
    assert warnings == [
        f"{source}: not an HTML page, sitemap or feed (application/pdf);"
        " pages found before are kept as they were"
    ]
    assert posts(cfg, source) == {}


def test_remap_and_exclude_urls_apply_to_site_pages(tmp_path: Path, site: Site) -> None:
    cdn = site.cdn.url("/cdn/")
    mirror = site.url("/mirror/")
    site.server.route(
        "/mirror/m4.pdf", Reply(body=PDF + b"mirrored", content_type="application/pdf")
    )
    cfg = site_config(
        tmp_path,
        remap=((f"^{cdn}(.*)", mirror + r"\1"),),
        exclude_urls=(r"/img/",),
    )
    run(cfg, Source(url=site.url("/events/meetup-4/"), kind="post"))
    run(cfg, Source(url=site.url("/events/meetup-3/"), kind="post"))
    assert posts(cfg, site.url("/events/meetup-3/")) == {site.url("/events/meetup-3/"): set()}
    db = Database(cfg.db)
    rows = [row_dict(r) for r in url_rows(db, ReportFilter(states=("ok",)))]
    db.close()
    assert [(r["url"], r["remapped_url"]) for r in rows] == [
        (site.cdn.url("/cdn/m4.pdf"), mirror + "m4.pdf")
    ]
    assert site.cdn.stats("/cdn/m4.pdf").hits == 0
    assert site.server.stats("/mirror/m4.pdf").hits == 1
    assert rows[0]["sha256"] == hashlib.sha256(PDF + b"mirrored").hexdigest()


def test_remap_and_exclude_urls_apply_to_local_posts(tmp_path: Path, site: Site) -> None:
    folder = tmp_path / "posts"
    folder.mkdir()
    old = "https://old.cdn.example/decks/talk.pdf"
    (folder / "a.md").write_text(f"[slides]({old})\n![x](https://ads.example/x.png)\n")
    cfg = site_config(
        tmp_path,
        remap=((r"^https://old\.cdn\.example/(.*)", site.url("/files/") + r"\1"),),
        exclude_urls=(r"//ads\.",),
    )
    site.server.route("/files/decks/talk.pdf", Reply(body=PDF, content_type="application/pdf"))
    summary, _ = run(cfg, Source(path=folder))
    assert summary.counts == {"ok": 1}
    db = Database(cfg.db)
    got = db.rows("SELECT url, fetch_url, state FROM urls")
    db.close()
    assert got == [{"url": old, "fetch_url": site.url("/files/decks/talk.pdf"), "state": "ok"}]
    # Dropping the rule re-reads the post (its parse version changed) and clears fetch_url.
    cfg = site_config(tmp_path, exclude_urls=(r"//ads\.",))
    summary, _ = run(cfg, Source(path=folder))
    assert summary.posts_parsed == 1
    db = Database(cfg.db)
    assert db.rows("SELECT fetch_url FROM urls") == [{"fetch_url": None}]
    db.close()


def test_cli_crawl_ignore_robots(tmp_path: Path, site: Site) -> None:
    db, store = tmp_path / "a.db", tmp_path / "store"
    args = ["crawl", site.listing, "--db", str(db), "--store", str(store), "--config", "/dev/null"]
    result = CliRunner().invoke(cli, [*args, "--ignore-robots", "--log-format", "json"])
    assert result.exit_code == 0, result.output
    assert site.server.stats("/private/secret/").hits == 1
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["posts"] == 9  # /big/ is under the default max_page_size
