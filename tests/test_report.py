"""Reports in every format, built from a real crawl against a loopback server.

``World`` (also used by the restore, rewrite, verify, gc and export tests) is a
small archive: two posts, a deck and a photo that worked and then died, a
PDF that never worked and one that still does.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
from pathlib import Path

import media
import pytest
from click.testing import CliRunner
from server import LoopbackServer, Reply, Request

from archiver.cli import cli
from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source
from archiver.db import Database
from archiver.net.fetch import HostMapTransport
from archiver.ops.report import (
    FIELDS,
    ReportFilter,
    ReportRow,
    parse_since,
    parse_states,
    render,
    row_dict,
    url_rows,
)
from archiver.run.crawl import crawl
from archiver.store import Store

PDF = media.deck("slides", 3500)
FINE = media.deck("still here", 550)
PNG = media.picture("PNG", 1)

MEETUP = """# Meetup

Slides: [deck]({deck})

![photo]({photo})

```text
{deck}
```
"""
TALK = "[gone]({gone}) and [again]({deck}) and [fine]({fine})\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class World:
    """Posts on disk, a scriptable origin, and the archive a crawl made of them."""

    def __init__(self, tmp_path: Path, server: LoopbackServer) -> None:
        self.tmp = tmp_path
        self.server = server
        self.clock = FakeClock()
        self.bodies = {"/deck.pdf": PDF, "/photo.png": PNG, "/gone.pdf": PDF, "/fine.pdf": FINE}
        self.types = {"/photo.png": "image/png"}
        self.alive = {"/deck.pdf": True, "/photo.png": True, "/gone.pdf": False, "/fine.pdf": True}
        for path in self.bodies:
            server.route(path, self._script)
        self.deck, self.photo = server.url("/deck.pdf"), server.url("/photo.png")
        self.gone, self.fine = server.url("/gone.pdf"), server.url("/fine.pdf")
        self.posts = tmp_path / "posts"
        self.write("2024/meetup.md", MEETUP.format(deck=self.deck, photo=self.photo))
        self.write("2025/talk.md", TALK.format(gone=self.gone, deck=self.deck, fine=self.fine))
        self.cfg = Config(
            db=tmp_path / "state" / "archive.db",
            store=tmp_path / "state" / "store",
            fetch=FetchConfig(retries=0, connect_timeout=5, read_timeout=5),
            confirm_runs=1,
        )

    def _script(self, req: Request) -> Reply:
        path = req.path.split("?", 1)[0]
        if not self.alive[path]:
            return Reply(status=404, body=b"not found", content_type="text/plain")
        return Reply(body=self.bodies[path], content_type=self.types.get(path, "application/pdf"))

    def write(self, rel: str, text: str) -> Path:
        p = self.posts / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode("utf-8"))
        return p

    def crawl(self) -> None:
        source = Source(path=self.posts.resolve(), static_roots=(self.posts.resolve(),))
        # IP literals pass through; any name is unknown, so no test ever resolves one.
        transport = HostMapTransport({})
        crawl(self.cfg, [source], clock=self.clock, transport=transport, all_=True, fail_on="none")
        self.clock.advance(2 * 86400)

    def kill(self, *paths: str) -> None:
        for p in paths:
            self.alive[p] = False

    def db(self) -> Database:
        return Database(self.cfg.db)

    def store(self) -> Store:
        return Store(self.cfg.store)

    def args(self) -> list[str]:
        return ["--db", str(self.cfg.db), "--store", str(self.cfg.store)]

    def run(self, *args: str) -> tuple[int, str, str]:
        """Runs the CLI; returns exit code, stdout and stderr."""
        cmd, *rest = args
        result = CliRunner().invoke(cli, [cmd, *self.args(), *rest], catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr


def make_world(tmp_path: Path, server: LoopbackServer) -> World:
    """Crawl once with everything but gone.pdf alive, then again after deck and photo died."""
    world = World(tmp_path, server)
    world.crawl()
    world.kill("/deck.pdf", "/photo.png")
    world.crawl()
    return world


@pytest.fixture
def world(tmp_path: Path, server: LoopbackServer) -> World:
    return make_world(tmp_path, server)


def typed_rows(world: World, **kw: object) -> list[ReportRow]:
    db = world.db()
    try:
        return url_rows(db, ReportFilter(**kw), world.store())  # type: ignore[arg-type]
    finally:
        db.close()


def rows(world: World, **kw: object) -> list[dict[str, object]]:
    db = world.db()
    try:
        found = url_rows(db, ReportFilter(**kw), world.store())  # type: ignore[arg-type]
        return [row_dict(r) for r in found]
    finally:
        db.close()


# -- the data -----------------------------------------------------------------


def test_json_is_an_array_of_url_objects_ordered_by_post_then_line(world: World) -> None:
    code, out, _ = world.run("report", "--format", "json")
    assert code == 1
    data = json.loads(out)
    assert [d["url"] for d in data] == [world.deck, world.photo, world.gone]
    assert all(list(d) == list(FIELDS) for d in data)
    deck, photo, gone = data
    assert deck["state"] == "dead" and deck["http_status"] == 404
    assert deck["error"] == "HTTP 404 Not Found"
    assert deck["sha256"] == sha(PDF) and deck["size"] == len(PDF)
    assert deck["content_type"] == "application/pdf"
    assert deck["last_ok"] == "2026-01-01T00:00:00Z"  # when it last worked
    assert deck["failing_since"] == "2026-01-03T00:00:00Z"  # since when it fails
    assert deck["restorable"] is True and deck["copy_sha256"] == sha(PDF)
    assert deck["versions"] == 1 and deck["host"] == "127.0.0.1"
    assert [(p["path"], p["line"]) for p in deck["posts"]] == [
        ("2024/meetup.md", 3),
        ("2025/talk.md", 1),
    ]
    assert photo["restorable"] is True and photo["content_type"] == "image/png"
    assert gone["restorable"] is False and gone["versions"] == 0 and gone["last_ok"] is None
    assert gone["copy_sha256"] is None and gone["sha256"] is None


def test_the_documented_schema_lists_every_field() -> None:
    schema = json.loads((Path(__file__).parent.parent / "docs/report.schema.json").read_text())
    assert schema["type"] == "array"
    item = schema["items"]
    assert list(item["properties"]) == list(FIELDS)
    assert set(item["required"]) == set(FIELDS)
    assert set(item["properties"]["posts"]["items"]["required"]) >= {"path", "line"}


def test_a_sha256_is_not_enough_to_be_restorable(world: World) -> None:
    store = world.store()
    blob = store.path_for(sha(PDF))
    os.chmod(blob, 0o644)
    blob.write_bytes(PDF.replace(b"slides", b"slides", 1)[:-1] + b"X")  # same size, one byte off
    from archiver.ops.verify import verify

    db = world.db()
    verify(db, store, now="2026-01-05T00:00:00Z")
    db.close()
    deck = rows(world)[0]
    assert deck["sha256"] == sha(PDF)
    assert (deck["restorable"], deck["copy_sha256"], deck["versions"]) == (False, None, 1)
    store.path_for(sha(PNG)).unlink()  # missing: not restorable even before any verify
    assert rows(world)[1]["restorable"] is False


def test_filters(world: World) -> None:
    every = rows(world, states=parse_states("all"))
    # by post, then line, then URL
    assert [r["url"] for r in every] == [world.deck, world.photo, world.fine, world.gone]
    assert [r["url"] for r in rows(world, states=("ok",))] == [world.fine]
    assert [r["url"] for r in rows(world, post="2025/*")] == [world.deck, world.gone]
    # --post keeps only the matching posts of each URL
    assert [p["path"] for p in rows(world, post="2025/*")[0]["posts"]] == ["2025/talk.md"]
    assert rows(world, host="example.org") == []
    assert len(rows(world, host="127.0.0.1")) == 3
    since = parse_since("2026-01-02")
    assert [r["url"] for r in rows(world, since=since)] == [world.deck, world.photo]


def test_bad_filters_say_what_to_type(world: World) -> None:
    code, _, err = world.run("report", "--state", "dead,gone")
    assert code == 2
    assert err == (
        "archiver: unknown state gone for --state"
        " (use a comma list of ok, failing, dead, invalid, error, blocked, pending, or all)\n"
    )
    code, _, err = world.run("report", "--since", "last week")
    assert code == 2
    assert (
        err == "archiver: invalid date 'last week' for --since (use YYYY-MM-DD, e.g. 2026-01-31)\n"
    )


def test_a_filter_that_names_nothing_recorded_says_so_and_exits_2(world: World) -> None:
    """ "No links match." with exit 0 would read as "all good" for a mistyped name."""
    code, out, err = world.run("report", "--post", "2023/*")
    assert (code, out) == (2, "")
    assert err == (
        "archiver: --post '2023/*' matches no recorded post (posts are named like 2024/meetup.md)\n"
    )
    code, out, err = world.run("report", "--host", "nowhere.example")
    assert (code, out) == (2, "")
    assert err == (
        "archiver: --host 'nowhere.example' matches no recorded URL (hosts are as in the URLs,"
        " e.g. example.org or 127.0.0.1:8080)\n"
    )
    # a name that is recorded but has nothing in the chosen states: an answer, exit 0
    code, out, _ = world.run("report", "--post", "2024/*", "--state", "invalid", "--format", "json")
    assert (code, out) == (0, "[]\n")


def test_exit_code_says_whether_anything_matched(world: World) -> None:
    assert world.run("report", "--host", "127.0.0.1", "--state", "invalid")[0] == 0
    assert world.run("report", "--state", "ok")[0] == 1
    assert world.run("report", "--state", "invalid,error")[0] == 0


def add_dead_url(world: World, url: str) -> None:
    """A dead, referenced URL that no server has to serve (names a test may not resolve)."""
    db = world.db()
    with db.transaction():
        url_id = db.url_id(url, "2026-01-01T00:00:00Z")
        db.conn.execute("UPDATE urls SET state='dead' WHERE id=?", (url_id,))
    db.close()


def reported(world: World, host: str) -> list[str]:
    code, out, err = world.run("report", "--host", host, "--format", "json")
    assert (code, err) == (1 if json.loads(out) else 0, "")
    return [r["url"] for r in json.loads(out)]


def test_host_takes_a_port(world: World) -> None:
    port = world.server.port
    assert reported(world, "127.0.0.1") == [world.deck, world.photo, world.gone]  # every port
    assert reported(world, f"127.0.0.1:{port}") == [world.deck, world.photo, world.gone]
    # another port on the same host: no URL recorded there, which is a mistake (exit 2)
    assert world.run("report", "--host", f"127.0.0.1:{port - 1}")[0] == 2
    assert world.run("report", "--host", "127.0.0.1:80")[0] == 2
    assert [r["url"] for r in rows(world, host=f"127.0.0.1:{port}")] == [
        world.deck,
        world.photo,
        world.gone,
    ]


def test_a_url_without_a_port_is_on_its_schemes_default(world: World) -> None:
    https, http = "https://Example.ORG/x.pdf", "http://example.org:8080/y.pdf"
    add_dead_url(world, https)
    add_dead_url(world, http)
    assert reported(world, "example.org") == [http, https]
    assert reported(world, "EXAMPLE.org:443") == [https]  # host names ignore case
    assert world.run("report", "--host", "example.org:80")[0] == 2  # no URL on that port
    assert reported(world, "example.org:8080") == [http]


def test_host_takes_a_bracketed_ipv6_address_and_port(world: World) -> None:
    on_port, default = "http://[::1]:8080/a.pdf", "http://[::1]/b.pdf"
    add_dead_url(world, on_port)
    add_dead_url(world, default)
    assert reported(world, "::1") == [default, on_port]  # a bare IPv6 address: every port
    assert reported(world, "[::1]") == [default, on_port]
    assert reported(world, "[::1]:8080") == [on_port]
    assert reported(world, "[::1]:80") == [default]


@pytest.mark.parametrize(
    "value",
    ["a:b:c", "example.org:http", "example.org:", ":8080", "example.org:70000", "[::1", "[x]:80"],
)
def test_a_bad_host_is_a_usage_error(world: World, value: str) -> None:
    code, out, err = world.run("report", "--host", value)
    assert (code, out) == (2, "")
    assert err == (
        f"archiver: invalid host {value!r} for --host"
        " (use HOST, HOST:PORT or [IPv6]:PORT, e.g. example.org or 127.0.0.1:8080)\n"
    )


# -- the formats --------------------------------------------------------------


def test_markdown_groups_by_post(world: World) -> None:
    code, out, _ = world.run("report", "--format", "markdown")
    assert code == 1
    head = (
        "| where | URL | state | status | failing since | last worked | copy |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    assert out == (
        "### 2024/meetup.md\n\n"
        + head
        + f"| 2024/meetup.md:3 | <{world.deck}> | dead | HTTP 404 Not Found |"
        " 2026-01-03T00:00:00Z | 2026-01-01T00:00:00Z | restorable (1 page) |\n"
        f"| 2024/meetup.md:5 | <{world.photo}> | dead | HTTP 404 Not Found |"
        " 2026-01-03T00:00:00Z | 2026-01-01T00:00:00Z | restorable (8x8) |\n"
        "\n### 2025/talk.md\n\n"
        + head
        + f"| 2025/talk.md:1 | <{world.deck}> | dead | HTTP 404 Not Found |"
        " 2026-01-03T00:00:00Z | 2026-01-01T00:00:00Z | restorable (1 page) |\n"
        f"| 2025/talk.md:1 | <{world.gone}> | dead | HTTP 404 Not Found |"
        " 2026-01-01T00:00:00Z | never | none |\n"
    )


def test_csv_has_one_row_per_url(world: World) -> None:
    _, out, _ = world.run("report", "--format", "csv", "--state", "all")
    table = list(csv.DictReader(io.StringIO(out)))
    assert list(table[0]) == [f for f in FIELDS if f != "posts"] + ["posts"]
    assert [r["url"] for r in table] == [world.deck, world.photo, world.fine, world.gone]
    assert table[0]["posts"] == "2024/meetup.md:3; 2025/talk.md:1"
    assert table[0]["restorable"] == "true" and table[3]["restorable"] == "false"
    assert table[0]["referenced"] == "true"  # as JSON spells booleans
    assert table[2]["state"] == "ok" and table[2]["sha256"] == sha(FINE)


def test_table_is_aligned_and_coloured_only_on_a_terminal(world: World) -> None:
    data = typed_rows(world)
    plain = render(data, "table")
    lines = plain.splitlines()
    assert lines[0].split() == ["STATE", "STATUS", "URL", "WHERE", "FAILING", "SINCE", "COPY"]
    assert "\x1b[" not in plain
    starts = {line.index("http://") for line in lines if "http://" in line}
    assert len(starts) == 1  # the URL column is aligned
    row = next(line for line in lines if world.gone in line)
    assert row.split()[:2] == ["dead", "HTTP"] and row.split()[-3:] == [
        "2025/talk.md:1",
        "2026-01-01",
        "none",
    ]
    coloured = render(data, "table", color=True)
    assert "\x1b[1;31m" in coloured  # dead is bold red
    # On a terminal each URL is a link (OSC 8), so one folded over lines still opens whole.
    assert "\x1b]8;id=" in coloured and f";{world.gone}\x1b\\" in coloured
    assert "\x1b]8;" not in plain
    assert render([], "table") == "No links match.\n"


def test_html_is_one_self_contained_page(world: World, tmp_path: Path) -> None:
    page = tmp_path / "out" / "report.html"
    page.parent.mkdir()
    code, out, _ = world.run("report", "--format", "html", "--state", "all", "-o", str(page))
    assert code == 1 and out == ""
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    # no server, no external assets: nothing is loaded from anywhere but the page and the store
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="https?:', html)
    assert "<script>" in html and "<style>" in html
    # summary counts by state, and filters by state and by host
    assert '<span class="state s-dead">dead</span> 3</li>' in html
    assert '<span class="state s-ok">ok</span> 1</li>' in html
    assert "restorable 3</li>" in html
    assert '<select id="f-state"><option value="">all states</option>' in html
    assert '<option value="ok">ok</option><option value="dead">dead</option>' in html
    assert (
        '<select id="f-host"><option value="">all hosts</option><option value="127.0.0.1">' in html
    )
    # posts grouped with their links
    sections = re.findall(r'<section class="post" data-post="([^"]+)">', html)
    assert sections == ["2024/meetup.md", "2025/talk.md"]
    assert html.count('<tr class="link"') == 5  # the deck appears under both posts
    # the image itself is never embedded (issue 14: 400 URLs made 37 MB), only the thumbnail
    # the crawl made as it stored it (tests/test_report_html.py: their sizes)
    assert base64.b64encode(PNG).decode() not in html
    assert html.count('src="data:image/webp;base64,') == 1
    rel = os.path.relpath(world.store().path_for(sha(PDF)), page.parent)
    assert f'href="{rel}"' in html
    assert (page.parent / rel).read_bytes() == PDF
    assert html.count("archived copy</a>") == 4  # deck twice, photo, fine; gone has none
    assert '<span class="none">no copy</span>' in html


def test_output_to_stdout_defaults_to_json_off_a_terminal(world: World) -> None:
    code, out, _ = world.run("report")
    assert code == 1 and json.loads(out)[0]["url"] == world.deck


def test_missing_database_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["report", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"archiver: no database at {tmp_path / 'none.db'}:"
        " run 'archiver crawl' first or pass --db\n"
    )


def test_since_with_an_offset_compares_in_utc() -> None:
    assert parse_since("2026-01-01T08:00:00+08:00") == "2026-01-01T00:00:00Z"
    assert parse_since("2026-01-01T08:00:00") == "2026-01-01T08:00:00Z"
    assert parse_since("2026-01-31") == "2026-01-31"
