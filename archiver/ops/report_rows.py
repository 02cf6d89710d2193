"""The report's rows: what ``url_rows`` returns and every format renders.

Typed and immutable (``ReportRow`` and ``PostUse`` are the records the database's
report query returns), so formats cannot disagree about a field or change one under
another; ``row_dict`` is the one place that spells the JSON (and CSV) object.
``Rows`` is what a format reads them from: twice if it must (the HTML page's totals,
the table's column widths), and in two orders, so no format holds them all.
Apart from ``report`` so the HTML page can use them without importing it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring
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
    "row_json",
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

#: The JSON report's encoder: the C one (``indent`` would disable it), UTF-8 kept as is.
_encode = json.JSONEncoder(ensure_ascii=False).encode
#: A str as a JSON string, exactly as ``_encode`` writes it (the same C function).
_q = encode_basestring


def _num(v: Any) -> str:
    """A number column (an int, or null), as ``_encode`` writes it; anything else that
    SQLite's typing let in goes to the encoder itself."""
    return int.__repr__(v) if v.__class__ is int else "null" if v is None else _encode(v)


def _flag(v: Any) -> str:
    return "true" if v is True else "false" if v is False else _encode(v)


def row_json(row: ReportRow) -> str:
    """``_encode(row_dict(row))``, written out field by field: the same bytes, three times
    faster (at 1,000,000 URLs the encoder's walk of a dict per URL took 13 s of a JSON
    report's CPU). ``tests/test_report_rows.py`` holds it to the encoder on every type a
    field can hold. Text columns hold str or None (SQLite's TEXT affinity, PostgreSQL's
    text), so they go straight to the encoder's own string function."""
    values: tuple[Any, ...] = row[: len(FIELDS)]
    (
        url,
        state,
        status,
        error,
        error_class,
        sha256,
        size,
        content_type,
        checked,
        ok,
        since,
        referenced,
        posts,
        host,
        restorable,
        copy_sha256,
        copy_verified,
        versions,
        remapped,
        pages,
        title,
        width,
        height,
        fmt,
        deep,
    ) = values  # a field added to FIELDS but not here: ValueError
    uses = ", ".join(
        [
            f'{{"source": {_q(p[0])}, "path": {_q(p[1])}, "line": {_num(p[2])},'
            f' "kind": {_q(p[3])}}}'
            for p in posts
        ]
    )
    return (
        f'{{"url": {_q(url)}, "state": {_q(state)}, "http_status": {_num(status)},'
        f' "error": {"null" if error is None else _q(error)},'
        f' "error_class": {"null" if error_class is None else _q(error_class)},'
        f' "sha256": {"null" if sha256 is None else _q(sha256)}, "size": {_num(size)},'
        f' "content_type": {"null" if content_type is None else _q(content_type)},'
        f' "last_checked": {"null" if checked is None else _q(checked)},'
        f' "last_ok": {"null" if ok is None else _q(ok)},'
        f' "failing_since": {"null" if since is None else _q(since)},'
        f' "referenced": {_flag(referenced)}, "posts": [{uses}],'
        f' "host": {"null" if host is None else _q(host)}, "restorable": {_flag(restorable)},'
        f' "copy_sha256": {"null" if copy_sha256 is None else _q(copy_sha256)},'
        f' "copy_verified_at": {"null" if copy_verified is None else _q(copy_verified)},'
        f' "versions": {_num(versions)},'
        f' "remapped_url": {"null" if remapped is None else _q(remapped)},'
        f' "pages": {_num(pages)}, "title": {"null" if title is None else _q(title)},'
        f' "width": {_num(width)}, "height": {_num(height)},'
        f' "format": {"null" if fmt is None else _q(fmt)},'
        f' "deep_check": {"null" if deep is None else _q(deep)}}}'
    )


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
