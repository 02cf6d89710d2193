"""The report's rows: what ``url_rows`` returns and every format renders.

Typed and immutable, so formats cannot disagree about a field or change one under
another; ``row_dict`` is the one place that spells the JSON (and CSV) object.
Apart from ``report`` so the HTML page can use them without importing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from archiver.text import plural

__all__ = [
    "FIELDS",
    "NO_POST",
    "Confirmation",
    "PostUse",
    "ReportRow",
    "media_label",
    "row_dict",
    "uses",
]
__all__ = ["FIELDS", "NO_POST", "Confirmation", "PostUse", "ReportRow", "row_dict", "uses"]

#: Fields of each URL object in the JSON report, in order. Add, never rename.
FIELDS = (
    "url",
    "state",
    "http_status",
    "error",
    "error_class",
    "sha256",
    "size",
    "content_type",
    "last_checked",
    "last_ok",
    "failing_since",
    "referenced",
    "posts",
    # Added by the restore issue:
    "host",
    "restorable",
    "copy_sha256",
    "copy_verified_at",
    "versions",
    # Added by the live-sites issue: where a [remap] rule sends the fetch, else null.
    "remapped_url",
    # Added by deep validation: what the parsers learnt of the current copy, else null.
    "pages",
    "title",
    "width",
    "height",
    "format",
    "deep_check",
)


@dataclass(frozen=True)
class Confirmation:
    """The config's rule for confirming a link dead, so a failing one can say what is left."""

    #: ``confirm_runs``: failing runs in a row that confirm a link dead.
    runs: int
    #: ``confirm_after``: seconds between two runs that both count.
    after: float


class PostUse(NamedTuple):
    """Where a post uses a URL. The JSON report shows the first four fields.

    A NamedTuple, like ``ReportRow``: as immutable and typed as a frozen dataclass, and
    four times cheaper to build (a report of 100,000 URLs builds 200,000 of them).
    """

    source: str
    path: str
    line: int
    kind: str
    #: The link text or alt text as the post has it ("" when its form has none): the
    #: deck's title, as readers see it. HTML only (the JSON fields stay as they were).
    text: str = ""


class ReportRow(NamedTuple):
    """One URL of the report: the fields of the JSON object (``FIELDS``, in order), then
    what only the HTML page shows. ``row_dict`` makes the JSON/CSV form."""

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
    posts: tuple[PostUse, ...]
    host: str | None
    restorable: bool
    copy_sha256: str | None
    copy_verified_at: str | None
    versions: int
    remapped_url: str | None
    pages: int | None
    title: str | None
    width: int | None
    height: int | None
    format: str | None
    deep_check: str | None
    #: Failing runs counted towards confirming it dead, and the last one counted.
    confirm_count: int = 0
    confirm_last: str | None = None


def media_label(row: ReportRow) -> str:
    """What the copy is, where the deep check learnt it: ``12 pages``, ``1600x900``, else ""."""
    if row.pages is not None:
        return plural(row.pages, "page")
    if row.width is not None and row.height is not None:
        return f"{row.width}x{row.height}"
    return ""


def row_dict(row: ReportRow) -> dict[str, Any]:
    """The row as the JSON report has it: ``FIELDS`` in order, posts as objects.

    ``ReportRow`` opens with ``FIELDS`` in that order (a test keeps it so), so a zip
    builds the object: 100,000 of them in a fraction of the encoder's time.
    """
    out: dict[str, Any] = dict(zip(FIELDS, row, strict=False))
    out["posts"] = [dict(zip(_POST_FIELDS, p, strict=False)) for p in row.posts]
    return out


#: The fields of each use in the JSON report: ``PostUse``'s first four.
_POST_FIELDS = ("source", "path", "line", "kind")


#: Where a URL no post uses any more is listed (``--unreferenced``).
NO_POST = PostUse(source="", path="(no post)", line=0, kind="")


def uses(rows: Iterable[ReportRow]) -> dict[str, list[tuple[PostUse, ReportRow]]]:
    """Each post's uses, by path: the Markdown and HTML reports group by post."""
    groups: dict[str, list[tuple[PostUse, ReportRow]]] = {}
    for r in rows:
        for p in r.posts or (NO_POST,):
            groups.setdefault(p.path, []).append((p, r))
    for group in groups.values():
        group.sort(key=lambda x: (x[0].line, x[1].url))
    return groups
