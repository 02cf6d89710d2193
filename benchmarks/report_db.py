"""A report's archive of any size, built in seconds: posts, URLs in every state, uses, copies.

The report benchmark below (``run.py --only report`` times the memory benchmark's
crawled archive instead) and ``tests/test_report_stream.py`` need archives up to
1,000,000 URLs whose rows look like a real one's, and a crawl of that size takes half
an hour. So the rows are made here and bulk-inserted with
``executemany`` in one transaction (about 40 s of CPU for a million URLs) into a
database that archiver's own migrations created. The blobs are real files, stored with
the store's own ``BlobWriter``: decks of 1 to 40 pages (``bench_media.pdf_deck``) and,
one in three, PNGs of a few hundred pixels a side (``bench_media.png_gradient``); each
row's hash, size, pages, title, width and height are those of its file, and one image
in four has the thumbnail archiver's own ``make_thumbnail`` makes of it. A seeded
``random.Random`` makes every other value, so two builds of the same size are the
same archive.

Run as a script, it builds one and times ``archiver report`` on it in every format,
each a real process (wall time, and peak RSS from ``wait4``), next to issue 13's targets
(peak RSS under 150 MB for every format, JSON in at most 10 s at 1,000,000 URLs)::

    .venv/bin/python benchmarks/report_db.py --urls 1000000

What is in it, per URL: a state in about the mix of a large site (mostly ok, some
failing, dead, invalid, error, blocked and pending), a host out of a few dozen (one on
a port of its own, one with a password in its URLs), an error text with the characters
the formats must escape, a copy for half the URLs (many sharing a blob; some blobs
missing, cut short or with a byte flipped), and one or two uses in posts of a folder
and of a site.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from archiver.db import Database
from archiver.store import Store
from archiver.store.identity import bind_store
from archiver.thumbs import make_thumbnail

# The benchmarks' own media (a test loads this file by path, so its folder may be off
# sys.path; appended, so no benchmark script shadows a module of the caller's).
if (_HERE := str(Path(__file__).resolve().parent)) not in sys.path:
    sys.path.append(_HERE)
from bench_media import pdf_deck, png_gradient

__all__ = ["build"]

#: The states, and how often each comes (out of 1,000 URLs).
MIX = (
    ("ok", 880),
    ("failing", 40),
    ("dead", 30),
    ("invalid", 15),
    ("error", 15),
    ("blocked", 10),
    ("pending", 10),
)

_ERRORS = (
    "HTTP 404",
    "connect timeout | retried 3 times",
    "unknown host [bold]cdn[/bold]",
    "server said: \u202egnp.x\u202c\nsecond line",
    "TLS: certificate has expired",
)
_TEXTS = ("Slides", "photo of the speaker", "", None, "deck | part 2 ✓", "[red]notes[/red]")
_KINDS = ("markdown-link", "markdown-image", "html-img", "html-a")


def _hosts(rng: random.Random) -> list[str]:
    hosts = [f"https://cdn{i}.example.test" for i in range(30)]
    hosts += ["https://files.example.test:8443", "https://user:secret@private.example.test"]
    hosts += ["http://127.0.0.1:8080", "https://[::1]:9443"]
    rng.shuffle(hosts)
    return hosts


class _Store(Store):
    """The directory store, without its fsyncs: an archive rebuilt from a seed need not
    survive a power cut, and 5,000 blobs' fsyncs took 14 s of a build on a busy disk."""

    fsync_temp = False


def build(db_path: Path, store_root: Path, urls: int, *, seed: int = 13) -> None:
    """Makes a database at ``db_path`` (a new file) with ``urls`` URLs, and its store."""
    rng = random.Random(seed)
    db = Database(db_path)
    store = _Store(store_root)
    try:
        bind_store(db, store, shared=False, write=True)
        # A large page cache: the URL index is filled in random order, and with the
        # default 2 MB a million inserts take a minute instead of seconds.
        db.conn.execute("PRAGMA cache_size=-1000000")
        with db.transaction():
            _fill(db, store, rng, urls)
    finally:
        db.close()


def _fill(db: Database, store: Store, rng: random.Random, n: int) -> None:
    hosts = _hosts(rng)
    states = [s for s, k in MIX for _ in range(k)]
    day = "2026-11-{:02d}T{:02d}:00:00Z".format
    # Blobs: one per 8 URLs with a copy, at most 5,000 (so copies share them, and the
    # store is made in seconds), a third of them images.
    blobs = []
    for i in range(min(max(n // 16, 4), 5000)):
        data, meta = _media(i)
        image = meta["format"] == "PNG"
        sha = hashlib.sha256(data).hexdigest()
        blobs.append(
            (
                sha,
                len(data),
                "image/png" if image else "application/pdf",
                day(1, 0),
                day(2, i % 24) if i % 5 == 0 else None,
                0 if i % 97 == 1 else (1 if i % 5 == 0 else None),
                meta["pages"],
                meta["title"],
                meta["width"],
                meta["height"],
                meta["format"],
                "ok" if i % 7 else None,
                None,
            )
        )
        _keep(store, i, data, sha, image)
    db.conn.executemany(
        "INSERT INTO blobs (sha256, size, content_type, first_stored, verified_at, verify_ok,"
        " pages, title, width, height, format, deep_check, deep_reason)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        blobs,
    )
    url_rows = []
    versions = []
    for i in range(1, n + 1):
        state = states[rng.randrange(len(states))]
        host = hosts[i % len(hosts)]
        ext = "png" if i % 3 == 0 else "pdf"
        url = f"{host}/a/{i // 100}/{i}.{ext}"
        name = host.split("//")[1].split("@")[-1].rsplit(":", 1)[0].strip("[]").lower()
        if host.endswith("]:9443"):
            name = "::1"
        copy = state != "pending" and rng.random() < 0.5
        blob = blobs[rng.randrange(len(blobs))] if copy else None
        failing = state in ("failing", "dead", "invalid")
        error = None
        status = None
        if state == "ok":
            status = 200
        elif state in ("failing", "dead"):
            status = 404 if i % 2 else None
            error = None if status else _ERRORS[i % len(_ERRORS)]
        elif state in ("error", "blocked", "invalid"):
            error = _ERRORS[i % len(_ERRORS)]
            status = 503 if state == "error" and i % 2 else None
        url_rows.append(
            (
                i,
                url,
                name,
                "pdf" if ext == "pdf" else "image",
                state,
                status,
                ("NotFound" if status == 404 else "Timeout") if state != "ok" else None,
                error,
                blob[0] if blob else None,
                blob[1] if blob else None,
                blob[2] if blob else None,
                day(1, 0),
                None if state == "pending" else day(10 + i % 10, i % 24),
                day(3, i % 24) if blob else None,
                day(5 + i % 5, 0) if failing else None,
                i % 3 if state == "failing" else 0,
                day(9, 0) if state == "failing" else None,
                0 if i % 211 == 7 else 1,
                f"https://mirror.example.test/{i}.{ext}" if i % 101 == 5 else None,
            )
        )
        if blob is not None:
            versions.append((i, blob[0], day(3, 0), day(3 + i % 5, 1), "crawl"))
            if i % 37 == 0:  # changed: an older version too
                old = blobs[(rng.randrange(len(blobs)))]
                if old[0] != blob[0]:
                    versions.append((i, old[0], day(1, 0), day(2, 0), "crawl"))
    db.conn.executemany(
        "INSERT INTO urls (id, url, host, expect, state, http_status, error_class, error,"
        " sha256, size, content_type, first_seen, last_checked, last_ok, failing_since,"
        " confirm_count, confirm_last, referenced, fetch_url)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        url_rows,
    )
    db.conn.executemany(
        "INSERT INTO versions (url_id, sha256, first_seen, last_seen, source) VALUES (?,?,?,?,?)",
        versions,
    )
    _posts(db, rng, n, day(1, 0))


@functools.cache
def _media(i: int) -> tuple[bytes, dict[str, Any]]:
    """Blob ``i``'s bytes and what a deep check records of them: a deck of 1 to 40
    pages titled ``Talk i``, or (one in three) a PNG of a few hundred pixels a side.
    Cached: a test builds more than one archive in a process."""
    if i % 3 == 0:
        width, height = 160 + (i * 37) % 320, 120 + (i * 53) % 240
        data = png_gradient(width, height, seed=i, tag=f"Photo {i}")
        return data, {
            "pages": None,
            "title": None,
            "width": width,
            "height": height,
            "format": "PNG",
        }
    pages = 1 + i % 40
    data = pdf_deck(pages, f"Talk {i}")
    return data, {
        "pages": pages,
        "title": f"Talk {i}",
        "width": None,
        "height": None,
        "format": "PDF",
    }


def _keep(store: Store, i: int, data: bytes, sha: str, image: bool) -> None:
    """Stores blob ``i`` as the crawl does (a ``BlobWriter``; a thumbnail for one image in
    four, by archiver's own thumbnail code), then damages some as disks and people do:
    one in 53 is missing, one in 61 cut to half its length (the wrong size: the report
    says so), one in 67 has a byte flipped near its end (the right size: the report
    cannot tell, ``verify`` re-hashes and finds it)."""
    if i % 53 == 2:
        return  # missing from the store: not restorable
    with store.writer() as w:
        w.write(data)
        stored = w.commit(deferred=True)  # deferred: no fsync of the blob's directory
    assert stored.sha256 == sha, (stored.sha256, sha)
    if image and i % 4 == 0:
        made = make_thumbnail(stored.path, "image", store.thumbs_dir, sha, isolate=False)
        assert made is not None, f"no thumbnail of blob {i}"
    damaged = None
    if i % 61 == 3:
        damaged = data[: len(data) // 2]
    elif i % 67 == 5:
        damaged = data[:-40] + bytes([data[-40] ^ 0x20]) + data[-39:]
    if damaged is not None:
        path = store.path_for(sha)
        path.chmod(0o644)  # stored blobs are read-only
        path.write_bytes(damaged)
        path.chmod(0o444)


def _posts(db: Database, rng: random.Random, n: int, when: str) -> None:
    """Ten URLs to a post, in order; one URL in 10 is used again by a later post."""
    posts = []
    refs = []
    per = 10
    for p in range(1, n // per + 2):
        site = p % 5 == 0
        source = "https://site.example.test/" if site else "/srv/posts"
        path = (
            f"https://site.example.test/{p // 100}/talk-{p}/"
            if site
            else f"{2020 + p % 5}/post-{p:07d}.md"
        )
        posts.append((p, source, path, when, when))
        first = (p - 1) * per + 1
        ids = [i for i in range(first, min(first + per, n + 1))]
        if p > 1 and rng.random() < 0.9:
            ids.append(rng.randrange(1, first))  # an older URL, used again
        if p % 17 == 0 and ids:
            ids.append(ids[0])  # the same URL twice in a post
        for k, url_id in enumerate(ids):
            line = 5 + 2 * k if k < per else 3
            refs.append(
                (
                    p,
                    url_id,
                    line,
                    _KINDS[url_id % len(_KINDS)],
                    _TEXTS[url_id % len(_TEXTS)],
                    f"[x](u{url_id})",
                    k * 10,
                    k * 10 + 8,
                )
            )
    db.conn.executemany(
        "INSERT INTO posts (id, source, path, first_seen, last_seen) VALUES (?,?,?,?,?)", posts
    )
    db.conn.executemany(
        'INSERT INTO refs (post_id, url_id, line, kind, text, as_written, start, "end")'
        " VALUES (?,?,?,?,?,?,?,?)",
        [r for r in refs if r[1] % 211 != 7],  # unreferenced URLs: no post uses them
    )


#: Every ``report --format``, and the filters timed beside the whole report.
FORMATS = ("json", "html", "csv", "markdown", "table", "junit", "github", "sarif")
FILTERS = (("--state", "all"),)
RSS_MB, JSON_SECONDS = 150, 10.0


def _report(db: Path, store: Path, out: Path, *args: str) -> tuple[float, float, float, int]:
    """``archiver report ARGS -o OUT``: wall seconds, CPU seconds (user + sys: the wall
    of a loaded machine is inflated), peak RSS in MB, exit code."""
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "archiver", "report", "--db", str(db), "--store", str(store)]
    proc = subprocess.Popen(
        [*cmd, *args, "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"report {' '.join(args)} failed ({code}): {err.decode()[-2000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - started, cpu, usage.ru_maxrss / 1024, code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--build"]:
        build(Path(argv[1]) / "a.db", Path(argv[1]) / "store", int(argv[2]))
        return 0
    ap = argparse.ArgumentParser(description="time every report format on a built archive")
    ap.add_argument("--urls", type=int, default=1_000_000)
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="build the archive in DIR and keep it; reuse it when DIR already holds one",
    )
    args = ap.parse_args(argv)
    if args.keep is not None:
        work = args.keep
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="archiver-report-", dir=args.workdir))
    try:
        db, store = work / "a.db", work / "store"
        t = time.perf_counter()
        if args.keep is not None and db.exists():
            print(f"reusing the archive in {work} (built with --keep)")
        else:
            # Built in a child process: on Linux a child's peak RSS (wait4) counts the
            # pages of its parent at fork time, and a build of 1,000,000 rows holds 1.5 GB.
            cmd = [sys.executable, __file__, "--build", str(work), str(args.urls)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(cmd, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            print(
                f"built {args.urls:,} URLs in {time.perf_counter() - t:.1f} s"
                f" ({cpu:.1f} s CPU; load {os.getloadavg()[0]:.2f})"
            )
        print(f"{'report':<36} {'wall':>9} {'CPU':>9} {'peak RSS':>9} {'output':>10}  target")
        for fmt in args.formats.split(","):
            for flt in ((), *FILTERS):
                if fmt in ("junit", "github", "sarif") and not flt:
                    continue  # the CI formats list what is not ok either way: one row
                out = work / f"report.{fmt}"
                wall, cpu, rss, _ = _report(db, store, out, "--format", fmt, *flt)
                target = f"RSS < {RSS_MB} MB"
                ok = rss < RSS_MB
                if fmt == "json" and flt and args.urls >= 1_000_000:
                    target += f", <= {JSON_SECONDS:g} s"
                    ok = ok and wall <= JSON_SECONDS
                name = " ".join(("--format", fmt, *flt))
                size = out.stat().st_size / 1e6
                print(
                    f"{name:<36} {wall:>7.1f} s {cpu:>7.1f} s {rss:>6.0f} MB {size:>7.1f} MB"
                    f"  {target} {'met' if ok else 'MISSED'}",
                    flush=True,
                )
                out.unlink()
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
