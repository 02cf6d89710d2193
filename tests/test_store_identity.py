"""The database knows its store: a wrong or empty --store is refused, never 'all missing'.

The scenario that broke trust: ``crawl --store s``, then ``verify`` without ``--store``
fell back to ./data/store, created it empty and marked every blob missing.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from server import LoopbackServer
from test_report import World, make_world

from archiver.cli import cli
from archiver.db import Database
from archiver.errors import ConfigError
from archiver.store.identity import ID_FILE

BLOBS = 3  # deck, photo, fine: what make_world archives


@pytest.fixture
def world(tmp_path: Path, server: LoopbackServer) -> World:
    return make_world(tmp_path, server)


@pytest.fixture
def cwd(tmp_path: Path) -> Iterator[Path]:
    """An empty working directory, where ./data/store is the fallback store."""
    d = tmp_path / "cwd"
    d.mkdir()
    old = Path.cwd()
    os.chdir(d)
    try:
        yield d
    finally:
        os.chdir(old)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def db_rows(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT b.sha256, b.verified_at, b.verify_ok FROM blobs b ORDER BY sha256"
        ).fetchall()
    finally:
        conn.close()


def identity(store: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((store / ID_FILE).read_text(encoding="utf-8"))
    return data


def meta(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()


def shared_config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text("shared_store = true\n", encoding="utf-8")
    return path


def test_the_first_crawl_writes_the_store_id_and_records_it(world: World) -> None:
    ident = identity(world.cfg.store)
    ids = meta(world.cfg.db)
    assert ident == {"store_id": ids["store_id"], "databases": [ids["database_id"]]}
    assert len(ids["store_id"]) == 32 and ids["store_id"] != ids["database_id"]
    assert not list(world.cfg.store.glob(f".{ID_FILE}.*"))  # no temp file left


def test_verify_without_store_refuses_instead_of_marking_blobs_missing(
    world: World, cwd: Path
) -> None:
    before = db_rows(world.cfg.db)
    fallback = cwd / "data" / "store"
    code, out, err = run("verify", "--db", str(world.cfg.db))
    assert (code, out) == (2, "")
    assert err == (
        f"archiver: database {world.cfg.db} and store {fallback}: the store is empty;"
        " pass the --store the database was crawled with\n"
    )
    assert db_rows(world.cfg.db) == before  # nothing marked missing
    assert not fallback.exists()  # and the fallback store was not created
    for command in (["status"], ["report"], ["gc"], ["export", "--warc", "x.warc"]):
        code, _, err = run(*command, "--db", str(world.cfg.db))
        assert code == 2 and err.count("\n") == 1 and str(fallback) in err, command
    code, _, err = run("restore", world.deck, "--db", str(world.cfg.db), "-o", "deck.pdf")
    assert code == 2 and "the store is empty" in err
    assert sorted(p.name for p in cwd.iterdir()) == []
    assert run("verify", *world.args())[0] == 0  # the right store still verifies


def test_a_crawl_into_an_empty_store_is_refused_too(world: World, tmp_path: Path) -> None:
    other = tmp_path / "typo-store"
    world.cfg = world.cfg.with_overrides(store=other)
    with pytest.raises(ConfigError, match="the store is empty"):
        world.crawl()
    assert not other.exists()


def test_another_database_s_store_is_refused_naming_both_paths(
    world: World, tmp_path: Path
) -> None:
    theirs_db, theirs_store = tmp_path / "b.db", tmp_path / "b-store"
    Database(theirs_db).close()
    assert run("gc", "--db", str(theirs_db), "--store", str(theirs_store))[0] == 0
    theirs = identity(theirs_store)["store_id"]
    ours = meta(world.cfg.db)["store_id"]
    code, _, err = run("verify", "--db", str(world.cfg.db), "--store", str(theirs_store))
    assert code == 2
    assert err == (
        f"archiver: database {world.cfg.db} and store {theirs_store}: the database belongs to"
        f" store {ours[:12]}, this is store {str(theirs)[:12]};"
        " pass the --store the database was crawled with\n"
    )
    code, _, err = run("report", "--db", str(world.cfg.db), "--store", str(theirs_store))
    assert code == 2 and "the database belongs to store" in err


def test_a_store_is_shared_only_when_every_database_says_so(world: World, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    Database(other).close()
    store = str(world.cfg.store)
    code, _, err = run("gc", "--db", str(other), "--store", store)
    assert code == 2
    assert err == (
        f"archiver: database {other} and store {world.cfg.store}: the store belongs to another"
        " database; to share it, set shared_store = true in the config of every database"
        " that uses it\n"
    )
    cfg_b = shared_config(tmp_path, "b.toml")
    assert run("gc", "--config", str(cfg_b), "--db", str(other), "--store", store)[0] == 0
    ids = [meta(world.cfg.db)["database_id"], meta(other)["database_id"]]
    assert identity(world.cfg.store)["databases"] == ids
    # The first database did not say so: it is refused now, until it does.
    code, _, err = run("verify", *world.args())
    assert code == 2
    assert err == (
        f"archiver: database {world.cfg.db} and store {world.cfg.store}: the store is shared"
        " by 2 databases; set shared_store = true in this database's config to use it\n"
    )
    cfg_a = shared_config(tmp_path, "a.toml")
    code, _, _ = run("status", "--config", str(cfg_a), *world.args())
    assert code == 0
    # gc knows only its own database's references: it would remove the other's blobs.
    code, _, err = run("gc", "--config", str(cfg_a), *world.args(), "--yes", "--grace", "1s")
    assert code == 2
    assert err.startswith(f"archiver: store {world.cfg.store} is shared by several databases")


def _forget_ids(world: World) -> None:
    """What a database and store made before store ids look like."""
    (world.cfg.store / ID_FILE).unlink()
    conn = sqlite3.connect(world.cfg.db)
    conn.execute("DELETE FROM meta WHERE key='store_id'")
    conn.commit()
    conn.close()


def test_an_old_store_holding_the_database_s_blobs_is_adopted(world: World) -> None:
    _forget_ids(world)
    code, _, err = run("verify", *world.args())
    assert (code, err.count("warning")) == (0, 0)
    assert identity(world.cfg.store)["store_id"] == meta(world.cfg.db)["store_id"]


def test_a_database_from_before_store_ids_is_migrated_then_adopted(world: World) -> None:
    (world.cfg.store / ID_FILE).unlink()
    conn = sqlite3.connect(world.cfg.db)
    conn.execute("DROP TABLE meta")
    conn.execute("DELETE FROM _migrations WHERE name='301_store_identity'")
    conn.commit()
    conn.close()
    code, _, err = run("status", *world.args())  # read-only: it cannot upgrade
    assert code == 3 and err.endswith("run 'archiver crawl' to upgrade it\n")
    code, _, err = run("verify", *world.args())  # a writing command migrates, then adopts
    assert (code, err.count("warning")) == (0, 0)
    assert identity(world.cfg.store)["store_id"] == meta(world.cfg.db)["store_id"]
    assert run("status", *world.args())[0] == 0


def test_an_old_store_missing_some_blobs_is_adopted_with_a_warning(world: World) -> None:
    _forget_ids(world)
    [first, *_] = [sha for sha, *_ in db_rows(world.cfg.db)]
    blob = world.store().path_for(str(first))
    os.chmod(blob, 0o644)
    blob.unlink()
    code, out, err = run("verify", *world.args())
    assert code == 1  # the missing blob is real damage, and verify says so
    assert (
        f"archiver: warning: store {world.cfg.store} holds {BLOBS - 1} of the {BLOBS} blobs"
        f" database {world.cfg.db} names; 'archiver verify' lists the missing ones\n"
    ) in err
    assert str(first) in out
    assert (world.cfg.store / ID_FILE).exists()


def test_an_old_store_holding_none_of_the_blobs_is_refused(world: World, tmp_path: Path) -> None:
    _forget_ids(world)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "ab").mkdir(parents=True)
    (elsewhere / "ab" / ("ab" * 32)).write_bytes(b"someone else's")
    code, _, err = run("verify", "--db", str(world.cfg.db), "--store", str(elsewhere))
    assert code == 2
    assert err == (
        f"archiver: database {world.cfg.db} and store {elsewhere}: the store holds none of its"
        f" {BLOBS} blobs; pass the --store the database was crawled with\n"
    )
    assert not (elsewhere / ID_FILE).exists()


def test_read_only_commands_check_the_store_but_record_nothing(world: World) -> None:
    _forget_ids(world)
    db_bytes = world.cfg.db.read_bytes()
    code, _, _ = run("status", *world.args())
    assert code == 0
    code, _, _ = run("report", *world.args(), "--format", "json")
    assert code == 1
    assert not (world.cfg.store / ID_FILE).exists()
    assert world.cfg.db.read_bytes() == db_bytes


def test_a_new_database_adopts_an_empty_store(tmp_path: Path, cwd: Path) -> None:
    db = tmp_path / "new.db"
    Database(db).close()
    code, _, err = run("verify", "--db", str(db))
    assert (code, err.count("archiver:")) == (0, 0)
    assert identity(cwd / "data" / "store")["store_id"] == meta(db)["store_id"]


def test_a_garbled_id_file_is_a_store_error(world: World) -> None:
    (world.cfg.store / ID_FILE).write_text("{not json", encoding="utf-8")
    code, _, err = run("verify", *world.args())
    assert code == 3
    assert err.startswith(f"archiver: {world.cfg.store / ID_FILE} is not an archiver store id")
