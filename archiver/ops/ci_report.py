"""The report a CI reads: the archive's uses of links as ``ci_formats`` findings.

Owns the step from the database to the writers of ``ci_formats``: which uses a
``report --format junit|github|sarif`` (or ``check --format ...``) covers, and where
each use is on disk (a folder source's post is ``source / path``; a source that is one
file is that file; a site page has no file, only its URL). The uses stream from the
database; the writers stream too, so the report costs the memory of one use.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO, TextIO, cast
from urllib.parse import urlsplit

from archiver import __version__
from archiver.db.sqlite import STATES, Database
from archiver.db.views import LinkUse, UrlQuery
from archiver.ops.ci_formats import Finding, github, junit, sarif
from archiver.ops.report import DEFAULT_PORTS, ReportFilter
from archiver.sources.folders import post_file

__all__ = [
    "CI_FORMATS",
    "findings",
    "run_findings",
    "run_report",
    "spool",
    "spool_text",
    "write_findings",
]

#: The ``--format`` values written by ``ci_formats``.
CI_FORMATS = ("junit", "github", "sarif")


class _Files:
    """Where a source's posts are on disk, asked of the file system once per source."""

    def __init__(self) -> None:
        self._single: dict[str, bool] = {}

    def file(self, source: str, path: str) -> Path | None:
        if source.startswith(("http://", "https://")):
            return None  # a site's page: its URL names it, no file does
        single = self._single.get(source)
        if single is None:
            single = self._single[source] = post_file(source, path) == Path(source)
        return Path(source) if single else Path(source) / path


def _port(url: str) -> int | None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    return port if port is not None else DEFAULT_PORTS.get(parts.scheme)


def _finding(use: LinkUse, files: _Files) -> Finding:
    at = use.at
    file = files.file(at.source, at.path)
    return Finding(
        url=use.url,
        state=use.state,
        http_status=use.http_status,
        error=use.error,
        error_class=use.error_class,
        file=file,
        line=at.line,
        post=at.path if file is None else at.source,
        kind=at.kind,
        text=at.text,
    )


def findings(db: Database, flt: ReportFilter) -> Iterator[Finding]:
    """One finding per use of each URL the report filter covers (``--post`` and a
    ``--host`` port too), in the order of the posts."""
    query, port = flt.query()
    files = _Files()
    for use in db.link_uses(query):
        if port is not None and _port(use.url) != port:
            continue
        if flt.post and not fnmatch.fnmatch(use.at.path, flt.post):
            continue
        yield _finding(use, files)


def run_findings(db: Database, sources: Iterable[str]) -> Iterator[Finding]:
    """One finding per use in the posts of ``sources`` (their labels), every state:
    what a ``check`` of those sources just judged."""
    files = _Files()
    query = UrlQuery(states=STATES, unreferenced=True)
    for use in db.link_uses(query, sources):
        yield _finding(use, files)


def write_findings(
    fmt: str, make: Callable[[], Iterable[Finding]], out: TextIO, *, cwd: Path | None = None
) -> int:
    """Writes the findings ``make`` yields in a CI format; returns how many uses it wrote.

    ``make`` returns a fresh iterable each call: ``junit`` reads twice (totals first).
    Paths are shown relative to ``cwd`` (default the current directory) when under it.
    """
    count = 0

    def counted() -> Iterator[Finding]:
        nonlocal count
        count = 0
        for f in make():
            count += 1
            yield f

    if fmt == "junit":
        junit(counted, out, cwd=cwd)
    elif fmt == "github":
        github(counted(), out, cwd=cwd)
    elif fmt == "sarif":
        sarif(counted(), out, __version__, root=cwd)
    else:
        raise ValueError(f"not a CI format: {fmt!r}")
    return count


def spool(fmt: str, make: Callable[[], Iterable[Finding]]) -> Callable[[TextIO], int]:
    """The findings written to a temporary file (see ``spool_text``)."""
    return spool_text(lambda out: write_findings(fmt, make, out))


#: Bytes copied at a time from a spooled report to its output.
_COPY_CHUNK = 1024 * 1024


def _utf8_bytes(out: TextIO) -> bool:
    """True when text written to ``out`` would reach its byte buffer as the spool holds
    it: UTF-8, and no newline translation (POSIX writes "\\n" as is)."""
    import codecs
    import os

    encoding = getattr(out, "encoding", None)
    if not encoding or not hasattr(out, "buffer") or os.linesep != "\n":
        return False
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def spool_text(write: Callable[[TextIO], int]) -> Callable[[TextIO], int]:
    """Runs ``write`` into a temporary file and returns what copies it out (and says what
    ``write`` returned): a read of the database may be retried, so it must write
    something it replaces whole, and the output waits until the read succeeded. The
    report streams into the file, so its size costs disk, never memory."""
    import shutil
    import tempfile

    # Closed by ``copy``; a read that is retried drops its file to the collector.
    buf = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")  # noqa: SIM115
    count = write(buf)

    def copy(out: TextIO) -> int:
        buf.seek(0)
        with buf:
            if _utf8_bytes(out):
                # Bytes, not text: a report of a million URLs is 700 MB, and decoding it
                # to copy it as text and encoding it again cost seconds.
                out.flush()
                shutil.copyfileobj(cast(BinaryIO, buf.buffer), out.buffer, _COPY_CHUNK)
            else:
                shutil.copyfileobj(buf, out)
        return count

    return copy


def run_report(db: Database, sources: Iterable[str], fmt: str) -> Callable[[TextIO], int]:
    """``check --format``: every use in the posts of ``sources``, spooled (see ``spool``)."""
    labels = list(sources)
    return spool(fmt, lambda: run_findings(db, labels))
