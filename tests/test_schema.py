"""The declared schema: a fresh database is exactly what the hand-rolled migrations made.

``tests/fixtures/db/schema-401.db`` was made by the hand-rolled migrations (all six
applied) and ``schema-301.db`` by the first five of them, each with a row or two. The
declared steps after them (``AFTER_401``, ``TABLES_AFTER_401``) add what ``after_401``
spells out.
"""

from __future__ import annotations

import copy
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from archiver.db import Database
from archiver.db.schema import STEPS

FIXTURES = Path(__file__).parent / "fixtures" / "db"


def schema_of(path: Path) -> dict[str, Any]:
    """Every table's columns, indexes (with their columns) and foreign keys, as PRAGMAs say."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
        ]
        out: dict[str, Any] = {}
        for t in tables:
            indexes = {}
            for _seq, name, unique, origin, partial in conn.execute(
                f"PRAGMA index_list('{t}')"
            ).fetchall():
                columns = conn.execute(f"PRAGMA index_info('{name}')").fetchall()
                indexes[name] = (unique, origin, partial, columns)
            out[t] = {
                "columns": conn.execute(f"PRAGMA table_info('{t}')").fetchall(),
                "indexes": indexes,
                "foreign_keys": conn.execute(f"PRAGMA foreign_key_list('{t}')").fetchall(),
            }
        out["_indexes"] = sorted(
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")
        )
        return out
    finally:
        conn.close()


#: The columns each declared step after the hand-rolled ones adds, as table_info shows them.
AFTER_401 = {
    "501_deep_check": (
        "blobs",
        [
            ("pages", "INTEGER"),
            ("title", "TEXT"),
            ("width", "INTEGER"),
            ("height", "INTEGER"),
            ("format", "TEXT"),
            ("deep_check", "TEXT"),
            ("deep_reason", "TEXT"),
        ],
    ),
    "503_version_source": ("versions", [("source", "TEXT")]),
    "504_post_stat": (
        "posts",
        [
            ("stat_size", "INTEGER"),
            ("stat_mtime_ns", "INTEGER"),
            ("stat_ctime_ns", "INTEGER"),
            ("stat_inode", "INTEGER"),
            ("stat_read_ns", "INTEGER"),
        ],
    ),
    "601_workers": ("runs", [("shared", "INTEGER")]),
    "602_run_indexed": ("runs", [("indexed", "TEXT")]),
    "701_posts_path": ("posts", []),
}

#: The indexes a declared step after the hand-rolled ones adds to their tables.
INDEXES_AFTER_401: dict[str, dict[str, Any]] = {
    "posts": {"posts_path": (0, "c", 0, [(0, 2, "path")])},
}

_NO_ACTION = ("NO ACTION", "NO ACTION", "NONE")

#: The tables a declared step after the hand-rolled ones creates, as ``schema_of`` shows them.
TABLES_AFTER_401: dict[str, dict[str, Any]] = {
    "workers": {
        "columns": [
            (0, "id", "INTEGER", 0, None, 1),
            (1, "run_id", "INTEGER", 1, None, 0),
            (2, "name", "TEXT", 1, None, 0),
            (3, "machine", "TEXT", 0, None, 0),
            (4, "pid", "INTEGER", 0, None, 0),
            (5, "started", "TEXT", 1, None, 0),
            (6, "heartbeat", "TEXT", 1, None, 0),
            (7, "expires", "TEXT", 1, None, 0),
            (8, "ended", "TEXT", 0, None, 0),
            (9, "exit_code", "INTEGER", 0, None, 0),
            (10, "checked", "INTEGER", 1, "0", 0),
        ],
        "foreign_keys": [(0, 0, "runs", "run_id", "id", *_NO_ACTION)],
        "indexes": {"workers_run": (0, "c", 0, [(0, 1, "run_id")])},
    },
    "run_urls": {
        "columns": [
            (0, "run_id", "INTEGER", 1, None, 1),
            (1, "url_id", "INTEGER", 1, None, 2),
            (2, "host", "TEXT", 1, None, 0),
            (3, "checked", "INTEGER", 1, "0", 0),
        ],
        "foreign_keys": [
            (0, 0, "urls", "url_id", "id", *_NO_ACTION),
            (1, 0, "runs", "run_id", "id", *_NO_ACTION),
        ],
        "indexes": {
            "run_urls_host": (0, "c", 0, [(0, 0, "run_id"), (1, 2, "host"), (2, 3, "checked")]),
            "sqlite_autoindex_run_urls_1": (1, "pk", 0, [(0, 0, "run_id"), (1, 1, "url_id")]),
        },
    },
    "host_leases": {
        "columns": [
            (0, "run_id", "INTEGER", 1, None, 1),
            (1, "host", "TEXT", 1, None, 2),
            (2, "worker_id", "INTEGER", 0, None, 0),
            (3, "expires", "TEXT", 0, None, 0),
            (4, "taken", "INTEGER", 1, "0", 0),
        ],
        "foreign_keys": [
            (0, 0, "workers", "worker_id", "id", *_NO_ACTION),
            (1, 0, "runs", "run_id", "id", *_NO_ACTION),
        ],
        "indexes": {
            "sqlite_autoindex_host_leases_1": (1, "pk", 0, [(0, 0, "run_id"), (1, 1, "host")])
        },
    },
}


def after_401(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of ``schema-401.db`` once the later steps have run: nullable columns
    appended, nothing else changed."""
    out = copy.deepcopy(schema)
    for table, columns in AFTER_401.values():
        have = list(out[table]["columns"])
        for name, type_ in columns:
            have.append((len(have), name, type_, 0, None, 0))
        out[table]["columns"] = have
    for table, indexes in INDEXES_AFTER_401.items():
        out[table]["indexes"] = {**out[table]["indexes"], **indexes}
        out["_indexes"] = sorted([*out["_indexes"], *indexes])
    for table, shape in TABLES_AFTER_401.items():
        out[table] = copy.deepcopy(shape)
        out["_indexes"] = sorted([*out["_indexes"], *shape["indexes"]])
    return out


def test_the_later_steps_are_the_ones_spelt_out() -> None:
    assert [s.name for s in STEPS][6:] == list(AFTER_401)


def fresh(tmp_path: Path) -> Path:
    path = tmp_path / "fresh.db"
    Database(path).close()
    return path


def test_a_fresh_database_has_the_hand_rolled_schema(tmp_path: Path) -> None:
    got = schema_of(fresh(tmp_path))
    want = after_401(schema_of(FIXTURES / "schema-401.db"))
    assert got.keys() == want.keys()
    for table in want:
        assert got[table] == want[table], table
    # The constraints that matter, spelled out (so a fixture made wrong would show too).
    assert got["urls"]["indexes"]["sqlite_autoindex_urls_1"][:2] == (1, "u")
    assert got["posts"]["indexes"]["sqlite_autoindex_posts_1"][3] == [
        (0, 1, "source"),
        (1, 2, "path"),
    ]
    assert got["mirror_paths"]["indexes"]["sqlite_autoindex_mirror_paths_1"][:2] == (1, "u")
    refs_fks = {fk[3]: fk for fk in got["refs"]["foreign_keys"]}
    assert refs_fks["post_id"][2:7] == ("posts", "post_id", "id", "NO ACTION", "CASCADE")
    elapsed = next(c for c in got["checks"]["columns"] if c[1] == "elapsed")
    assert elapsed[2] == "REAL"


def test_a_database_made_by_the_hand_rolled_migrations_opens_unchanged(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    shutil.copy(FIXTURES / "schema-401.db", old)
    before = schema_of(old)
    db = Database(old)
    try:
        assert db.rows("SELECT url, expect FROM urls") == [
            {"url": "http://127.0.0.1:1/a.pdf", "expect": "pdf"}
        ]
        assert db.scalar("SELECT COUNT(*) FROM _migrations") == len(STEPS)
        assert len(db.scalar("SELECT value FROM meta WHERE key='database_id'")) == 32
    finally:
        db.close()
    assert schema_of(old) == after_401(before) == schema_of(fresh(tmp_path))


def test_an_older_hand_rolled_database_takes_the_new_steps(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    shutil.copy(FIXTURES / "schema-301.db", old)
    conn = sqlite3.connect(old)
    database_id = conn.execute("SELECT value FROM meta WHERE key='database_id'").fetchone()[0]
    conn.close()
    db = Database(old)
    try:
        assert [r["name"] for r in db.rows("SELECT name FROM _migrations ORDER BY name")] == [
            s.name for s in STEPS
        ]
        # Nothing destructive: the row and the database's id are kept.
        assert db.rows("SELECT url, recheck FROM urls") == [
            {"url": "http://127.0.0.1:1/b.png", "recheck": None}
        ]
        assert db.scalar("SELECT value FROM meta WHERE key='database_id'") == database_id
    finally:
        db.close()
    assert schema_of(old) == schema_of(fresh(tmp_path))


def test_each_fresh_database_gets_its_own_id(tmp_path: Path) -> None:
    ids = set()
    for name in ("a.db", "b.db"):
        db = Database(tmp_path / name)
        ids.add(db.scalar("SELECT value FROM meta WHERE key='database_id'"))
        db.close()
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)


def test_opening_a_current_database_does_not_import_sqlite_utils(tmp_path: Path) -> None:
    path = fresh(tmp_path)
    code = (
        "import sys; from archiver.db import Database; Database(sys.argv[1]).close();"
        " print('sqlite_utils' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == "False"


def test_a_step_that_fails_leaves_nothing(tmp_path: Path, monkeypatch: Any) -> None:
    from archiver.db import sqlite_migrate

    path = tmp_path / "x.db"
    real = sqlite_migrate.apply_step

    def fail_on_rewrites(u: Any, step: Any) -> None:
        real(u, step)
        if step.name == "102_rewrites":
            raise RuntimeError("boom")

    monkeypatch.setattr(sqlite_migrate, "apply_step", fail_on_rewrites)
    with pytest.raises(RuntimeError, match="boom"):
        Database(path)
    conn = sqlite3.connect(path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    done = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]
    conn.close()
    assert done == ["001_initial", "101_mirror_paths"]
    assert "rewrites" not in names and "rewrite_posts" not in names


def test_two_processes_creating_one_new_database_migrate_it_once(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Workers (or two cron jobs) starting together on a new file: the other one applies
    every step between this one's reading what is done and taking the write lock. The
    steps it finds applied under the lock are skipped, not applied again (which failed:
    'table ... already exists')."""
    from archiver.db.sqlite_backend import SqliteBackend

    path = tmp_path / "x.db"
    real = SqliteBackend.utils
    raced = []

    def other_process_wins(self: SqliteBackend) -> Any:
        if not raced:
            raced.append(True)
            Database(path).close()  # a second connection: migrates the file completely
        return real(self)

    monkeypatch.setattr(SqliteBackend, "utils", other_process_wins)
    db = Database(path)
    try:
        assert raced
        done = [r[0] for r in db.conn.execute("SELECT name FROM _migrations ORDER BY name")]
        assert done == sorted(step.name for step in STEPS)
    finally:
        db.close()
