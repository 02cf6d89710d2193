"""Local files only from the source folder: nothing outside reaches the store, mirror or WARC.

A ``file:`` URL from a ``<base href>``, front matter or text, a ``../..`` path and a
symlink pointing out are all recorded ``blocked`` (``outside-source``), never read;
a live page's local references are dropped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import media
from click.testing import CliRunner
from server import LoopbackServer, Reply

from archiver.cli import cli
from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source
from archiver.db import Database
from archiver.run.crawl import crawl

SECRET = b"root:x:0:0:secret-bytes-that-must-stay-home\n"
PNG = media.picture("PNG", 1)


def config(tmp_path: Path) -> Config:
    return Config(
        db=tmp_path / "state" / "archive.db",
        store=tmp_path / "state" / "store",
        fetch=FetchConfig(retries=0, connect_timeout=5, read_timeout=5),
        confirm_runs=1,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def url_states(cfg: Config) -> dict[str, tuple[str, str | None]]:
    db = Database(cfg.db)
    try:
        return {r["url"]: (r["state"], r["error_class"]) for r in db.rows("SELECT * FROM urls")}
    finally:
        db.close()


def every_byte_of(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def outputs_hold_nothing_of(cfg: Config, tmp_path: Path, *secrets: bytes) -> None:
    """The store, ``restore --mirror`` and ``export --warc`` hold none of ``secrets``."""
    args = ["--db", str(cfg.db), "--store", str(cfg.store)]
    mirror, warc = tmp_path / "mirror", tmp_path / "out.warc"
    runner = CliRunner()
    restored = runner.invoke(cli, ["restore", *args, "--mirror", str(mirror)])
    exported = runner.invoke(cli, ["export", *args, "--warc", str(warc)])
    assert restored.exit_code == 0, restored.output
    assert exported.exit_code == 0, exported.output
    for data in (every_byte_of(cfg.store), every_byte_of(mirror), warc.read_bytes()):
        for secret in secrets:
            assert secret not in data
    for secret in secrets:
        digest = hashlib.sha256(secret).hexdigest()
        assert not (cfg.store / digest[:2] / digest).exists()


def test_html_post_with_a_file_base_is_blocked(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    write(
        posts / "event.html",
        '<html><head><base href="file://localhost/etc/"></head><body>'
        '<img src="passwd"><a href="passwd">passwords</a><img src="group.png">'
        "</body></html>\n",
    )
    cfg = config(tmp_path)
    warnings: list[str] = []
    summary = crawl(cfg, [Source(path=posts)], clock=FakeClock(), warn=warnings.append)
    assert url_states(cfg) == {
        "file:///etc/passwd": ("blocked", "outside-source"),
        "file:///etc/group.png": ("blocked", "outside-source"),
    }
    assert summary.counts == {"blocked": 2} and summary.exit_code == 0
    assert summary.newly_broken == [] and warnings == []
    passwd = Path("/etc/passwd").read_bytes()
    outputs_hold_nothing_of(cfg, tmp_path, passwd[:200])


def test_markdown_file_urls_dotdot_and_symlinks_out_are_blocked(tmp_path: Path) -> None:
    posts, outside = tmp_path / "posts", tmp_path / "private"
    outside.mkdir()
    (outside / "secret.png").write_bytes(PNG + SECRET)
    secret_url = (outside / "secret.png").as_uri()
    post = write(
        posts / "talks/index.md",
        f"---\ncover: {secret_url}\n---\n"
        f"![direct]({secret_url})\n\n"
        "![up](../../private/secret.png)\n\n"
        "![link](leak.png)\n\n"
        "![mine](cover.png)\n",
    )
    (post.parent / "leak.png").symlink_to(outside / "secret.png")
    (post.parent / "cover.png").write_bytes(PNG)
    cfg = config(tmp_path)
    summary = crawl(cfg, [Source(path=posts)], clock=FakeClock())
    assert url_states(cfg) == {
        secret_url: ("blocked", "outside-source"),  # front matter, text and ../.. alike
        (post.parent / "leak.png").resolve().as_uri(): ("blocked", "outside-source"),
        (post.parent / "cover.png").as_uri(): ("ok", None),
    }
    assert summary.exit_code == 0
    outputs_hold_nothing_of(cfg, tmp_path, SECRET)
    digest = hashlib.sha256(PNG).hexdigest()
    assert (cfg.store / digest[:2] / digest).exists()  # the post's own file is archived


def test_static_roots_are_allowed_too(tmp_path: Path) -> None:
    posts, shared = tmp_path / "posts", tmp_path / "shared"
    shared.mkdir()
    (shared / "logo.png").write_bytes(PNG)
    write(posts / "a.md", "![logo](/logo.png)\n")
    cfg = config(tmp_path)
    crawl(cfg, [Source(path=posts, static_roots=(shared,))], clock=FakeClock())
    assert url_states(cfg) == {(shared / "logo.png").resolve().as_uri(): ("ok", None)}


def test_a_live_page_produces_no_local_references(tmp_path: Path, server: LoopbackServer) -> None:
    asset = server.route("/deck.pdf", Reply(body=media.deck("x")))
    html = (
        '<html><head><base href="file://localhost/etc/"></head><body>'
        f'<img src="passwd"><a href="passwd.pdf">p</a><img src="file:///etc/hosts.png">'
        f'<a href="{asset}">deck</a></body></html>'
    ).encode()
    page = server.route("/event/", Reply(body=html, content_type="text/html"))
    cfg = config(tmp_path)
    summary = crawl(cfg, [Source(url=page)], clock=FakeClock())
    assert url_states(cfg) == {asset: ("ok", None)}
    assert summary.exit_code == 0
    outputs_hold_nothing_of(cfg, tmp_path, Path("/etc/passwd").read_bytes()[:200])
