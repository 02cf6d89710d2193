"""The HTML report: thumbnails (not images) embedded, a legend, next steps, link texts.

Archives are made by real crawls of real images (Pillow) served over loopback;
thumbnails by ``verify`` (or ``archiver.thumbs`` directly where hundreds are needed).
"""

from __future__ import annotations

import base64
import re
import shlex
from html import escape as html_escape
from pathlib import Path

import pytest
from media import encode, noise, photo
from server import LoopbackServer, Reply
from test_report import World, sha

from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source
from archiver.db import Database
from archiver.db.sqlite import STATES
from archiver.net.fetch import HostMapTransport
from archiver.ops.gc import collect_garbage
from archiver.ops.report import (
    FIELDS,
    Confirmation,
    PostUse,
    ReportFilter,
    ReportRow,
    parse_states,
    render,
    url_rows,
)
from archiver.ops.report_html import EMBED_MAX, LEGEND, next_step, render_html
from archiver.ops.verify import verify
from archiver.run.crawl import crawl
from archiver.store import Store
from archiver.thumbs import find_thumbnail, make_thumbnail

JPEG = encode(photo(640, 480, seed=3), "JPEG", quality=90)
NOW = "2026-01-05T00:00:00Z"


@pytest.fixture
def world(tmp_path: Path, server: LoopbackServer) -> World:
    """The report tests' archive, its photo a real JPEG (dead by the second crawl)."""
    w = World(tmp_path, server)
    w.bodies["/photo.png"] = JPEG
    w.types["/photo.png"] = "image/jpeg"
    w.crawl()
    w.kill("/deck.pdf", "/photo.png")
    w.crawl()
    return w


def page(world: World, **kw: object) -> str:
    db = world.db()
    try:
        rows = url_rows(db, ReportFilter(states=parse_states("all")), world.store())
    finally:
        db.close()
    return render_html(rows, store=world.store(), generated=NOW, **kw)  # type: ignore[arg-type]


def test_verify_makes_thumbnails_and_the_report_embeds_them_not_the_image(world: World) -> None:
    store = world.store()
    made = find_thumbnail(store.thumbs_dir, sha(JPEG))
    assert made is not None  # the crawl made it as it stored the JPEG
    made.unlink()  # as an archive from before thumbnails lacks it
    assert "data:image" not in page(world)  # no thumbnail: a plain link, nothing decoded
    db = world.db()
    result = verify(db, store, now=NOW)
    assert result.thumbnails == 1  # the JPEG; the PDFs get none
    assert verify(db, store, now=NOW).thumbnails == 0  # made once, then found
    db.close()
    thumb = find_thumbnail(store.thumbs_dir, sha(JPEG))
    assert thumb is not None and thumb.stat().st_size < 8 * 1024
    html = page(world)
    assert html.count('<img class="thumb"') == 1
    assert base64.b64encode(thumb.read_bytes()).decode() in html
    assert base64.b64encode(JPEG[:300]).decode()[:200] not in html
    assert "1 thumbnail shown (at most 300, broken links first)" in html


def test_thumbnails_are_neither_unknown_files_nor_garbage(world: World) -> None:
    store, db = world.store(), world.db()
    verify(db, store, now=NOW)
    thumb = find_thumbnail(store.thumbs_dir, sha(JPEG))
    assert thumb is not None
    again = verify(db, store, now=NOW, grace=0)
    assert again.unknown == [] and again.orphans == [] and not again.wrong
    assert collect_garbage(db, store, grace=0, apply=True).garbage == []
    assert thumb.is_file()
    # a blob gc removes takes its thumbnail with it
    with db.transaction():
        db.conn.execute("DELETE FROM versions WHERE sha256=?", (sha(JPEG),))
        db.conn.execute("UPDATE urls SET sha256=NULL WHERE sha256=?", (sha(JPEG),))
    removed = collect_garbage(db, store, grace=0, apply=True, now=4e9)
    db.close()
    assert [g.sha256 for g in removed.garbage] == [sha(JPEG)]
    assert not thumb.exists()


def test_the_embedded_thumbnails_are_capped_broken_links_first(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """Two images, one dead: with room for one thumbnail, the dead one gets it."""
    ok, gone = encode(photo(200, 150, 1), "PNG"), encode(photo(200, 150, 2), "PNG")
    alive = {"/ok.png": True, "/gone.png": True}
    bodies = {"/ok.png": ok, "/gone.png": gone}
    for path in bodies:
        server.route(
            path,
            lambda req, p=path: (
                Reply(body=bodies[p], content_type="image/png")
                if alive[p]
                else Reply(status=404, body=b"no")
            ),
        )
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "a.md").write_text(
        f"![fine]({server.url('/ok.png')})\n![lost]({server.url('/gone.png')})\n"
    )
    cfg = Config(db=tmp_path / "a.db", store=tmp_path / "store", confirm_runs=1)
    clock = FakeClock()
    crawl(cfg, [Source(path=posts)], clock=clock, transport=HostMapTransport({}), fail_on="none")
    alive["/gone.png"] = False
    clock.advance(86400)
    crawl(
        cfg,
        [Source(path=posts)],
        clock=clock,
        transport=HostMapTransport({}),
        all_=True,
        fail_on="none",
    )
    store, db = Store(cfg.store), Database(cfg.db)
    for body in (ok, gone):
        assert make_thumbnail(store.path_for(sha(body)), "image", store.thumbs_dir, sha(body))
    rows = url_rows(db, ReportFilter(states=parse_states("all")), store)
    db.close()
    one = render_html(rows, store=store, embed=1)
    embedded = find_thumbnail(store.thumbs_dir, sha(gone))
    assert embedded is not None and one.count('<img class="thumb"') == 1
    assert base64.b64encode(embedded.read_bytes()).decode() in one
    assert one.count("archived copy</a>") == 2  # the other is linked
    assert render_html(rows, store=store).count('<img class="thumb"') == 2
    assert render_html(rows, store=None).count('<img class="thumb"') == 0


def test_a_400_url_report_stays_under_5_mb(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """400 distinct images, random pixels (the worst case for every encoder), crawled."""
    # The report's size is the point: the thumbnails are made in-process below, not by
    # 800 bounded children (a deep check and a thumbnail for each image) in the crawl.
    monkeypatch.setenv("ARCHIVER_DEEP_CHECK", "off")
    images = {f"/img/{i}.png": encode(noise(120, 90, seed=i), "PNG") for i in range(400)}
    for path, body in images.items():
        server.route(path, Reply(body=body, content_type="image/png"))
    posts = tmp_path / "posts"
    posts.mkdir()
    for n in range(40):
        links = "".join(
            f"![Slide {i}]({server.url(f'/img/{i}.png')})\n" for i in range(n * 10, n * 10 + 10)
        )
        (posts / f"event-{n:02}.md").write_text(links)
    cfg = Config(
        db=tmp_path / "a.db",
        store=tmp_path / "store",
        fetch=FetchConfig(retries=0),
    )
    crawl(cfg, [Source(path=posts)], clock=FakeClock(), transport=HostMapTransport({}))
    store, db = Store(cfg.store), Database(cfg.db)
    for body in images.values():  # what verify or the crawl makes, without a child each
        digest = sha(body)
        assert make_thumbnail(
            store.path_for(digest), "image", store.thumbs_dir, digest, isolate=False
        )
    rows = url_rows(db, ReportFilter(states=parse_states("all")), store)
    db.close()
    assert len(rows) == 400 and sum(len(b) for b in images.values()) > 10_000_000
    html = render(rows, "html", store=store, output=tmp_path / "report.html")
    assert html.count('<img class="thumb"') == EMBED_MAX
    assert html.count("archived copy</a>") == 400
    assert len(html.encode()) < 5 * 1024 * 1024


def test_a_legend_says_what_each_state_means_and_when_the_page_was_made(world: World) -> None:
    html = page(world)
    legend = re.search(r'<details class="legend" open>.*?</details>', html)
    assert legend is not None
    for state in STATES:
        assert f'<dt><span class="state s-{state}">{state}</span></dt><dd>' in legend.group(0)
        assert LEGEND[state] in legend.group(0)
    assert f'Generated <time datetime="{NOW}">{NOW}</time>' in html


def row_of(html: str, url: str) -> str:
    """The first row of the page whose link is ``url``."""
    rows = [r.split("</tr>")[0] for r in html.split('<tr class="link"')[1:]]
    return next(r for r in rows if f'<a href="{url}">' in r)


def test_each_link_shows_its_text_and_each_broken_one_its_next_step(world: World) -> None:
    html = page(world, confirm=Confirmation(runs=2, after=3600))
    deck = row_of(html, world.deck)
    assert f'<div class="text">deck</div><a href="{world.deck}">' in deck
    assert f"archiver restore {world.deck} -o FILE" in deck
    assert "archiver restore --mirror DIR --rewrite --mirror-url URL" in deck
    gone = row_of(html, world.gone)
    assert f'<div class="text">gone</div><a href="{world.gone}">' in gone
    assert '<td class="next">No copy is held. The web archive may have one' in gone
    fine = row_of(html, world.fine)
    assert '<div class="text">fine</div>' in fine
    assert 'class="next"' not in fine  # a link that works has no next step


def test_next_steps_by_state(world: World) -> None:
    db = world.db()
    rows = url_rows(db, ReportFilter(states=parse_states("all")), world.store())
    db.close()
    gone = next(r for r in rows if r.url == world.gone)
    failing = gone._replace(state="failing", confirm_count=1, confirm_last="2026-01-03T00:00:00Z")
    rule = Confirmation(runs=3, after=86400)
    assert next_step(failing, rule) == (
        "Wait for confirmation: 2 more failing runs confirm it dead"
        " (runs count 1 d apart, the next from 2026-01-04T00:00:00Z); it may come back."
    )
    last = failing._replace(confirm_count=5)
    assert "1 more failing run confirms it dead" in next_step(last, rule)
    assert "<code>confirm_runs</code>" in next_step(failing)  # without the config's rule
    damaged = gone._replace(versions=2)
    assert next_step(damaged).startswith("Only a damaged copy is held.")
    assert "--allow-address" in next_step(gone._replace(state="blocked"))
    assert next_step(gone._replace(state="error")) == "Nothing yet: the next run checks it again."
    assert next_step(gone._replace(state="ok")) == ""


def test_hostile_link_texts_and_urls_stay_text(world: World) -> None:
    hostile = '<script>alert(1)</script>" onmouseover="x\u202e\'$(rm -rf ~)'
    world.write(
        "2025/talk.md",
        f"[{hostile}]({world.gone}?q=%3Cb%3E) and [again]({world.deck}) and [fine]({world.fine})\n",
    )
    world.crawl()
    html = page(world, confirm=Confirmation(2, 3600))
    assert "<script>alert" not in html and "\u202e" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot; onmouseover=&quot;x" in html
    assert 'onmouseover="' not in html
    # the restore command shell-quotes the URL, then the page escapes it
    db = world.db()
    row = url_rows(db, ReportFilter())[0]
    db.close()
    step = next_step(row._replace(state="dead", url="http://h/'a<b>.pdf", restorable=True))
    quoted = shlex.quote("http://h/'a<b>.pdf")
    assert quoted == "'http://h/'\"'\"'a<b>.pdf'"
    assert f"<code>archiver restore {html_escape(quoted)} -o FILE</code>" in step


def test_a_rows_fields_open_with_the_json_fields_in_order() -> None:
    """``row_dict`` zips ``FIELDS`` with a row: a field added to one must go to both."""
    assert ReportRow._fields[: len(FIELDS)] == FIELDS
    assert PostUse._fields[:4] == ("source", "path", "line", "kind")
