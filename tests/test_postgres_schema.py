"""The declared schema on a real PostgreSQL: every step applies, the result is the SQLite
schema through ``postgres_schema``'s type rules, migrating is idempotent and safe when
migrators race, and queries copied from archiver/db run unchanged through
``dialect.to_psycopg`` on both backends with the same answers.

Skipped, with the reason, where PostgreSQL is not installed (``pg_server``).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pg_server import pg_dsn, postgres  # noqa: F401

from archiver.db import Database, dialect
from archiver.db import postgres_schema as pg
from archiver.db.dialect import to_psycopg
from archiver.db.schema import STEPS


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[Any]:  # noqa: F811
    c = pg.connect(pg_dsn)
    try:
        yield c
    finally:
        c.close()


def _pg_schema(conn: Any) -> dict[str, Any]:
    """Tables -> columns, primary key, unique column sets, foreign keys, named indexes."""
    out: dict[str, Any] = {}
    for table, name, type_, nullable, default, collation, identity in conn.execute(
        "SELECT table_name, column_name, data_type, is_nullable, column_default,"
        " collation_name, is_identity FROM information_schema.columns"
        " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    ):
        t = out.setdefault(table, {"columns": [], "identity": set()})
        if default is not None:
            default = re.sub(r"::text$", "", default)
        t["columns"].append((name, (type_, collation), nullable == "NO", default))
        if identity == "YES":
            t["identity"].add(name)
    for table, kind, columns, ref, ref_columns, on_delete in conn.execute(
        "SELECT c.conrelid::regclass::text, c.contype,"
        " ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)"
        "  JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),"
        " c.confrelid::regclass::text,"
        " ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)"
        "  JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i),"
        " c.confdeltype FROM pg_constraint c JOIN pg_namespace s ON s.oid = c.connamespace"
        " WHERE s.nspname = current_schema() AND c.contype IN ('p', 'u', 'f')"
    ):
        t = out[table]
        if kind == "p":
            t["pk"] = tuple(columns)
        elif kind == "u":
            t.setdefault("unique", set()).add(tuple(columns))
        else:
            action = {"a": "NO ACTION", "c": "CASCADE"}[on_delete]
            t.setdefault("fks", set()).add((columns[0], ref, ref_columns[0], action))
    for table, index, unique, columns in conn.execute(
        "SELECT t.relname, i.relname, x.indisunique,"
        " ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY k(n, o)"
        "  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o)"
        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
        " JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace"
        " WHERE s.nspname = current_schema()"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
    ):
        out[table].setdefault("indexes", {})[index] = (bool(unique), tuple(columns))
    return out


#: SQLite's declared type -> PostgreSQL's (data_type, collation), per the module's rules.
TYPE_RULE = {"TEXT": ("text", "C"), "INTEGER": ("bigint", None), "REAL": ("double precision", None)}


def _sqlite_schema(path: Path) -> dict[str, Any]:
    """The same shape from SQLite's PRAGMAs, mapped through the type rules."""
    conn = sqlite3.connect(path)
    out: dict[str, Any] = {}
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        info = conn.execute(f"PRAGMA table_info('{table}')").fetchall()
        fks = conn.execute(f"PRAGMA foreign_key_list('{table}')").fetchall()
        pk = tuple(r[1] for r in sorted(info, key=lambda r: r[5]) if r[5])
        referring = {fk[3] for fk in fks}
        t: dict[str, Any] = {
            # a primary key column is NOT NULL in PostgreSQL whatever SQLite's notnull says
            "columns": [(r[1], TYPE_RULE[r[2]], bool(r[3]) or r[1] in pk, r[4]) for r in info],
            # INTEGER PRIMARY KEY referring to nothing: the rowid alias, an identity
            "identity": {r[1] for r in info if r[5] and r[2] == "INTEGER" and len(pk) == 1}
            - referring,
            "pk": pk,
        }
        if fks:
            t["fks"] = {(fk[3], fk[2], fk[4], fk[6]) for fk in fks}
        for _seq, name, unique, origin, _partial in conn.execute(
            f"PRAGMA index_list('{table}')"
        ).fetchall():
            columns = tuple(r[2] for r in conn.execute(f"PRAGMA index_info('{name}')"))
            if origin == "u":
                t.setdefault("unique", set()).add(columns)
            elif origin == "c":
                t.setdefault("indexes", {})[name] = (bool(unique), columns)
        out[table] = t
    conn.close()
    return out


def test_every_column_type_has_a_postgres_type() -> None:
    from archiver.db.schema import ColumnType

    assert set(pg.TYPES) == set(ColumnType)


def test_the_ddl_follows_the_rules_without_a_server() -> None:
    ddl = "\n".join(sql for step in STEPS for sql, _ in pg.statements(step))
    assert '"id" BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY' in ddl
    assert '"check_id" BIGINT PRIMARY KEY REFERENCES "checks" ("id")' in ddl
    assert '"post_id" BIGINT NOT NULL REFERENCES "posts" ("id") ON DELETE CASCADE' in ddl
    assert '"expect" TEXT COLLATE "C" NOT NULL DEFAULT \'any\'' in ddl
    assert '"elapsed" DOUBLE PRECISION' in ddl
    assert 'ALTER TABLE "urls" ADD COLUMN "recheck" TEXT COLLATE "C"' in ddl
    assert 'CREATE INDEX "urls_state" ON "urls" ("state")' in ddl
    (seed,) = [s for step in STEPS for s in pg.statements(step) if s[0].startswith("INSERT")]
    assert seed[0] == 'INSERT INTO "meta" ("key", "value") VALUES (%s, %s)'
    assert seed[1][0] == "database_id" and re.fullmatch(r"[0-9a-f]{32}", seed[1][1])
    assert pg.literal("it's") == "'it''s'"


def test_every_step_applies_and_is_recorded_as_sqlite_records_it(conn: Any) -> None:
    assert pg.migrate(conn) == [s.name for s in STEPS]
    rows = conn.execute("SELECT name, applied FROM _migrations ORDER BY name").fetchall()
    assert [r[0] for r in rows] == sorted(s.name for s in STEPS)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r[1]) for r in rows)
    (database_id,) = conn.execute("SELECT value FROM meta WHERE key = 'database_id'").fetchone()
    assert re.fullmatch(r"[0-9a-f]{32}", database_id)


def test_the_schema_is_the_sqlite_one_through_the_type_rules(conn: Any, tmp_path: Path) -> None:
    Database(tmp_path / "a.db").close()
    pg.migrate(conn)
    want, got = _sqlite_schema(tmp_path / "a.db"), _pg_schema(conn)
    assert got.keys() == want.keys()
    for table in want:
        assert got[table] == want[table], table
    # the rules that matter, spelled out
    assert got["urls"]["identity"] == {"id"} and got["responses"]["identity"] == set()
    assert got["versions"]["pk"] == ("url_id", "sha256")
    assert ("post_id", "posts", "id", "CASCADE") in got["refs"]["fks"]
    assert got["posts"]["unique"] == {("source", "path")}


def test_migrating_again_changes_nothing(conn: Any) -> None:
    pg.migrate(conn)
    before = (_pg_schema(conn), conn.execute("SELECT * FROM _migrations").fetchall())
    meta = conn.execute("SELECT * FROM meta").fetchall()
    assert pg.migrate(conn) == []
    assert (_pg_schema(conn), conn.execute("SELECT * FROM _migrations").fetchall()) == before
    assert conn.execute("SELECT * FROM meta").fetchall() == meta  # no second seed row


def test_a_database_some_steps_behind_gets_only_the_rest(conn: Any) -> None:
    assert pg.migrate(conn, STEPS[:3]) == [s.name for s in STEPS[:3]]
    assert pg.migrate(conn) == [s.name for s in STEPS[3:]]


def test_a_failing_step_leaves_no_trace(conn: Any) -> None:
    from archiver.db.schema import AddColumn, Column, ColumnType, Step
    from archiver.errors import DatabaseError

    pg.migrate(conn)
    # its first statement works, its second cannot (the column exists): neither stays
    bad = Step(
        "999_bad",
        add_columns=(
            AddColumn("urls", Column("extra", ColumnType.TEXT)),
            AddColumn("urls", Column("recheck", ColumnType.TEXT)),
        ),
    )
    with pytest.raises(DatabaseError, match='column "recheck" of relation "urls" already exists'):
        pg.migrate(conn, (*STEPS, bad))
    columns = [c[0] for c in _pg_schema(conn)["urls"]["columns"]]
    assert "extra" not in columns
    assert conn.execute("SELECT 1 FROM _migrations WHERE name = '999_bad'").fetchone() is None


def test_migrators_that_race_apply_each_step_once(pg_dsn: str) -> None:  # noqa: F811
    """Four migrators wait on the lock a fifth connection holds, then all go at once."""
    holder = pg.connect(pg_dsn)
    holder.execute("SELECT pg_advisory_lock(%s)", (pg.LOCK_KEY,))
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        c = pg.connect(pg_dsn)
        try:
            results.append(pg.migrate(c))
        except BaseException as exc:
            errors.append(exc)
        finally:
            c.close()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        # every migrator is queued on the lock: a condition the server reports
        waiting = 0
        for _ in range(3000):
            (waiting,) = holder.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            if waiting == 4:
                break
            holder.execute("SELECT pg_sleep(0.01)")
        assert waiting == 4
    finally:
        holder.execute("SELECT pg_advisory_unlock(%s)", (pg.LOCK_KEY,))
        for t in threads:
            t.join(timeout=60)
        holder.close()
    assert errors == []
    applied = sorted(name for names in results for name in names)
    assert applied == sorted(s.name for s in STEPS)
    c = pg.connect(pg_dsn)
    assert c.execute("SELECT COUNT(*) FROM _migrations").fetchone() == (len(STEPS),)
    assert c.execute("SELECT COUNT(*) FROM meta").fetchone() == (1,)
    c.close()


def test_psycopg_is_not_imported_by_a_sqlite_run(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from archiver.db import Database, dialect, schema;"
        f" Database({str(tmp_path / 'x.db')!r}).close();"
        " print('psycopg' in sys.modules, 'archiver.db.postgres_schema' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["False", "False"]


# -- the same queries on both backends ----------------------------------------------


#: The rows both databases get, through the same (portable) INSERT texts.
ROWS: dict[str, list[tuple[Any, ...]]] = {
    "posts": [
        (1, "blog", "posts/b.md", "h1", "1", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", None),
        (2, "blog", "posts/A.md", "h2", "1", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", None),
        (3, "blog", "posts/é.md", "h3", "1", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "x"),
    ],
    "urls": [
        # id, url, host, state, sha256, last_checked, failing_since, referenced, recheck
        (1, "https://a.test/s.pdf", "a.test", "ok", "aa", "2026-01-02T00:00:00Z", None, 1, None),
        (
            2,
            "https://B.test/100%?.pdf",
            "b.test",
            "failing",
            None,
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z",
            1,
            None,
        ),
        (3, "https://é.test/x.png", "é.test", "pending", None, None, None, 1, None),
        (
            4,
            "https://a.test/gone.pdf",
            "a.test",
            "broken",
            "bb",
            "2025-12-01T00:00:00Z",
            "2025-11-01T00:00:00Z",
            0,
            "missing",
        ),
        (5, "https://a.test/Z.pdf", "a.test", "ok", "cc", "2026-01-02T00:00:00Z", None, 1, None),
    ],
    "refs": [
        (1, 1, 1, 3, "link", "slides", "https://a.test/s.pdf", 10, 30),
        (2, 1, 2, 5, "image", None, "https://B.test/100%?.pdf", 40, 60),
        (3, 2, 3, 1, "link", "it's ?", "https://é.test/x.png", 0, 20),
        (4, 2, 5, 2, "link", "z", "https://a.test/Z.pdf", 25, 45),
    ],
    "blobs": [
        ("aa", 1000, "application/pdf", "2026-01-02T00:00:00Z", None, None),
        ("cc", 3_000_000_000, "application/pdf", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", 1),
        ("dd", 7, "image/png", "2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", 0),
    ],
    "runs": [(1, "crawl", 42, "2026-01-02T00:00:00Z"), (2, "check", 43, "2026-01-03T00:00:00Z")],
    "checks": [
        (1, 1, 1, "2026-01-02T00:00:00Z", "ok", 200, 0.25),
        (2, 2, 1, "2026-01-01T00:00:00Z", "failing", 503, 1.5),
        (3, 4, 2, "2025-12-01T00:00:00Z", "broken", 404, None),
    ],
    "versions": [
        (1, "aa", "2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z", 1),
        (4, "dd", "2025-12-01T00:00:00Z", "2025-12-01T00:00:00Z", 3),
        (5, "cc", "2026-01-02T00:00:00Z", "2026-01-02T00:00:00Z", None),
    ],
    "mirror_paths": [(1, "a.test/s.pdf", "a.test/s.pdf")],
}

INSERTS = {
    "posts": "INSERT INTO posts (id, source, path, content_sha256, extractor_version,"
    " first_seen, last_seen, gone_since) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    "urls": "INSERT INTO urls (id, url, host, state, sha256, last_checked, failing_since,"
    " referenced, recheck, first_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '2025-01-01')",
    "refs": 'INSERT INTO refs (id, post_id, url_id, line, kind, text, as_written, start, "end")'
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "blobs": "INSERT INTO blobs (sha256, size, content_type, first_stored, verified_at,"
    " verify_ok) VALUES (?, ?, ?, ?, ?, ?)",
    "runs": "INSERT INTO runs (id, command, pid, started) VALUES (?, ?, ?, ?)",
    "checks": "INSERT INTO checks (id, url_id, run_id, checked_at, state, http_status, elapsed)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)",
    "versions": "INSERT INTO versions (url_id, sha256, first_seen, last_seen, check_id)"
    " VALUES (?, ?, ?, ?, ?)",
    "mirror_paths": "INSERT INTO mirror_paths (url_id, path, key) VALUES (?, ?, ?)",
}


@dataclass(frozen=True)
class Sample:
    """A query copied from archiver/db (``where``), as text, with parameters."""

    where: str
    sql: str
    params: tuple[Any, ...] = ()
    #: Columns the code reads through bool() (a comparison: 1/0 in SQLite, True/False here).
    bools: tuple[int, ...] = ()
    #: The code sorts the rows itself (no ORDER BY): compare them sorted.
    unordered: bool = False
    #: A write: compare what ``check`` reads afterwards.
    check: str | None = None


# Copied from archiver/db/*.py as they stand (f-strings expanded for their arguments):
# SAMPLES, not the code that runs. They run unchanged on both backends.
_COPY_COLUMNS = (
    "v.url_id, u.url, v.sha256, b.size, b.content_type, v.first_seen, v.last_seen,"
    " v.check_id, b.sha256 IS NOT NULL AS known, b.verified_at, b.verify_ok"
)
SAMPLES = [
    Sample(
        "archive.py report_urls (UrlQuery: states, host, since)",
        "SELECT u.id, u.url, u.host, u.state, u.http_status, u.error, u.error_class,"
        " u.sha256, u.size, u.content_type, u.last_checked, u.last_ok, u.failing_since,"
        " u.referenced, u.fetch_url, u.confirm_count, u.confirm_last, b.pages, b.title,"
        " b.width, b.height, b.format, b.deep_check"
        " FROM urls u LEFT JOIN blobs b ON b.sha256 = u.sha256"
        " WHERE u.state IN (?,?,?) AND u.host = ?"
        " AND u.failing_since IS NOT NULL AND u.failing_since >= ? AND u.referenced = 1",
        ("ok", "failing", "broken", "b.test", "2025-12-31"),
        unordered=True,
    ),
    Sample(
        "archive.py post_refs (with a UrlQuery)",
        "SELECT r.url_id, p.source, p.path, r.line, r.kind, COALESCE(r.text, '') FROM refs r"
        " JOIN posts p ON p.id = r.post_id"
        " JOIN urls u ON u.id = r.url_id WHERE u.state IN (?,?,?,?) AND u.referenced = 1"
        " ORDER BY p.path, r.line, r.start, r.id",
        ("ok", "failing", "pending", "broken"),
    ),
    Sample(
        "archive.py copies (all URLs)",
        f"SELECT {_COPY_COLUMNS} FROM versions v JOIN urls u ON u.id = v.url_id"
        " LEFT JOIN blobs b ON b.sha256 = v.sha256"
        " ORDER BY v.url_id, v.last_seen DESC, v.first_seen DESC, v.sha256",
        bools=(8,),
    ),
    Sample(
        "archive.py urls_in_states (sorted by URL: bytes order, case and accents)",
        "SELECT id, url FROM urls WHERE state IN (?,?,?,?) ORDER BY url",
        ("ok", "failing", "pending", "broken"),
    ),
    Sample(
        "archive.py blobs_to_verify",
        "SELECT sha256 FROM blobs ORDER BY verified_at IS NOT NULL, verified_at, sha256",
    ),
    Sample(
        "archive.py dangling_urls",
        "SELECT u.url, u.sha256 FROM urls u WHERE u.sha256 IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = u.sha256) ORDER BY u.url",
    ),
    Sample(
        "archive.py forget_blob (is it named?)",
        "SELECT 1 FROM versions WHERE sha256=? UNION SELECT 1 FROM urls WHERE sha256=?",
        ("cc", "cc"),
    ),
    Sample(
        "archive.py status_figures (states)",
        "SELECT state, COUNT(*) AS n FROM urls WHERE referenced=1 GROUP BY state",
        unordered=True,
    ),
    Sample(
        "archive.py rewrite_refs",
        'SELECT r.post_id, r.url_id, r.as_written, r.start, r."end", u.url, p.source,'
        " p.path, p.content_sha256, mp.path AS mirror_path FROM refs r"
        " JOIN urls u ON u.id = r.url_id JOIN posts p ON p.id = r.post_id"
        " LEFT JOIN mirror_paths mp ON mp.url_id = r.url_id"
        " WHERE u.state IN (?,?) AND p.gone_since IS NULL"
        " ORDER BY p.source, p.path, r.start",
        ("ok", "failing"),
    ),
    Sample(
        "run_queries.py _DUE (states.is_due in SQL; a bool parameter as a condition)",
        "SELECT u.id, ? OR u.last_checked IS NULL OR u.state = 'pending' OR u.recheck IS NOT NULL"
        " OR (u.state = 'ok' AND u.sha256 IS NULL)"
        " OR CASE WHEN u.state IN ('failing', 'error') THEN u.last_checked <= ?"
        " ELSE u.last_checked <= ? END FROM urls u ORDER BY u.id",
        (False, "2026-01-01T12:00:00Z", "2025-12-15T00:00:00Z"),
        bools=(1,),
    ),
    Sample(
        "run_queries.py count_not_ok (the run's posts as an IN-list)",
        "SELECT COUNT(*) FROM urls WHERE referenced=1 AND state NOT IN ('ok', 'blocked')"
        " AND id IN (SELECT url_id FROM refs WHERE post_id IN (?,?))",
        (1, 2),
    ),
    Sample(
        "sqlite.py record_check (versions upsert)",
        "INSERT INTO versions (url_id, sha256, first_seen, last_seen, check_id)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (url_id, sha256)"
        " DO UPDATE SET last_seen=excluded.last_seen",
        (1, "aa", "2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z", 1),
        check="SELECT url_id, sha256, first_seen, last_seen FROM versions ORDER BY url_id",
    ),
    Sample(
        "sqlite.py record_check (a failing check's URL update)",
        "UPDATE urls SET state=?, http_status=?, error_class=?, error=?, last_checked=?,"
        " final_url=?, failing_since=COALESCE(failing_since, ?), fail_count=fail_count+1,"
        " confirm_count=?, confirm_last=?, became=?,"
        " recheck=CASE WHEN recheck='undone' THEN NULL ELSE recheck END WHERE id=?",
        (
            "failing",
            500,
            "http",
            "500 % off?",
            "2026-02-01",
            None,
            "2026-02-01",
            1,
            None,
            "failing",
            1,
        ),
        check="SELECT id, state, error, failing_since, fail_count FROM urls ORDER BY id",
    ),
]


def _normalised(rows: list[Any], sample: Sample) -> list[tuple[Any, ...]]:
    """Each value with its type (1 and True differ), bools read as the code reads them."""
    out = []
    for row in rows:
        out.append(
            tuple(
                (bool if i in sample.bools else type(v), bool(v) if i in sample.bools else v)
                for i, v in enumerate(row)
            )
        )
    return sorted(out, key=repr) if sample.unordered else out


@pytest.fixture
def both(conn: Any, tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, Any]]:
    """The same rows in a SQLite database (made by ``Database``) and a PostgreSQL one."""
    db = Database(tmp_path / "a.db")
    pg.migrate(conn)
    for table, sql in INSERTS.items():
        with db.transaction():
            db.conn.executemany(sql, ROWS[table])
        with conn.cursor() as cur:
            cur.executemany(to_psycopg(sql), ROWS[table])
    pg.move_identities(conn)
    try:
        yield db.conn, conn
    finally:
        db.close()


def _run(c: Any, sql: str, params: tuple[Any, ...], pg_side: bool) -> list[Any]:
    cur = c.execute(to_psycopg(sql) if pg_side else sql, params)
    return cur.fetchall() if cur.description else []


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.where for s in SAMPLES])
def test_a_sample_query_answers_the_same_on_both(both: Any, sample: Sample) -> None:
    lite, postgres_conn = both
    got = [_run(c, sample.sql, sample.params, c is postgres_conn) for c in (lite, postgres_conn)]
    if sample.check is not None:
        got = [_run(c, sample.check, (), c is postgres_conn) for c in (lite, postgres_conn)]
    assert got[0], "a sample must return rows, or it proves nothing"
    assert _normalised(got[1], sample) == _normalised(got[0], sample)


@dataclass(frozen=True)
class Rewrite:
    """A query as archiver/db has it, which PostgreSQL refuses or answers otherwise, and
    its portable form (``dialect.CATALOGUE``), which answers the same on both."""

    where: str
    construct: str
    sqlite: str
    portable: str
    params: tuple[Any, ...] = ()
    check: str | None = None


REWRITES = [
    Rewrite(
        "sqlite.py record_check (blob row)",
        "insert-or",
        "INSERT OR IGNORE INTO blobs (sha256, size, content_type, first_stored)"
        " VALUES (?, ?, ?, ?)",
        "INSERT INTO blobs (sha256, size, content_type, first_stored)"
        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        ("aa", 1, "x/y", "2027-01-01"),
        check="SELECT sha256, size, content_type FROM blobs ORDER BY sha256",
    ),
    Rewrite(
        "sqlite.py url_id (cursor.lastrowid)",
        "lastrowid",
        "SELECT last_insert_rowid()",
        "INSERT INTO urls (url, host, expect, first_seen) VALUES (?, ?, ?, ?) RETURNING id",
        ("https://new.test/", "new.test", "any", "2026-03-01"),
    ),
    Rewrite(
        "sqlite.py record_fetch_urls",
        "is-value",
        "UPDATE urls SET fetch_url=? WHERE url=? AND fetch_url IS NOT ?",
        "UPDATE urls SET fetch_url=? WHERE url=? AND fetch_url IS DISTINCT FROM ?",
        ("https://m.test/s.pdf", "https://a.test/s.pdf", "https://m.test/s.pdf"),
        check="SELECT id, fetch_url FROM urls ORDER BY id",
    ),
    Rewrite(
        "run_queries.py update_referenced",
        "boolean-as-integer",
        "UPDATE urls SET referenced = EXISTS (SELECT 1 FROM refs WHERE refs.url_id = urls.id)",
        "UPDATE urls SET referenced = CASE WHEN EXISTS"
        " (SELECT 1 FROM refs WHERE refs.url_id = urls.id) THEN 1 ELSE 0 END",
        check="SELECT id, referenced FROM urls ORDER BY id",
    ),
    Rewrite(
        "run_queries.py _FULL_FETCH_FAILED (in due_urls)",
        "boolean-as-integer",
        "SELECT u.id, CASE WHEN ? AND (u.sha256 IS NULL OR u.state = 'invalid')"
        " AND u.state IN ('broken', 'failing') THEN"
        " COALESCE((SELECT c.state != 'ok' FROM checks c JOIN runs r ON r.id = c.run_id"
        " WHERE c.url_id = u.id AND r.command = 'crawl' ORDER BY c.id DESC LIMIT 1), 0)"
        " ELSE 0 END FROM urls u ORDER BY u.id",
        "SELECT u.id, CASE WHEN ? AND (u.sha256 IS NULL OR u.state = 'invalid')"
        " AND u.state IN ('broken', 'failing') THEN"
        " COALESCE((SELECT CASE WHEN c.state != 'ok' THEN 1 ELSE 0 END FROM checks c"
        " JOIN runs r ON r.id = c.run_id"
        " WHERE c.url_id = u.id AND r.command = 'crawl' ORDER BY c.id DESC LIMIT 1), 0)"
        " ELSE 0 END FROM urls u ORDER BY u.id",
        (True,),
    ),
    Rewrite(
        "archive.py status_figures (blob bytes)",
        "sum-avg-type",
        "SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM blobs",
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM blobs",
    ),
]


def _as_written_on_postgres(conn: Any, case: Rewrite) -> Any:
    """What PostgreSQL makes of the SQLite form: its error, or its answer (rolled back)."""
    try:
        with conn.transaction():
            rows = _run(conn, case.sqlite, case.params, True)
            if case.check is not None:
                rows = _run(conn, case.check, (), True)
            raise _Undo(rows)
    except _Undo as undo:
        return undo.rows
    except Exception as exc:
        assert type(exc).__module__.startswith("psycopg"), exc
        return exc


@pytest.mark.parametrize("case", REWRITES, ids=[r.where for r in REWRITES])
def test_a_sqlite_only_query_has_a_portable_form(both: Any, case: Rewrite) -> None:
    lite, postgres_conn = both
    if case.construct != "lastrowid":  # that one is Python's: cursor.lastrowid
        assert case.construct in dialect.sqlite_only(case.sqlite)
    if case.construct != "sum-avg-type":  # still a SUM: the CAST is what makes it portable
        assert case.construct not in dialect.sqlite_only(case.portable)
    as_written = _as_written_on_postgres(postgres_conn, case)
    if not isinstance(as_written, Exception):  # it runs, but answers otherwise
        assert case.check is None
        plain = Sample("", "")
        theirs = _run(lite, case.sqlite, case.params, False)
        assert _normalised(as_written, plain) != _normalised(theirs, plain)
    got = [_run(c, case.portable, case.params, c is postgres_conn) for c in (lite, postgres_conn)]
    if case.check is not None:
        got = [_run(c, case.check, (), c is postgres_conn) for c in (lite, postgres_conn)]
    assert got[0]
    assert _normalised(got[1], Sample("", "")) == _normalised(got[0], Sample("", ""))


class _Undo(Exception):
    """Rolls back what the SQLite form did on PostgreSQL, so the portable one starts alike."""

    def __init__(self, rows: list[Any]) -> None:
        super().__init__("undo")
        self.rows = rows
