"""The backends' own promises, each held on SQLite and PostgreSQL (``state_db``): one
migration per step, an atomic transaction, read-only opening; and what only the
PostgreSQL backend must see to: a password that never shows, text holding NUL, one
snapshot per read."""

from __future__ import annotations

import pytest
from pg_server import PgServer

from archiver.db import Database, PostgresUrl, read_snapshot
from archiver.db.schema import STEPS
from archiver.errors import DatabaseError


def test_each_step_is_applied_once_and_recorded(state_db: str) -> None:
    Database(state_db).close()
    db = Database(state_db)  # nothing pending: applies nothing
    try:
        names = [r["name"] for r in db.rows("SELECT name FROM _migrations ORDER BY name")]
        assert names == sorted(step.name for step in STEPS)
        applied = db.scalar("SELECT applied FROM _migrations WHERE name = ?", (STEPS[0].name,))
        assert len(applied) == len("2026-01-01 00:00:00") and applied[10] == " "
    finally:
        db.close()


def test_a_failed_transaction_leaves_nothing(state_db: str) -> None:
    db = Database(state_db)
    try:
        with pytest.raises(RuntimeError), db.transaction():
            db.add_meta("half", "done")
            raise RuntimeError("crash")
        assert db.meta("half") is None
        with db.transaction():
            db.add_meta("whole", "done")
        assert db.meta("whole") == "done"
    finally:
        db.close()


def test_a_read_only_open_cannot_write(state_db: str) -> None:
    Database(state_db).close()
    db = Database(state_db, readonly=True)
    try:
        with pytest.raises(Exception, match="(?i)read.only|readonly"):
            db.add_meta("k", "v")
    finally:
        db.close()


def test_ids_come_back_from_inserts(state_db: str) -> None:
    db = Database(state_db)
    try:
        with db.transaction():
            first = db.url_id("http://127.0.0.1/a", "2026-01-01T00:00:00Z")
            second = db.url_id("http://127.0.0.1/b", "2026-01-01T00:00:00Z")
            again = db.url_id("http://127.0.0.1/a", "2026-01-01T00:00:00Z")
        assert second > first == again
        run = db.start_run("crawl", 1, "2026-01-01T00:00:00Z")
        assert db.scalar("SELECT command FROM runs WHERE id = ?", (run,)) == "crawl"
    finally:
        db.close()


def test_text_holding_nul_is_stored_on_both(state_db: str) -> None:
    db = Database(state_db)
    try:
        with db.transaction():
            db.add_meta("nul", "a\x00b")
        # PostgreSQL's text cannot hold NUL: it keeps the rest of the text, not the run's end
        assert db.meta("nul") in ("a\x00b", "a\ufffdb")
        if state_db.startswith("postgresql://"):
            assert db.meta("nul") == "a\ufffdb"
    finally:
        db.close()


def test_the_password_shows_in_no_message(postgres: PgServer) -> None:
    dsn = f"postgresql://postgres:hunter2-secret@{postgres.host}:{postgres.port}/no_such_db"
    with pytest.raises(DatabaseError) as caught:
        Database(dsn)
    message = str(caught.value)
    assert "hunter2-secret" not in message
    assert message.startswith(
        f"cannot open database postgresql://postgres:***@{postgres.host}:{postgres.port}"
        "/no_such_db: "
    )
    assert "no_such_db" in message.partition(": ")[2]  # the server's reason
    url = PostgresUrl(dsn + "?password=other-secret")
    assert "secret" not in str(url) + repr(url)


def test_a_read_only_read_is_one_snapshot(pg_dsn: str) -> None:
    writer = Database(pg_dsn)
    try:

        def read(db: Database) -> list[str | None]:
            seen = [db.meta("late")]
            with writer.transaction():
                writer.add_meta("late", "written meanwhile")
            seen.append(db.meta("late"))
            return seen

        assert read_snapshot(PostgresUrl(pg_dsn), read) == [None, None]
        assert writer.meta("late") == "written meanwhile"
    finally:
        writer.close()


def test_an_older_schema_is_not_migrated_by_a_read_only_open(pg_dsn: str) -> None:
    from archiver.db import postgres_schema

    conn = postgres_schema.connect(pg_dsn)
    try:
        postgres_schema.migrate(conn, STEPS[:1])
    finally:
        conn.close()
    with pytest.raises(DatabaseError, match=rf"{len(STEPS) - 1} migrations behind"):
        Database(pg_dsn, readonly=True)
    Database(pg_dsn).close()
    Database(pg_dsn, readonly=True).close()
