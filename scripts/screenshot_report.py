#!/usr/bin/env python3
"""Render the HTML report in headless Chromium, apply a filter, check the rows, save a screenshot.

Builds a small archive through the real crawl (posts on disk, a loopback HTTP
server, some links dying between two runs), writes ``archiver report --format
html``, then asks Chromium for the page's DOM with the filter ``#state=dead``
applied by the page's own script, checks that exactly the dead rows are
visible, and saves ``docs/report.png``. Not run in CI (Chromium may be absent):

    apt-get install -y chromium
    .venv/bin/python scripts/screenshot_report.py [--chromium PATH] [--out docs/report.png]
"""

from __future__ import annotations

import argparse
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from server import LoopbackServer, Reply  # noqa: E402

from archiver.clock import FakeClock  # noqa: E402
from archiver.config import Config, FetchConfig, Source  # noqa: E402
from archiver.db import Database  # noqa: E402
from archiver.net.fetch import HostMapTransport  # noqa: E402
from archiver.ops.report import ReportFilter, parse_states, render, url_rows  # noqa: E402
from archiver.run.crawl import crawl  # noqa: E402
from archiver.store import Store  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, so thumbnails show something without an image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def pdf(title: str) -> bytes:
    return b"%PDF-1.4\n% " + title.encode() + b"\n" + b"0" * 400 + b"\n%%EOF\n"


def build(work: Path, srv: LoopbackServer) -> Path:
    """Posts and an archive with dead, invalid and ok links; returns the report page."""
    alive: dict[str, bool] = {}
    assets = {
        "/talks/keynote.pdf": (pdf("keynote"), "application/pdf"),
        "/img/stage.png": (png(160, 100, (40, 110, 200)), "image/png"),
        "/img/crowd.png": (png(160, 100, (220, 120, 40)), "image/png"),
        "/talks/workshop.pdf": (pdf("workshop"), "application/pdf"),
        "/talks/lightning.pdf": (pdf("lightning"), "application/pdf"),
    }
    for path, (body, ctype) in assets.items():
        alive[path] = True

        def script(req: object, path: str = path, body: bytes = body, ctype: str = ctype) -> Reply:
            if not alive[path]:
                return Reply(status=404, body=b"gone", content_type="text/plain")
            return Reply(body=body, content_type=ctype)

        srv.route(path, script)
    srv.route("/talks/moved.pdf", Reply(body=b"<!doctype html><p>moved", content_type="text/html"))
    u = srv.url
    posts = work / "posts"
    (posts / "2025").mkdir(parents=True)
    (posts / "2025" / "spring-meetup.md").write_text(
        f"# Spring meetup\n\n[Keynote slides]({u('/talks/keynote.pdf')})\n\n"
        f"![The stage]({u('/img/stage.png')})\n\n![The crowd]({u('/img/crowd.png')})\n"
    )
    (posts / "2025" / "autumn-workshop.md").write_text(
        f"# Autumn workshop\n\n[Handout]({u('/talks/workshop.pdf')})\n"
        f"[Lightning talks]({u('/talks/lightning.pdf')})\n[Old deck]({u('/talks/moved.pdf')})\n"
    )
    cfg = Config(
        db=work / "archive.db", store=work / "store", fetch=FetchConfig(retries=0), confirm_runs=1
    )
    clock = FakeClock()
    source = Source(path=posts, static_roots=(posts,))
    crawl(cfg, [source], clock=clock, transport=HostMapTransport({}), fail_on="none")
    for gone in ("/talks/keynote.pdf", "/img/stage.png", "/talks/workshop.pdf"):
        alive[gone] = False
    clock.advance(3 * 86400)
    crawl(cfg, [source], clock=clock, transport=HostMapTransport({}), all_=True, fail_on="none")
    page = work / "report.html"
    db = Database(cfg.db)
    store = Store(cfg.store)
    rows = url_rows(db, ReportFilter(states=parse_states("all")), store)
    db.close()
    page.write_text(render(rows, "html", store=store, output=page), encoding="utf-8")
    return page


def visible_rows(dom: str) -> list[str]:
    """The states of the rows the page's script left visible."""
    rows = re.findall(r'<tr class="link" data-state="([a-z]+)"[^>]*?( hidden(?:="")?)?>', dom)
    return [state for state, hidden in rows if not hidden]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LoopbackServer("127.0.0.1") as srv:
        work = Path(tmp)
        page = build(work, srv)
        url = page.as_uri() + "#state=dead"

        def chromium(*extra: str) -> str:
            profile = tempfile.mkdtemp(dir=tmp)
            cmd = [args.chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
            return done.stdout

        dom = chromium("--dump-dom")
        shown = visible_rows(dom)
        every = re.findall(r'<tr class="link" data-state="([a-z]+)"', dom)
        print(f"{len(every)} rows in the page, {len(shown)} visible with #state=dead: {shown}")
        if not shown or set(shown) != {"dead"} or len(shown) != every.count("dead"):
            print("FAIL: the state filter did not leave exactly the dead rows", file=sys.stderr)
            return 1
        count = re.search(r'<span id="visible-count">(\d+)</span>', dom)
        if count is None or int(count.group(1)) != len(shown):
            print("FAIL: the visible count does not match the rows", file=sys.stderr)
            return 1
        args.out.parent.mkdir(parents=True, exist_ok=True)
        chromium(f"--screenshot={args.out.resolve()}", "--window-size=1280,860")
        print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
