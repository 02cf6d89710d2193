"""The report streams: every format reads rows from the database as it writes them.

Two promises of issue 13. The output is what it was: every format, with every
``--state`` filter and the other filters, on a real SQLite archive of 2,000 URLs
(``benchmarks/report_db.py``: real PDFs and PNGs in the store, real thumbnails, some
blobs missing, cut short or with a byte flipped), hashes to what the code before
streaming wrote. ``fixtures/report_oracle.json`` was made by that code (commit 05ca821,
the parent of the streaming change 8fb0a7b) running ``report_oracle.py`` over an
archive today's ``report_db.py`` builds (its docstring says how). That run, hashing the
raw text, gave the first oracle byte for byte over the placeholder archive it was made
from; embedded thumbnails are now hashed as the blob they show, not as the encoder's
bytes. And no query grows with the data: with SQLite's limit on bound parameters
lowered below the number of URLs, every format still runs (an IN-list of every id
would not).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from report_oracle import (
    CASES,
    CI_FORMATS,
    CWD,
    FORMATS,
    NOW,
    STATES,
    URLS,
    WIDTHS,
    digest,
    thumbnails,
)

from archiver.db import Database
from archiver.ops.ci_report import findings, write_findings
from archiver.ops.report import (
    BATCH,
    ArchiveRows,
    Confirmation,
    ReportFilter,
    check_filter_names,
    render,
    url_rows,
    write_report,
)
from archiver.store import Store

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "report_db.py"
ORACLE = json.loads((Path(__file__).parent / "fixtures" / "report_oracle.json").read_text())


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report_db", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report_db"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report-stream")
    _bench().build(root / "a.db", root / "store", URLS)
    return root


@pytest.fixture
def opened(archive: Path) -> Iterator[tuple[Database, Store]]:
    db = Database(archive / "a.db", readonly=True)
    try:
        yield db, Store(archive / "store", create=False)
    finally:
        db.close()


def _outputs(
    db: Database, store: Store, root: Path, flt: ReportFilter
) -> Iterator[tuple[str, str]]:
    """(format, output) of every format for one filter, as the oracle names them."""
    rows = ArchiveRows(db, flt, store)
    for fmt in FORMATS:
        buf = io.StringIO()
        if fmt in CI_FORMATS:
            write_findings(fmt, lambda: findings(db, flt), buf, cwd=CWD)
            yield fmt, buf.getvalue()
            continue
        for width in WIDTHS if fmt == "table" else (None,):
            buf = io.StringIO()
            write_report(
                rows,
                fmt,
                buf,
                store=store,
                output=root / "report.html",
                width=width,
                confirm=Confirmation(3, 3600.0),
                generated=NOW,
            )
            yield f"{fmt}{'' if width is None else width}", buf.getvalue()


@pytest.mark.parametrize("case", list(CASES))
def test_every_format_writes_what_it_wrote_before_streaming(
    case: str, archive: Path, opened: tuple[Database, Store]
) -> None:
    db, store = opened
    flt = ReportFilter(**CASES[case])
    thumbs = thumbnails(store.thumbs_dir)
    got = {f"{fmt} {case}": digest(text, thumbs) for fmt, text in _outputs(db, store, archive, flt)}
    assert got == {key: ORACLE[key] for key in got}


def test_the_list_and_the_stream_render_alike(
    archive: Path, opened: tuple[Database, Store]
) -> None:
    """``render`` of the rows in hand (the library's list) is the stream's output too."""
    db, store = opened
    flt = ReportFilter(states=STATES, post="2023/*")
    rows = url_rows(db, flt, store)
    assert rows
    for fmt in ("json", "markdown", "html", "table"):
        kw: dict[str, Any] = {"store": store, "output": archive / "r.html", "generated": NOW}
        assert render(rows, fmt, **kw) == render(ArchiveRows(db, flt, store), fmt, **kw)


def test_no_query_binds_more_parameters_as_the_archive_grows(tmp_path: Path) -> None:
    """5,000 URLs, and at most ``BATCH`` + 44 parameters a statement: every format, filter
    and check runs, so no statement lists every URL (or every post, or every use)."""
    _bench().build(tmp_path / "a.db", tmp_path / "store", 5000)
    db = Database(tmp_path / "a.db", readonly=True)
    store = Store(tmp_path / "store", create=False)
    try:
        db.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, BATCH + 44)
        for kw in ({"states": STATES, "unreferenced": True}, {"post": "202*"}, CASES["host-port"]):
            flt = ReportFilter(**kw)
            check_filter_names(db, flt)
            rows = ArchiveRows(db, flt, store)
            for fmt in ("json", "csv", "markdown", "html", "table"):
                assert render(rows, fmt, store=store, generated=NOW)
            for fmt in ("junit", "github", "sarif"):
                write_findings(fmt, lambda flt=flt: findings(db, flt), io.StringIO(), cwd=CWD)
        assert len(url_rows(db, ReportFilter(states=STATES, unreferenced=True))) == 5000
    finally:
        db.close()


def test_the_archive_holds_real_files_as_its_rows_say(opened: tuple[Database, Store]) -> None:
    """Every blob row names the SHA-256 and size of a real PDF (its pages and title) or
    PNG (its width and height); the damage is real damage of such a file (missing, cut
    short, a byte flipped), and each thumbnail is a small image made from the blob."""
    import pypdf
    from PIL import Image

    from archiver.thumbs import find_thumbnail

    db, store = opened
    rows = db.conn.execute(
        "SELECT sha256, size, content_type, pages, title, width, height, format FROM blobs"
    ).fetchall()
    damage = {"missing": 0, "cut": 0, "flipped": 0}
    thumbs = 0
    for sha, size, ctype, pages, title, width, height, fmt in rows:
        path = store.path_for(sha)
        if not path.exists():
            damage["missing"] += 1
            continue
        data = path.read_bytes()
        if len(data) != size:
            damage["cut"] += 1
            assert len(data) < size
            continue
        if hashlib.sha256(data).hexdigest() != sha:
            damage["flipped"] += 1
            continue
        if ctype == "application/pdf":
            reader = pypdf.PdfReader(io.BytesIO(data), strict=True)
            assert (len(reader.pages), reader.metadata.title, fmt) == (pages, title, "PDF")
        else:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                assert (im.width, im.height, im.format, fmt) == (width, height, "PNG", "PNG")
        thumb = find_thumbnail(store.thumbs_dir, sha)
        if thumb is not None:
            thumbs += 1
            with Image.open(thumb) as im:
                im.load()
                assert max(im.size) <= 160 and im.format in ("WEBP", "JPEG")
    assert all(damage.values()) and thumbs, (damage, thumbs)
    assert len({sha for sha, *_ in rows}) == len(rows)


def test_the_report_orders_are_read_in_order_not_sorted_whole(
    opened: tuple[Database, Store],
) -> None:
    """The by-URL and by-post cursors read the uses in the posts' path order (index
    ``posts_path``): SQLite sorts only the rows of one path at a time, never all of them
    (at 1,000,000 URLs that sort of wide rows was half a JSON report's time)."""
    db, store = opened
    asked: list[tuple[str, Any]] = []
    stream = db.stream

    def recorded(sql: str, params: Any = ()) -> Iterator[Any]:
        asked.append((sql, params))
        return stream(sql, params)

    db.stream = recorded  # type: ignore[method-assign]
    rows = ArchiveRows(db, ReportFilter(states=STATES), store)
    assert next(rows.by_url()) and next(rows.by_post())
    ordered = [(sql, params) for sql, params in asked if "CROSS JOIN" in sql]
    assert len(ordered) == 2
    for sql, params in ordered:
        plan = [r[3] for r in db.conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
        assert any(step.endswith("INDEX posts_path") for step in plan), plan
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
