#!/usr/bin/env python3
"""Render the HTML report in headless Chromium, apply a filter, check the rows, save a screenshot.

Builds a small archive through the real crawl (posts on disk, a loopback HTTP
server, real images made by Pillow, some links failing then dying over three
runs), lets ``verify`` make the thumbnails, writes ``archiver report --format
html``, then asks Chromium for the page's DOM with the filter ``#state=dead``
applied by the page's own script, checks that exactly the dead rows are
visible, and saves a screenshot of the whole page at ``--width`` pixels. Not run
in CI (Chromium may be absent):

    apt-get install -y chromium
    .venv/bin/python scripts/screenshot_report.py                 # docs/report.png, 1280 px
    .venv/bin/python scripts/screenshot_report.py --width 400 --out docs/report-narrow.png
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from server import LoopbackServer, Reply  # noqa: E402

from archiver.clock import FakeClock  # noqa: E402
from archiver.config import Config, FetchConfig, Source  # noqa: E402
from archiver.db import Database  # noqa: E402
from archiver.net.fetch import HostMapTransport  # noqa: E402
from archiver.ops.report import (  # noqa: E402
    Confirmation,
    ReportFilter,
    parse_states,
    render,
    url_rows,
)
from archiver.ops.verify import verify  # noqa: E402
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


def image(width: int, height: int, rgb: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    """A real picture (a gradient sky, a stage, a few heads), so thumbnails show something."""
    im = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    im = Image.blend(im, Image.new("RGB", (width, height), rgb), 0.6)
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, height * 2 // 3, width, height), fill=(60, 40, 30))
    for i in range(12):
        x = (i * 97) % width
        draw.ellipse(
            (x, height * 3 // 4, x + width // 14, height * 3 // 4 + width // 14), fill=(20, 20, 20)
        )
    out = io.BytesIO()
    im.save(out, fmt)
    return out.getvalue()


def pdf(title: str) -> bytes:
    return b"%PDF-1.4\n% " + title.encode() + b"\n" + b"0" * 400 + b"\n%%EOF\n"


def build(work: Path, srv: LoopbackServer) -> Path:
    """Posts and an archive with dead, invalid and ok links; returns the report page."""
    alive: dict[str, bool] = {}
    assets = {
        "/talks/keynote.pdf": (pdf("keynote"), "application/pdf"),
        "/img/stage.png": (image(800, 500, (40, 110, 200)), "image/png"),
        "/img/crowd.jpg": (image(1024, 640, (220, 120, 40), "JPEG"), "image/jpeg"),
        "/img/poster.png": (image(600, 800, (120, 60, 160)), "image/png"),
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
        f"![The stage]({u('/img/stage.png')})\n\n![The crowd]({u('/img/crowd.jpg')})\n\n"
        f"![Poster: Spring meetup 2025]({u('/img/poster.png')})\n"
    )
    (posts / "2025" / "autumn-workshop.md").write_text(
        f"# Autumn workshop\n\n[Handout]({u('/talks/workshop.pdf')})\n"
        f"[Lightning talks]({u('/talks/lightning.pdf')})\n[Old deck]({u('/talks/moved.pdf')})\n"
    )
    cfg = Config(
        db=work / "archive.db", store=work / "store", fetch=FetchConfig(retries=0), confirm_runs=2
    )
    clock = FakeClock()
    source = Source(path=posts, static_roots=(posts,))

    def run() -> None:
        crawl(cfg, [source], clock=clock, transport=HostMapTransport({}), all_=True, fail_on="none")
        clock.advance(3 * 86400)

    run()
    for gone in ("/talks/keynote.pdf", "/img/stage.png"):
        alive[gone] = False
    run()  # failing: one run counted
    alive["/talks/workshop.pdf"] = False
    run()  # keynote and stage confirmed dead; the workshop handout failing
    page = work / "report.html"
    db = Database(cfg.db)
    store = Store(cfg.store)
    verify(db, store, now="2026-01-10T00:00:00Z")  # makes the thumbnails
    rows = url_rows(db, ReportFilter(states=parse_states("all")), store)
    db.close()
    text = render(
        rows,
        "html",
        store=store,
        output=page,
        confirm=Confirmation(cfg.confirm_runs, cfg.confirm_after),
        generated="2026-01-10T09:30:00Z",
    )
    page.write_text(text, encoding="utf-8")
    return page


def visible_rows(dom: str) -> list[str]:
    """The states of the rows the page's script left visible."""
    rows = re.findall(r'<tr class="link" data-state="([a-z]+)"[^>]*?( hidden(?:="")?)?>', dom)
    return [state for state, hidden in rows if not hidden]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    ap.add_argument("--width", type=int, default=1280, help="window width in pixels (1280)")
    ap.add_argument("--height", type=int, default=None, help="window height (default: fit)")
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
        height = args.height or (1400 if args.width >= 800 else 2600)
        url = page.as_uri()  # the picture shows every state, unfiltered
        chromium(f"--screenshot={args.out.resolve()}", f"--window-size={args.width},{height}")
        print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
