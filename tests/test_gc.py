"""gc removes only blobs no version references, and only once they are past the grace period."""

from __future__ import annotations

import os
import time
from pathlib import Path

import media
import pytest
from server import LoopbackServer
from test_report import FINE, PDF, PNG, World, make_world, sha

from archiver.ops.gc import collect_garbage


@pytest.fixture
def world(tmp_path: Path, server: LoopbackServer) -> World:
    return make_world(tmp_path, server)


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_referenced_blobs_are_never_garbage(world: World) -> None:
    code, out, err = world.run("gc", "--grace", "0.001", "--yes")
    assert (code, out, err) == (0, "", "gc: removed 0 blobs (0 bytes)\n")
    for body in (PDF, PNG, FINE):
        assert world.store().has(sha(body))


def test_dry_run_lists_then_yes_removes_old_unreferenced_blobs(world: World) -> None:
    store = world.store()
    # a crawl killed between storing a body and recording it leaves a blob no row names
    left_behind = media.deck("left behind")
    leftover = store.put_bytes(left_behind)
    age(leftover.path, 3 * 86400)
    fresh = store.put_bytes(media.deck("a crawl is recording me right now"))
    code, out, err = world.run("gc")
    assert code == 0
    assert out == f"would remove {leftover.sha256} ({len(left_behind)} bytes)\n"
    assert (
        err == f"gc: would remove 1 blob ({len(left_behind)} bytes); 1 unreferenced but still in"
        " the grace period\n"
    )
    assert leftover.path.exists()
    code, out, err = world.run("gc", "--yes")
    assert out == f"removed {leftover.sha256} ({len(left_behind)} bytes)\n"
    assert not leftover.path.exists() and fresh.path.exists()
    for body in (PDF, PNG, FINE):
        assert store.has(sha(body))


def test_a_blob_row_without_versions_goes_with_its_file(world: World) -> None:
    db, store = world.db(), world.store()
    with db.transaction():
        db.conn.execute("DELETE FROM versions WHERE sha256=?", (sha(FINE),))
        db.conn.execute("UPDATE urls SET sha256=NULL WHERE sha256=?", (sha(FINE),))
    future = time.time() + 400 * 86400  # past both the file's age and the row's first_stored
    planned = collect_garbage(db, store, grace=86400, now=future)
    assert [g.sha256 for g in planned.garbage] == [sha(FINE)] and store.has(sha(FINE))
    done = collect_garbage(db, store, grace=86400, now=future, apply=True)
    assert done.line() == f"gc: removed 1 blob ({len(FINE)} bytes)"
    assert not store.has(sha(FINE))
    assert db.scalar("SELECT COUNT(*) FROM blobs WHERE sha256=?", (sha(FINE),)) == 0
    db.close()


def test_a_recent_row_keeps_an_old_file(world: World) -> None:
    db, store = world.db(), world.store()
    with db.transaction():
        db.conn.execute("DELETE FROM versions WHERE sha256=?", (sha(FINE),))
        db.conn.execute("UPDATE urls SET sha256=NULL WHERE sha256=?", (sha(FINE),))
        db.conn.execute(
            "UPDATE blobs SET first_stored='2099-01-01T00:00:00Z' WHERE sha256=?", (sha(FINE),)
        )
    age(store.path_for(sha(FINE)), 30 * 86400)
    result = collect_garbage(db, store, grace=86400, apply=True)
    db.close()
    assert (result.garbage, result.young) == ([], 1)
    assert store.has(sha(FINE))


def test_bad_grace_is_a_usage_error(world: World) -> None:
    code, _, err = world.run("gc", "--grace", "forever")
    assert code == 2
    assert err == (
        'archiver: option --grace must be a duration like "1h" or "1d", got \'forever\'\n'
    )


def test_what_dead_runs_left_is_gcs_not_verifys_and_grace_0s_takes_it_all(world: World) -> None:
    """A run that died leaves temp bodies and blobs no row names: verify does not fail on
    them, gc removes both once old enough, and ``--grace 0s`` means "now"."""
    store = world.store()
    killed = media.deck("stored, then the run was killed")
    orphan = store.put_bytes(killed)
    temp = store.tmp_dir / "partial-abc123"
    temp.write_bytes(media.deck("half a body")[:300])
    age(orphan.path, 600)
    age(temp, 600)
    code, out, err = world.run("verify", "--grace", "5m")
    assert code == 0, out + err
    assert out == f"orphan blob (archiver gc removes it): {orphan.path}\n"  # never the temp file
    assert "0 unknown files, 1 orphan blob for gc" in err
    code, out, err = world.run("gc", "--grace", "1h")
    assert (code, out) == (0, "")  # both younger than an hour
    assert (
        err == "gc: would remove 0 blobs (0 bytes); 1 unreferenced but still in the grace period\n"
    )
    code, out, err = world.run("gc", "--grace", "0s", "--yes")
    assert code == 0, err
    assert out == f"removed {orphan.sha256} ({len(killed)} bytes)\nremoved temp file {temp}\n"
    assert err == f"gc: removed 1 blob ({len(killed)} bytes) and 1 temp file\n"
    assert not orphan.path.exists() and not temp.exists()
    for body in (PDF, PNG, FINE):
        assert store.has(sha(body))
    assert world.run("verify", "--grace", "0s")[0] == 0
