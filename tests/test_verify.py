"""verify finds flipped bytes, renamed and missing blobs, dangling rows and stray files."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest
from server import LoopbackServer, Reply
from test_report import FINE, PDF, PNG, World, make_world, sha

from archiver.net.fetch import USER_AGENT
from archiver.ops.verify import YOUNG, verify


@pytest.fixture
def world(tmp_path: Path, server: LoopbackServer) -> World:
    return make_world(tmp_path, server)


def age(path: Path, seconds: float = 7200) -> None:
    """Makes a file look older than a running crawl could have left it."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def clean_line(n: int = 3) -> str:
    return (
        f"verify: {n} blobs checked, {n} ok, 0 missing, 0 corrupt, 0 repaired,"
        " 0 dangling rows, 0 unknown files\n"
    )


def test_a_healthy_store_passes_and_is_recorded(world: World) -> None:
    assert world.run("verify") == (0, "", clean_line())
    db = world.db()
    assert (
        db.rows("SELECT verify_ok, verified_at IS NOT NULL AS v FROM blobs")
        == [{"verify_ok": 1, "v": 1}] * 3
    )
    db.close()


def test_a_flipped_byte_is_found(world: World) -> None:
    blob = world.store().path_for(sha(PDF))
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0x40
    blob.write_bytes(bytes(data))
    code, out, err = world.run("verify")
    assert code == 1
    assert out == f"corrupt blob: {sha(PDF)}\n"
    assert err == (
        "verify: 3 blobs checked, 2 ok, 0 missing, 1 corrupt, 0 repaired,"
        " 0 dangling rows, 0 unknown files\n"
    )
    db = world.db()
    assert db.scalar("SELECT verify_ok FROM blobs WHERE sha256=?", (sha(PDF),)) == 0
    db.close()
    # the deck is dead, so the origin cannot give the bytes back
    code, out, _ = world.run("verify", "--repair")
    assert code == 1
    assert out == (
        f"corrupt blob: {sha(PDF)}\ncould not repair {sha(PDF)}: {world.deck} answers HTTP 404\n"
    )


def test_a_renamed_blob_is_missing_plus_an_unknown_file_and_repair_puts_it_back(
    world: World,
) -> None:
    store = world.store()
    blob = store.path_for(sha(PNG))
    renamed = blob.with_name("photo.png")
    blob.rename(renamed)
    age(renamed)
    code, out, _ = world.run("verify")
    assert code == 1
    assert out == f"missing blob: {sha(PNG)}\nunknown file: {renamed}\n"
    code, out, _ = world.run("verify", "--repair")
    assert code == 0
    assert out == f"repaired blob: {sha(PNG)}\n"
    assert blob.read_bytes() == PNG and not renamed.exists()
    assert world.run("verify")[0] == 0


def test_a_missing_blob_is_refetched_when_the_origin_still_serves_it(world: World) -> None:
    store = world.store()
    store.path_for(sha(FINE)).unlink()
    store.path_for(sha(PDF)).unlink()
    code, out, _ = world.run("verify", "--repair")
    assert code == 1
    assert out == (
        f"missing blob: {sha(PDF)}\n"
        f"repaired blob: {sha(FINE)}\n"
        f"could not repair {sha(PDF)}: {world.deck} answers HTTP 404\n"
    )
    assert store.path_for(sha(FINE)).read_bytes() == FINE


def test_the_origin_serving_other_bytes_is_not_a_repair(world: World) -> None:
    world.store().path_for(sha(FINE)).unlink()
    world.bodies["/fine.pdf"] = FINE + b"% changed\n"
    code, out, _ = world.run("verify", "--repair")
    assert code == 1
    assert f"could not repair {sha(FINE)}: {world.fine} now serves different bytes\n" in out
    assert not world.store().path_for(sha(FINE)).exists()


def test_rows_that_point_nowhere_and_stray_files(world: World) -> None:
    db = world.db()
    db.conn.execute("PRAGMA foreign_keys=OFF")  # as a hand edit or an old bug would
    db.conn.execute("DELETE FROM blobs WHERE sha256=?", (sha(PNG),))
    db.close()
    age(world.store().path_for(sha(PNG)))
    stray = world.store().root / "ab" / ("ab" + "0" * 62)
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"nobody knows me")
    age(stray)
    fresh = world.store().root / "cd" / ("cd" + "1" * 62)
    fresh.parent.mkdir(exist_ok=True)
    fresh.write_bytes(b"a crawl is about to record me")  # young: not reported
    code, out, _ = world.run("verify")
    assert code == 1  # the dangling rows; orphan blobs alone are gc's business
    assert out == (
        f"dangling row: version {sha(PNG)} of {world.photo} has no blob row\n"
        f"dangling row: {world.photo} names blob {sha(PNG)} which has no blob row\n"
        + "".join(  # in the store's order: by path
            f"orphan blob (archiver gc removes it): {path}\n"
            for path in sorted([world.store().path_for(sha(PNG)), stray])
        )
    )
    odd = world.store().root / "ab" / "notes.txt"  # not archiver's: only a person deletes it
    odd.write_bytes(b"mine")
    age(odd)
    code, out, _ = world.run("verify")
    assert code == 1 and f"unknown file: {odd}\n" in out


def test_a_time_budget_checks_the_least_recently_verified_first(world: World) -> None:
    db, store = world.db(), world.store()
    first = verify(db, store, now="2026-02-01T00:00:00Z", limit=1)
    assert (first.checked, first.remaining) == (1, 2)
    clock = itertools.count(0, 10)  # each look at the clock: 10 s later
    second = verify(
        db, store, now="2026-02-02T00:00:00Z", max_duration=25, monotonic=lambda: next(clock)
    )
    assert (second.checked, second.remaining) == (2, 1)
    third = verify(db, store, now="2026-02-03T00:00:00Z", limit=1)
    checked = db.rows("SELECT sha256, verified_at FROM blobs ORDER BY verified_at")
    db.close()
    assert third.checked == 1
    # every blob got its turn before any was checked twice
    assert sorted(r["verified_at"][:10] for r in checked) == [
        "2026-02-02",
        "2026-02-02",
        "2026-02-03",
    ]


def test_max_duration_on_the_command_line(world: World) -> None:
    code, _, err = world.run("verify", "--max-duration", "1h")
    assert (code, err) == (0, clean_line())
    code, _, err = world.run("verify", "--max-duration", "soon")
    assert code == 2
    assert err == (
        'archiver: option --max-duration must be a duration like "1h" or "1d", got \'soon\'\n'
    )


def stray_file(world: World) -> Path:
    """A blob-named file no row knows, as a crawl that has not committed yet leaves one."""
    stray = world.store().root / "ab" / ("ab" + "0" * 62)
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"nobody knows me yet")
    return stray


def test_grace_decides_when_an_unknown_file_is_reported(world: World) -> None:
    stray = stray_file(world)
    age(stray, 600)  # ten minutes old: younger than the default hour
    assert world.run("verify") == (0, "", clean_line())
    assert world.run("verify", "--grace", "1h") == (0, "", clean_line())
    code, out, err = world.run("verify", "--grace", "5m")
    # Listed for gc, not wrong: a run that died left it (exit 0).
    assert (code, out) == (0, f"orphan blob (archiver gc removes it): {stray}\n")
    assert err == clean_line().replace("unknown files", "unknown files, 1 orphan blob for gc")


def test_grace_in_the_library_reads_the_injected_clock(world: World) -> None:
    stray = stray_file(world)
    os.utime(stray, (1_000_000, 1_000_000))
    db, store = world.db(), world.store()

    def unknown(grace: float = YOUNG) -> list[Path]:
        """The unknown files verify reports ten minutes after the stray file was written."""
        ten_minutes_on = 1_000_600.0
        result = verify(
            db, store, now="2026-02-01T00:00:00Z", wall=lambda: ten_minutes_on, grace=grace
        )
        return result.orphans

    try:
        assert unknown() == []  # the default grace: an hour
        assert unknown(grace=600) == [stray]
        assert unknown(grace=601) == []
    finally:
        db.close()


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("-1h", "must be greater than 0, got '-1h'"),
        ("soon", 'must be a duration like "1h" or "1d", got \'soon\''),
    ],
)
def test_a_bad_grace_is_a_usage_error(world: World, value: str, why: str) -> None:
    assert world.run("verify", "--grace", value) == (2, "", f"archiver: option --grace {why}\n")


# -- verify --repair fetches as a crawl does ------------------------------------------------


def repair_with(world: World, toml: str) -> tuple[int, str, str]:
    """``verify --repair`` with a config file holding ``toml`` (db and store come from --db)."""
    cfg = world.tmp / "repair.toml"
    cfg.write_text(toml, encoding="utf-8")
    return world.run("verify", "--config", str(cfg), "--repair")


def lose_fine(world: World) -> Path:
    blob = world.store().path_for(sha(FINE))
    blob.unlink()
    return blob


def no_temp_files(world: World) -> bool:
    return not any((world.cfg.store / "tmp").iterdir())


def test_repair_fetches_where_remap_sends_the_url(world: World, server: LoopbackServer) -> None:
    blob = lose_fine(world)
    world.kill("/fine.pdf")  # the original address no longer serves it; the mirror does
    server.route("/elsewhere/fine.pdf", Reply(body=FINE, content_type="application/pdf"))
    before = server.stats("/fine.pdf").hits
    code, out, _ = repair_with(world, "[remap]\n'/fine\\.pdf$' = \"/elsewhere/fine.pdf\"\n")
    assert (code, out) == (0, f"repaired blob: {sha(FINE)}\n")
    assert blob.read_bytes() == FINE
    assert server.stats("/elsewhere/fine.pdf").hits == 1
    assert server.stats("/fine.pdf").hits == before  # never asked


def test_repair_skips_a_url_exclude_urls_names(world: World, server: LoopbackServer) -> None:
    lose_fine(world)
    before = server.stats("/fine.pdf").hits
    code, out, _ = repair_with(world, "exclude_urls = ['/fine\\.pdf$']\n")
    assert code == 1
    assert f"could not repair {sha(FINE)}: {world.fine} is excluded by exclude_urls\n" in out
    assert server.stats("/fine.pdf").hits == before


def test_repair_refuses_a_body_over_max_size(world: World) -> None:
    blob = lose_fine(world)
    code, out, _ = repair_with(world, "[fetch]\nretries = 0\nmax_size = 100\n")
    assert code == 1
    assert out == (
        f"missing blob: {sha(FINE)}\ncould not repair {sha(FINE)}: {world.fine} cannot be"
        " fetched (larger than the size cap of 100 bytes)\n"
    )
    assert not blob.exists() and no_temp_files(world)


def test_repair_refuses_a_body_over_max_size_that_declares_no_length(
    world: World, server: LoopbackServer
) -> None:
    blob = lose_fine(world)
    server.route("/fine.pdf", Reply(body=FINE, content_type="application/pdf", until_close=True))
    code, out, _ = repair_with(world, "[fetch]\nretries = 0\nmax_size = 100\n")
    assert code == 1
    assert "cannot be fetched (larger than the size cap of 100 bytes)" in out
    assert not blob.exists() and no_temp_files(world)


def test_repair_sends_archivers_user_agent(world: World, server: LoopbackServer) -> None:
    lose_fine(world)
    assert world.run("verify", "--repair")[0] == 0
    assert server.stats("/fine.pdf").requests[-1].headers["user-agent"] == USER_AGENT
    lose_fine(world)
    code, _, _ = repair_with(world, '[fetch]\nuser_agent = "archiver-test/2 (+repair)"\n')
    assert code == 0
    assert server.stats("/fine.pdf").requests[-1].headers["user-agent"] == (
        "archiver-test/2 (+repair)"
    )


def test_repair_follows_a_redirect_within_the_crawls_limit(
    world: World, server: LoopbackServer
) -> None:
    blob = lose_fine(world)
    server.route("/fine.pdf", Reply.redirect("/moved/fine.pdf", status=301))
    server.route("/moved/fine.pdf", Reply(body=FINE, content_type="application/pdf"))
    code, out, _ = repair_with(world, "[fetch]\nmax_redirects = 1\n")
    assert (code, out) == (0, f"repaired blob: {sha(FINE)}\n")
    assert blob.read_bytes() == FINE


def test_repair_stops_at_max_redirects(world: World, server: LoopbackServer) -> None:
    blob = lose_fine(world)
    server.route("/fine.pdf", Reply.redirect("/hop/1"))
    server.route("/hop/1", Reply.redirect("/hop/2"))
    server.route("/hop/2", Reply(body=FINE, content_type="application/pdf"))
    code, out, _ = repair_with(world, "[fetch]\nmax_redirects = 1\n")
    assert code == 1
    assert f"{world.fine} cannot be fetched (more than 1 redirects)\n" in out
    assert server.stats("/hop/2").hits == 0 and not blob.exists()


def test_repair_never_follows_a_redirect_to_a_local_file(
    world: World, server: LoopbackServer
) -> None:
    blob = lose_fine(world)
    local = world.tmp / "secret" / "fine.pdf"
    local.parent.mkdir()
    local.write_bytes(FINE)  # the very bytes wanted: only the redirect rule keeps them out
    server.route("/fine.pdf", Reply.redirect(local.as_uri()))
    code, out, _ = world.run("verify", "--repair")
    assert code == 1
    assert f"{world.fine} cannot be fetched (" in out and local.as_uri() in out
    assert not blob.exists() and no_temp_files(world)


def test_repair_reads_a_local_asset_again_from_inside_the_source(tmp_path: Path) -> None:
    """A blob kept from a file beside the post comes back from that file, as the crawl read it;
    the repair is held to the same source folders as the crawl (a file outside stays out)."""
    from archiver.config import Source, default_config
    from archiver.db import Database
    from archiver.run.crawl import crawl, source_roots
    from archiver.store import Store

    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "photo.png").write_bytes(PNG)
    (posts / "post.md").write_text("![p](photo.png)\n")
    cfg = default_config(tmp_path)
    source = Source(path=posts.resolve())
    crawl(cfg, [source], fail_on="none")
    store = Store(cfg.store)
    store.path_for(sha(PNG)).unlink()
    db = Database(cfg.db)
    try:
        outside = verify(db, store, now="2026-01-01T00:00:00Z", repair=True)
        assert outside.repaired == [] and [s for s, _ in outside.unrepaired] == [sha(PNG)]
        inside = verify(
            db, store, now="2026-01-01T00:00:00Z", repair=True, local_roots=source_roots([source])
        )
        assert inside.repaired == [sha(PNG)]
    finally:
        db.close()
    assert store.path_for(sha(PNG)).read_bytes() == PNG
