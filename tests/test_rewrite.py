"""Pointing broken links at the mirror: only the recorded spans change, and undo puts them back."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from server import LoopbackServer
from test_report import World, make_world

from archiver.config import Source
from archiver.net.fetch import HostMapTransport
from archiver.run.crawl import crawl

MIRROR = "https://mirror.example.org/"


@pytest.fixture
def world(tmp_path: Path, server: LoopbackServer) -> World:
    w = make_world(tmp_path, server)
    assert w.run("restore", "--mirror", str(tmp_path / "mirror"))[0] == 0
    return w


def post(world: World, rel: str) -> bytes:
    return (world.posts / rel).read_bytes()


def mirrored(world: World, name: str) -> str:
    return f"https://mirror.example.org/127.0.0.1_{world.server.port}/{name}"


def test_dry_run_prints_a_unified_diff_and_changes_nothing(world: World) -> None:
    before = {p: post(world, p) for p in ("2024/meetup.md", "2025/talk.md")}
    code, out, err = world.run("restore", "--rewrite", "--mirror-url", MIRROR, "--dry-run")
    assert code == 0
    deck, photo = mirrored(world, "deck.pdf"), mirrored(world, "photo.png")
    assert out == (
        "--- a/2024/meetup.md\n"
        "+++ b/2024/meetup.md\n"
        "@@ -1,8 +1,8 @@\n"
        " # Meetup\n"
        " \n"
        f"-Slides: [deck]({world.deck})\n"
        f"+Slides: [deck]({deck})\n"
        " \n"
        f"-![photo]({world.photo})\n"
        f"+![photo]({photo})\n"
        " \n"
        " ```text\n"
        f" {world.deck}\n"
        "--- a/2025/talk.md\n"
        "+++ b/2025/talk.md\n"
        "@@ -1 +1 @@\n"
        f"-[gone]({world.gone}) and [again]({world.deck}) and [fine]({world.fine})\n"
        f"+[gone]({world.gone}) and [again]({deck}) and [fine]({world.fine})\n"
    )
    assert err == "would change 3 links in 2 posts; 0 posts skipped\n"
    assert {p: post(world, p) for p in before} == before


def test_apply_changes_only_the_spans_and_undo_restores_every_byte(world: World) -> None:
    meetup = world.posts / "2024/meetup.md"
    os.chmod(meetup, 0o640)
    original = {p: post(world, p) for p in ("2024/meetup.md", "2025/talk.md")}
    code, out, err = world.run("restore", "--rewrite", "--mirror-url", MIRROR)
    assert (code, out) == (0, "")
    assert err == "rewrote 3 links in 2 posts; 0 posts skipped\n"
    deck, photo = mirrored(world, "deck.pdf"), mirrored(world, "photo.png")
    text = original["2024/meetup.md"].decode()
    first = text.index(world.deck)
    expected = text[:first] + text[first:].replace(world.deck, deck, 1).replace(
        world.photo, photo, 1
    )
    assert post(world, "2024/meetup.md").decode() == expected
    assert post(world, "2024/meetup.md").decode().count(world.deck) == 1  # the code block
    assert stat.S_IMODE(meetup.stat().st_mode) == 0o640
    talk = original["2025/talk.md"].decode().replace(f"({world.deck})", f"({deck})")
    assert post(world, "2025/talk.md").decode() == talk
    # a second run finds nothing left to do and touches nothing
    code, _, err = world.run("restore", "--rewrite", "--mirror-url", MIRROR)
    assert (code, err) == (0, "rewrote 0 links in 0 posts; 0 posts skipped\n")
    code, out, err = world.run("restore", "--undo")
    assert (code, out) == (0, "")
    assert err == "restored 3 links in 2 posts; 0 posts skipped\n"
    assert {p: post(world, p) for p in original} == original
    assert stat.S_IMODE(meetup.stat().st_mode) == 0o640
    assert list(world.posts.rglob(".*.tmp")) == []


def test_undo_one_url_when_it_comes_back_to_life(world: World) -> None:
    original = {p: post(world, p) for p in ("2024/meetup.md", "2025/talk.md")}
    assert world.run("restore", "--rewrite", "--mirror-url", MIRROR)[0] == 0
    code, out, err = world.run("restore", "--undo", world.photo, "--dry-run")
    assert code == 0 and f"+![photo]({world.photo})\n" in out
    code, _, err = world.run("restore", "--undo", world.photo)
    assert err == "restored 1 link in 1 post; 0 posts skipped\n"
    meetup = post(world, "2024/meetup.md").decode()
    assert f"![photo]({world.photo})" in meetup and f"({mirrored(world, 'deck.pdf')})" in meetup
    code, _, err = world.run("restore", "--undo")  # the remaining offsets were kept right
    assert err == "restored 2 links in 2 posts; 0 posts skipped\n"
    assert {p: post(world, p) for p in original} == original
    code, _, err = world.run("restore", "--undo", world.photo)
    assert code == 1
    assert err == (
        f"archiver: no rewrite of {world.photo} to undo (see 'archiver restore --undo --dry-run')\n"
    )


def test_a_post_edited_since_the_crawl_is_skipped_with_a_warning(world: World) -> None:
    talk = world.posts / "2025/talk.md"
    talk.write_bytes(talk.read_bytes() + b"\nedited by hand\n")
    edited = talk.read_bytes()
    code, _, err = world.run("restore", "--rewrite", "--mirror-url", MIRROR)
    assert code == 1
    assert err == (
        "archiver: warning: 2025/talk.md: changed since the last crawl; run 'archiver crawl'"
        " first; skipped\n"
        "rewrote 2 links in 1 post; 1 post skipped\n"
    )
    assert talk.read_bytes() == edited


def test_a_span_that_no_longer_holds_the_url_is_skipped(world: World) -> None:
    db = world.db()
    with db.transaction():
        db.conn.execute(
            "UPDATE refs SET start = start + 1 WHERE post_id ="
            " (SELECT id FROM posts WHERE path = '2025/talk.md')"
        )
    db.close()
    before = post(world, "2025/talk.md")
    code, _, err = world.run("restore", "--rewrite", "--mirror-url", MIRROR)
    assert code == 1
    assert (
        f"archiver: warning: 2025/talk.md: recorded link {world.deck!r} is not where the last"
        " crawl saw it; run 'archiver crawl' first; skipped\n"
    ) in err
    assert post(world, "2025/talk.md") == before


def test_undo_refuses_a_post_edited_after_the_rewrite(world: World) -> None:
    assert world.run("restore", "--rewrite", "--mirror-url", MIRROR)[0] == 0
    talk = world.posts / "2025/talk.md"
    talk.write_bytes(b"# new heading\n" + talk.read_bytes())
    edited = talk.read_bytes()
    code, _, err = world.run("restore", "--undo")
    assert code == 1
    assert (
        "archiver: warning: 2025/talk.md: edited since archiver rewrote it; put the original"
        " URLs back by hand ("
    ) in err
    assert f"{mirrored(world, 'deck.pdf')} -> http://127.0.0.1:{world.server.port}/deck.pdf" in err
    assert talk.read_bytes() == edited


def test_undo_forgets_rewrites_put_back_by_hand(world: World) -> None:
    talk = world.posts / "2025/talk.md"
    original = talk.read_bytes()
    assert world.run("restore", "--rewrite", "--mirror-url", MIRROR)[0] == 0
    talk.write_bytes(b"# new heading\n" + original)  # edited, and the old URLs are back
    code, _, err = world.run("restore", "--undo")
    assert code == 0, err
    assert "2025/talk.md: the mirror URLs are no longer in the post; nothing to undo" in err
    assert talk.read_bytes() == b"# new heading\n" + original
    assert world.run("restore", "--undo")[0] == 0  # and it stays settled


def test_links_not_yet_mirrored_are_named(tmp_path: Path, server: LoopbackServer) -> None:
    world = make_world(tmp_path, server)  # no mirror made
    code, _, err = world.run("restore", "--rewrite", "--mirror-url", MIRROR)
    assert code == 1
    assert (
        f"archiver: warning: {world.deck}: not in a mirror yet; run 'archiver restore"
        " --mirror DIR' first\n"
    ) in err


def test_mirror_and_rewrite_in_one_go_then_crawl_then_undo(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server stands for a public host, so the unknown mirror host is not "offline".
    monkeypatch.setenv("ARCHIVER_PUBLIC_ADDRESSES", "127.0.0.1/32")
    world = make_world(tmp_path, server)
    original = post(world, "2024/meetup.md")
    code, _, _ = world.run(
        "restore", "--mirror", str(tmp_path / "m"), "--rewrite", "--mirror-url", MIRROR
    )
    assert code == 0
    assert mirrored(world, "deck.pdf") in post(world, "2024/meetup.md").decode()
    world.crawl()  # re-parses the rewritten posts (the mirror host is unknown: no network)
    assert world.run("restore", "--undo")[0] == 0
    assert post(world, "2024/meetup.md") == original


def test_mirror_url_must_be_http(world: World) -> None:
    code, _, err = world.run("restore", "--rewrite", "--mirror-url", "mirror.example.org")
    assert code == 2
    assert err == (
        "archiver: --mirror-url must be an http(s) URL like https://mirror.example.org/,"
        " got 'mirror.example.org'\n"
    )


def test_a_source_that_is_one_file_is_rewritten_and_undone(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """The database names a one-file source's post by its file name, not source/name."""
    world = World(tmp_path, server)
    one = (world.posts / "2024/meetup.md").resolve()
    source = Source(path=one, static_roots=(one.parent,))

    def crawl_one() -> None:
        crawl(world.cfg, [source], clock=world.clock, transport=HostMapTransport({}), all_=True)
        world.clock.advance(2 * 86400)

    crawl_one()
    world.kill("/deck.pdf")
    crawl_one()
    original = one.read_bytes()
    assert world.run("restore", "--mirror", str(tmp_path / "mirror"))[0] == 0
    code, _, err = world.run("restore", "--rewrite", "--mirror-url", MIRROR)
    assert (code, err) == (0, "rewrote 1 link in 1 post; 0 posts skipped\n")
    assert mirrored(world, "deck.pdf") in one.read_text()
    assert world.run("restore", "--undo")[0] == 0
    assert one.read_bytes() == original
