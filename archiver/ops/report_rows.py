"""The report's rows: what ``url_rows`` returns and every format renders.

Typed and immutable (``ReportRow`` and ``PostUse`` are the records the database's
report query returns), so formats cannot disagree about a field or change one under
another; ``row_dict`` is the one place that spells the JSON (and CSV) object.
``Rows`` is what a format reads them from: twice if it must (the HTML page's totals,
the table's column widths), and in two orders, so no format holds them all.
Apart from ``report`` so the HTML page can use them without importing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from archiver.db.views import PostUse, ReportRow
from archiver.text import plural

__all__ = [
    "FIELDS",
    "NO_POST",
    "Confirmation",
    "ListRows",
    "PostUse",
    "ReportRow",
    "Rows",
    "media_label",
    "row_dict",
    "uses",
]

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


class Rows(Protocol):
    """Where a format reads the report's rows from; each call starts a fresh pass."""

    def by_url(self) -> Iterator[ReportRow]:
        """Every row, ordered by first post then line, then URL (no post: last, by URL)."""
        ...

    def by_post(self) -> Iterator[tuple[PostUse, ReportRow]]:
        """Every use with its URL's row (``posts`` may be empty), ordered as ``uses``
        groups them: by post path, then line, then URL; ``NO_POST`` for a URL no post uses."""
        ...


class ListRows:
    """``Rows`` over rows in hand (a list from ``url_rows``)."""

    def __init__(self, rows: Iterable[ReportRow]) -> None:
        self._rows = list(rows)

    def by_url(self) -> Iterator[ReportRow]:
        return iter(self._rows)

    def by_post(self) -> Iterator[tuple[PostUse, ReportRow]]:
        groups = uses(self._rows)
        for path in sorted(groups):
            yield from groups[path]
