"""Secrets stay out of what archiver publishes: the mirror, and every report but JSON.

A post links ``http://user:secret@127.0.0.1:PORT/doc.pdf?token=abc``; a real crawl
archives it from a loopback server. The mirror's file names and manifest must hold
neither the password nor the query; the report formats made for people mask the
password and drop the control characters a server put in its text.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path

import media
import pytest
from hostile_server import HostileServer, raw
from server import LoopbackServer
from test_report import World, make_world, sha

from archiver.config import Source
from archiver.ops.mirror import manifest_entry, mirror_url_for, query_mark
from archiver.redact import clean_text, mask_url, public_url
from archiver.run.crawl import crawl

DOC = media.deck("members only", 520)
MIRROR = "https://mirror.example.org/"
# Every character clean_text must drop: C0, DEL, C1, bidi controls, line separators.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
TEXT_FORMATS = ("table", "markdown", "csv", "html")


class Secret:
    """The world of ``test_report`` plus a post linking a URL with a password and a token."""

    def __init__(self, tmp_path: Path, server: LoopbackServer) -> None:
        self.world = w = make_world(tmp_path, server)
        w.bodies["/doc.pdf"], w.alive["/doc.pdf"] = DOC, True
        server.route("/doc.pdf", w._script)
        self.url = f"http://user:secret@127.0.0.1:{server.port}/doc.pdf?token=abc"
        self.post = w.write("2025/members.md", f"[doc]({self.url})\n")
        w.crawl()
        w.kill("/doc.pdf")
        w.crawl()  # dead now, with a good copy: what a mirror and a rewrite are for

    def mirror(self, *args: str) -> tuple[int, str, str, Path]:
        dest = self.world.tmp / "mirror"
        code, out, err = self.world.run("restore", "--mirror", str(dest), *args)
        return code, out, err, dest


@pytest.fixture
def secret(tmp_path: Path, server: LoopbackServer) -> Secret:
    return Secret(tmp_path, server)


def state_of(world: World, url: str) -> str:
    db = world.db()
    try:
        return str(db.scalar("SELECT state FROM urls WHERE url=?", (url,)))
    finally:
        db.close()


def published(dest: Path) -> list[str]:
    """Every name in the mirror, relative to it."""
    return [p.relative_to(dest).as_posix() for p in dest.rglob("*")]


# -- the mirror ----------------------------------------------------------------------------


def test_the_mirror_holds_neither_userinfo_nor_the_query(secret: Secret) -> None:
    assert state_of(secret.world, secret.url) == "dead"
    code, _, _, dest = secret.mirror()
    assert code == 0
    for name in published(dest):
        assert "secret" not in name and "user" not in name and "token" not in name, name
    text = (dest / "manifest.json").read_text(encoding="utf-8")
    assert "secret" not in text and "token=abc" not in text and "user" not in text
    manifest = json.loads(text)
    port = secret.world.server.port
    key = f"http://127.0.0.1:{port}/doc.pdf?sha256-{sha(b'token=abc')}"
    assert manifest[key]["url_hash"] == sha(secret.url.encode())
    assert manifest_entry(manifest, secret.url) is manifest[key]
    path = manifest[key]["path"]
    assert path == f"127.0.0.1_{port}/doc{query_mark('token=abc')}.pdf"  # the hash, not the query
    assert (dest / path).read_bytes() == DOC
    # every entry carries the hash of its URL, and only URLs with a query change form
    for url in (secret.world.deck, secret.world.photo):
        assert manifest[url]["url_hash"] == sha(url.encode())


def test_rewrite_and_undo_still_work_with_hashed_names(secret: Secret) -> None:
    code, _, _, dest = secret.mirror()
    assert code == 0
    entry = manifest_entry(json.loads((dest / "manifest.json").read_text()), secret.url)
    assert entry is not None
    original = secret.post.read_text()
    code, _, err = secret.world.run("restore", "--rewrite", "--mirror-url", MIRROR)
    assert code == 0, err
    assert secret.post.read_text() == f"[doc]({mirror_url_for(MIRROR, entry['path'])})\n"
    code, _, err = secret.world.run("restore", "--undo")
    assert code == 0, err
    assert secret.post.read_text() == original


def make_legacy(secret: Secret, dest: Path) -> tuple[str, str]:
    """Turns a fresh mirror into one an older archiver wrote: the query in the file name,
    the manifest keyed by the URL as recorded, without url_hash. Returns (old, new) paths."""
    manifest = json.loads((dest / "manifest.json").read_text())
    entry = manifest_entry(manifest, secret.url)
    assert entry is not None
    new = entry["path"]
    old = f"{new.rsplit('/', 1)[0]}/doc~token=abc~{sha(secret.url.encode())[:10]}.pdf"
    (dest / new).rename(dest / old)
    legacy = {url: {k: v for k, v in e.items() if k != "url_hash"} for url, e in manifest.items()}
    del legacy[public_url(secret.url)]
    legacy[secret.url] = {**entry, "path": old}
    legacy[secret.url].pop("url_hash")
    (dest / "manifest.json").write_text(json.dumps(legacy), encoding="utf-8")
    db = secret.world.db()
    with db.transaction():
        db.conn.execute(
            "UPDATE mirror_paths SET path=?, key=? WHERE path=?", (old, old.casefold(), new)
        )
    db.close()
    return old, new


def test_an_older_mirror_loses_the_query_from_its_names(secret: Secret) -> None:
    _, _, _, dest = secret.mirror()
    old, new = make_legacy(secret, dest)
    code, _, err, _ = secret.mirror()
    assert code == 0
    assert f"mirror file {old} held a query string in its name: renamed to {new}" in err
    assert err.splitlines()[-1].endswith("1 renamed")
    assert not any("token" in name for name in published(dest))
    assert (dest / new).read_bytes() == DOC
    manifest = json.loads((dest / "manifest.json").read_text())
    assert "secret" not in json.dumps(manifest) and "token=abc" not in json.dumps(manifest)
    assert all(e["url_hash"] for e in manifest.values())
    assert manifest_entry(manifest, secret.url) == {
        "path": new,
        "sha256": sha(DOC),
        "content_type": "application/pdf",
        "url_hash": sha(secret.url.encode()),
    }
    db = secret.world.db()
    assert db.scalar("SELECT COUNT(*) FROM mirror_paths WHERE path LIKE '%token%'") == 0
    db.close()
    # the next run has nothing left to move
    code, _, err, _ = secret.mirror()
    assert (code, "renamed" in err) == (0, False)


def test_an_older_file_whose_url_is_not_mirrored_this_run_is_removed(secret: Secret) -> None:
    _, _, _, dest = secret.mirror()
    old, _ = make_legacy(secret, dest)
    code, _, err, _ = secret.mirror("--state", "invalid")  # no URL is invalid
    assert code == 0
    assert f"mirror file {old} held a query string in its name: removed" in err
    assert not (dest / old).exists()
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest_entry(manifest, secret.url) is None
    assert "token=abc" not in json.dumps(manifest)


def test_two_urls_that_differ_only_in_userinfo_keep_two_entries(secret: Secret) -> None:
    bare = secret.url.replace("user:secret@", "")
    db = secret.world.db()
    with db.transaction():
        url_id = db.url_id(bare, "2026-01-01T00:00:00Z")
        db.conn.execute(
            "UPDATE urls SET state='dead', sha256=?, content_type='application/pdf' WHERE id=?",
            (sha(DOC), url_id),
        )
        db.conn.execute(
            "INSERT INTO versions (url_id, sha256, first_seen, last_seen)"
            " VALUES (?, ?, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            (url_id, sha(DOC)),
        )
    db.close()
    code, _, _, dest = secret.mirror()
    assert code == 0
    manifest = json.loads((dest / "manifest.json").read_text())
    a, b = manifest_entry(manifest, secret.url), manifest_entry(manifest, bare)
    assert a is not None and b is not None and a["path"] != b["path"]
    assert {k for k in manifest if k.startswith(public_url(bare))} == {
        public_url(bare),
        f"{public_url(bare)}#{(a if manifest[public_url(bare)] is b else b)['url_hash'][:16]}",
    }


# -- reports -------------------------------------------------------------------------------


def report(world: World, fmt: str) -> str:
    code, out, _ = world.run("report", "--format", fmt, "--state", "all")
    assert code == 1  # links match
    return out


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_reports_for_people_mask_the_password(secret: Secret, fmt: str) -> None:
    out = report(secret.world, fmt)
    assert "secret" not in out
    assert "user:***@127.0.0.1" in out


def test_the_json_report_keeps_the_url_as_recorded(secret: Secret) -> None:
    rows = json.loads(report(secret.world, "json"))
    assert secret.url in [r["url"] for r in rows]


def test_status_masks_the_password(secret: Secret) -> None:
    db = secret.world.db()
    with db.transaction():  # the URL checked longest ago is the one status names
        db.conn.execute("UPDATE urls SET last_checked=NULL WHERE url=?", (secret.url,))
    db.close()
    code, out, _ = secret.world.run("status")
    assert code == 0
    assert "user:***@127.0.0.1" in out and "secret" not in out
    code, out, _ = secret.world.run("status", "--format", "json")
    assert json.loads(out)["oldest_check"]["url"] == secret.url


INJECTED = "HTTP 502 Bad\x1b[31m Gateway\r\nX-Injected: 1\x07\x7f\x9b2J\u202eevil\u2066"


def test_control_characters_in_a_stored_error_are_dropped(secret: Secret) -> None:
    db = secret.world.db()
    with db.transaction():
        db.conn.execute("UPDATE urls SET error=? WHERE url=?", (INJECTED, secret.world.gone))
    db.close()
    cleaned = "HTTP 502 Bad[31m Gateway  X-Injected: 12Jevil"
    for fmt in TEXT_FORMATS:
        out = report(secret.world, fmt)
        assert cleaned in out, fmt
        assert not CONTROL.search(out.replace("\n", "")), fmt  # line ends are the format's
    errors = [r["error"] for r in csv.DictReader(io.StringIO(report(secret.world, "csv")))]
    assert cleaned in errors
    rows = json.loads(report(secret.world, "json"))
    assert INJECTED in [r["error"] for r in rows]  # JSON keeps what was recorded


def test_the_table_shows_square_brackets_as_sent_not_as_markup(secret: Secret) -> None:
    """rich reads "[...]" in a str as markup: "[/]" alone used to crash the report."""
    db = secret.world.db()
    with db.transaction():
        db.conn.execute(
            "UPDATE urls SET error=? WHERE url=?", ("[bold]loud[/bold] [/]", secret.world.gone)
        )
    db.close()
    assert "[bold]loud[/bold] [/]" in report(secret.world, "table")


def test_a_reason_phrase_with_control_characters_is_dropped_from_reports(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """A real server's reason phrase, through the transport a run uses by default.

    Whatever the HTTP layer lets through into ``error`` (today an ESC and a bare CR;
    httpx already drops non-ASCII bytes), no report for people shows a control character.
    """
    with HostileServer() as hostile:
        phrase = b"Not\x1b[31m Fo\rund\x07"
        url = hostile.route(
            "/rude.pdf", raw(b"HTTP/1.1 404 " + phrase + b"\r\nContent-Length: 0\r\n\r\n")
        )
        world = make_world(tmp_path, server)
        world.write("2025/rude.md", f"[rude]({url})\n")
        source = Source(path=world.posts.resolve(), static_roots=(world.posts.resolve(),))
        crawl(world.cfg, [source], clock=world.clock, all_=True, fail_on="none")
    rows = json.loads(report(world, "json"))
    (row,) = [r for r in rows if r["url"] == url]
    stored = row["error"]
    assert stored and row["state"] in ("dead", "error")
    for fmt in TEXT_FORMATS:
        out = report(world, fmt)
        assert not CONTROL.search(out.replace("\n", "")), fmt
        shown = clean_text(stored)
        assert (html.escape(shown) if fmt == "html" else shown) in out, fmt


def test_the_redaction_helpers() -> None:
    assert mask_url("https://u:p@h/x") == "https://u:***@h/x"
    assert mask_url("https://u@h/x") == "https://u@h/x"  # no password, nothing to hide
    assert mask_url("https://u:p:q@x@h/x?y=@") == "https://u:***@h/x?y=@"
    assert mask_url("not a url u:p@h") == "not a url u:p@h"
    assert public_url("https://u:p@h:8/a/b?t=1#frag") == f"https://h:8/a/b?sha256-{sha(b't=1')}"
    assert public_url("https://h/a") == "https://h/a"
    assert public_url("https://h/a?") == f"https://h/a?sha256-{sha(b'')}"
    assert clean_text("a\r\nb\x1b[0m\u202ec") == "a  b[0mc"


def test_the_crawls_terminal_lines_mask_the_password(
    tmp_path: Path, server: LoopbackServer
) -> None:
    world = World(tmp_path, server)
    url = f"http://user:secret@127.0.0.1:{server.port}/gone.pdf?token=abc"
    world.write("2025/members.md", f"[doc]({url})\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text("confirm_runs = 1\n[fetch]\nretries = 0\n", encoding="utf-8")
    code, _, err = world.run("crawl", "--config", str(cfg), str(world.posts))
    assert code == 1
    assert f"archiver: warning: newly broken: {mask_url(url)}\n" in err
    assert "secret" not in err
