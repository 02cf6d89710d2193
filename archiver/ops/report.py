"""Reports: which URLs are in which state, where they are used, and what we hold.

Owns the queries behind ``archiver report`` and the text formatters that
render them (the HTML page lives in ``report_html``). Reads the database and
stats the store only; never fetches, never writes.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import ipaddress
import json
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date
from itertools import islice
from pathlib import Path
from typing import Any, TextIO, TypedDict, TypeVar, Unpack
from urllib.parse import urlsplit

from archiver.clock import iso, parse_iso
from archiver.db.sqlite import STATES, Database
from archiver.db.views import Copy, UrlQuery
from archiver.errors import ConfigError
from archiver.ops.report_rows import (
    FIELDS,
    NO_POST,
    Confirmation,
    ListRows,
    PostUse,
    ReportRow,
    Rows,
    media_label,
    row_dict,
    row_json,
    uses,
)
from archiver.ops.restore import newest_good
from archiver.redact import clean_text, shown_url
from archiver.store.base import BlobStore as Store
from archiver.text import plural

__all__ = [
    "BATCH",
    "FIELDS",
    "FORMATS",
    "NO_POST",
    "ArchiveRows",
    "Confirmation",
    "ListRows",
    "PostUse",
    "ReportFilter",
    "ReportOptions",
    "ReportRow",
    "Rows",
    "check_filter_names",
    "parse_host",
    "parse_since",
    "parse_states",
    "render",
    "row_dict",
    "table_width",
    "url_rows",
    "uses",
    "write_report",
]

FORMATS = ("table", "markdown", "json", "csv", "html")


def parse_states(text: str | None) -> tuple[str, ...]:
    """``--state``: a comma list of states or ``all``; default everything not ``ok``."""
    if text is None:
        return tuple(s for s in STATES if s != "ok")
    if text.strip() == "all":
        return STATES
    states = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in states if s not in STATES]
    if bad or not states:
        raise ConfigError(
            f"unknown state {', '.join(bad) or repr(text)} for --state"
            f" (use a comma list of {', '.join(STATES)}, or all)"
        )
    return states


def parse_since(text: str | None) -> str | None:
    """``--since``: a date (YYYY-MM-DD) or an ISO time, as a string comparable to ours."""
    if text is None:
        return None
    try:
        if len(text.strip()) == 10:
            return date.fromisoformat(text.strip()).isoformat()
        when = parse_iso(text.strip())
    except ValueError:
        raise ConfigError(
            f"invalid date {text!r} for --since (use YYYY-MM-DD, e.g. 2026-01-31)"
        ) from None
    assert when is not None
    if when.tzinfo is None:  # a time without an offset is UTC, as every time we store
        when = when.replace(tzinfo=UTC)
    return iso(when)


#: The port of a URL that names none, by scheme (``file://`` URLs have no port).
DEFAULT_PORTS = {"http": 80, "https": 443}

_PORT = re.compile(r"[0-9]{1,5}")


def parse_host(text: str) -> tuple[str, int | None]:
    """``--host``: ``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT`` as (lower-case host, port or None).

    A bare host (a bare IPv6 address too) means every port.
    """
    value = text.strip()
    port: str | None = None
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or not _is_ipv6(host) or rest[:1] not in ("", ":"):
            raise _bad_host(text)
        port = rest[1:] if rest else None
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    elif ":" in value and not _is_ipv6(value):
        raise _bad_host(text)
    else:
        host = value
    if not host or (port is not None and not (_PORT.fullmatch(port) and 0 < int(port) < 65536)):
        raise _bad_host(text)
    return host.lower(), None if port is None else int(port)


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _bad_host(text: str) -> ConfigError:
    return ConfigError(
        f"invalid host {text!r} for --host"
        " (use HOST, HOST:PORT or [IPv6]:PORT, e.g. example.org or 127.0.0.1:8080)"
    )


def _url_port(url: str) -> int | None:
    """The port a URL is on: its own, else its scheme's default; None for ``file://``."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: on no port a filter can name
        return None
    return port if port is not None else DEFAULT_PORTS.get(parts.scheme)


@dataclass(frozen=True)
class ReportFilter:
    states: tuple[str, ...] = tuple(s for s in STATES if s != "ok")
    post: str | None = None
    #: ``HOST`` (every port), ``HOST:PORT`` or ``[IPv6]:PORT``; see ``parse_host``.
    host: str | None = None
    since: str | None = None
    #: Only URLs whose bytes changed: more than one archived version.
    changed: bool = False
    #: Also URLs no crawled post links any more (kept in the archive, not re-checked).
    unreferenced: bool = False

    def __post_init__(self) -> None:
        if self.host:
            parse_host(self.host)  # a bad --host is refused before the database is read

    def query(self) -> tuple[UrlQuery, int | None]:
        """What the database is asked for, and the port a ``--host`` names (matched on
        each URL afterwards: the database keeps host names only)."""
        host, port = parse_host(self.host) if self.host else (None, None)
        query = UrlQuery(
            states=self.states,
            host=host,
            since=self.since,
            changed=self.changed,
            unreferenced=self.unreferenced,
        )
        return query, port


#: URLs asked of the database per query: a batch's IN-list, never one of every id.
BATCH = 256

#: Blob sizes a report keeps at once (about 150 bytes each); cleared when full.
_SIZES = 100_000

#: Above this URL id the seen-set is a set, not a byte per id (ids are dense in practice).
_DENSE_IDS = 64_000_000


class ArchiveRows:
    """``Rows`` streamed from the database: any number of URLs in bounded memory.

    Each order is one sorted cursor with the URL's columns, its uses and its versions
    joined (``Database.report_stream``, ``use_rows``): no row is looked up by id, which
    at a million URLs cost a random read of the file per URL. With ``--post`` a URL
    takes its place at its first use in a matching post, which only ``fnmatch`` here
    can tell: that order comes from the cursor over the uses (a byte per URL id says
    which were placed) and the rows are read ``BATCH`` ids at a time; each URL lists
    only the matching posts. ``restorable`` needs the store: without one nothing is
    restorable.
    """

    def __init__(self, db: Database, flt: ReportFilter, store: Store | None = None) -> None:
        self.db = db
        self.flt = flt
        self.store = store
        self.query, self.port = flt.query()
        self._sizes: dict[str, int | None] = {}
        post = flt.post
        self.keep: Callable[[str], bool] | None = (
            None if post is None else lambda path: fnmatch.fnmatch(path, post)
        )

    def _pick(self, versions: list[Copy]) -> Copy | None:
        return newest_good(versions, self.store, self._size)

    def _size(self, sha256: str) -> int | None:
        """``store.size``, memoized for the report (a stat, or a listing, per blob rather
        than per URL: at 1,000,000 URLs the stats took a fifth of a JSON report's time)."""
        sizes = self._sizes
        if sha256 in sizes:
            return sizes[sha256]
        if len(sizes) >= _SIZES:
            sizes.clear()
        assert self.store is not None  # is_good asks only with a store
        size = sizes[sha256] = self.store.size(sha256)
        return size

    def _wanted(self, url: str) -> bool:
        return self.port is None or _url_port(url) == self.port

    def _order(self) -> Iterator[int]:
        """The ids of the URLs the report lists, in its order."""
        top = self.db.max_url_id()
        dense = top <= _DENSE_IDS
        placed = bytearray(top + 1 if dense else 0)
        sparse: set[int] = set()
        keep = self.keep
        for url_id, url, path in self.db.report_order(self.query):
            if placed[url_id] if dense else url_id in sparse:
                continue
            if keep is not None and not keep(path):
                continue  # a later use may be in a post that matches
            if dense:
                placed[url_id] = 1
            else:
                sparse.add(url_id)
            if self._wanted(url):
                yield url_id
        if keep is None:
            for url_id, url in self.db.unused_urls(self.query):
                if self._wanted(url):
                    yield url_id

    def by_url(self) -> Iterator[ReportRow]:
        if self.keep is None:
            # One sorted cursor with the uses and versions joined: no lookup by id.
            for row in self.db.report_stream(self.query, self._pick):
                if self._wanted(row.url):
                    yield row
            return
        # --post: a URL's place is its first use in a matching post, which only the
        # glob here can tell; its rows are read a batch of ids at a time.
        for batch in _batches(self._order()):
            found = self.db.report_rows(batch, self._pick, keep=self.keep)
            for url_id in batch:
                yield found[url_id]

    def by_post(self) -> Iterator[tuple[PostUse, ReportRow]]:
        """Each use with its URL's row, from one cursor; the URLs no post uses (by URL)
        merged in as ``NO_POST``, where ``uses`` would sort them."""
        keep = self.keep
        unused: Iterator[ReportRow] = iter(())
        if keep is None:
            unused = (r for r in self.db.unused_rows(self.query, self._pick) if self._wanted(r.url))
        pending = next(unused, None)
        for at, row in self.db.use_rows(self.query, self._pick):
            while pending is not None and (NO_POST.path, 0, pending.url) < (
                at.path,
                at.line,
                row.url,
            ):
                yield NO_POST, pending
                pending = next(unused, None)
            if (keep is None or keep(at.path)) and self._wanted(row.url):
                yield at, row
        while pending is not None:
            yield NO_POST, pending
            pending = next(unused, None)


T = TypeVar("T")


def _batches(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def url_rows(db: Database, flt: ReportFilter, store: Store | None = None) -> list[ReportRow]:
    """Every URL matching the filter with its posts, ordered by first post then line.

    A list, for callers that want the rows in hand; the report itself streams them
    (``ArchiveRows``).
    """
    return list(ArchiveRows(db, flt, store).by_url())


class ReportOptions(TypedDict, total=False):
    """What a report may be told besides its rows and format; see ``write_report``."""

    color: bool
    store: Store | None
    output: Path | None
    width: int | None
    confirm: Confirmation | None
    generated: str | None


def render(rows: Sequence[ReportRow] | Rows, fmt: str, **options: Unpack[ReportOptions]) -> str:
    """The report as text; see ``write_report``."""
    buf = io.StringIO()
    source: Rows = ListRows(rows) if isinstance(rows, list | tuple) else rows  # type: ignore[assignment]
    write_report(source, fmt, buf, **options)
    return buf.getvalue()


def write_report(rows: Rows, fmt: str, out: TextIO, **options: Unpack[ReportOptions]) -> int:
    """Writes the report to ``out`` as it reads the rows; returns how many it wrote (URLs,
    or uses for Markdown): 0 when no link matches.

    ``store`` and ``output`` let the HTML page link archived copies. ``width`` is the
    terminal's, for the table (None: a terminal's when ``color``, else unlimited). For
    the HTML page, ``confirm`` lets a failing link say how many runs are left, and
    ``generated`` is the time it shows (default: now).
    """
    if fmt == "json":
        return _json(rows, out)
    if fmt == "csv":
        return _csv(rows, out)
    if fmt == "markdown":
        return _markdown(rows, out)
    if fmt == "table":
        return _table(rows, out, color=options.get("color", False), width=options.get("width"))
    if fmt == "html":
        from archiver.ops.report_html import write_html

        return write_html(
            rows,
            out,
            store=options.get("store"),
            output=options.get("output"),
            confirm=options.get("confirm"),
            generated=options.get("generated"),
        )
    raise ConfigError(f"unknown --format {fmt!r} (use one of {', '.join(FORMATS)})")


def _where(row: ReportRow) -> str:
    return clean_text("; ".join(f"{p.path}:{p.line}" for p in row.posts) or "(no post)")


def _status(row: ReportRow) -> str:
    """The error (server-supplied text: cleaned), else the HTTP status."""
    if row.error:
        return clean_text(str(row.error))
    return str(row.http_status or "")


#: Columns that hold a URL: shown with the password masked (JSON keeps them as recorded).
URL_FIELDS = frozenset({"url", "remapped_url"})


def shown(row: ReportRow, name: str) -> Any:
    """A field as every format but JSON shows it: URLs masked, text without control characters."""
    value = getattr(row, name)
    if not isinstance(value, str):
        return value
    return shown_url(value) if name in URL_FIELDS else clean_text(value)


def copy_label(row: ReportRow) -> str:
    """Whether we hold a copy: ``restorable``, ``damaged`` (versions, none good) or ``none``."""
    if row.restorable:
        return "restorable"
    return "damaged" if row.versions else "none"


def copy_cell(row: ReportRow) -> str:
    """The copy column of the text formats: its label, then what it is when known."""
    media = media_label(row)
    return f"{copy_label(row)} ({media})" if media else copy_label(row)


def _csv(rows: Rows, out: TextIO) -> int:
    w = csv.writer(out, lineterminator="\n")
    cols = [f for f in FIELDS if f != "posts"] + ["posts"]
    w.writerow(cols)
    n = 0
    for r in rows.by_url():
        w.writerow([_csv_cell(shown(r, c)) if c != "posts" else _where(r) for c in cols])
        n += 1
    return n


def _csv_cell(value: Any) -> Any:
    """Booleans as JSON spells them (``true``/``false``), not Python's ``True``."""
    return ("true" if value else "false") if isinstance(value, bool) else value


def check_filter_names(db: Database, flt: ReportFilter) -> None:
    """A ``--post`` or ``--host`` that names nothing recorded is a mistake, not "all good"."""
    if flt.post:
        first = None
        for path in db.post_paths():
            if fnmatch.fnmatch(path, flt.post):
                break
            first = first or path
        else:
            example = f" (posts are named like {first})" if first else " (no post is recorded)"
            raise ConfigError(f"--post {flt.post!r} matches no recorded post{example}")
    if flt.host:
        host, port = parse_host(flt.host)
        if not any(port is None or _url_port(u) == port for u in db.urls_on_host(host)):
            raise ConfigError(
                f"--host {flt.host!r} matches no recorded URL (hosts are as in the URLs,"
                " e.g. example.org or 127.0.0.1:8080)"
            )


def _json(rows: Rows, out: TextIO) -> int:
    """A JSON array with one URL object per line: diffable, and fast to write.

    ``json.dumps(..., indent=2)`` would run Python's pure-Python encoder (indent
    disables the C one) and take seconds for 100,000 URLs; ``row_json`` writes what
    the C one would, three times faster.
    """
    n = 0
    for batch in _batches(rows.by_url(), 512):
        out.write(("[\n" if n == 0 else ",\n") + ",\n".join([row_json(r) for r in batch]))
        n += len(batch)
    out.write("\n]\n" if n else "[]\n")
    return n


def json_array(objects: Iterable[dict[str, Any]]) -> str:
    """Objects as the JSON report writes them: an array, one object per line."""
    encode = json.JSONEncoder(ensure_ascii=False).encode
    lines = ",\n".join(encode(o) for o in objects)
    return "[\n" + lines + "\n]\n" if lines else "[]\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _remap_note(row: ReportRow) -> str:
    """Where a [remap] rule sent the fetch, beside the URL as the post has it."""
    return f" (fetched as <{shown(row, 'remapped_url')}>)" if row.remapped_url else ""


def _markdown(rows: Rows, out: TextIO) -> int:
    """A section per post, a line per use; blank lines between the sections."""
    n = 0
    path: str | None = None
    where = ""
    for p, r in rows.by_post():
        if p.path != path:
            where = _md(clean_text(p.path))
            out.write(
                ("\n" if path is not None else "")
                + f"### {where}\n\n"
                + "| where | URL | state | status | failing since | last worked | copy |\n"
                + "|---|---|---|---|---|---|---|\n"
            )
            path = p.path
        out.write(
            f"| {where}:{p.line} | <{shown(r, 'url')}>{_remap_note(r)} |"
            f" {r.state} |"
            f" {_md(_status(r))} |"
            f" {r.failing_since or ''} | {r.last_ok or 'never'} | {copy_cell(r)} |\n"
        )
        n += 1
    if not n:
        out.write("No links match.\n")
    return n


#: Rich styles for each state in the terminal table.
STATE_STYLES = {
    "ok": "green",
    "failing": "yellow",
    "dead": "bold red",
    "invalid": "magenta",
    "error": "red",
    "blocked": "cyan",
    "pending": "dim",
}


#: Below this many columns the table is a list: each URL whole on a line of its own.
LIST_BELOW = 100

#: Columns of the table, and which give way first when it is too wide for the terminal:
#: those in ``NARROWABLE`` fold their text over lines (never below the width given),
#: then those in ``DROP_ORDER`` go, first to last. The URL is never folded.
TABLE_COLUMNS = ("state", "status", "url", "where", "failing since", "copy")
NARROWABLE = {"status": 12, "where": 14}
DROP_ORDER = ("failing since", "copy", "where", "status")
_GAP = 3  # a cell's right padding, the box's column separator, the next cell's left padding


def table_layout(natural: dict[str, int], width: int | None) -> dict[str, int] | None:
    """The width of each column shown, in order, or None when the URLs need a list.

    ``natural`` is each column's widest cell (its header included). Without a width
    (off a terminal) nothing wraps. Otherwise other columns narrow, then drop, so the
    URL column stays as wide as its widest URL; below ``LIST_BELOW`` columns, or
    when even state and URL do not fit, the answer is None.
    """
    if width is None:
        return dict(natural)
    if width < LIST_BELOW:
        return None
    shown = list(TABLE_COLUMNS)
    for dropped in (None, *DROP_ORDER):
        if dropped is not None:
            shown.remove(dropped)
        room = width - _GAP * (len(shown) - 1)
        least = {c: min(natural[c], NARROWABLE.get(c, natural[c])) for c in shown}
        if sum(least.values()) > room:
            continue
        widths = {c: natural[c] for c in shown}
        excess = sum(widths.values()) - room
        while excess > 0:  # narrow the widest foldable column, one cell at a time
            c = max(
                (c for c in NARROWABLE if c in widths and widths[c] > least[c]),
                key=lambda c: widths[c],
            )
            widths[c] -= 1
            excess -= 1
        return widths
    return None


def table_width(tty: bool) -> int | None:
    """The table's width: a terminal's, else ``COLUMNS`` when set, else None (no limit)."""
    if tty:
        return shutil.get_terminal_size().columns
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else None


def totals_line(rows: Iterable[ReportRow]) -> str:
    """``5 links: dead 3, failing 2``: how many URLs of each state, in the states' order."""
    counts = {s: 0 for s in STATES}
    for r in rows:
        counts[r.state] = counts.get(r.state, 0) + 1
    return _totals(counts)


def _totals(counts: dict[str, int]) -> str:
    parts = ", ".join(f"{s} {n}" for s, n in counts.items() if n)
    return f"{plural(sum(counts.values()), 'link')}: {parts}"


#: Rows the table renders at a time: rich holds a table's cells until it prints it.
_TABLE_CHUNK = 1000


def _cells(r: ReportRow) -> dict[str, str]:
    """A row's cells as the table and the list show them."""
    d = {
        "state": r.state,
        "status": _status(r),
        "url": shown(r, "url"),
        "remap": shown(r, "remapped_url") if r.remapped_url else "",
        "where": _where(r),
        "failing since": (r.failing_since or "")[:10],
        "copy": copy_cell(r),
    }
    d["url cell"] = d["url"] + (f" -> {d['remap']}" if d["remap"] else "")
    return d


def _table(rows: Rows, out: TextIO, *, color: bool = False, width: int | None = None) -> int:
    """Rows as a table, or as a list below ``LIST_BELOW`` columns; totals at the end.

    A URL is never broken over lines, so it can be copied whole. On a terminal
    the width is the terminal's (``width`` overrides it); off one, nothing wraps.
    Two passes: the first measures the columns and counts the states, the second
    prints ``_TABLE_CHUNK`` rows at a time with the widths the first found.
    """
    from rich import box
    from rich.cells import cell_len
    from rich.console import Console
    from rich.style import Style
    from rich.table import Table
    from rich.text import Text

    natural = {c: cell_len(c) for c in TABLE_COLUMNS}
    counts = {s: 0 for s in STATES}
    for r in rows.by_url():
        d = _cells(r)
        for c in TABLE_COLUMNS:
            natural[c] = max(natural[c], cell_len(d["url cell" if c == "url" else c]))
        counts[r.state] = counts.get(r.state, 0) + 1
    if not sum(counts.values()):
        out.write("No links match.\n")
        return 0
    if width is None and color:
        width = shutil.get_terminal_size().columns
    layout = table_layout(natural, width)
    buf = io.StringIO()
    console = Console(
        file=buf,
        width=width or sum(natural.values()) + _GAP * len(natural),
        force_terminal=color,
        color_system="standard" if color else None,
        highlight=False,
    )

    def flush() -> None:
        out.write("".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines()))
        buf.seek(0)
        buf.truncate()

    def state_style(d: dict[str, str]) -> str:
        return STATE_STYLES.get(d["state"], "") if color else ""

    def url_text(text: str, url: str) -> Text:
        # Text, not str: rich would read "[...]" in a server's error text as markup.
        # On a terminal each URL is a link (OSC 8, shown by most terminals).
        return Text(text, style=Style(link=url)) if color else Text(text)

    def print_list(chunk: list[dict[str, str]]) -> None:
        # A list: the facts on one line, then each URL whole on a line of its own.
        for d in chunk:
            facts = [d["status"], d["where"]]
            if d["failing since"]:
                facts.append(f"failing since {d['failing since']}")
            facts.append(f"copy {d['copy']}")
            head = Text(d["state"], style=state_style(d))
            head.append("  " + "  ".join(f for f in facts if f))
            console.print(head, soft_wrap=True)
            console.print(Text("  ") + url_text(d["url"], d["url"]), soft_wrap=True)
            if d["remap"]:
                console.print(
                    Text("  fetched as ") + url_text(d["remap"], d["remap"]), soft_wrap=True
                )

    def print_table(chunk: list[dict[str, str]], header: bool, widths: dict[str, int]) -> None:
        # Chunks of one table: the same widths, the header on the first only.
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, show_header=header)
        for c, w in widths.items():
            table.add_column(c.upper(), width=w, overflow="fold", no_wrap=c == "url")
        for d in chunk:
            cells = [
                url_text(d["url cell"], d["url"]) if c == "url" else Text(d[c]) for c in widths
            ]
            table.add_row(*cells, style=state_style(d))
        console.print(table)

    first = True
    for batch in _batches(rows.by_url(), _TABLE_CHUNK):
        chunk = [_cells(r) for r in batch]
        if layout is None:
            print_list(chunk)
        else:
            print_table(chunk, first, layout)
        first = False
        flush()
    console.print(Text(_totals(counts)), soft_wrap=True)
    flush()
    return sum(counts.values())
