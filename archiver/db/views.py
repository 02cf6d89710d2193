"""The records the archive's queries return: frozen, typed, and named by what they mean.

Commands (report, status, restore, mirror, rewrite, verify, gc, export) take these
from ``Database`` and never see a row, a cursor or a column name; any backend that
returns the same records serves them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "ActiveRewrite",
    "ArchiveTarget",
    "BlobUse",
    "Copy",
    "ExportVersion",
    "LinkUse",
    "OldestCheck",
    "PostUse",
    "ReportRow",
    "RewriteRef",
    "RewriteSpan",
    "RunRecord",
    "StatusFigures",
    "UrlName",
    "UrlQuery",
]


@dataclass(frozen=True)
class UrlQuery:
    """Which URLs a report (or the copies behind it) covers; None or False: no condition."""

    states: tuple[str, ...]
    #: Lower-case host name (every port: the port is the caller's to filter).
    host: str | None = None
    #: Only URLs failing since this time (an ISO string, compared as text).
    since: str | None = None
    #: Only URLs with more than one archived version.
    changed: bool = False
    #: Also URLs no crawled post links any more.
    unreferenced: bool = False


class PostUse(NamedTuple):
    """Where a post uses a URL. The JSON report shows the first four fields.

    A NamedTuple, like ``ReportRow``: as immutable and typed as a frozen dataclass, and
    four times cheaper to build (a report of a million URLs builds a million of them).
    """

    source: str
    path: str
    line: int
    kind: str
    #: The link text or alt text as the post has it ("" when its form has none): the
    #: deck's title, as readers see it. HTML only (the JSON fields stay as they were).
    text: str = ""


class ReportRow(NamedTuple):
    """One URL of the report: the fields of the JSON object (``ops.report_rows.FIELDS``,
    in order), then what only the HTML page shows. ``row_dict`` makes the JSON/CSV form.

    The URL's columns, its blob's and its uses come from the database; whether a copy
    is restorable (``restorable``, ``copy_*``) is the store's to say, through the
    ``pick`` the report passes to ``report_rows``.
    """

    url: str
    state: str
    http_status: int | None
    error: str | None
    error_class: str | None
    sha256: str | None
    size: int | None
    content_type: str | None
    last_checked: str | None
    last_ok: str | None
    failing_since: str | None
    referenced: bool
    #: Where posts use it, by path, line and column (only the ``--post`` ones with one).
    posts: tuple[PostUse, ...]
    host: str | None
    #: A good copy is held (``ops.restore.is_good``): the newest, ``copy_*`` below.
    restorable: bool
    copy_sha256: str | None
    copy_verified_at: str | None
    #: How many archived versions there are (good or not).
    versions: int
    #: Where a [remap] rule sends the fetch, else None.
    remapped_url: str | None
    #: What the deep check learnt of the current copy's blob (``validate_deep``).
    pages: int | None
    title: str | None
    width: int | None
    height: int | None
    format: str | None
    deep_check: str | None
    #: Failing runs counted towards confirming it dead, and the last one counted.
    confirm_count: int = 0
    confirm_last: str | None = None


@dataclass(frozen=True)
class ArchiveTarget:
    """A URL as ``restore --from-archive`` needs it: what to ask the web archive for."""

    id: int
    url: str
    #: What its links expect ("pdf", "image", "any"): the snapshot is judged by it.
    expect: str
    last_ok: str | None


class LinkUse(NamedTuple):
    """One use of a URL (``at``: a link at a line of a post) with the state its URL is in.

    What the CI formats write, and the order the report's post-by-post formats follow:
    one record per use, streamed, so a report of a million uses never holds them all.
    """

    url_id: int
    url: str
    host: str | None
    state: str
    http_status: int | None
    error: str | None
    error_class: str | None
    #: Where: the post's source as recorded (a folder or file path, or a site's URL), its
    #: path within the source (a site page: its URL), the line, the form and link text.
    at: PostUse


class Copy(NamedTuple):
    """One archived version of a URL, with what we last learnt about its blob.

    A NamedTuple, like ``ReportRow``: a report builds one per version (half a million at
    1,000,000 URLs), and a frozen dataclass took 5 us each to build, a NamedTuple 0.5 us.
    """

    url_id: int
    url: str
    sha256: str
    size: int | None
    content_type: str | None
    first_seen: str
    last_seen: str
    check_id: int | None
    #: The blob row exists (a version whose blob row is missing points nowhere).
    known: bool
    verified_at: str | None
    #: 1 passed, 0 failed, None never re-checked since the store hashed it on the way in.
    verify_ok: int | None


@dataclass(frozen=True)
class UrlName:
    id: int
    url: str


@dataclass(frozen=True)
class BlobUse:
    """A URL naming a blob (a version of it, or its current copy)."""

    url: str
    sha256: str


@dataclass(frozen=True)
class RunRecord:
    """One run as recorded: ``ended`` is None while it runs, or when it died."""

    id: int
    command: str
    pid: int | None
    started: str
    ended: str | None
    exit_code: int | None
    posts: int | None
    urls: int | None
    counts: dict[str, int]
    bytes: int | None
    new_blobs: int | None
    message: str | None


@dataclass(frozen=True)
class OldestCheck:
    url: str
    last_checked: str | None


@dataclass(frozen=True)
class StatusFigures:
    """What ``archiver status`` shows from the database."""

    posts: int
    urls: int
    unreferenced_urls: int
    #: URLs of each state, by state name.
    states: dict[str, int]
    blobs: int
    blob_bytes: int
    oldest_check: OldestCheck | None
    runs: tuple[RunRecord, ...] = field(default=())


@dataclass(frozen=True)
class ExportVersion:
    """An archived version with the HTTP response it came in (None: not over HTTP)."""

    url: str
    sha256: str
    first_seen: str
    size: int
    content_type: str | None
    checked_at: str | None
    response_url: str | None
    final_url: str | None
    status_line: str | None
    #: The response's headers as recorded, in order; empty without a response.
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RewriteRef:
    """A link in a live post whose URL a rewrite may point at the mirror."""

    post_id: int
    url_id: int
    as_written: str
    start: int
    end: int
    url: str
    source: str
    path: str
    content_sha256: str | None
    mirror_path: str | None


@dataclass(frozen=True)
class RewriteSpan:
    """Where an active rewrite's text is in its post."""

    id: int
    start: int
    end: int


@dataclass(frozen=True)
class ActiveRewrite:
    """A rewrite that ``restore --undo`` can put back."""

    id: int
    post_id: int
    url_id: int
    old_text: str
    new_text: str
    start: int
    end: int
    url: str
    source: str
    path: str
    #: The post's hash right after our last write, None if not recorded.
    sha256: str | None
