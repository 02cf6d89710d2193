"""A copy verify found lost or damaged, and a link ``restore --undo`` put back, are due.

Real SQLite file, real store, a real crawl against the loopback server; the crawls
here are plain ones (no ``--all``) with ``recheck_after`` far away, so a URL is
fetched only when something made it due.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from server import LoopbackServer
from test_report import FINE, PDF, World, make_world, sha

from archiver import Source
from archiver.net.fetch import HostMapTransport
from archiver.run.crawl import crawl
from archiver.store.directory import sha256_of

MONTH = 30 * 86400.0


def plain_crawl(world: World) -> None:
    """``archiver crawl`` without ``--all``: only what is due is fetched."""
    source = Source(path=world.posts.resolve(), static_roots=(world.posts.resolve(),))
    crawl(world.cfg, [source], clock=world.clock, transport=HostMapTransport({}), fail_on="none")


def hits(world: World, path: str) -> int:
    return world.server.stats(path).hits


def recheck(world: World, url: str) -> str | None:
    db = world.db()
    try:
        value = db.scalar("SELECT recheck FROM urls WHERE url=?", (url,))
    finally:
        db.close()
    return None if value is None else str(value)


@pytest.fixture
def world(tmp_path: Path, server: LoopbackServer) -> World:
    """Crawled once, everything but gone.pdf alive; nothing falls due by age any more."""
    w = World(tmp_path, server)
    w.crawl()
    w.cfg = replace(w.cfg, recheck_after=MONTH)
    before = {p: hits(w, p) for p in ("/deck.pdf", "/fine.pdf")}
    plain_crawl(w)  # the control: nothing is due, nothing is fetched
    assert {p: hits(w, p) for p in before} == before
    return w


def test_a_blob_verify_found_missing_is_fetched_again_by_the_next_crawl(world: World) -> None:
    blob = world.store().path_for(sha(FINE))
    blob.unlink()
    code, out, err = world.run("verify")
    assert code == 1 and f"missing blob: {sha(FINE)}" in out + err
    assert recheck(world, world.fine) == "copy-missing"
    fine, deck = hits(world, "/fine.pdf"), hits(world, "/deck.pdf")
    plain_crawl(world)
    assert hits(world, "/fine.pdf") == fine + 1  # fetched in full, not revalidated
    assert hits(world, "/deck.pdf") == deck  # its copy is fine: not due
    assert sha256_of(blob) == sha(FINE)
    assert recheck(world, world.fine) is None
    assert world.run("verify")[0] == 0


def test_a_blob_verify_found_corrupt_is_fetched_again_by_the_next_crawl(world: World) -> None:
    blob = world.store().path_for(sha(PDF))
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[10] ^= 0xFF
    blob.write_bytes(bytes(data))
    code, out, err = world.run("verify")
    assert code == 1 and f"corrupt blob: {sha(PDF)}" in out + err
    assert recheck(world, world.deck) == "copy-damaged"
    deck, fine = hits(world, "/deck.pdf"), hits(world, "/fine.pdf")
    plain_crawl(world)
    assert hits(world, "/deck.pdf") == deck + 1
    assert hits(world, "/fine.pdf") == fine
    assert sha256_of(blob) == sha(PDF)
    assert recheck(world, world.deck) is None
    assert world.run("verify")[0] == 0


def test_a_blob_verify_repaired_is_not_made_due(world: World) -> None:
    world.store().path_for(sha(FINE)).unlink()
    code, out, err = world.run("verify", "--repair")
    assert code == 0 and f"repaired blob: {sha(FINE)}" in out + err
    assert recheck(world, world.fine) is None


def test_a_link_restore_undo_puts_back_is_checked_by_the_next_crawl(
    tmp_path: Path, server: LoopbackServer
) -> None:
    world = make_world(tmp_path, server)  # deck and photo died after the first crawl
    assert world.run("restore", "--mirror", str(tmp_path / "mirror"))[0] == 0
    # A mirror on the loopback server (it answers 404), so the crawl can ask it.
    mirror = server.url("/mirror/")
    assert world.run("restore", "--rewrite", "--mirror-url", mirror)[0] == 0
    world.cfg = replace(world.cfg, recheck_after=MONTH, confirm_after=MONTH)
    plain_crawl(world)  # the rewritten posts are parsed again; nothing is due by age
    deck, fine = hits(world, "/deck.pdf"), hits(world, "/fine.pdf")
    plain_crawl(world)
    assert (hits(world, "/deck.pdf"), hits(world, "/fine.pdf")) == (deck, fine)
    world.alive["/deck.pdf"] = True  # it came back to life
    code, _, err = world.run("restore", "--undo", world.deck)
    assert code == 0, err
    assert recheck(world, world.deck) == "undone"
    assert recheck(world, world.photo) is None  # still rewritten: not put back
    plain_crawl(world)
    assert hits(world, "/deck.pdf") == deck + 1
    assert hits(world, "/fine.pdf") == fine
    assert recheck(world, world.deck) is None
    db = world.db()
    try:
        assert db.scalar("SELECT state FROM urls WHERE url=?", (world.deck,)) == "ok"
    finally:
        db.close()
