"""One query text for SQLite and PostgreSQL: placeholders translated, SQLite-only forms named.

The queries are written once, in the SQL both engines accept, with SQLite's ``?`` (or
``:name``) placeholders. ``to_psycopg`` turns such a text into what psycopg 3 expects:
``?`` -> ``%s``, ``:name`` -> ``%(name)s`` and every literal ``%`` -> ``%%`` (psycopg
reads ``%`` anywhere in the text, inside string literals too, whenever parameters are
passed: so always pass a sequence, even an empty one). ``CATALOGUE`` lists the SQLite
constructs that PostgreSQL does not share, each with the form both accept, and
``sqlite_only`` finds them in a text; ``docs/postgres.md`` is the inventory of the
current queries (``scripts/sql_dialect.py`` prints it).

Why a scanner of our own, not sqlparse: telling a placeholder from a ``?`` in a
literal needs four token kinds only (string literal, quoted identifier, comment,
code), and SQLite's lexer is the reference: ``tests/test_dialect.py`` holds this
scanner to SQLite's own count of parameters on every sample. sqlparse would be a
dependency for the PostgreSQL extra alone, its regex lexer knows neither SQLite's
``[x]``/backtick identifiers as such nor where PostgreSQL differs, and a query's
translation is cached (``lru_cache``) either way. The scanner is linear in the text.

What the scanner follows (SQLite's lexer): ``'...'`` with ``''`` inside; ``"..."``,
```...``` and ``[...]`` identifiers; ``-- ...`` to the end of the line; ``/* ... */``
(which SQLite does not nest: a ``/*`` inside one is refused, PostgreSQL would nest
it). Texts only one engine reads are refused rather than guessed at: ``?NNN``,
``@name`` and ``$name`` parameters, mixed ``?`` and ``:name``, an unterminated literal
or comment. Nothing here imports a driver.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CATALOGUE",
    "Construct",
    "DialectError",
    "Kind",
    "code_only",
    "parameter_count",
    "scan",
    "sqlite_only",
    "to_psycopg",
]


class DialectError(ValueError):
    """A query text that cannot be shared as written."""


class Kind(StrEnum):
    """What a piece of query text is, to the lexer."""

    CODE = "code"  # keywords, names, operators, numbers, placeholders
    STRING = "string"  # '...'
    IDENT = "ident"  # "..." (both), `...` and [...] (SQLite only)
    COMMENT = "comment"  # -- ... and /* ... */


_CLOSE = {"'": "'", '"': '"', "`": "`", "[": "]"}


_SPECIAL = re.compile(r"['\"`\[]|--|/\*")


def scan(sql: str) -> Iterator[tuple[Kind, str]]:
    """The text in pieces, each with its kind; the pieces put together are ``sql``."""
    i = 0
    while (m := _SPECIAL.search(sql, i)) is not None:
        if m.start() > i:
            yield Kind.CODE, sql[i : m.start()]
        end = _end_of_quoted(sql, m.start())
        piece = sql[m.start() : end]
        if piece.startswith("'"):
            yield Kind.STRING, piece
        elif piece.startswith(("--", "/*")):
            yield Kind.COMMENT, piece
        else:
            yield Kind.IDENT, piece
        i = end
    if i < len(sql):
        yield Kind.CODE, sql[i:]


def _end_of_quoted(sql: str, i: int) -> int:
    """The index just past the literal, identifier or comment starting at ``i``."""
    if sql.startswith("--", i):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end + 1
    if sql.startswith("/*", i):
        end = sql.find("*/", i + 2)
        if end < 0:
            raise DialectError("unterminated /* comment")
        if "/*" in sql[i + 2 : end]:
            raise DialectError("nested /* comment: PostgreSQL nests them, SQLite does not")
        return end + 2
    close = _CLOSE[sql[i]]
    j = i + 1
    while True:
        end = sql.find(close, j)
        if end < 0:
            raise DialectError(f"unterminated {sql[i]} at offset {i}")
        # '' inside '...' (and "" inside "...", `` inside `...`) is the quote itself
        if close != "]" and sql.startswith(close * 2, end):
            j = end + 2
            continue
        return end + 1


#: A placeholder in code: ``?`` (not ``?NNN``), or ``:name``/``@name``/``$name``.
_PARAM = re.compile(r"\?(\d*)|(?<![:\w]):([A-Za-z_]\w*)|(?<!\w)[@$]([A-Za-z_]\w*)")


def _translate(code: str, style: list[str]) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(0).startswith("?"):
            if m.group(1):
                raise DialectError(f"numbered parameter {m.group(0)!r}: use ? or :name")
            style.append("?")
            return "%s"
        if m.group(2) is not None:
            style.append(":")
            return f"%({m.group(2)})s"
        raise DialectError(f"parameter {m.group(0)!r}: use ? or :name")

    return _PARAM.sub(one, code.replace("%", "%%"))


@functools.lru_cache(maxsize=2048)
def to_psycopg(sql: str) -> str:
    """The text with psycopg's placeholders; ``%`` doubled everywhere (see module doc)."""
    style: list[str] = []
    out = []
    for kind, piece in scan(sql):
        out.append(_translate(piece, style) if kind is Kind.CODE else piece.replace("%", "%%"))
    if len(set(style)) > 1:
        raise DialectError("a query mixes ? and :name parameters")
    return "".join(out)


def parameter_count(sql: str) -> int:
    """How many ``?`` placeholders the text has (string literals and comments excluded)."""
    return sum(len(re.findall(r"\?", piece)) for kind, piece in scan(sql) if kind is Kind.CODE)


def code_only(sql: str) -> str:
    """The text with each literal as ``''``, each comment as a space, identifiers kept.

    What ``sqlite_only`` matches against: a pattern never fires inside a string.
    """
    parts = []
    for kind, piece in scan(sql):
        if kind is Kind.STRING:
            parts.append("''")
        elif kind is Kind.COMMENT:
            parts.append(" ")
        else:
            parts.append(piece)
    return "".join(parts)


@dataclass(frozen=True)
class Construct:
    """A SQLite form PostgreSQL does not share, and what to write instead."""

    key: str
    #: What it looks like in SQLite.
    sqlite: str
    #: The form both engines accept (with the SQLite version that first has it), or the
    #: way out when there is none.
    portable: str
    #: Finds it in a query text (``code_only``); None: found by reading, or in Python.
    pattern: re.Pattern[str] | None = None
    #: Finds it in the Python around the queries (``cursor.lastrowid``).
    python: re.Pattern[str] | None = None


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


#: Every SQLite-only construct the queries use or might, with its portable form.
#: The version checked here: SQLite 3.40 (Debian 12's), which has every portable form
#: named below.
CATALOGUE: tuple[Construct, ...] = (
    Construct(
        "insert-or",
        "INSERT OR IGNORE / OR REPLACE INTO t ...",
        "INSERT INTO t ... ON CONFLICT DO NOTHING, or ON CONFLICT (key) DO UPDATE SET"
        " c = excluded.c (SQLite >= 3.24)",
        _re(r"\bINSERT\s+OR\s+(IGNORE|REPLACE|ABORT|FAIL|ROLLBACK)\b|^\s*REPLACE\s+INTO\b"),
    ),
    Construct(
        "lastrowid",
        "cursor.lastrowid, last_insert_rowid()",
        "INSERT ... RETURNING id, read with fetchone() (SQLite >= 3.35); psycopg's"
        " lastrowid is an OID, not the id",
        _re(r"\blast_insert_rowid\s*\("),
        re.compile(r"^(?!\s*assert\b).*\.lastrowid\b"),
    ),
    Construct(
        "date-functions",
        "datetime('now'), date(), time(), strftime(), julianday(), unixepoch()",
        "a time made in Python (archiver.clock.iso) and bound as a parameter; the"
        " columns hold ISO text on both backends",
        _re(r"\b(datetime|date|time|strftime|julianday|unixepoch)\s*\("),
    ),
    Construct("ifnull", "IFNULL(a, b)", "COALESCE(a, b)", _re(r"\bIFNULL\s*\(")),
    Construct(
        "group-concat",
        "GROUP_CONCAT(x, sep)",
        "no common form before SQLite 3.44's string_agg: aggregate in Python",
        _re(r"\bGROUP_CONCAT\s*\("),
    ),
    Construct(
        "json-functions",
        "json(), json_extract(), json_each(), ->, ->>",
        "no common form (PostgreSQL's json/jsonb differ): store JSON text, decode in Python",
        _re(r"\bjson(_\w+)?\s*\(|->>?"),
    ),
    Construct(
        "rowid",
        "rowid, _rowid_, oid",
        "the table's declared id column",
        _re(r"\b(rowid|_rowid_|oid)\b"),
    ),
    Construct(
        "pragma",
        "PRAGMA journal_mode / foreign_keys / table_info ...",
        "the backend's own connect code; information_schema for introspection",
        _re(r"^\s*PRAGMA\b"),
    ),
    Construct(
        "sqlite-master",
        "sqlite_master, sqlite_schema, sqlite_temp_master",
        "the backend's own code (information_schema.tables, to_regclass())",
        _re(r"\bsqlite_(master|schema|temp_master)\b"),
    ),
    Construct(
        "begin-mode",
        "BEGIN IMMEDIATE / EXCLUSIVE / DEFERRED",
        "the backend's transaction(): PostgreSQL's BEGIN, with a lock where writers must"
        " queue (SQLite's single writer is a property of the file)",
        _re(r"^\s*BEGIN\s+(IMMEDIATE|EXCLUSIVE|DEFERRED)\b"),
    ),
    Construct(
        "is-value",
        "a IS ?, a IS NOT b (IS with an operand that is not NULL)",
        "a IS [NOT] DISTINCT FROM b (SQLite >= 3.39)",
        _re(r"\bIS\s+(?:NOT\s+)?(?!NOT\b|NULL\b|DISTINCT\b|TRUE\b|FALSE\b)(?=[\w?:'\"(])"),
    ),
    Construct(
        "boolean-as-integer",
        "a comparison, IS [NOT] NULL or EXISTS used as a number: stored in an INTEGER"
        " column, mixed with numbers in COALESCE/CASE, or summed",
        "CASE WHEN cond THEN 1 ELSE 0 END where a number is stored or mixed; where it is"
        " only read, read it through bool() (PostgreSQL returns True/False, SQLite 1/0)",
        _re(
            r"=\s*EXISTS\s*\(|COALESCE\s*\(\s*\(\s*SELECT\s+(?!CASE\b)"
            r"(?:(?!\bFROM\b)[^()])*?(!=|<>|=|<|>)"
        ),
    ),
    Construct(
        "python-bool-parameter",
        "a Python bool bound where a number is compared or stored (? + 1, INTEGER column),"
        " or a number bound where a condition is wanted (? OR ...)",
        "int(flag) for a number, bool(x) for a condition: psycopg sends each as its type,"
        " and PostgreSQL neither stores a boolean in a bigint nor ORs a number",
    ),
    Construct(
        "sum-avg-type",
        "SUM(), AVG(), TOTAL() of an INTEGER column",
        "CAST(SUM(x) AS BIGINT): PostgreSQL's SUM of a bigint is numeric (a Decimal in"
        " Python), AVG numeric; TOTAL() is SQLite-only",
        _re(r"\b(SUM|AVG|TOTAL)\s*\("),
    ),
    Construct(
        "null-order",
        "ORDER BY a nullable column: SQLite puts NULLs first ascending, PostgreSQL last",
        "an explicit key first (ORDER BY x IS NOT NULL, x) or NULLS FIRST/LAST (SQLite >= 3.30)",
    ),
    Construct(
        "limit-negative",
        "LIMIT -1 (no limit), LIMIT -1 OFFSET n",
        "no LIMIT; with an OFFSET, LIMIT with a large number",
        _re(r"\bLIMIT\s+-\s*\d"),
    ),
    Construct(
        "like-case",
        "LIKE (case-insensitive for ASCII in SQLite), GLOB",
        "lower(a) LIKE lower(?) to mean SQLite's LIKE; GLOB has no common form",
        _re(r"\b(LIKE|GLOB)\b"),
    ),
    Construct(
        "division",
        "a / b: SQLite gives NULL for a zero divisor, PostgreSQL raises",
        "a / NULLIF(b, 0); both divide integers as integers",
        _re(r"(?<![/*])/(?![/*])"),
    ),
    Construct(
        "collation",
        "COLLATE NOCASE / RTRIM / BINARY",
        'COLLATE "C" is BINARY (every TEXT column is declared so); lower() for NOCASE',
        _re(r"\bCOLLATE\s+(NOCASE|RTRIM|BINARY)\b"),
    ),
    Construct(
        "scalar-functions",
        "max(a, b), min(a, b), iif(), instr(), printf(), typeof(), changes()",
        "GREATEST/LEAST have no SQLite form: CASE WHEN; iif -> CASE; instr -> none;"
        " printf -> format in Python",
        _re(
            r"\b(max|min)\s*\([^()]*,|\b(iif|instr|printf|typeof|changes|total_changes"
            r"|randomblob|zeroblob|likelihood|unlikely)\s*\("
        ),
    ),
    Construct(
        "sqlite-quoting",
        "[name] and `name` identifiers; 'text' in double quotes",
        '"name" (standard); a string literal in single quotes',
    ),
    Construct(
        "bare-group-column",
        "SELECT a, b ... GROUP BY a (b neither grouped nor aggregated)",
        "every selected column grouped or aggregated (PostgreSQL refuses the query)",
    ),
    Construct(
        "sqlite-utils",
        "sqlite-utils' table API over the connection (rows_where, count_where, query)",
        "the plain SQL it stands for (SELECT ... ORDER BY ... LIMIT ?, SELECT COUNT(*))",
        None,
        re.compile(r"\bself\.utils\b"),
    ),
    Construct(
        "conn-executemany",
        "connection.executemany(sql, rows) (a sqlite3 shortcut)",
        "cursor().executemany(sql, rows): psycopg's connection has execute, not executemany",
        None,
        re.compile(r"\.conn\.executemany\b"),
    ),
    Construct(
        "driver-errors",
        "sqlite3.Error and its subclasses caught around queries",
        "the backend turns its driver's errors into DatabaseError (as_database_error)",
        None,
        re.compile(r"\bsqlite3\.\w*Error\b"),
    ),
    Construct(
        "executescript",
        "conn.executescript(many statements)",
        "one execute per statement (psycopg sends one at a time with parameters)",
        None,
        re.compile(r"\.executescript\b"),
    ),
)


def sqlite_only(sql: str) -> list[str]:
    """The keys of the ``CATALOGUE`` constructs found in a query text, in catalogue order."""
    code = code_only(sql)
    found = [c.key for c in CATALOGUE if c.pattern is not None and c.pattern.search(code)]
    quoted = any(kind is Kind.IDENT and piece[0] in "`[" for kind, piece in scan(sql))
    if quoted:
        found.append("sqlite-quoting")
    return found
