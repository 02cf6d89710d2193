"""Deep validation in a crawl, a report, a check and ``verify --deep``: real files from
``media`` served by a real loopback server, honest Content-Length and right magic bytes,
so only a parser can tell the cut ones from the whole ones."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import media
import pytest
from click.testing import CliRunner
from server import LoopbackServer, Reply

from archiver.cli import cli
from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source
from archiver.db import Database
from archiver.records import DueUrl, Outcome, UrlState
from archiver.run.crawl import crawl
from archiver.states import may_clear
from archiver.store.directory import Store

pytestmark = pytest.mark.usefixtures("deep_checking")

GOOD_PDF = media.pdf(pages=3, title="Keynote: the slides")
CUT_PDF = GOOD_PDF[: len(GOOD_PDF) // 2]
GOOD_PNG = media.encode(media.photo(96, 64), "PNG")
BROKEN_PNG = media.png_broken_idat(GOOD_PNG)
BOMB_PNG = media.png_declaring(6000, 6000)  # 36 M px in a few hundred bytes


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Site:
    """One post linking one asset whose body a test swaps between runs."""

    def __init__(self, tmp_path: Path, server: LoopbackServer, name: str, ctype: str) -> None:
        self.cfg = Config(
            db=tmp_path / "state" / "archive.db",
            store=tmp_path / "state" / "store",
            fetch=FetchConfig(retries=0, connect_timeout=5, read_timeout=5),
        )
        self.cfg = replace(self.cfg, confirm_runs=1)
        self.server, self.path, self.ctype = server, f"/{name}", ctype
        self.posts = tmp_path / "posts"
        self.posts.mkdir()
        self.url = server.url(self.path)
        (self.posts / "a.md").write_text(f"[the asset]({self.url})\n", encoding="utf-8")
        self.clock = FakeClock()

    def serve(self, body: bytes) -> None:
        self.server.route(self.path, Reply(body=body, content_type=self.ctype))

    def crawl(self, body: bytes, **kw: Any) -> None:
        self.serve(body)
        self.clock.advance(3600)
        crawl(self.cfg, [Source(path=self.posts)], clock=self.clock, all_=True, **kw)

    def check(self) -> None:
        self.clock.advance(3600)
        crawl(self.cfg, [Source(path=self.posts)], clock=self.clock, mode="check")

    def row(self) -> dict[str, Any]:
        db = Database(self.cfg.db)
        try:
            return db.rows(
                "SELECT state, error_class, error, sha256 FROM urls WHERE url=?", (self.url,)
            )[0]
        finally:
            db.close()

    def blobs(self) -> list[str]:
        return sorted(p.name for p in Store(self.cfg.store).iter_blobs())

    def cli(self, *args: str) -> tuple[int, str]:
        cmd, *rest = args
        where = ["--db", str(self.cfg.db), "--store", str(self.cfg.store)]
        result = CliRunner().invoke(cli, [cmd, *where, *rest], catch_exceptions=False)
        return result.exit_code, result.stdout

    def report(self) -> dict[str, Any]:
        code, out = self.cli("report", "--format", "json", "--state", "all")
        assert code in (0, 1)  # 1: a link is not ok
        (row,) = json.loads(out)
        return dict(row)


def test_a_pdf_cut_short_is_invalid_and_never_replaces_the_good_copy(
    tmp_path: Path, server: LoopbackServer
) -> None:
    site = Site(tmp_path, server, "deck.pdf", "application/pdf")
    site.crawl(GOOD_PDF)
    assert site.row()["state"] == "ok" and site.blobs() == [sha(GOOD_PDF)]

    assert CUT_PDF.startswith(b"%PDF-")  # the magic-byte test passes it
    site.crawl(CUT_PDF)  # served with its honest (short) Content-Length
    row = site.row()
    assert (row["state"], row["error_class"]) == ("invalid", "corrupt")
    assert row["error"] and "\n" not in row["error"]
    assert row["sha256"] == sha(GOOD_PDF)  # the copy held is still the good one
    assert site.blobs() == [sha(GOOD_PDF)]  # the cut body was never stored
    report = site.report()
    assert report["copy_sha256"] == sha(GOOD_PDF) and report["restorable"]
    assert (report["pages"], report["title"]) == (3, "Keynote: the slides")


def test_a_cut_pdf_on_a_first_crawl_stores_nothing(tmp_path: Path, server: LoopbackServer) -> None:
    site = Site(tmp_path, server, "deck.pdf", "application/pdf")
    site.crawl(CUT_PDF)
    row = site.row()
    assert (row["state"], row["error_class"], row["sha256"]) == ("invalid", "corrupt", None)
    assert site.blobs() == []


def test_a_png_with_a_broken_idat_is_invalid_and_keeps_the_good_copy(
    tmp_path: Path, server: LoopbackServer
) -> None:
    site = Site(tmp_path, server, "photo.png", "image/png")
    site.crawl(GOOD_PNG)
    site.crawl(BROKEN_PNG)
    row = site.row()
    assert (row["state"], row["error_class"]) == ("invalid", "corrupt")
    assert "PNG" in row["error"]
    assert row["sha256"] == sha(GOOD_PNG) and site.blobs() == [sha(GOOD_PNG)]
    report = site.report()
    assert (report["width"], report["height"], report["format"]) == (96, 64, "PNG")
    assert report["deep_check"] == "ok"


def test_a_valid_pdf_reports_its_pages_and_title(tmp_path: Path, server: LoopbackServer) -> None:
    site = Site(tmp_path, server, "deck.pdf", "application/pdf")
    site.crawl(GOOD_PDF)
    report = site.report()
    assert report["state"] == "ok"
    assert (report["pages"], report["title"], report["format"]) == (3, "Keynote: the slides", "PDF")
    assert (report["width"], report["height"], report["deep_check"]) == (None, None, "ok")
    _, table = site.cli("report", "--format", "table", "--state", "all")
    assert "restorable (3 pages)" in table
    _, markdown = site.cli("report", "--format", "markdown", "--state", "all")
    assert "| restorable (3 pages) |" in markdown
    _, html = site.cli("report", "--format", "html", "--state", "all")
    assert '<small class="media">3 pages</small>' in html


def test_a_new_image_gets_its_thumbnail_as_it_is_stored(
    tmp_path: Path, server: LoopbackServer
) -> None:
    from archiver.thumbs import find_thumbnail

    site = Site(tmp_path, server, "photo.png", "image/png")
    site.crawl(GOOD_PNG)
    store = Store(site.cfg.store)
    thumb = find_thumbnail(store.thumbs_dir, sha(GOOD_PNG))
    assert thumb is not None and 0 < thumb.stat().st_size < 8 * 1024
    _, html = site.cli("report", "--format", "html", "--state", "all")
    assert "data:image/" in html  # the report embeds it, without verify having run


def test_a_pixel_bomb_stays_ok_with_its_deep_check_skipped(
    tmp_path: Path, server: LoopbackServer
) -> None:
    site = Site(tmp_path, server, "bomb.png", "image/png")
    site.crawl(BOMB_PNG)
    assert site.row()["state"] == "ok" and site.blobs() == [sha(BOMB_PNG)]
    report = site.report()
    assert report["deep_check"] == "skipped"
    assert (report["width"], report["height"]) == (6000, 6000)
    db = Database(site.cfg.db)
    try:
        reason = db.scalar("SELECT deep_reason FROM blobs WHERE sha256=?", (sha(BOMB_PNG),))
    finally:
        db.close()
    assert "pixel limit" in reason


def test_a_blob_already_checked_is_not_checked_again(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archiver.run import recorder

    site = Site(tmp_path, server, "deck.pdf", "application/pdf")
    site.crawl(GOOD_PDF)
    calls: list[Path] = []
    real = recorder.deep_check

    def counting(path: Path, *args: Any, **kw: Any) -> Any:
        calls.append(path)
        return real(path, *args, **kw)

    monkeypatch.setattr(recorder, "deep_check", counting)
    site.crawl(GOOD_PDF)  # the same bytes again (a full fetch: --all)
    assert calls == [] and site.report()["deep_check"] == "ok"


def test_a_check_never_clears_the_invalid_verdict_of_a_full_fetch(
    tmp_path: Path, server: LoopbackServer
) -> None:
    site = Site(tmp_path, server, "deck.pdf", "application/pdf")
    site.crawl(GOOD_PDF)
    site.crawl(CUT_PDF)
    before = site.row()
    assert before["state"] == "invalid"
    site.check()  # a ranged probe: the first bytes are a PDF's
    assert site.row() == before
    db = Database(site.cfg.db)
    try:
        checks = [r["state"] for r in db.rows("SELECT state FROM checks ORDER BY id")]
    finally:
        db.close()
    assert checks == ["ok", "invalid", "ok"]  # the probe is recorded, the verdict stands
    site.crawl(GOOD_PDF)  # a full fetch of a body that opens clears it
    assert site.row()["state"] == "ok"


def test_verify_deep_finds_a_stored_blob_that_does_not_open(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = Site(tmp_path, server, "deck.pdf", "application/pdf")
    monkeypatch.setenv("ARCHIVER_DEEP_CHECK", "off")  # the test hook: store it unchecked
    site.crawl(CUT_PDF)
    monkeypatch.delenv("ARCHIVER_DEEP_CHECK")
    assert site.row()["state"] == "ok" and site.blobs() == [sha(CUT_PDF)]

    code, out = site.cli("verify")  # the hash is right: plain verify passes it
    assert code == 0, out
    code, out = site.cli("verify", "--deep")
    assert code == 1
    assert f"blob does not open: {sha(CUT_PDF)}: PDF" in out
    assert site.blobs() == [sha(CUT_PDF)]  # marked, not deleted
    db = Database(site.cfg.db)
    try:
        blob = db.rows("SELECT verify_ok, deep_check FROM blobs WHERE sha256=?", (sha(CUT_PDF),))[0]
        recheck = db.scalar("SELECT recheck FROM urls WHERE url=?", (site.url,))
    finally:
        db.close()
    assert blob == {"verify_ok": 0, "deep_check": "corrupt"}
    assert recheck == "copy-damaged"  # due at the next crawl
    report = site.report()
    assert not report["restorable"] and report["deep_check"] == "corrupt"


def test_verify_deep_passes_what_opens(tmp_path: Path, server: LoopbackServer) -> None:
    site = Site(tmp_path, server, "photo.png", "image/png")
    site.crawl(GOOD_PNG)
    code, out = site.cli("verify", "--deep")
    assert code == 0, out


def _due(state: UrlState, sha256: str | None, full_fetch_failed: bool = True) -> DueUrl:
    return DueUrl(
        url_id=1,
        url="http://127.0.0.1/a.pdf",
        fetch_url="http://127.0.0.1/a.pdf",
        fetch_host="127.0.0.1",
        expect="pdf",
        state=state,
        sha256=sha256,
        full_fetch_failed=full_fetch_failed,
    )


def test_may_clear_keeps_a_full_fetchs_invalid_copy_or_none() -> None:
    ok = Outcome(url="http://127.0.0.1/a.pdf", state=UrlState.OK)
    held = "a" * 64
    assert not may_clear(_due(UrlState.INVALID, held), ok, probe=True)
    assert not may_clear(_due(UrlState.INVALID, None), ok, probe=True)
    assert may_clear(_due(UrlState.INVALID, held), ok, probe=False)  # a crawl decides
    # What only a check found, a check may clear; a failing link with a copy, as before.
    assert may_clear(_due(UrlState.INVALID, held, full_fetch_failed=False), ok, probe=True)
    assert may_clear(_due(UrlState.DEAD, held), ok, probe=True)
