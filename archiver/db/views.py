"""The records the archive's queries return: frozen, typed, and named by what they mean.

Commands (report, status, restore, mirror, rewrite, verify, gc, export) take these
from ``Database`` and never see a row, a cursor or a column name; any backend that
returns the same records serves them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ActiveRewrite",
    "ArchiveTarget",
    "BlobUse",
    "Copy",
    "ExportVersion",
    "LinkUse",
    "OldestCheck",
    "PostRef",
    "ReportUrl",
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


@dataclass(frozen=True)
class ReportUrl:
    """A URL as the report shows it: its state, its last answer and what we hold."""

    id: int
    url: str
    host: str | None
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
    #: Where a [remap] rule sends the fetch, else None.
    remapped_url: str | None
    #: Failing runs counted towards confirming it dead, and when the last was counted.
    confirm_count: int = 0
    confirm_last: str | None = None
    #: What the deep check learnt of the current copy's blob (``validate_deep``).
    pages: int | None = None
    title: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    deep_check: str | None = None


@dataclass(frozen=True)
class PostRef:
    """Where a post links a URL."""

    url_id: int
    source: str
    path: str
    line: int
    kind: str
    #: The link or alt text ("" when the form has none).
    text: str = ""


@dataclass(frozen=True)
class ArchiveTarget:
    """A URL as ``restore --from-archive`` needs it: what to ask the web archive for."""

    id: int
    url: str
    #: What its links expect ("pdf", "image", "any"): the snapshot is judged by it.
    expect: str
    last_ok: str | None


@dataclass(frozen=True)
class LinkUse:
    """One use of a URL (a link at a line of a post) with the state its URL is in.

    What the CI formats write: one record per use, streamed, so a report of a million
    uses never holds them all.
    """

    url_id: int
    url: str
    host: str | None
    state: str
    http_status: int | None
    error: str | None
    error_class: str | None
    #: The post's source as recorded: a folder or file path, or a site's URL.
    source: str
    #: The post's path within its source (a site page: its URL).
    path: str
    line: int
    kind: str
    #: The link text (or alt text), None when there is none.
    text: str | None


@dataclass(frozen=True)
class Copy:
    """One archived version of a URL, with what we last learnt about its blob."""

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
