"""archiver's benchmarks: one command, a table of figures, each next to what it is compared with.

    .venv/bin/python benchmarks/run.py              # the full run (~4 min, ~4 GB temp disk)
    .venv/bin/python benchmarks/run.py --smoke      # tiny sizes, < 60 s, no targets judged
    .venv/bin/python benchmarks/run.py --only check,report

Everything talks to loopback only: a light latency server (``latency_server.py``, run as a
subprocess that reports its own CPU time) stands in for a CDN, and Debian's nginx serves
the large files (the smoke run falls back to Python's http.server and skips curl when
nginx or curl is missing). archiver runs as a real ``python -m archiver`` process, so
its figures include interpreter start-up; peak RSS comes from ``wait4`` on that process.
All files live in one temp directory on the disk under test, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MB = 1_000_000
SECTIONS = ("check", "http2", "archive", "assets", "memory", "extract", "report")


@dataclass
class Row:
    """One line of the table: a figure, what it is compared with, and the target."""

    name: str
    figure: str
    against: str = ""
    ratio: str = ""
    target: str = ""
    ok: bool | None = None  # None: informational, or not judged (smoke)


@dataclass
class Run:
    """What one archiver process cost."""

    wall: float
    cpu: float
    maxrss_mb: float
    code: int
    stderr: str


# -- processes ------------------------------------------------------------------------------


def archiver(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Runs ``python -m archiver ARGS`` and measures it (wall, CPU, peak RSS via wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "archiver", *args],
        cwd=cwd,
        env={**os.environ, **env} if env else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        proc.returncode,
        stderr.strip(),
    )


def median(runs: list[Run]) -> Run:
    """The run with the median wall time (the upper one of an even count)."""
    return sorted(runs, key=lambda r: r.wall)[len(runs) // 2]


def crawl_args(posts: Path, state: Path) -> list[str]:
    """``crawl POSTS`` into ``state`` with the archive benchmark's limits."""
    return [
        str(posts),
        *("--db", str(state / "a.db"), "--store", str(state / "store")),
        *("--per-host", "8", "--concurrency", "16", "--fail-on", "none"),
    ]


def crawl_again(work: Path, posts: Path, state: Path, repeat: int) -> tuple[list[Run], int]:
    """``repeat`` runs of ``crawl --all`` over what the first crawl archived, and the most
    body bytes any of them transferred (it should be none)."""
    runs, most = [], 0
    for _ in range(repeat):
        runs.append(
            checked(
                archiver("crawl", "--all", *crawl_args(posts, state), cwd=work),
                "archiver crawl --all",
            )
        )
        most = max(most, run_bytes(state / "a.db"))
    return runs, most


def compile_archiver() -> None:
    """Writes archiver's bytecode, as ``pip install`` does for an installed package.

    A development (editable) install has none until a run writes it, and never gets any
    where PYTHONDONTWRITEBYTECODE is set (as on some CI machines): every run would then
    compile archiver's source first (~70 ms), which no installed copy pays.
    """
    spec = importlib.util.find_spec("archiver")
    if spec is None or spec.origin is None:
        raise SystemExit("benchmark: archiver is not installed in this Python; see README.md")
    package = Path(spec.origin).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)


def checked(run: Run, what: str, allowed: tuple[int, ...] = (0, 1)) -> Run:
    if run.code not in allowed:
        raise SystemExit(f"benchmark: {what} failed with exit code {run.code}:\n{run.stderr}")
    return run


def run_check(work: Path, posts: Path, state: Path, per_host: int, what: str) -> Run:
    """``archiver check`` of ``posts`` into ``state``, 64 requests in flight at most."""
    return checked(
        archiver(
            "check",
            str(posts),
            "--db",
            str(state / "a.db"),
            "--store",
            str(state / "store"),
            "--per-host",
            str(per_host),
            "--concurrency",
            "64",
            "--fail-on",
            "none",
            cwd=work,
        ),
        what,
    )


@contextmanager
def served(cmd: list[str]) -> Iterator[dict[str, Any]]:
    """A benchmark server process: it prints ``PORT n`` once listening and, on SIGTERM,
    a last line of JSON figures. Yields a dict with the port, then those figures."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    info: dict[str, Any] = {"port": int(proc.stdout.readline().split()[1])}
    try:
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        info.update(json.loads(out.strip().splitlines()[-1]))


@contextmanager
def latency_server(latency: float, host: str = "127.0.0.1") -> Iterator[dict[str, float]]:
    """Starts ``latency_server.py``; yields a dict with its port, then its CPU figures."""
    script = str(HERE / "latency_server.py")
    with served([sys.executable, script, "--latency", str(latency), "--host", host]) as info:
        yield info


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"benchmark: no server came up on 127.0.0.1:{port}")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def file_server(
    root: Path, work: Path, rate: int | None = None, tls: tuple[Path, Path] | None = None
) -> Iterator[dict[str, object]]:
    """nginx on loopback serving ``root`` (one process, so its CPU is one /proc read);
    Python's http.server when nginx is missing (smoke runs only). ``rate`` caps each
    response at that many bytes per second (nginx's ``limit_rate``); ``tls`` (certificate
    and key files) serves https with HTTP/2 offered by ALPN (nginx only)."""
    port = free_port()
    nginx = shutil.which("nginx", path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin")
    info: dict[str, object] = {"port": port, "kind": "nginx" if nginx else "http.server"}
    if nginx:
        prefix = work / "nginx"
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(
            f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {prefix}/tmp_body;
    proxy_temp_path {prefix}/tmp_proxy;
    fastcgi_temp_path {prefix}/tmp_fastcgi;
    uwsgi_temp_path {prefix}/tmp_uwsgi;
    scgi_temp_path {prefix}/tmp_scgi;
    types {{ application/pdf pdf; }}
    server {{
        listen 127.0.0.1:{port}{" ssl http2" if tls else ""};
        {f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]};" if tls else ""}
        root {root};
        limit_rate {rate or 0};
    }}
}}
"""
        )
        cmd = [nginx, "-p", str(prefix), "-c", str(conf)]
    else:
        cmd = [sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d", str(root), str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        info["cpu_start"] = proc_cpu(proc.pid)
        info["pid"] = proc.pid
        yield info
    finally:
        info["cpu"] = proc_cpu(proc.pid) - float(info["cpu_start"])  # type: ignore[arg-type]
        proc.terminate()
        proc.wait(30)


# -- generated inputs -----------------------------------------------------------------------


def link_posts(folder: Path, urls: list[str], per_post: int = 10) -> Path:
    """Posts that link ``urls``, ``per_post`` to a post, as slides and as images."""
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(urls), per_post):
        lines = ["---", f"title: Meetup {start}", "---", ""]
        for url in urls[start : start + per_post]:
            if url.endswith(".png"):
                lines.append(f"![photo]({url})\n")
            else:
                lines.append(f"Slides: [deck]({url})\n")
        (folder / f"post-{start:07d}.md").write_text("\n".join(lines), encoding="utf-8")
    return folder


def asset_urls(port: int, n: int, host: str = "127.0.0.1") -> list[str]:
    return [f"http://{host}:{port}/a/{i}.{'png' if i % 2 else 'pdf'}" for i in range(n)]


def corpus(folder: Path, n: int) -> Path:
    """Posts like a real event site's: front matter, prose, code, Markdown and HTML links."""
    rng = random.Random(6)
    words = ["cloud", "native", "mesh", "proxy", "meetup", "slides", "talk", "service", "sidecar"]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        prose = " ".join(rng.choice(words) for _ in range(120))
        text = f"""---
title: "Meetup #{i}"
date: 2021-0{i % 9 + 1}-1{i % 9}
cover: "https://cdn.example.org/covers/{i}.jpg"
---

{prose}

[Slides of talk {i}](https://files.example.org/{i}/deck.pdf) and [the video](https://video.example.org/{i}).

![speaker](https://cdn.example.org/img/A*{i:06d}/original)

<img src="https://cdn.example.org/{i}/photo.png" width="600"/>

```java
String url = "https://not.a.link.example.org/{i}.pdf";
```

{prose}
"""
        sub = folder / f"{i % 100:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"post-{i}.md").write_text(text, encoding="utf-8")
    return folder


def write_pdf(path: Path, size: int, *, random_from: int | None = None) -> None:
    """A real PDF of about ``size`` bytes (one page, and one stream of filler that no page
    uses), so that archiver's deep validation (pypdf) opens it: random bytes from the start,
    or after ``random_from`` bytes of the stream a sparse hole (zeros that cost no disk)."""
    head = [
        b"%PDF-1.7\n",
        b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n",
        b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n",
        b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>\nendobj\n",
    ]
    offsets, at = [], 0
    for part in head:
        if part.endswith(b"endobj\n"):
            offsets.append(at)
        at += len(part)
    length = max(0, size - at - 200)
    stream_head = f"4 0 obj\n<< /Length {length} >>\nstream\n".encode()
    offsets.append(at)
    with path.open("wb") as f:
        f.write(b"".join(head) + stream_head)
        left = length if random_from is None else min(length, random_from)
        while left > 0:
            block = os.urandom(min(left, 4 * 1024 * 1024))
            f.write(block)
            left -= len(block)
        f.seek(len(b"".join(head) + stream_head) + length)
        xref = f.tell() + len(b"\nendstream\nendobj\n")
        table = b"".join(b"%010d 00000 n \n" % o for o in offsets)
        f.write(
            b"\nendstream\nendobj\nxref\n0 5\n0000000000 65535 f \n"
            + table
            + b"trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
        )


def pdf_files(root: Path, total: int, low: int, high: int) -> list[tuple[str, int]]:
    """Real PDFs of random content, sizes uniform in [low, high], about ``total`` in all."""
    rng = random.Random(500)
    out: list[tuple[str, int]] = []
    made = 0
    (root / "f").mkdir(parents=True, exist_ok=True)
    while made < total:
        size = rng.randint(low, high)
        name = f"f/{len(out):04d}.pdf"
        write_pdf(root / name, size)
        out.append((name, size))
        made += size
    return out


_STARTUP: list[float] = []


def startup_seconds(cwd: Path) -> float:
    """Interpreter start-up and imports, as ``archiver --version`` costs them (best of 3)."""
    if not _STARTUP:
        _STARTUP.append(min(archiver("--version", cwd=cwd).wall for _ in range(3)))
    return _STARTUP[0]


def in_run_seconds(run: Run, cwd: Path) -> float:
    """A run's wall time less the fixed start-up cost: what the work itself took."""
    return max(run.wall - startup_seconds(cwd), 1e-3)


def run_bytes(db: Path) -> int:
    """Body bytes of the last run, as the run recorded them."""
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT bytes FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0])
    finally:
        conn.close()


# -- the raw-socket floor --------------------------------------------------------------------


async def _raw_floor(port: int, urls: list[str], connections: int) -> None:
    """The same ranged GETs from a minimal asyncio client: what loopback and the server allow."""
    paths = [u.split(str(port), 1)[1] for u in urls]

    async def worker(k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for path in paths[k::connections]:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-8191\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
        writer.close()

    await asyncio.gather(*(worker(k) for k in range(connections)))


# -- the benchmarks -------------------------------------------------------------------------


def bench_check(work: Path, args: argparse.Namespace) -> list[Row]:
    rows = []
    latency, per_host = args.latency, 8
    for n in (50, 200) if args.smoke else (1000, 10000):
        urls_floor = None
        with latency_server(latency) as floor_srv:
            urls_floor = asset_urls(int(floor_srv["port"]), n)
            t = time.perf_counter()
            asyncio.run(_raw_floor(int(floor_srv["port"]), urls_floor, per_host))
            floor = time.perf_counter() - t
        # A short run is at the mercy of the machine's noise: the median of a few (each
        # from an empty database, as a first check is) stands for it.
        repeat = args.repeat if n * latency / per_host < 10 else 1
        with latency_server(latency) as srv:
            posts = link_posts(work / f"check-{n}", asset_urls(int(srv["port"]), n))
            runs = []
            for _ in range(repeat):
                state = work / f"check-{n}-state"
                shutil.rmtree(state, ignore_errors=True)
                runs.append(run_check(work, posts, state, per_host, "archiver check"))
            run = median(runs)
        name = f"check {n:,} links, {latency * 1000:.0f} ms, per-host {per_host}"
        if repeat > 1:
            name += f" (median of {repeat})"
        ideal = n * latency / per_host
        ratio = run.wall / ideal
        inner = in_run_seconds(run, work)
        server_ms = srv["cpu_seconds"] / srv["requests"] * 1000
        rows.append(
            Row(
                name,
                f"{n / run.wall:,.0f} URL/s ({run.wall:.2f} s)",
                f"ideal {n / ideal:,.0f} URL/s ({ideal:.2f} s)",
                f"{ratio:.2f}x ideal",
                "<= 1.3x",
                None if args.smoke else ratio <= 1.3,
            )
        )
        rows.append(
            Row(
                "  the same, without interpreter start-up",
                f"{n / inner:,.0f} URL/s ({inner:.2f} s)",
                f"start-up {startup_seconds(work):.2f} s taken off",
                f"{inner / ideal:.2f}x ideal",
            )
        )
        rows.append(
            Row(
                "  CPU per URL (archiver / server)",
                f"{run.cpu / n * 1000:.2f} ms / {server_ms:.2f} ms",
                f"raw-socket client {floor:.2f} s",
                f"{run.wall / floor:.2f}x floor",
                "",
                None,
            )
        )
        rows.append(
            Row(
                "  requests / connections opened",
                f"{srv['requests'] / repeat:.0f} / {srv['connections'] / repeat:.0f}",
                "one request per URL, keep-alive",
            )
        )
    return rows


def bench_http2(work: Path, args: argparse.Namespace) -> list[Row]:
    """``check`` over https against nginx, HTTP/2 (the default) and HTTP/1.1 side by side.

    No latency is added (nginx has none to add), so the figures are throughput and CPU:
    what HTTP/2's framing costs the client next to the lean HTTP/1.1 transport.
    """
    nginx = shutil.which("nginx", path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin")
    if nginx is None or importlib.util.find_spec("trustme") is None:
        return [Row("check over https, HTTP/2", "skipped: needs nginx and trustme")]
    import trustme  # a development dependency, for test certificates

    n = 200 if args.smoke else 2000
    site = work / "h2-site"
    (site / "a").mkdir(parents=True)
    body = site / "deck.pdf"
    write_pdf(body, 100_000)
    for i in range(n):  # one file on disk, n URLs
        (site / "a" / f"{i}.pdf").hardlink_to(body)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    tls = (work / "h2-cert.pem", work / "h2-key.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tls[0]))
    cert.private_key_pem.write_to_path(str(tls[1]))
    ca_file = work / "h2-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    env = {"SSL_CERT_FILE": str(ca_file)}  # archiver trusts this CA instead of certifi's
    rows = []
    with file_server(site, work, tls=tls) as srv:
        urls = [f"https://127.0.0.1:{srv['port']}/a/{i}.pdf" for i in range(n)]
        posts = link_posts(work / "h2-posts", urls)
        figures = {}
        for label, http2 in (("HTTP/2", "true"), ("HTTP/1.1", "false")):
            config = work / f"h2-{http2}.toml"
            config.write_text(f"[fetch]\nhttp2 = {http2}\nper_host = 8\n", encoding="utf-8")
            runs = []
            for _ in range(args.repeat):
                state = work / "h2-state"
                shutil.rmtree(state, ignore_errors=True)
                runs.append(
                    checked(
                        archiver(
                            "check",
                            "--config",
                            str(config),
                            str(posts),
                            "--db",
                            str(state / "a.db"),
                            "--store",
                            str(state / "store"),
                            "--fail-on",
                            "any",
                            cwd=work,
                            env=env,
                        ),
                        f"archiver check over https ({label})",
                        allowed=(0,),  # every link must check ok: a TLS failure is a bug
                    )
                )
            figures[label] = median(runs)
        shutil.rmtree(work / "h2-state", ignore_errors=True)
    h2, h1 = figures["HTTP/2"], figures["HTTP/1.1"]
    rows.append(
        Row(
            f"check {n:,} links over https, HTTP/2 (nginx, no added latency)",
            f"{n / h2.wall:,.0f} URL/s, {h2.cpu / n * 1000:.2f} ms CPU/URL",
            f"HTTP/1.1 over TLS: {n / h1.wall:,.0f} URL/s, {h1.cpu / n * 1000:.2f} ms CPU/URL",
            f"{h2.cpu / h1.cpu:.2f}x CPU",
        )
    )
    return rows


def bench_archive(work: Path, args: argparse.Namespace) -> list[Row]:
    site = work / "site"
    total, low, high = (3 * MB, MB // 10, MB // 2) if args.smoke else (500 * MB, MB // 2, 10 * MB)
    files = pdf_files(site, total, low, high)
    size = sum(s for _, s in files)
    rows: list[Row] = []
    with file_server(site, work) as srv:
        port = srv["port"]
        urls = [f"http://127.0.0.1:{port}/{name}" for name, _ in files]
        posts = link_posts(work / "archive-posts", urls, per_post=20)
        state = work / "archive-state"
        firsts = []
        for _ in range(args.repeat):  # each from an empty store: the disk's noise is large
            shutil.rmtree(state, ignore_errors=True)
            firsts.append(
                checked(archiver("crawl", *crawl_args(posts, state), cwd=work), "archiver crawl")
            )
        first = median(firsts)
        first_bytes = run_bytes(state / "a.db")
        agains, again_bytes = crawl_again(work, posts, state, args.repeat)
        again = median(agains)
        curl = shutil.which("curl")
        disk = null = None
        if curl and srv["kind"] == "nginx":
            disk = statistics.median(_curl(curl, urls, work / "curl-out") for _ in firsts)
            null = statistics.median(_curl(curl, urls, None) for _ in firsts)
    rate = size / MB / first.wall
    name = f"archive {len(files)} files, {size / MB:,.0f} MB"
    if len(firsts) > 1:
        name += f" (median of {len(firsts)})"
    if disk is not None and null is not None:
        curl_rate = size / MB / disk
        rows.append(
            Row(
                name,
                f"{rate:,.0f} MB/s ({first.wall:.2f} s)",
                f"curl --parallel + sync {curl_rate:,.0f} MB/s ({disk:.2f} s)",
                f"{rate / curl_rate:.2f}x curl",
                ">= 0.8x",
                None if args.smoke else rate / curl_rate >= 0.8,
            )
        )
        rows.append(Row("  curl to /dev/null", f"{size / MB / null:,.0f} MB/s ({null:.2f} s)"))
    else:
        rows.append(
            Row(name, f"{rate:,.0f} MB/s ({first.wall:.2f} s)", "curl/nginx missing: skipped")
        )
    rows.append(
        Row(
            "  archiver CPU / server CPU",
            f"{first.cpu:.2f} s / {float(srv['cpu']):.2f} s ({srv['kind']})",  # type: ignore[arg-type]
        )
    )
    wall_ratio = again.wall / first.wall
    rows.append(
        Row(
            "re-run: crawl --all, unchanged"
            + (f" (median of {len(agains)})" if len(agains) > 1 else ""),
            f"{again.wall:.2f} s, {again_bytes:,} body bytes",
            f"first run {first.wall:.2f} s, {first_bytes:,} bytes",
            f"{wall_ratio:.2f}x time",
            "<= 0.1x, 0 bytes",
            None if args.smoke else wall_ratio <= 0.1 and again_bytes == 0,
        )
    )
    rows.append(
        Row(
            "  the same, without interpreter start-up",
            f"{in_run_seconds(again, work):.2f} s",
            f"first run {in_run_seconds(first, work):.2f} s",
            f"{in_run_seconds(again, work) / in_run_seconds(first, work):.2f}x time",
        )
    )
    floor = library_floor(work, args.repeat)
    rows.append(
        Row(
            "  floor: Python importing click, httpx, anyio",
            f"{floor:.2f} s",
            "no archiver code, one empty event loop",
            f"{floor / first.wall:.2f}x time",
        )
    )
    shutil.rmtree(state, ignore_errors=True)
    if not args.smoke and srv["kind"] == "nginx":
        rows += _rerun_at_cdn_speed(work, site, files, args)
    return rows


#: The small-assets row's size of each body, and the posts' links each.
SMALL_ASSET = 4096
SMALL_PER_POST = 11


def bench_assets(work: Path, args: argparse.Namespace) -> list[Row]:
    """Many small assets, all the same bytes (nginx serves one real 4 KiB PDF under every
    name, hard links of it): what a run costs per URL when the body is not the work. Then a
    plain ``crawl`` of the same, unchanged posts, with nothing due: what reading posts
    that did not change costs."""
    n = 1_100 if args.smoke else 110_000
    site = work / "small-site"
    (site / "a").mkdir(parents=True)
    first = site / "a" / "0.pdf"
    write_pdf(first, SMALL_ASSET)
    for i in range(1, n):
        if i % 60_000 == 0:  # a file system caps one file's links (ext4: 65,000)
            shutil.copyfile(first, site / "a" / f"{i}.pdf")
            continue
        os.link(site / "a" / f"{i // 60_000 * 60_000}.pdf", site / "a" / f"{i}.pdf")
    state = work / "small-state"
    with file_server(site, work) as srv:
        urls = [f"http://127.0.0.1:{srv['port']}/a/{i}.pdf" for i in range(n)]
        posts = link_posts(work / "small-posts", urls, per_post=SMALL_PER_POST)
        args_ = [
            str(posts),
            *("--db", str(state / "a.db"), "--store", str(state / "store")),
            *("--per-host", "32", "--concurrency", "64", "--fail-on", "none"),
        ]
        run = checked(archiver("crawl", *args_, cwd=work), "archiver crawl (small assets)")
        ok = _count_ok(state / "a.db")
        agains = [
            checked(archiver("crawl", *args_, cwd=work), "archiver crawl (unchanged posts)")
            for _ in range(args.repeat)
        ]
        again_bytes = run_bytes(state / "a.db")
    shutil.rmtree(site, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    again = median(agains)
    floor = _crawl_imports(work)
    rate = n / run.wall
    n_posts = -(-n // SMALL_PER_POST)
    return [
        Row(
            f"archive {n:,} assets of {SMALL_ASSET // 1024} KiB (one body, nginx)",
            f"{rate:,.0f} URL/s ({run.wall:.1f} s)",
            f"{ok:,} ok, {run.cpu / n * 1000:.2f} ms CPU/URL, peak RSS {run.maxrss_mb:.0f} MB",
            "",
            ">= 1,500 URL/s",
            None if args.smoke else rate >= 1500 and ok == n,
        ),
        Row(
            f"crawl {n_posts:,} unchanged posts, nothing due"
            + (f" (median of {len(agains)})" if len(agains) > 1 else ""),
            f"{again.wall:.2f} s ({again.cpu:.2f} s CPU), {again_bytes:,} body bytes",
            f"{n:,} URLs; floor: interpreter and the crawl's imports {floor.wall:.2f} s"
            f" ({floor.cpu:.2f} s CPU)",
            f"{again.wall / floor.wall:.1f}x floor",
            "<= 1 s",
            None if args.smoke else again.wall <= 1 and again_bytes == 0,
        ),
    ]


#: What ``archiver crawl`` imports before it reads a post (``cli.main`` drops httpx's
#: own command line client the same way): the start-up no unchanged crawl can avoid.
_CRAWL_IMPORTS = (
    "import sys; sys.modules['httpx._main'] = None; import archiver.cli.app, archiver.run.crawl"
)


def _crawl_imports(cwd: Path) -> Run:
    """The interpreter and the crawl's imports alone, as a process (best of 3 by wall)."""
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _CRAWL_IMPORTS], cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        runs.append(Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, code, ""))
    return min(runs, key=lambda r: r.wall)


def _count_ok(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM urls WHERE state='ok'").fetchone()[0])
    finally:
        conn.close()


_FLOOR = """
import click, httpx, anyio, sqlite3
async def nothing() -> None: ...
anyio.run(nothing)
"""


def library_floor(cwd: Path, repeat: int) -> float:
    """Seconds for a Python process that only imports the libraries every run needs and
    starts anyio's event loop (median of ``repeat``): what no archiver change can remove."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", _FLOOR], cwd=cwd, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


#: What the CDN-speed first run gets: 50 MB/s across its 8 connections.
CDN_RATE = 50 * MB


def _rerun_at_cdn_speed(
    work: Path, site: Path, files: list[tuple[str, int]], args: argparse.Namespace
) -> list[Row]:
    """The same re-run after a first run at a CDN's speed instead of loopback's.

    A re-run costs about the same either way (start-up, conditional requests); what the
    ratio says depends on how long the first run took, so both are shown.
    """
    with file_server(site, work, rate=CDN_RATE // 8) as srv:
        urls = [f"http://127.0.0.1:{srv['port']}/{name}" for name, _ in files]
        posts = link_posts(work / "cdn-posts", urls, per_post=20)
        state = work / "cdn-state"
        first = checked(archiver("crawl", *crawl_args(posts, state), cwd=work), "archiver crawl")
        agains, again_bytes = crawl_again(work, posts, state, args.repeat)
        again = median(agains)
    shutil.rmtree(state, ignore_errors=True)
    size = sum(s for _, s in files)
    ratio = again.wall / first.wall
    return [
        Row(
            f"  the same after a first run at CDN speed ({CDN_RATE // MB} MB/s)",
            f"{again.wall:.2f} s, {again_bytes:,} body bytes",
            f"first run {first.wall:.2f} s ({size / MB / first.wall:,.0f} MB/s)",
            f"{ratio:.2f}x time",
            "<= 0.1x, 0 bytes",
            ratio <= 0.1 and again_bytes == 0,
        )
    ]


def _curl(curl: str, urls: list[str], out: Path | None) -> float:
    """Seconds for ``curl --parallel`` to fetch every URL (to disk, then ``sync``, or to null)."""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    config = out.parent / "curl.cfg" if out is not None else Path(tempfile.mktemp())
    lines = []
    for i, url in enumerate(urls):
        target = out / f"{i:04d}.pdf" if out is not None else Path("/dev/null")
        lines.append(f'url = "{url}"\noutput = "{target}"')
    config.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    subprocess.run(
        [
            curl,
            "--silent",
            "--no-progress-meter",
            "--fail",
            "--parallel",
            "--parallel-max",
            "8",
            "-K",
            str(config),
        ],
        check=True,
    )
    if out is not None:
        os.sync()  # our writes are fsynced; curl's must reach the disk too to compare
    took = time.perf_counter() - started
    config.unlink()
    if out is not None:
        shutil.rmtree(out)
    return took


def bench_memory(work: Path, args: argparse.Namespace) -> tuple[list[Row], Path | None]:
    rows = []
    big = work / "big"
    size = 20 * MB if args.smoke else 1000 * MB
    (big / "f").mkdir(parents=True)
    # Sparse after its first MB: the bytes still cross the wire and reach the store.
    write_pdf(big / "f" / "big.pdf", size, random_from=1024 * 1024)
    with file_server(big, work) as srv:
        posts = link_posts(work / "big-posts", [f"http://127.0.0.1:{srv['port']}/f/big.pdf"])
        state = work / "big-state"
        run = checked(
            archiver(
                "crawl",
                str(posts),
                "--db",
                str(state / "a.db"),
                "--store",
                str(state / "store"),
                cwd=work,
            ),
            "archiver crawl (1 GB)",
        )
    shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(big, ignore_errors=True)
    rows.append(
        Row(
            f"memory: archive one {size / MB:,.0f} MB file",
            f"peak RSS {run.maxrss_mb:.0f} MB",
            f"{size / MB / run.wall:,.0f} MB/s",
            "",
            "< 150 MB",
            None if args.smoke else run.maxrss_mb < 150,
        )
    )
    n = 500 if args.smoke else 100_000
    with latency_server(0.0) as one, latency_server(0.0, "127.0.0.2") as two:
        urls = asset_urls(int(one["port"]), n // 2) + asset_urls(
            int(two["port"]), n // 2, "127.0.0.2"
        )
        posts = link_posts(work / "many-posts", urls)
        state = work / "many-state"
        run = run_check(work, posts, state, 16, "archiver check (100,000)")
    rows.append(
        Row(
            f"memory: check {n:,} URLs (2 hosts, no latency)",
            f"peak RSS {run.maxrss_mb:.0f} MB",
            f"{n / run.wall:,.0f} URL/s, {run.cpu / n * 1000:.2f} ms CPU/URL",
            "",
            "< 150 MB",
            None if args.smoke else run.maxrss_mb < 150,
        )
    )
    return rows, state


def bench_extract(work: Path, args: argparse.Namespace) -> list[Row]:
    from archiver.sources import folders as collect

    n = 200 if args.smoke else 10_000
    root = corpus(work / "corpus", n)
    started = time.perf_counter()
    posts = refs = 0
    for post in collect.collect(root, source="bench"):
        posts += 1
        refs += len(post.references)
    took = time.perf_counter() - started
    shutil.rmtree(root, ignore_errors=True)
    return [
        Row(
            f"extraction: {n:,} generated posts",
            f"{posts / took:,.0f} posts/s ({took:.2f} s)",
            f"{refs:,} references found",
        )
    ]


def bench_report(work: Path, args: argparse.Namespace, state: Path | None) -> list[Row]:
    if state is None:
        return [Row("report", "skipped: needs the memory benchmark's database")]
    conn = sqlite3.connect(state / "a.db")
    n = conn.execute("SELECT COUNT(*) FROM urls").fetchone()[0]
    conn.close()
    rows = []
    for fmt in ("json", "html"):
        out = work / f"report.{fmt}"
        run = checked(
            archiver(
                "report",
                "--db",
                str(state / "a.db"),
                "--store",
                str(state / "store"),
                "--format",
                fmt,
                "--state",
                "all",
                "-o",
                str(out),
                cwd=work,
            ),
            f"archiver report --format {fmt}",
        )
        rows.append(
            Row(
                f"report: {fmt.upper()} for {n:,} URLs",
                f"{run.wall:.2f} s, {out.stat().st_size / MB:,.1f} MB",
                f"peak RSS {run.maxrss_mb:.0f} MB",
                "",
                "< 5 s",
                None if args.smoke else run.wall < 5,
            )
        )
    return rows


# -- the table ------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = Row("benchmark", "figure", "compared with", "ratio", "target")
    cells = [
        [
            r.name,
            r.figure,
            r.against,
            r.ratio,
            r.target,
            {None: "", True: "met", False: "MISSED"}[r.ok],
        ]
        for r in [head, *rows]
    ]
    cells[0][5] = ""
    widths = [max(len(c[i]) for c in cells) for i in range(6)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(6)).rstrip() for c in cells]
    lines.insert(1, "-" * len(max(lines, key=len)))
    return "\n".join(lines)


def need_disk(path: Path, smoke: bool, only: set[str]) -> None:
    need = 0.1e9 if smoke else 0.2e9 + ("archive" in only) * 1.6e9 + ("memory" in only) * 2.2e9
    free = shutil.disk_usage(path).free
    if free < need:
        raise SystemExit(
            f"benchmark: {free / 1e9:.1f} GB free in {path}, need {need / 1e9:.1f} GB;"
            " free some space or pass --workdir on a larger disk"
        )
    print(f"disk: {free / 1e9:.1f} GB free in {path}, this run needs about {need / 1e9:.1f} GB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, no targets judged (CI)")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of {SECTIONS}")
    ap.add_argument("--latency", type=float, default=None, help="seconds per request (0.02)")
    ap.add_argument("--workdir", type=Path, default=None, help="temp files go under this folder")
    ap.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs behind each short figure's median (5; 1 with --smoke)",
    )
    args = ap.parse_args(argv)
    # Every server here is on loopback, which the address guard refuses by default; the
    # archiver processes started below inherit this.
    os.environ["ARCHIVER_ALLOW_ADDRESSES"] = "127.0.0.0/8,::1/128"
    if args.repeat is None:
        args.repeat = 1 if args.smoke else 5
    if args.latency is None:
        args.latency = 0.005 if args.smoke else 0.02
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if unknown := only - set(SECTIONS):
        ap.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {SECTIONS}")
    base = args.workdir or Path(tempfile.gettempdir())
    need_disk(base, args.smoke, only)
    from archiver.eventloop import loop_name

    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {platform.system()} {platform.release()}; archiver's event loop: {loop_name()}"
        " (ARCHIVER_EVENT_LOOP=asyncio for asyncio's own)"
    )
    compile_archiver()
    work = Path(tempfile.mkdtemp(prefix="archiver-bench-", dir=base))
    rows: list[Row] = []
    started = time.perf_counter()
    try:
        if "check" in only:
            rows += bench_check(work, args)
        if "http2" in only:
            rows += bench_http2(work, args)
        if "archive" in only:
            rows += bench_archive(work, args)
        if "assets" in only:
            rows += bench_assets(work, args)
        state = None
        if "memory" in only:
            more, state = bench_memory(work, args)
            rows += more
        if "extract" in only:
            rows += bench_extract(work, args)
        if "report" in only:
            rows += bench_report(work, args, state)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    took = time.perf_counter() - started
    mode = "smoke run: sizes are tiny and no target is judged" if args.smoke else "full run"
    print(
        f"\n{mode}, {took:.0f} s; archiver peak RSS of this process tree: "
        f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB\n"
    )
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
