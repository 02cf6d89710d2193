"""The web archive, end to end: ``report --suggest`` and ``restore --from-archive``
against a loopback stub of the availability API (never the real service), real posts,
a real database and store."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import media
import pytest
from cli_process import run_cli
from server import LoopbackServer, Reply, Request

from archiver.clock import parse_iso
from archiver.ops.wayback import Snapshot, WaybackError, raw_url, wayback_timestamp

PDF = media.deck("slides", 2100)
OLD_PDF = media.deck("archived", 2700)
HTML = b"<!doctype html><html><body>Sorry, gone</body></html>"
TAKEN = "20200101000000"


class Archive:
    """A Wayback-style stub: the availability API and the captures it names."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.endpoint = server.url("/wayback/available")
        self.captures: dict[str, bytes | None] = {}  # original URL -> raw bytes (None: 404)
        self.asked: list[dict[str, str]] = []
        server.route("/wayback/available", self.answer)

    def hold(self, original: str, body: bytes | None, content_type: str) -> None:
        self.captures[original] = body
        path = f"/web/{TAKEN}id_/{original}"
        if body is None:
            self.server.route(path, Reply(status=404, body=b"no"))
        else:
            self.server.route(path, Reply(body=body, content_type=content_type))

    def answer(self, req: Request) -> Reply:
        query = {k: v[0] for k, v in parse_qs(urlsplit(req.path).query).items()}
        self.asked.append(query)
        if query["url"] not in self.captures:
            body: dict[str, object] = {"url": query["url"], "archived_snapshots": {}}
        else:
            closest = {
                "available": True,
                "url": self.server.url(f"/web/{TAKEN}/{query['url']}"),
                "timestamp": TAKEN,
                "status": "200",
            }
            body = {"url": query["url"], "archived_snapshots": {"closest": closest}}
        return Reply(body=json.dumps(body).encode(), content_type="application/json")


@pytest.fixture
def site(tmp_path: Path, server: LoopbackServer) -> tuple[dict[str, str], Archive]:
    """gone.pdf worked once (a check, so no copy) then died; never.pdf never worked."""
    urls = {
        "ok": server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf")),
        "gone": server.route(
            "/gone.pdf", Reply(body=PDF, content_type="application/pdf"), Reply(status=404)
        ),
        "never": server.route("/never.pdf", Reply(status=404)),
    }
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "a.md").write_text(
        f"[Deck]({urls['ok']})\n\n[Gone]({urls['gone']})\n\n[Never]({urls['never']})\n",
        encoding="utf-8",
    )
    archive = Archive(server)
    (tmp_path / "config.toml").write_text(
        'db = "state/archive.db"\nstore = "state/store"\nconfirm_runs = 1\n'
        f'[archive]\nendpoint = "{archive.endpoint}"\n',
        encoding="utf-8",
    )
    checked = run_cli("check", "posts", cwd=tmp_path)
    assert checked.returncode == 1, checked.stderr  # never.pdf: dead at once
    crawled = run_cli("crawl", "posts", cwd=tmp_path)
    assert crawled.returncode == 1, crawled.stderr  # gone.pdf newly dead
    return urls, archive


def rows(tmp_path: Path, *args: str) -> dict[str, dict[str, object]]:
    done = run_cli("report", "--format", "json", *args, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    return {r["url"]: r for r in json.loads(done.stdout)}


def test_a_plain_report_never_asks_the_web_archive(
    tmp_path: Path, site: tuple[dict[str, str], Archive], server: LoopbackServer
) -> None:
    urls, archive = site
    archive.hold(urls["gone"], OLD_PDF, "application/pdf")
    for fmt in ("json", "table", "markdown", "csv", "html", "junit"):
        done = run_cli("report", "--format", fmt, "--state", "all", cwd=tmp_path)
        assert done.returncode == 1, done.stderr
    assert all("snapshot" not in r for r in rows(tmp_path).values())
    assert server.stats("/wayback/available").hits == 0
    assert archive.asked == []


def test_suggest_offers_the_snapshot_closest_to_the_last_good_check(
    tmp_path: Path, site: tuple[dict[str, str], Archive]
) -> None:
    urls, archive = site
    archive.hold(urls["gone"], OLD_PDF, "application/pdf")
    got = rows(tmp_path, "--suggest")
    assert set(got) == {urls["gone"], urls["never"]}
    assert got[urls["gone"]]["snapshot"] == {
        "url": archive.server.url(f"/web/{TAKEN}/{urls['gone']}"),
        "timestamp": TAKEN,
        "status": "200",
    }
    assert got[urls["never"]]["snapshot"] is None  # the archive holds none
    asked = {q["url"]: q["timestamp"] for q in archive.asked}
    assert set(asked) == {urls["gone"], urls["never"]}  # the ok link is never asked about
    last_ok = parse_iso(str(got[urls["gone"]]["last_ok"]))
    assert last_ok is not None and asked[urls["gone"]] == wayback_timestamp(last_ok)
    assert len(asked[urls["never"]]) == 14  # never worked: now

    markdown = run_cli("report", "--format", "markdown", "--suggest", cwd=tmp_path)
    assert markdown.returncode == 1, markdown.stderr
    assert "### Web archive" in markdown.stdout
    capture = archive.server.url(f"/web/{TAKEN}/{urls['gone']}")
    assert f"<{capture}> | 2020-01-01 00:00:00 |" in markdown.stdout
    table = run_cli("report", "--format", "table", "--suggest", cwd=tmp_path)
    assert "web archive: 1 of 2 links with no copy have a snapshot" in table.stdout
    html = run_cli("report", "--format", "html", "--suggest", cwd=tmp_path)
    assert '<section id="web-archive">' in html.stdout
    assert html.stdout.rstrip().endswith("</html>")

    refused = run_cli("report", "--format", "sarif", "--suggest", cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr == (
        "archiver: --suggest applies to the table, markdown, json and html reports,"
        " not --format sarif\n"
    )


def test_suggest_survives_an_archive_that_does_not_answer(
    tmp_path: Path, site: tuple[dict[str, str], Archive]
) -> None:
    urls, _ = site
    config = tmp_path / "config.toml"
    text = config.read_text(encoding="utf-8").replace("/wayback/available", "/down")
    config.write_text(text, encoding="utf-8")
    done = run_cli("report", "--format", "json", "--suggest", cwd=tmp_path)
    assert done.returncode == 1
    assert all(r["snapshot"] is None for r in json.loads(done.stdout))
    assert f"archiver: warning: {urls['gone']}: cannot ask the web archive" in done.stderr


def test_restore_from_archive_stores_the_snapshot_as_the_copy(
    tmp_path: Path, site: tuple[dict[str, str], Archive]
) -> None:
    urls, archive = site
    archive.hold(urls["gone"], OLD_PDF, "application/pdf")
    done = run_cli("restore", "--from-archive", urls["gone"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sha = hashlib.sha256(OLD_PDF).hexdigest()
    assert done.stderr == (
        f"stored the web archive's snapshot of {urls['gone']} ({TAKEN}, {sha[:12]},"
        f" {len(OLD_PDF)} bytes) as its copy\n"
    )
    row = rows(tmp_path)[urls["gone"]]
    assert (row["state"], row["restorable"], row["copy_sha256"]) == ("dead", True, sha)
    with sqlite3.connect(tmp_path / "state" / "archive.db") as conn:
        source = conn.execute("SELECT source FROM versions WHERE sha256 = ?", (sha,)).fetchone()
    capture = archive.server.url(f"/web/{TAKEN}/{urls['gone']}")
    assert source == (f"web-archive:{capture}",)
    # Mirror and restore use it like any copy; a suggestion is no longer needed.
    mirrored = run_cli("restore", "--mirror", "mirror", cwd=tmp_path)
    assert mirrored.returncode == 0, mirrored.stderr
    assert OLD_PDF in [p.read_bytes() for p in (tmp_path / "mirror").rglob("*.pdf")]
    out = run_cli("restore", urls["gone"], "-o", "back.pdf", cwd=tmp_path)
    assert out.returncode == 0 and (tmp_path / "back.pdf").read_bytes() == OLD_PDF
    asked = len(archive.asked)
    assert rows(tmp_path, "--suggest")[urls["gone"]]["snapshot"] is None
    assert len(archive.asked) == asked + 1  # never.pdf only


def test_restore_from_archive_refuses_what_does_not_validate(
    tmp_path: Path, site: tuple[dict[str, str], Archive]
) -> None:
    urls, archive = site
    archive.hold(urls["never"], HTML, "application/pdf")  # a soft 404 in the archive
    done = run_cli("restore", "--from-archive", urls["never"], cwd=tmp_path)
    assert done.returncode == 1
    raw = archive.server.url(f"/web/{TAKEN}id_/{urls['never']}")
    assert done.stderr.startswith(
        f"archiver: the web archive's snapshot {raw} of {urls['never']} is not usable (invalid:"
    )
    assert done.stderr.endswith("); nothing stored\n") and done.stderr.count("\n") == 1
    held = [p.name for p in (tmp_path / "state" / "store").glob("??/*")]
    assert held == [hashlib.sha256(PDF).hexdigest()]  # deck.pdf's, from the crawl, alone
    assert rows(tmp_path)[urls["never"]]["restorable"] is False

    none = run_cli("restore", "--from-archive", urls["ok"], cwd=tmp_path)
    assert (none.returncode, none.stderr) == (
        1,
        f"archiver: the web archive holds no snapshot of {urls['ok']}\n",
    )
    unknown = run_cli("restore", "--from-archive", "https://example.org/x.pdf", cwd=tmp_path)
    assert unknown.returncode == 1
    assert unknown.stderr == (
        "archiver: unknown URL https://example.org/x.pdf: it is in no crawled post"
        " (check the spelling)\n"
    )
    alone = run_cli("restore", "--from-archive", urls["ok"], "--mirror", "m", cwd=tmp_path)
    assert alone.returncode == 2
    assert alone.stderr == (
        "archiver: --from-archive URL is a form of its own: give it alone"
        " (see 'archiver restore --help')\n"
    )


def test_raw_url_is_the_id_form_of_the_capture() -> None:
    s = Snapshot("http://web.archive.org/web/20200101000000/https://e.org/a.pdf", TAKEN, "200")
    assert raw_url(s) == "http://web.archive.org/web/20200101000000id_/https://e.org/a.pdf"
    s = Snapshot("http://web.archive.org/web/20200101000000im_/https://e.org/a.png", TAKEN, "200")
    assert raw_url(s) == "http://web.archive.org/web/20200101000000id_/https://e.org/a.png"
    with pytest.raises(WaybackError):
        raw_url(Snapshot("http://web.archive.org/a.pdf", TAKEN, "200"))


def test_the_archive_endpoint_is_an_http_url(tmp_path: Path) -> None:
    from archiver.config import Config, parse_config
    from archiver.errors import ConfigError

    assert Config(db=tmp_path, store=tmp_path).archive_endpoint == (
        "https://archive.org/wayback/available"
    )
    cfg = parse_config({"archive": {"endpoint": "http://127.0.0.1:9/w"}}, base=tmp_path)
    assert cfg.archive_endpoint == "http://127.0.0.1:9/w"
    with pytest.raises(ConfigError, match=r"'archive\.endpoint' must be an http"):
        parse_config({"archive": {"endpoint": "file:///etc/passwd"}}, base=tmp_path)
    with pytest.raises(ConfigError, match=r"unknown config key 'archive.url' \(known: endpoint\)"):
        parse_config({"archive": {"url": "http://x/"}}, base=tmp_path)
