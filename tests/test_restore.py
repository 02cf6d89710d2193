"""Restoring archived bytes: one asset, a static mirror, and what must never happen."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path, PurePosixPath

import pytest
from server import LoopbackServer
from test_report import FINE, PDF, PNG, World, make_world, sha

from archiver.ops import mirror as mirror_mod
from archiver.ops.mirror import safe_relpath


@pytest.fixture
def world(tmp_path: Path, server: LoopbackServer) -> World:
    return make_world(tmp_path, server)


def flip_byte(path: Path) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[20] ^= 0x01
    path.write_bytes(bytes(data))


def add_url(world: World, url: str, body: bytes = PDF, state: str = "dead") -> None:
    """A URL whose archived version is an existing blob (for names a server would not serve)."""
    db = world.db()
    with db.transaction():
        url_id = db.url_id(url, "2026-01-01T00:00:00Z")
        db.conn.execute(
            "UPDATE urls SET state=?, sha256=?, content_type='application/pdf' WHERE id=?",
            (state, sha(body), url_id),
        )
        db.conn.execute(
            "INSERT INTO versions (url_id, sha256, first_seen, last_seen)"
            " VALUES (?, ?, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            (url_id, sha(body)),
        )
    db.close()


# -- one asset -----------------------------------------------------------------


def test_round_trip_after_the_origin_is_gone(world: World, tmp_path: Path) -> None:
    world.server.close()  # the origin is dead for good
    out = tmp_path / "deck.pdf"
    code, stdout, stderr = world.run("restore", world.deck, "-o", str(out))
    assert code == 0 and stdout == ""
    assert out.read_bytes() == PDF
    assert stderr == f"restored {world.deck} ({sha(PDF)[:12]}, {len(PDF)} bytes) to {out}\n"
    photo = tmp_path / "photo.png"
    assert world.run("restore", world.photo, "-o", str(photo))[0] == 0
    assert photo.read_bytes() == PNG


def test_restore_to_stdout_writes_the_exact_bytes(world: World) -> None:
    from click.testing import CliRunner

    from archiver.cli import cli

    result = CliRunner().invoke(cli, ["restore", *world.args(), world.photo])
    assert result.exit_code == 0
    assert result.stdout_bytes == PNG


def test_sha256_picks_an_older_version(tmp_path: Path, server: LoopbackServer) -> None:
    world = make_world(tmp_path, server)
    world.bodies["/fine.pdf"] = FINE + b"% v2\n"
    world.crawl()
    newest, older = tmp_path / "new.pdf", tmp_path / "old.pdf"
    assert world.run("restore", world.fine, "-o", str(newest))[0] == 0
    assert newest.read_bytes() == FINE + b"% v2\n"
    assert world.run("restore", world.fine, "--sha256", sha(FINE), "-o", str(older))[0] == 0
    assert older.read_bytes() == FINE
    code, _, err = world.run("restore", world.fine, "--sha256", "ab" * 32)
    assert code == 1
    assert err.startswith(f"archiver: {world.fine} has no version {'ab' * 32} (versions: ")


def test_unknown_url_and_missing_copy_are_one_line_errors(world: World, tmp_path: Path) -> None:
    code, out, err = world.run("restore", "https://nowhere.example/x.pdf")
    assert (code, out) == (1, "")
    assert err == (
        "archiver: unknown URL https://nowhere.example/x.pdf: it is in no crawled post"
        " (check the spelling)\n"
    )
    code, _, err = world.run("restore", world.gone, "-o", str(tmp_path / "x.pdf"))
    assert code == 1
    assert err == f"archiver: no archived copy of {world.gone}: it was never fetched successfully\n"
    assert not (tmp_path / "x.pdf").exists()


def test_a_corrupt_blob_is_refused_and_leaves_no_file(world: World, tmp_path: Path) -> None:
    flip_byte(world.store().path_for(sha(PDF)))
    out = tmp_path / "deck.pdf"
    code, stdout, err = world.run("restore", world.deck, "-o", str(out))
    assert (code, stdout) == (1, "")
    assert re.fullmatch(
        rf"archiver: blob {sha(PDF)} is corrupt \(its bytes hash to [0-9a-f]{{12}}…\);"
        r" refusing to restore it: run 'archiver verify --repair'\n",
        err,
    )
    assert not out.exists() and list(tmp_path.glob(".restore-*")) == []
    # the failed check is remembered: the next attempt and the report know it is damaged
    code, _, err = world.run("restore", world.deck)
    assert err == (
        f"archiver: the archived copy of {world.deck} (sha256 {sha(PDF)}) is missing or"
        " damaged; run 'archiver verify --repair'\n"
    )
    report = json.loads(world.run("report", "--format", "json")[1])
    assert report[0]["restorable"] is False


def test_usage_errors(world: World) -> None:
    code, _, err = world.run("restore")
    assert code == 2
    assert err == (
        "archiver: give exactly one of: URL, --mirror DIR, --rewrite, --undo"
        " (see 'archiver restore --help')\n"
    )
    code, _, err = world.run("restore", "--rewrite")
    assert err == "archiver: --rewrite needs --mirror-url (the public URL of the mirror)\n"


HELP = " (see 'archiver restore --help')\n"


@pytest.mark.parametrize(
    ("args", "err"),
    [
        # one URL
        (["URL", "--mirror-url", "https://m.example/"], "--mirror-url only applies to --rewrite,"),
        (["URL", "--post", "2024/*"], "--post only applies to --rewrite,"),
        (["URL", "--state", "dead"], "--state only applies to --mirror DIR or --rewrite,"),
        (["URL", "--dry-run"], "--dry-run only applies to --rewrite or --undo,"),
        # a mirror
        (["--mirror", "M", "-o", "X"], "-o/--output only applies to restoring one URL,"),
        (["--mirror", "M", "--sha256", "ab"], "--sha256 only applies to restoring one URL,"),
        (["--mirror", "M", "--mirror-url", "https://m.example/"], "--mirror-url only applies"),
        (["--mirror", "M", "--post", "2024/*"], "--post only applies to --rewrite,"),
        # a rewrite, with or without the mirror
        (["--rewrite", "--mirror-url", "https://m.example/", "-o", "X"], "-o/--output only"),
        (["--rewrite", "--mirror-url", "https://m.example/", "--sha256", "ab"], "--sha256 only"),
        (["--mirror", "M", "--rewrite", "--mirror-url", "https://m.example/", "-o", "X"], "-o/"),
        # an undo, of every link or of URL's
        (["--undo", "--mirror-url", "https://m.example/"], "--mirror-url only applies"),
        (["--undo", "--state", "dead"], "--state only applies to --mirror DIR or --rewrite,"),
        (["--undo", "--post", "2024/*"], "--post only applies to --rewrite,"),
        (["--undo", "URL", "-o", "X"], "-o/--output only applies to restoring one URL,"),
        (["--undo", "URL", "--sha256", "ab"], "--sha256 only applies to restoring one URL,"),
    ],
)
def test_an_option_of_another_form_is_refused(
    world: World, tmp_path: Path, args: list[str], err: str
) -> None:
    where = {"URL": world.deck, "M": str(tmp_path / "m"), "X": str(tmp_path / "x.pdf")}
    code, out, stderr = world.run("restore", *(where.get(a, a) for a in args))
    assert (code, out) == (2, "")
    assert stderr.startswith(f"archiver: {err}") and stderr.endswith(HELP)
    assert stderr.count("\n") == 1
    assert not (tmp_path / "m").exists() and not (tmp_path / "x.pdf").exists()


def test_refusals_name_the_option_the_form_it_needs_and_the_form_given(world: World) -> None:
    def err(*args: str) -> str:
        code, _, stderr = world.run("restore", *args)
        assert code == 2
        return stderr

    assert err(world.deck, "--mirror-url", "https://m.example/") == (
        "archiver: --mirror-url only applies to --rewrite, not to restoring one URL" + HELP
    )
    assert err("--undo", "--state", "dead") == (
        "archiver: --state only applies to --mirror DIR or --rewrite, not to --undo" + HELP
    )
    assert err(world.deck, "--dry-run") == (
        "archiver: --dry-run only applies to --rewrite or --undo, not to restoring one URL" + HELP
    )
    assert err("--mirror", "m", "--rewrite", "--mirror-url", "https://m.example/", "-o", "x") == (
        "archiver: -o/--output only applies to restoring one URL,"
        " not to --mirror DIR with --rewrite" + HELP
    )


def test_options_that_belong_to_the_form_still_work(world: World, tmp_path: Path) -> None:
    dest = tmp_path / "m"
    code, _, err = world.run("restore", "--mirror", str(dest), "--state", "dead")
    assert code == 0, err
    code, out, err = world.run(
        "restore",
        "--rewrite",
        "--mirror-url",
        "https://m.example/",
        "--state",
        "dead",
        "--post",
        "2025/*",
        "--dry-run",
    )
    assert code == 0, err
    assert "+++ b/2025/talk.md\n" in out and "2024/meetup.md" not in out
    code, out, err = world.run("restore", "--undo", "--dry-run")
    assert (code, out) == (0, ""), err


# -- a mirror ------------------------------------------------------------------


def test_mirror_writes_host_path_files_and_a_manifest(world: World, tmp_path: Path) -> None:
    dest = tmp_path / "mirror"
    code, _, err = world.run("restore", "--mirror", str(dest))
    assert code == 0
    assert err == (
        f"mirror: skipped {world.gone}: no archived copy\n"
        "mirror: 2 written (2 hard links, 0 copies), 0 unchanged, 1 skipped (1 with no copy)\n"
    )
    host = f"127.0.0.1_{world.server.port}"
    deck, photo = dest / host / "deck.pdf", dest / host / "photo.png"
    assert deck.read_bytes() == PDF and photo.read_bytes() == PNG
    assert deck.stat().st_ino == world.store().path_for(sha(PDF)).stat().st_ino  # a hard link
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest == {
        world.deck: {
            "path": f"{host}/deck.pdf",
            "sha256": sha(PDF),
            "content_type": "application/pdf",
            "url_hash": sha(world.deck.encode()),
        },
        world.photo: {
            "path": f"{host}/photo.png",
            "sha256": sha(PNG),
            "content_type": "image/png",
            "url_hash": sha(world.photo.encode()),
        },
    }
    before = {p: p.stat().st_mtime_ns for p in dest.rglob("*")}
    code, _, err = world.run("restore", "--mirror", str(dest))
    assert code == 0
    assert err == (
        f"mirror: skipped {world.gone}: no archived copy\n"
        "mirror: 0 written (0 hard links, 0 copies), 2 unchanged, 1 skipped (1 with no copy)\n"
    )
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*")} == before  # idempotent
    code, _, err = world.run("restore", "--mirror", str(dest), "--state", "all")
    assert json.loads((dest / "manifest.json").read_text())[world.fine]["sha256"] == sha(FINE)


def test_mirror_copies_when_a_hard_link_is_impossible(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cross_device(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(mirror_mod.os, "link", cross_device)
    dest = tmp_path / "mirror"
    code, _, err = world.run("restore", "--mirror", str(dest))
    assert code == 0 and "\nmirror: 2 written (0 hard links, 2 copies)" in err
    copy = dest / f"127.0.0.1_{world.server.port}" / "deck.pdf"
    assert copy.read_bytes() == PDF
    assert copy.stat().st_ino != world.store().path_for(sha(PDF)).stat().st_ino


def test_mirror_skips_a_damaged_blob_and_exits_1(world: World, tmp_path: Path) -> None:
    flip_byte(world.store().path_for(sha(PNG)))
    code, _, err = world.run("restore", "--mirror", str(tmp_path / "m"))
    assert code == 1
    assert f"archiver: warning: {world.photo}: blob {sha(PNG)} is corrupt or missing" in err
    assert not (tmp_path / "m" / f"127.0.0.1_{world.server.port}" / "photo.png").exists()


# -- safe names ----------------------------------------------------------------

ATTACKS = [
    "http://h.example/../../etc/passwd",
    "http://h.example/%2e%2e/%2e%2e/etc/passwd",
    "http://h.example/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "http://h.example/..%5c..%5cwindows%5cwin.ini",
    "http://h.example/a\\..\\..\\..\\b.pdf",
    "http://h.example//etc/passwd",
    "http://h.example/%00/x.pdf",
    "http://../x.pdf",
    "http://h.example/C:/Windows/x.pdf",
    "http://h.example/./././",
]


@pytest.mark.parametrize("url", ATTACKS)
def test_no_url_names_a_path_outside_its_host_directory(url: str) -> None:
    path = safe_relpath(url, "application/pdf")
    parts = PurePosixPath(path).parts
    assert not PurePosixPath(path).is_absolute()
    assert ".." not in parts and "." not in parts
    assert len(parts) >= 2
    for part in parts:
        assert not re.search(r'[<>:"/\\|?*\x00-\x1f]', part), part
        assert not part.endswith((".", " ")), part


def test_names_are_valid_everywhere_and_keep_what_they_can() -> None:
    assert safe_relpath("https://Example.org/talks/deck.pdf") == "example.org/talks/deck.pdf"
    assert safe_relpath("http://h:8080/a.png") == "h_8080/a.png"
    reserved = safe_relpath("http://h/CON.pdf")
    assert reserved.startswith("h/_CON~") and reserved.endswith(".pdf")
    # a query string gives the name its hash (never itself), and the type gives the extension
    q = safe_relpath("http://h/get?id=3&f=a/b", "application/pdf")
    assert q == f"h/get~q-{sha(b'id=3&f=a/b')[:16]}~{sha(b'http://h/get?id=3&f=a/b')[:10]}.pdf"
    assert safe_relpath("http://h/get?id=4", "application/pdf") != safe_relpath(
        "http://h/get?id=3", "application/pdf"
    )
    long = safe_relpath("http://h/" + "x" * 400 + ".pdf")
    assert len(long.split("/")[-1].encode()) <= 255 and long.endswith(".pdf")


def test_traversal_attempts_never_write_outside_the_mirror(world: World, tmp_path: Path) -> None:
    for url in ATTACKS:
        add_url(world, url)
    dest = tmp_path / "box" / "mirror"
    code, _, _ = world.run("restore", "--mirror", str(dest))
    assert code == 0
    outside = {p for p in tmp_path.rglob("*") if p.is_file()} - set(
        tmp_path.joinpath("box").rglob("*")
    )
    assert not any(p.name in ("passwd", "win.ini", "x.pdf", "b.pdf") for p in outside)
    manifest = json.loads((dest / "manifest.json").read_text())
    for url in ATTACKS:
        target = (dest / manifest[url]["path"]).resolve()
        assert target.is_relative_to(dest.resolve()) and target.read_bytes() == PDF
    assert len({e["path"] for e in manifest.values()}) == len(manifest)  # collisions resolved


def test_a_symlink_in_the_mirror_is_not_followed_out(world: World, tmp_path: Path) -> None:
    dest, outside = tmp_path / "mirror", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / f"127.0.0.1_{world.server.port}").symlink_to(outside)
    code, _, err = world.run("restore", "--mirror", str(dest))
    assert code == 1
    assert "would leave the mirror" in err
    assert list(outside.iterdir()) == []


def test_collisions_get_distinct_stable_names(world: World, tmp_path: Path) -> None:
    urls = [
        "http://c.example/a.pdf",
        "http://c.example/A.pdf",  # same name on a case-insensitive disk
        "http://c.example/a.pdf/inner.pdf",  # needs a.pdf to be a directory
        "https://c.example/a.pdf",  # another scheme, same host and path
    ]
    for url in urls:
        add_url(world, url)
    dest = tmp_path / "mirror"
    assert world.run("restore", "--mirror", str(dest))[0] == 0
    first = json.loads((dest / "manifest.json").read_text())
    paths = [first[u]["path"] for u in urls]
    assert len({p.casefold() for p in paths}) == 4
    for p in paths:
        assert (dest / p).read_bytes() == PDF
    # stable across runs, even into a new directory
    assert world.run("restore", "--mirror", str(tmp_path / "again"))[0] == 0
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert [again[u]["path"] for u in urls] == paths


def test_a_local_asset_is_mirrored_without_the_machines_folders() -> None:
    from archiver.ops.mirror import safe_relpath

    a = safe_relpath("file:///home/alice/site/content/talk/cover.jpg")
    b = safe_relpath("file:///home/alice/site/content/other/cover.jpg")
    assert a.startswith("local/cover~") and a.endswith(".jpg")
    assert "alice" not in a and a != b
