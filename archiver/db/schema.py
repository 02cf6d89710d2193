"""The schema and its migration steps, declared once as data that names no backend.

Each step is applied once, in order, and recorded under its name in ``_migrations``
(the names are those of the hand-rolled migrations that came before: databases in use
record them). A backend turns a step into its own statements: the SQLite one through
sqlite-utils (``archiver.db.sqlite``), a PostgreSQL one later its own way. Nothing
here is SQL, so a step means the same thing to both.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "STEPS",
    "AddColumn",
    "Column",
    "ColumnType",
    "Generated",
    "Index",
    "Seed",
    "Step",
    "Table",
]


class ColumnType(StrEnum):
    """The few column types the archive needs; every backend has an exact match."""

    TEXT = "text"
    INTEGER = "integer"
    REAL = "real"


class Generated(StrEnum):
    """A seed value made when the step is applied, not when it is declared."""

    UUID = "uuid"  # a new random id, as 32 lower-case hex digits


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    not_null: bool = False
    default: str | int | None = None
    #: This column alone is the primary key (a compound one is ``Table.primary_key``).
    primary_key: bool = False
    unique: bool = False
    #: ``(table, column)`` this column refers to.
    references: tuple[str, str] | None = None
    #: What deleting the referred row does: ``"cascade"``, else nothing (refused).
    on_delete: str | None = None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    #: A compound primary key, in order.
    primary_key: tuple[str, ...] = ()
    #: Compound UNIQUE constraints, each a tuple of column names.
    unique: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class AddColumn:
    """A nullable column added to an existing table (no backend rewrites the table)."""

    table: str
    column: Column


@dataclass(frozen=True)
class Seed:
    """A row a step inserts: ``values`` as (column, value or ``Generated``) pairs."""

    table: str
    values: tuple[tuple[str, str | int | Generated], ...]


@dataclass(frozen=True)
class Step:
    """One migration: its tables, then added columns, then indexes, then seed rows."""

    name: str
    tables: tuple[Table, ...] = ()
    add_columns: tuple[AddColumn, ...] = ()
    indexes: tuple[Index, ...] = ()
    seeds: tuple[Seed, ...] = ()


TEXT, INTEGER, REAL = ColumnType.TEXT, ColumnType.INTEGER, ColumnType.REAL


def _id() -> Column:
    return Column("id", INTEGER, primary_key=True)


_001_INITIAL = Step(
    "001_initial",
    tables=(
        Table(
            "posts",
            (
                _id(),
                Column("source", TEXT, not_null=True),
                Column("path", TEXT, not_null=True),
                Column("content_sha256", TEXT),
                Column("extractor_version", TEXT),
                Column("first_seen", TEXT, not_null=True),
                Column("last_seen", TEXT, not_null=True),
                Column("gone_since", TEXT),
            ),
            unique=(("source", "path"),),
        ),
        Table(
            "urls",
            (
                _id(),
                Column("url", TEXT, not_null=True, unique=True),
                Column("host", TEXT),
                Column("expect", TEXT, not_null=True, default="any"),
                Column("state", TEXT, not_null=True, default="pending"),
                Column("http_status", INTEGER),
                Column("error_class", TEXT),
                Column("error", TEXT),
                Column("sha256", TEXT),
                Column("size", INTEGER),
                Column("content_type", TEXT),
                Column("final_url", TEXT),
                Column("etag", TEXT),
                Column("last_modified", TEXT),
                Column("first_seen", TEXT, not_null=True),
                Column("last_checked", TEXT),
                Column("last_ok", TEXT),
                Column("failing_since", TEXT),
                Column("fail_count", INTEGER, not_null=True, default=0),
                Column("confirm_count", INTEGER, not_null=True, default=0),
                Column("confirm_last", TEXT),
                Column("became", TEXT),
                Column("referenced", INTEGER, not_null=True, default=1),
            ),
        ),
        Table(
            "refs",
            (
                _id(),
                Column(
                    "post_id",
                    INTEGER,
                    not_null=True,
                    references=("posts", "id"),
                    on_delete="cascade",
                ),
                Column("url_id", INTEGER, not_null=True, references=("urls", "id")),
                Column("line", INTEGER, not_null=True),
                Column("kind", TEXT, not_null=True),
                Column("text", TEXT),
                Column("as_written", TEXT, not_null=True),
                Column("start", INTEGER, not_null=True),
                Column("end", INTEGER, not_null=True),
            ),
        ),
        Table(
            "blobs",
            (
                Column("sha256", TEXT, primary_key=True),
                Column("size", INTEGER, not_null=True),
                Column("content_type", TEXT),
                Column("first_stored", TEXT, not_null=True),
                Column("verified_at", TEXT),
                Column("verify_ok", INTEGER),
            ),
        ),
        Table(
            "runs",
            (
                _id(),
                Column("command", TEXT, not_null=True),
                Column("pid", INTEGER),
                Column("started", TEXT, not_null=True),
                Column("ended", TEXT),
                Column("exit_code", INTEGER),
                Column("posts", INTEGER),
                Column("urls", INTEGER),
                Column("counts", TEXT),  # JSON {state: count}
                Column("bytes", INTEGER),
                Column("new_blobs", INTEGER),
                Column("message", TEXT),
            ),
        ),
        Table(
            "checks",
            (
                _id(),
                Column("url_id", INTEGER, not_null=True, references=("urls", "id")),
                Column("run_id", INTEGER, references=("runs", "id")),
                Column("checked_at", TEXT, not_null=True),
                Column("state", TEXT, not_null=True),
                Column("http_status", INTEGER),
                Column("error_class", TEXT),
                Column("error", TEXT),
                Column("bytes", INTEGER, not_null=True, default=0),
                Column("sha256", TEXT),
                Column("elapsed", REAL),
                Column("attempts", INTEGER),
            ),
        ),
        Table(
            "responses",
            (
                Column("check_id", INTEGER, primary_key=True, references=("checks", "id")),
                Column("url", TEXT, not_null=True),
                Column("final_url", TEXT),
                Column("status_line", TEXT, not_null=True),
                Column("headers", TEXT, not_null=True),  # JSON [[name, value], ...]
            ),
        ),
        Table(
            "versions",
            (
                Column("url_id", INTEGER, not_null=True, references=("urls", "id")),
                Column("sha256", TEXT, not_null=True, references=("blobs", "sha256")),
                Column("first_seen", TEXT, not_null=True),
                Column("last_seen", TEXT, not_null=True),
                Column("check_id", INTEGER, references=("checks", "id")),
            ),
            primary_key=("url_id", "sha256"),
        ),
    ),
    indexes=(
        Index("urls_state", "urls", ("state",)),
        Index("refs_post", "refs", ("post_id",)),
        Index("refs_url", "refs", ("url_id",)),
        Index("checks_url", "checks", ("url_id",)),
    ),
)

_101_MIRROR_PATHS = Step(
    "101_mirror_paths",
    tables=(
        Table(
            "mirror_paths",
            (
                Column("url_id", INTEGER, primary_key=True, references=("urls", "id")),
                Column("path", TEXT, not_null=True),
                # case-folded: two names that differ only in case collide on macOS and Windows
                Column("key", TEXT, not_null=True, unique=True),
            ),
        ),
    ),
)

_102_REWRITES = Step(
    "102_rewrites",
    tables=(
        Table(
            "rewrites",
            (
                _id(),
                Column("post_id", INTEGER, not_null=True, references=("posts", "id")),
                Column("url_id", INTEGER, not_null=True, references=("urls", "id")),
                Column("old_text", TEXT, not_null=True),
                Column("new_text", TEXT, not_null=True),
                # where new_text is in the post file as we last wrote it (character offsets)
                Column("start", INTEGER, not_null=True),
                Column("end", INTEGER, not_null=True),
                Column("rewritten_at", TEXT, not_null=True),
                Column("undone_at", TEXT),
                Column(
                    "status", TEXT, not_null=True, default="active"
                ),  # active, undone, abandoned
            ),
        ),
        Table(
            "rewrite_posts",
            (
                Column("post_id", INTEGER, primary_key=True, references=("posts", "id")),
                Column("sha256", TEXT, not_null=True),  # the post's bytes after our last write
            ),
        ),
    ),
    indexes=(Index("rewrites_post", "rewrites", ("post_id",)),),
)

_201_SITE_PAGES = Step(
    "201_site_pages",
    add_columns=(
        AddColumn("posts", Column("page_status", INTEGER)),  # the page's last HTTP status
        AddColumn("posts", Column("page_error", TEXT)),  # why the last fetch failed, if it did
        AddColumn("posts", Column("page_etag", TEXT)),
        AddColumn("posts", Column("page_last_modified", TEXT)),
        AddColumn("posts", Column("page_final_url", TEXT)),  # where redirects ended
        AddColumn("posts", Column("page_checked", TEXT)),  # when the page was last asked for
        # JSON [[url, pagination], ...]: followed again when the page answers 304
        AddColumn("posts", Column("page_links", TEXT)),
        AddColumn("urls", Column("fetch_url", TEXT)),  # set by a [remap] rule
    ),
)

_301_STORE_IDENTITY = Step(
    "301_store_identity",
    # The database's own id, named in the id file of the store it uses; the store's id
    # is recorded at first use (see identity.bind_store).
    tables=(
        Table(
            "meta",
            (
                Column("key", TEXT, primary_key=True),
                Column("value", TEXT, not_null=True),
            ),
        ),
    ),
    seeds=(Seed("meta", (("key", "database_id"), ("value", Generated.UUID))),),
)

_401_RECHECK = Step(
    "401_recheck",
    # Set by verify (copy missing or damaged) and restore --undo; a full fetch clears it.
    add_columns=(AddColumn("urls", Column("recheck", TEXT)),),
)

_501_DEEP_CHECK = Step(
    "501_deep_check",
    # What the parsers learnt of a blob when it was stored (``validate_deep``): whether
    # it opens (ok, corrupt, skipped) and why not, and its pages, title and dimensions.
    add_columns=(
        AddColumn("blobs", Column("pages", INTEGER)),
        AddColumn("blobs", Column("title", TEXT)),
        AddColumn("blobs", Column("width", INTEGER)),
        AddColumn("blobs", Column("height", INTEGER)),
        AddColumn("blobs", Column("format", TEXT)),
        AddColumn("blobs", Column("deep_check", TEXT)),  # ok, corrupt or skipped; NULL: never
        AddColumn("blobs", Column("deep_reason", TEXT)),
    ),
)


_503_VERSION_SOURCE = Step(
    "503_version_source",
    # Where a version came from when not from its URL: 'web-archive:<snapshot url>'.
    add_columns=(AddColumn("versions", Column("source", TEXT)),),
)

_504_POST_STAT = Step(
    "504_post_stat",
    # A folder post's stat when its bytes were last read and hashed, and when that was
    # (ns since the epoch): a post whose stat still matches, and whose mtime is older than
    # that moment by more than a timestamp's granularity, is not read again (git's index).
    add_columns=(
        AddColumn("posts", Column("stat_size", INTEGER)),
        AddColumn("posts", Column("stat_mtime_ns", INTEGER)),
        AddColumn("posts", Column("stat_ctime_ns", INTEGER)),
        AddColumn("posts", Column("stat_inode", INTEGER)),
        AddColumn("posts", Column("stat_read_ns", INTEGER)),
    ),
)

_601_WORKERS = Step(
    "601_workers",
    # ``crawl --worker`` (``archiver.db.leases``): a shared run's workers, its queue of due
    # URLs (one row per URL, ``checked`` once its one check is recorded) and its hosts'
    # leases (a host is fetched by the one worker holding its unexpired lease).
    tables=(
        Table(
            "workers",
            (
                _id(),
                Column("run_id", INTEGER, not_null=True, references=("runs", "id")),
                Column("name", TEXT, not_null=True),
                Column("machine", TEXT),
                Column("pid", INTEGER),
                Column("started", TEXT, not_null=True),
                Column("heartbeat", TEXT, not_null=True),
                Column("expires", TEXT, not_null=True),  # alive until then, unless renewed
                Column("ended", TEXT),
                Column("exit_code", INTEGER),
                Column("checked", INTEGER, not_null=True, default=0),
            ),
        ),
        Table(
            "run_urls",
            (
                Column("run_id", INTEGER, not_null=True, references=("runs", "id")),
                Column("url_id", INTEGER, not_null=True, references=("urls", "id")),
                Column("host", TEXT, not_null=True),  # the host fetched (DueUrl.fetch_host)
                Column("checked", INTEGER, not_null=True, default=0),
            ),
            primary_key=("run_id", "url_id"),
        ),
        Table(
            "host_leases",
            (
                Column("run_id", INTEGER, not_null=True, references=("runs", "id")),
                Column("host", TEXT, not_null=True),
                Column("worker_id", INTEGER, references=("workers", "id")),  # NULL: free
                Column("expires", TEXT),
                Column("taken", INTEGER, not_null=True, default=0),  # times leased this run
            ),
            primary_key=("run_id", "host"),
        ),
    ),
    # 1 for a run that workers share (``crawl --worker``).
    add_columns=(AddColumn("runs", Column("shared", INTEGER)),),
    indexes=(
        Index("run_urls_host", "run_urls", ("run_id", "host", "checked")),
        Index("workers_run", "workers", ("run_id",)),
    ),
)

_602_RUN_INDEXED = Step(
    "602_run_indexed",
    # The sources a shared run's workers finished indexing, as JSON {source: posts}:
    # a worker joining the run skips them (``Leases.indexed_sources``).
    add_columns=(AddColumn("runs", Column("indexed", TEXT)),),
)

# The report's orders start from the posts by path (``report_stream``, ``use_rows``): with
# this index SQLite reads the uses in that order and sorts only the rows of one path at
# a time, not a million wide rows at once.
_701_POSTS_PATH = Step("701_posts_path", indexes=(Index("posts_path", "posts", ("path",)),))

#: Every migration step, in the order they apply.
STEPS: tuple[Step, ...] = (
    _001_INITIAL,
    _101_MIRROR_PATHS,
    _102_REWRITES,
    _201_SITE_PAGES,
    _301_STORE_IDENTITY,
    _401_RECHECK,
    _501_DEEP_CHECK,
    _503_VERSION_SOURCE,
    _504_POST_STAT,
    _601_WORKERS,
    _602_RUN_INDEXED,
    _701_POSTS_PATH,
)
