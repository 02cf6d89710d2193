"""``archiver check``: states without archiving, end to end on loopback with a real database."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import media
import pytest
from cli_process import run_cli
from server import LoopbackServer, Reply, Request, Script

from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source
from archiver.db import Database
from archiver.errors import NetworkDownError
from archiver.net.fetch import HostMapTransport
from archiver.run.crawl import crawl

PDF = media.deck("slides", 21000)
PNG = media.picture("PNG", 1, side=82)  # ~20 KB
HTML = b"<!doctype html><html><body>Sorry, this file is gone</body></html>"


def ranged(body: bytes, content_type: str, etag: str | None = None) -> Script:
    """Honours ``Range: bytes=a-b`` with 206, as static file servers and CDNs do."""
    extra = [("ETag", etag)] if etag else []

    def script(req: Request) -> Reply:
        spec = req.headers.get("range", "")
        if etag is not None and req.headers.get("if-none-match") == etag:
            return Reply(status=304, headers=extra)
        if not spec.startswith("bytes="):
            return Reply(body=body, content_type=content_type, headers=extra)
        first, _, last = spec[len("bytes=") :].partition("-")
        start, end = int(first), min(int(last), len(body) - 1)
        return Reply(
            status=206,
            body=body[start : end + 1],
            content_type=content_type,
            headers=[("Content-Range", f"bytes {start}-{end}/{len(body)}"), *extra],
        )

    return script


def make_config(tmp_path: Path, **kw: object) -> Config:
    cfg = Config(
        db=tmp_path / "state" / "archive.db",
        store=tmp_path / "state" / "store",
        fetch=FetchConfig(retries=1, connect_timeout=5, read_timeout=5),
    )
    return replace(cfg, **kw)  # type: ignore[arg-type]


def write_post(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")


def url_table(cfg: Config) -> dict[str, dict[str, object]]:
    db = Database(cfg.db)
    try:
        return {r["url"]: r for r in db.rows("SELECT url, state, sha256, error_class FROM urls")}
    finally:
        db.close()


def blobs(cfg: Config) -> list[str]:
    return sorted(p.name for p in cfg.store.glob("??/*"))


@pytest.fixture
def site(tmp_path: Path, server: LoopbackServer) -> tuple[Path, dict[str, str]]:
    urls = {
        "pdf": server.route("/deck.pdf", ranged(PDF, "application/pdf")),
        "png": server.route("/cover.png", Reply(body=PNG, content_type="image/png")),
        "soft": server.route("/soft.pdf", Reply(body=HTML, content_type="text/html")),
        "gone": server.route("/gone.png", Reply(status=404)),
    }
    posts = tmp_path / "posts"
    write_post(
        posts,
        "a.md",
        f"[d]({urls['pdf']})\n![c]({urls['png']})\n[s]({urls['soft']})\n![g]({urls['gone']})\n",
    )
    return posts, urls


def test_check_records_states_and_stores_nothing(
    tmp_path: Path, site: tuple[Path, dict[str, str]], server: LoopbackServer
) -> None:
    posts, urls = site
    cfg = make_config(tmp_path, confirm_runs=1)

    summary = crawl(cfg, [Source(path=posts)], clock=FakeClock(), mode="check", fail_on="any")

    got = url_table(cfg)
    assert {k: got[u]["state"] for k, u in urls.items()} == {
        "pdf": "ok",
        "png": "ok",
        "soft": "invalid",
        "gone": "dead",
    }
    assert got[urls["soft"]]["error_class"] == "soft-404"
    assert all(row["sha256"] is None for row in got.values())
    assert blobs(cfg) == []
    assert list((cfg.store / "tmp").iterdir()) == []
    assert summary.new_blobs == 0 and summary.exit_code == 1
    # Only the head crossed the wire for the PDF (206), not the whole file.
    assert server.stats("/deck.pdf").bytes_sent < len(PDF)
    db = Database(cfg.db)
    assert db.scalar("SELECT COUNT(*) FROM versions") == 0
    assert db.scalar("SELECT command FROM runs") == "check"
    db.close()


def test_a_crawl_after_a_check_downloads_everything(
    tmp_path: Path, site: tuple[Path, dict[str, str]]
) -> None:
    posts, urls = site
    cfg = make_config(tmp_path)
    clock = FakeClock()
    crawl(cfg, [Source(path=posts)], clock=clock, mode="check")
    clock.advance(60)  # well within recheck_after: only "never archived" makes them due

    summary = crawl(cfg, [Source(path=posts)], clock=clock)

    assert summary.new_blobs == 2
    assert blobs(cfg) == sorted(hashlib.sha256(b).hexdigest() for b in (PDF, PNG))
    got = url_table(cfg)
    assert got[urls["pdf"]]["sha256"] == hashlib.sha256(PDF).hexdigest()


def test_a_check_never_passes_off_a_changed_file_as_archived(
    tmp_path: Path, server: LoopbackServer
) -> None:
    v2 = PDF + b"% revised\n"
    scripts = iter([ranged(PDF, "application/pdf", '"v1"'), ranged(v2, "application/pdf", '"v2"')])
    current = next(scripts)
    url = server.route("/deck.pdf", lambda req: current(req))
    posts = tmp_path / "posts"
    write_post(posts, "a.md", f"[d]({url})\n")
    cfg = make_config(tmp_path)
    clock = FakeClock()
    crawl(cfg, [Source(path=posts)], clock=clock)
    current = next(scripts)  # the file changes on the server
    clock.advance(60)
    crawl(cfg, [Source(path=posts)], clock=clock, mode="check")
    clock.advance(60)

    crawl(cfg, [Source(path=posts)], clock=clock, all_=True)

    # The check saw ETag "v2" but archived nothing: the crawl must not send it and get a 304.
    assert url_table(cfg)[url]["sha256"] == hashlib.sha256(v2).hexdigest()


def test_a_url_shared_by_many_posts_is_requested_once_per_run(
    tmp_path: Path, server: LoopbackServer
) -> None:
    url = server.route("/shared.png", ranged(PNG, "image/png"))
    posts = tmp_path / "posts"
    for i in range(30):
        write_post(posts, f"p{i}.md", f"![logo]({url})\n\n<img src='{url}'>\n")
    cfg = make_config(tmp_path)
    clock = FakeClock()

    first = crawl(cfg, [Source(path=posts)], clock=clock, mode="check")
    assert (first.posts, first.urls, first.checked) == (30, 1, 1)
    assert server.stats("/shared.png").hits == 1
    clock.advance(60)
    crawl(cfg, [Source(path=posts)], clock=clock, mode="check")
    assert server.stats("/shared.png").hits == 2


@pytest.mark.parametrize("fail_on", ["new", "any", "none"])
def test_exit_codes_are_those_of_crawl(
    tmp_path: Path, site: tuple[Path, dict[str, str]], fail_on: str
) -> None:
    posts, _ = site
    codes = {}
    for mode in ("crawl", "check"):
        cfg = make_config(tmp_path / mode, confirm_runs=1)
        clock = FakeClock()
        first = crawl(cfg, [Source(path=posts)], clock=clock, fail_on=fail_on, mode=mode)
        clock.advance(86400 * 2)
        second = crawl(cfg, [Source(path=posts)], clock=clock, fail_on=fail_on, mode=mode)
        codes[mode] = (first.exit_code, second.exit_code)
    assert codes["check"] == codes["crawl"]
    expected = {"new": (1, 0), "any": (1, 1), "none": (0, 0)}[fail_on]
    assert codes["check"] == expected


def test_offline_check_changes_no_state(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    write_post(posts, "a.md", "![x](https://cdn.example.org/x.png)\n")
    cfg = make_config(tmp_path)
    with pytest.raises(NetworkDownError):
        crawl(
            cfg,
            [Source(path=posts)],
            clock=FakeClock(),
            transport=HostMapTransport({}),
            mode="check",
        )
    assert url_table(cfg)["https://cdn.example.org/x.png"]["state"] == "pending"


def test_the_command_prints_one_line_and_exits_like_crawl(
    tmp_path: Path, site: tuple[Path, dict[str, str]]
) -> None:
    (tmp_path / "config.toml").write_text(
        'db = "state/archive.db"\nstore = "state/store"\nconfirm_runs = 1\n'
        '[[sources]]\npath = "posts"\n',
        encoding="utf-8",
    )
    done = run_cli("check", "--fail-on", "any", "--per-host", "2", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("1 post, 4 URLs, checked 4: dead=1 invalid=1 ok=2;")
    assert "0 new blobs" in done.stderr
    assert not list((tmp_path / "state" / "store").glob("??/*"))

    missing = run_cli("check", "nowhere", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == (
        "archiver: source nowhere does not exist (give a folder or file of posts)\n"
    )
