"""archiver.db.dialect without a server: the scanner, the translation and the catalogue.

SQLite's own parser is the reference for what is a placeholder: every generated text
is run on SQLite with exactly as many parameters as the scanner counts (a wrong count
raises), and its answer shows where each ``?`` went. ``tests/test_postgres_schema.py``
runs the translated texts on PostgreSQL.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import sys
from pathlib import Path

import pytest

from archiver.db import dialect
from archiver.db.dialect import DialectError, Kind, parameter_count, scan, to_psycopg

ROOT = Path(__file__).resolve().parent.parent

#: Pieces a select list is made of: placeholders beside literals, identifiers and
#: comments that hold ``?``, ``%``, ``:name``, quotes and comment marks.
PIECES = (
    "?",
    "'?'",
    "'it''s ? 100%'",
    "'--?'",
    "'/*?*/'",
    "/* ? ' */ ?",
    "-- ? 'x\n?",
    '"a?""b"',
    "'%s'",
    "'%(x)s'",
    "? || '?'",
)


def _texts() -> list[str]:
    out = []
    for a, b in itertools.product(PIECES, repeat=2):
        out.append(f"SELECT {a}, {b}")
    return out


@pytest.mark.parametrize("sql", _texts())
def test_the_scanner_counts_what_sqlite_binds(sql: str) -> None:
    conn = sqlite3.connect(":memory:")
    n = parameter_count(sql)
    params = [f"p{i}" for i in range(n)]
    row = conn.execute(sql, params).fetchone()  # raises if SQLite counts otherwise
    assert all(f"p{i}" in "".join(map(str, row)) for i in range(n))


@pytest.mark.parametrize("sql", _texts())
def test_the_pieces_put_together_are_the_text(sql: str) -> None:
    assert "".join(piece for _, piece in scan(sql)) == sql


def test_placeholders_become_psycopg_ones_and_percent_signs_double() -> None:
    sql = "SELECT '50% ?', ? FROM t WHERE a IS NOT ? AND b LIKE 'x%' -- 1%?\n AND c = ?"
    assert to_psycopg(sql) == (
        "SELECT '50%% ?', %s FROM t WHERE a IS NOT %s AND b LIKE 'x%%' -- 1%%?\n AND c = %s"
    )
    assert to_psycopg("SELECT a % 2 FROM t") == "SELECT a %% 2 FROM t"
    assert to_psycopg("SELECT * FROM t WHERE a = :a AND b = :b_2") == (
        "SELECT * FROM t WHERE a = %(a)s AND b = %(b_2)s"
    )
    # a cast (PostgreSQL's ::) is not a named parameter
    assert to_psycopg("SELECT a::text FROM t") == "SELECT a::text FROM t"


def test_quoted_identifiers_keep_their_question_marks() -> None:
    assert to_psycopg('SELECT "a?" , [b?], `c?` FROM t') == 'SELECT "a?" , [b?], `c?` FROM t'
    assert [k for k, _ in scan('SELECT "a""?"')] == [Kind.CODE, Kind.IDENT]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT ?1", "numbered parameter '?1': use ? or :name"),
        ("SELECT @x", "parameter '@x': use ? or :name"),
        ("SELECT $x", "parameter '$x': use ? or :name"),
        ("SELECT ?, :a", "a query mixes ? and :name parameters"),
        ("SELECT 'open", "unterminated ' at offset 7"),
        ('SELECT "open', 'unterminated " at offset 7'),
        ("SELECT 1 /* no end", "unterminated /* comment"),
        ("SELECT 1 /* a /* b */ */", "nested /* comment: PostgreSQL nests them, SQLite does not"),
    ],
)
def test_texts_only_one_engine_reads_are_refused(sql: str, message: str) -> None:
    with pytest.raises(DialectError) as caught:
        to_psycopg(sql)
    assert str(caught.value) == message


def test_a_line_comment_at_the_end_needs_no_newline() -> None:
    assert to_psycopg("SELECT ? -- last?") == "SELECT %s -- last?"


#: (text, the constructs it has): each catalogue pattern fires on its SQLite form and
#: stays quiet on the portable one (and inside string literals).
FLAGGED = [
    ("INSERT OR IGNORE INTO blobs (sha256) VALUES (?)", ["insert-or"]),
    ("INSERT INTO blobs (sha256) VALUES (?) ON CONFLICT DO NOTHING", []),
    ("REPLACE INTO meta VALUES (?, ?)", ["insert-or"]),
    ("SELECT last_insert_rowid()", ["lastrowid"]),
    ("INSERT INTO t (a) VALUES (?) RETURNING id", []),
    ("INSERT INTO _migrations VALUES (?, datetime('now'))", ["date-functions"]),
    ("SELECT 'datetime(now)' FROM t", []),
    ("SELECT IFNULL(a, 0) FROM t", ["ifnull"]),
    ("SELECT GROUP_CONCAT(a, ',') FROM t", ["group-concat"]),
    ("SELECT json_extract(a, '$.x') FROM t", ["json-functions"]),
    ("SELECT a ->> '$.x' FROM t", ["json-functions"]),
    ("SELECT rowid FROM t", ["rowid"]),
    ("PRAGMA foreign_keys=ON", ["pragma"]),
    ("SELECT name FROM sqlite_master", ["sqlite-master"]),
    ("BEGIN IMMEDIATE", ["begin-mode"]),
    ("UPDATE urls SET f=? WHERE url=? AND f IS NOT ?", ["is-value"]),
    ("SELECT 1 FROM t WHERE a IS NOT NULL AND b IS NULL AND c IS DISTINCT FROM ?", []),
    ("UPDATE urls SET referenced = EXISTS (SELECT 1 FROM refs)", ["boolean-as-integer"]),
    ("SELECT COALESCE((SELECT c.state != 'ok' FROM checks c), 0)", ["boolean-as-integer"]),
    ("SELECT COALESCE((SELECT CASE WHEN a != 1 THEN 1 ELSE 0 END FROM c), 0)", []),
    ("SELECT COALESCE((SELECT a FROM c WHERE b = 1), 0)", []),
    ("SELECT COALESCE(SUM(size), 0) FROM blobs", ["sum-avg-type"]),
    ("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs", ["sum-avg-type"]),
    ("SELECT a FROM t LIMIT -1 OFFSET 5", ["limit-negative"]),
    ("SELECT a FROM t WHERE a LIKE ?", ["like-case"]),
    ("SELECT a / b FROM t", ["division"]),
    ("SELECT a FROM t /* a comment */ -- and one more\n", []),
    ("SELECT a FROM t ORDER BY a COLLATE NOCASE", ["collation"]),
    ("SELECT max(a, b), iif(a, 1, 2) FROM t", ["scalar-functions"]),
    ("SELECT MAX(a) FROM t", []),
    ("SELECT [a], `b` FROM t", ["sqlite-quoting"]),
]


@pytest.mark.parametrize(("sql", "keys"), FLAGGED)
def test_the_catalogue_finds_sqlite_only_forms(sql: str, keys: list[str]) -> None:
    assert dialect.sqlite_only(sql) == keys


def test_every_catalogue_entry_has_a_portable_form_and_a_unique_key() -> None:
    keys = [c.key for c in dialect.CATALOGUE]
    assert len(keys) == len(set(keys))
    for c in dialect.CATALOGUE:
        assert c.sqlite and c.portable, c.key
        assert re.fullmatch(r"[a-z-]+", c.key)


def test_the_portable_forms_named_are_in_this_sqlite() -> None:
    # RETURNING (3.35), IS DISTINCT FROM (3.39), ON CONFLICT (3.24), NULLS FIRST (3.30)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT UNIQUE)")
    assert conn.execute("INSERT INTO t (a) VALUES ('x') RETURNING id").fetchall() == [(1,)]
    conn.execute("INSERT INTO t (a) VALUES ('x') ON CONFLICT DO NOTHING")
    assert conn.execute("SELECT COUNT(*) FROM t WHERE a IS DISTINCT FROM NULL").fetchone() == (1,)
    assert conn.execute("SELECT a FROM t ORDER BY a NULLS FIRST").fetchall() == [("x",)]
    assert conn.execute("SELECT CAST(SUM(id) AS BIGINT) FROM t").fetchone() == (1,)


def test_postgres_md_covers_the_catalogue() -> None:
    doc = (ROOT / "docs" / "postgres.md").read_text(encoding="utf-8")
    missing = [c.key for c in dialect.CATALOGUE if f"`{c.key}`" not in doc]
    assert missing == []


def test_the_inventory_script_reads_the_queries() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import sql_dialect
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    found = sql_dialect.inventory(ROOT)
    assert found.keys() == {c.key for c in dialect.CATALOGUE}
    # the backends' own code has PRAGMAs; every place is a file:line of archiver/db
    assert found["pragma"]
    assert all(re.fullmatch(r"archiver/db/\w+\.py:\d+", w) for ws in found.values() for w in ws)
