"""Bounded work per response: decoded size, content-coding layers, slow heads and trickles.

Bombs are generated on the fly (1 MiB of zeros deflates to about 1 KB, and a full flush
makes every such block the same bytes), so a test serves a gigabyte without holding it.
Slow servers are raw sockets that pace their own bytes; the outcome (state, error_class,
what reached the store) is asserted, never how fast this machine was.
"""

from __future__ import annotations

import gzip
import socket
import sqlite3
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import media
import pytest
from cli_process import run_cli
from hostile_server import HostileServer, raw
from server import LoopbackServer, Reply

from archiver.clock import FakeClock
from archiver.config import (
    MAX_CONCURRENCY,
    MAX_PER_HOST,
    Config,
    FetchConfig,
    Source,
    load_config,
    override_fetch,
)
from archiver.errors import ConfigError
from archiver.net.fetch import (
    _DECODE_STEP,
    Fetcher,
    FetchResult,
    FetchSettings,
    PageResult,
    _Decoder,
    _Pace,
)
from archiver.run.crawl import crawl
from archiver.sources.sitemap import gunzip
from archiver.store import BlobWriter, Store

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024
PDF_HEAD = b"%PDF-1.7\n"
# Small caps and a bomb that expands far past them: the point is "stops at the cap".
CAP = 2 * MIB
QUICK = FetchSettings(retries=0, connect_timeout=5.0, read_timeout=10.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def bomb(decoded_mib: int, *, head: bytes = PDF_HEAD) -> Iterator[bytes]:
    """A gzip stream of ``head`` then ``decoded_mib`` MiB of zeros (no trailer: nobody
    should read that far), in writes of about 64 KB, so that one read of the client
    can hold 64 MiB of zeros (a decoder that expands a whole read at once shows)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * MIB
    yield deflater.compress(head + block) + deflater.flush(zlib.Z_FULL_FLUSH)
    repeat = deflater.compress(block) + deflater.flush(zlib.Z_FULL_FLUSH)
    left = decoded_mib - 1
    while left > 0:
        yield repeat * min(64, left)
        left -= 64


def bomb_reply(decoded_mib: int, coding: str = "gzip") -> Reply:
    return Reply(
        chunks=lambda: bomb(decoded_mib),
        length=0,
        until_close=True,
        content_type="application/pdf",
        headers=[("Content-Encoding", coding)],
    )


class RecordingStore(Store):
    """A real store that remembers how many bytes each temp file ever held."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.written: list[int] = []

    def writer(self) -> BlobWriter:
        store = self

        class Recording(BlobWriter):
            def abort(self) -> None:
                store.written.append(self.size)
                super().abort()

        return Recording(self)


async def fetch_peak(
    settings: FetchSettings, url: str, *, store: Store | None = None, **kwargs: object
) -> tuple[FetchResult, int]:
    """The result of fetching ``url`` and the peak of Python memory while it ran."""
    tracemalloc.start()
    try:
        async with Fetcher(settings, store=store, clock=FakeClock()) as fetcher:
            result = await fetcher.fetch(url, **kwargs)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


# --- decoded size ---------------------------------------------------------------------------


async def test_a_gzip_bomb_stops_at_the_decoded_cap_with_flat_memory(
    server: LoopbackServer, tmp_path: Path
) -> None:
    url = server.route("/bomb.pdf", bomb_reply(1024))  # 1 GiB decoded, about 1 MB sent
    store = RecordingStore(tmp_path / "store")
    settings = FetchSettings(retries=0, max_size=CAP)
    r, peak = await fetch_peak(settings, url, store=store, expect="pdf")
    assert (r.state, r.error_class) == ("error", "too-large")
    assert r.error == f"larger than the size cap of {CAP} bytes"
    assert peak < 16 * MIB, f"peak {peak} bytes"
    assert store.written and max(store.written) <= CAP  # the temp file never held more
    assert list(store.tmp_dir.iterdir()) == []
    assert r.bytes_received < 256 * 1024  # of about 1 MB sent: a few compressed KB told


@pytest.mark.parametrize("coding", ["gzip, gzip", "deflate, gzip", "gzip,identity,x-gzip"])
async def test_stacked_content_codings_are_refused_before_any_body(
    server: LoopbackServer, tmp_path: Path, coding: str
) -> None:
    inner = b"".join(bomb(64))
    url = server.route(
        "/nested.pdf",
        Reply(
            body=gzip.compress(inner),
            content_type="application/pdf",
            headers=[("Content-Encoding", coding)],
        ),
    )
    store = RecordingStore(tmp_path / "store")
    r, peak = await fetch_peak(FetchSettings(retries=2), url, store=store, expect="pdf")
    assert (r.state, r.error_class, r.attempts) == ("error", "bad-encoding", 1)
    assert r.error is not None and r.error.startswith("content codings stacked (")
    assert store.written == [] and peak < 4 * MIB
    probe, _ = await fetch_peak(FetchSettings(retries=0), url, expect="pdf", probe=True)
    assert (probe.state, probe.error_class) == ("error", "bad-encoding")


async def test_a_page_bomb_stops_at_max_page_size(server: LoopbackServer) -> None:
    url = server.route("/sitemap.xml", bomb_reply(1024))
    settings = FetchSettings(retries=0, max_page_size=CAP)
    tracemalloc.start()
    try:
        async with Fetcher(settings, clock=FakeClock()) as fetcher:
            page: PageResult = await fetcher.fetch_page(url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (page.result.state, page.result.error_class, page.body) == ("error", "too-large", b"")
    assert peak < 16 * MIB, f"peak {peak} bytes"


async def test_a_probe_of_a_bomb_decodes_only_the_head(server: LoopbackServer) -> None:
    # A server that ignores Range and gzips 1 GiB: the verdict needs a few KB of it.
    url = server.route("/bomb.pdf", bomb_reply(1024))
    r, peak = await fetch_peak(FetchSettings(retries=0), url, expect="pdf", probe=True)
    assert (r.state, r.content_type) == ("ok", "application/pdf")
    assert peak < 8 * MIB, f"peak {peak} bytes"
    assert r.bytes_received < 256 * 1024


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as RFC 9110 says
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send
        ("identity", lambda b: b),
    ],
)
async def test_one_coding_is_undone_and_the_decoded_bytes_kept(
    server: LoopbackServer, tmp_path: Path, coding: str, encode: object
) -> None:
    body = media.deck("slides", MIB)  # several decode steps
    url = server.route(
        "/one.pdf",
        Reply(
            body=encode(body),
            content_type="application/pdf",  # type: ignore[operator]
            headers=[("Content-Encoding", coding)],
        ),
    )
    store = Store(tmp_path / "store")
    async with Fetcher(QUICK, store=store, clock=FakeClock()) as fetcher:
        r, blob = await fetcher.archive(url, expect="pdf")
    assert (r.state, r.size) == ("ok", len(body))
    assert blob is not None and blob.commit().path.read_bytes() == body


async def test_a_body_decoded_to_exactly_the_cap_is_kept(
    server: LoopbackServer, tmp_path: Path
) -> None:
    body = media.deck("slides", CAP)
    url = server.route(
        "/edge.pdf",
        Reply(
            body=gzip.compress(body),
            content_type="application/pdf",
            headers=[("Content-Encoding", "gzip")],
        ),
    )
    r, _ = await fetch_peak(FetchSettings(retries=0, max_size=CAP), url, expect="pdf")
    assert (r.state, r.size) == ("ok", CAP)


async def test_a_damaged_gzip_body_is_an_error_and_leaves_no_temp_file(
    server: LoopbackServer, tmp_path: Path
) -> None:
    packed = gzip.compress(PDF_HEAD + b"x" * 100_000)
    damaged = packed[:20] + bytes(b ^ 0x5A for b in packed[20:200]) + packed[200:]
    url = server.route(
        "/bad.pdf",
        Reply(body=damaged, content_type="application/pdf", headers=[("Content-Encoding", "gzip")]),
    )
    store = RecordingStore(tmp_path / "store")
    r, _ = await fetch_peak(QUICK, url, store=store, expect="pdf")
    assert (r.state, r.error_class) == ("error", "bad-encoding")
    assert r.error is not None and r.error.startswith("damaged gzip body: ")
    assert list(store.tmp_dir.iterdir()) == []


def test_a_gzipped_sitemap_unpacks_within_its_cap() -> None:
    packed = b"".join(bomb(256, head=b"<urlset>"))  # 256 MiB inside a 260 KB file
    tracemalloc.start()
    try:
        assert gunzip(packed, CAP) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * CAP, f"peak {peak} bytes"


# --- slow servers ---------------------------------------------------------------------------


def dribble(data: bytes, every: float) -> object:
    """A handler that sends ``data`` one byte every ``every`` seconds, then closes."""

    def handler(sock: socket.socket, head: bytes) -> bool:
        for i in range(len(data)):
            sock.sendall(data[i : i + 1])
            time.sleep(every)
        return False

    return handler


def paced(parts: list[bytes], every: float) -> object:
    """A handler that sends each of ``parts`` ``every`` seconds apart, then closes."""

    def handler(sock: socket.socket, head: bytes) -> bool:
        for part in parts:
            sock.sendall(part)
            time.sleep(every)
        return False

    return handler


async def timed_fetch(settings: FetchSettings, url: str, **kwargs: object) -> FetchResult:
    started = time.monotonic()
    async with Fetcher(settings, clock=FakeClock()) as fetcher:
        r = await fetcher.fetch(url, **kwargs)  # type: ignore[arg-type]
    # Not a speed test: only "bounded, not forever" (the trickles below would take minutes).
    assert time.monotonic() - started < 20
    return r


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nContent-Length: 100000\r\n\r\n"


async def test_a_head_sent_one_byte_at_a_time_hits_the_total_timeout() -> None:
    body = media.deck("x")
    fine = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with HostileServer() as srv:
        url = srv.route("/slow.pdf", dribble(HEAD, 0.05))  # 4 s for the head alone
        next_url = srv.route("/next.pdf", raw(fine))
        settings = FetchSettings(retries=0, read_timeout=10.0, total_timeout=0.3)
        started = time.monotonic()
        async with Fetcher(settings, clock=FakeClock()) as fetcher:
            r = await fetcher.fetch(url, expect="pdf")
            after = await fetcher.fetch(next_url, expect="pdf")
        assert time.monotonic() - started < 20  # bounded, not a speed test
        connections = srv.seen.connections
    assert (r.state, r.error_class, r.http_status) == ("error", "timeout", None)
    assert r.error == "no response within the total_timeout of 0.3 s"
    assert r.transient
    # The abandoned connection is never reused: the next request gets its own.
    assert (after.state, after.size, connections) == ("ok", len(body), 2)


async def test_slow_informational_responses_count_against_the_total_timeout() -> None:
    with HostileServer() as srv:
        # Two only (well within any cap on their number): it is their pace that fails.
        continues = [b"HTTP/1.1 100 Continue\r\n\r\n"] * 2 + [HEAD]
        url = srv.route("/slow.pdf", paced(continues, 0.25))
        settings = FetchSettings(retries=0, read_timeout=10.0, total_timeout=0.3)
        r = await timed_fetch(settings, url, expect="pdf", probe=True)
    assert (r.state, r.error_class) == ("error", "timeout")
    assert r.error == "no response within the total_timeout of 0.3 s"


@pytest.mark.parametrize("probe", [False, True])
async def test_a_body_trickle_is_cut_by_the_minimum_rate(tmp_path: Path, probe: bool) -> None:
    store = RecordingStore(tmp_path / "store")
    with HostileServer() as srv:
        url = srv.route("/slow.pdf", paced([HEAD + PDF_HEAD] + [b"x"] * 400, 0.02))
        settings = FetchSettings(
            retries=0, read_timeout=10.0, min_rate=1000.0, rate_window=0.2, total_timeout=5.0
        )
        async with Fetcher(settings, store=store, clock=FakeClock()) as fetcher:
            started = time.monotonic()
            r = await fetcher.fetch(url, expect="any", probe=probe)
            assert time.monotonic() - started < 20  # bounded; the trickle alone takes 8 s
    assert (r.state, r.error_class, r.http_status) == ("error", "timeout", 200)
    assert r.error == "body slower than the min_rate of 1000 bytes/s over 0.2 s"
    assert list(store.tmp_dir.iterdir()) == []


async def test_a_server_that_stops_sending_is_cut_by_the_minimum_rate() -> None:
    # Silence, not a trickle: no chunk arrives to check the rate on, the deadline does it.
    with HostileServer() as srv:
        url = srv.route("/stall.pdf", paced([HEAD + PDF_HEAD + b"x" * 100, b"y"], 3.0))
        settings = FetchSettings(retries=0, read_timeout=10.0, min_rate=1000.0, rate_window=0.2)
        r = await timed_fetch(settings, url, expect="pdf")
    assert (r.state, r.error_class) == ("error", "timeout")
    assert r.error is not None and r.error.startswith("body slower than the min_rate")


async def test_a_body_with_pauses_shorter_than_the_window_is_kept() -> None:
    body = media.deck("x", 3 * 4096)
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    parts = [head + body[:4096], body[4096:8192], body[8192:]]
    with HostileServer() as srv:
        url = srv.route("/bursty.pdf", paced(parts, 0.1))
        settings = FetchSettings(retries=0, min_rate=1000.0, rate_window=2.0)
        r = await timed_fetch(settings, url, expect="pdf")
    assert (r.state, r.size) == ("ok", len(body))


def test_pace_of_a_slow_honest_link_is_never_missed() -> None:
    # 1.5 KiB a second, in 512-byte reads, for an hour: above a 1 KiB/s minimum throughout.
    pace = _Pace(1024.0, 30.0, now=0.0)
    t = 0.0
    for _ in range(3 * 3600):
        t += 1 / 3
        pace.feed(512, t)
        assert not pace.missed(t)
    assert len(pace._buckets) <= 18  # a sixteenth of the window each, no more


def test_pace_of_a_trickle_is_missed_when_its_window_ends() -> None:
    pace = _Pace(1024.0, 30.0, now=0.0)
    t = 0.0
    while not pace.missed(t):
        t += 2.0
        pace.feed(1, t)  # one byte every 2 s
    assert t == 30.0  # the first moment a whole window has passed with too few bytes


def test_pace_deadline_follows_the_last_bytes_that_were_enough() -> None:
    pace = _Pace(100.0, 10.0, now=0.0)
    assert pace.deadline == 10.0  # nothing yet: 1000 bytes are due by the first window's end
    pace.feed(5000, 4.0)
    assert pace.deadline == 14.0  # those bytes carry the rate until they leave the window
    assert not pace.missed(13.9) and pace.missed(14.0)
    pace.feed(10, 13.0)
    assert pace.deadline == 14.0  # ten bytes are not a window's worth
    off = _Pace(0.0, 10.0, now=0.0)
    assert not off.missed(1e9)  # min_rate 0: no minimum


async def test_a_crawl_goes_on_past_a_slow_server_and_releases_the_lock(
    tmp_path: Path, server: LoopbackServer
) -> None:
    pdf = server.route("/deck.pdf", Reply(body=media.deck("x"), content_type="application/pdf"))
    with HostileServer() as srv:
        slow = srv.route("/slow.pdf", dribble(HEAD, 0.05))
        posts = tmp_path / "posts"
        posts.mkdir()
        (posts / "a.md").write_text(f"[a]({slow})\n[b]({pdf})\n", encoding="utf-8")
        (tmp_path / "config.toml").write_text(
            'db = "state/archive.db"\nstore = "state/store"\n[[sources]]\npath = "posts"\n'
            "[fetch]\nretries = 0\ntotal_timeout = 0.3\nread_timeout = 10.0\n",
            encoding="utf-8",
        )
        first = run_cli("crawl", "--fail-on", "none", cwd=tmp_path)
        again = run_cli("crawl", "--fail-on", "none", "--all", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr  # not 75: the first run let go of the lock
    con = sqlite3.connect(tmp_path / "state" / "archive.db")
    try:
        rows = dict(con.execute("SELECT url, error_class FROM urls").fetchall())
    finally:
        con.close()
    assert rows == {slow: "timeout", pdf: None}


# --- bounded config values ------------------------------------------------------------------


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


FLOAT_KEYS = [
    "fetch.connect_timeout",
    "fetch.read_timeout",
    "fetch.total_timeout",
    "fetch.min_rate",
    "fetch.retry_after_cap",
    "recheck_after",
    "confirm_after",
]


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize(("literal", "shown"), [("nan", "nan"), ("inf", "inf"), ("'inf'", "'inf'")])
def test_nan_and_infinity_are_refused_for_every_float_key(
    tmp_path: Path, key: str, literal: str, shown: str
) -> None:
    table, _, name = key.rpartition(".")
    text = f"[{table}]\n{name} = {literal}\n" if table else f"{name} = {literal}\n"
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    if literal.startswith("'") and table:  # a string is no number for a fetch key
        assert str(info.value) == f"config key '{key}' must be a number, got 'inf'"
    else:
        assert str(info.value) == f"config key '{key}' must be a finite number, got {shown}"
    assert info.value.exit_code == 2


def test_new_keys_load_and_reach_the_fetcher(tmp_path: Path) -> None:
    cfg = load(tmp_path, "[fetch]\ntotal_timeout = 90\nmin_rate = 512.5\n")
    assert (cfg.fetch.total_timeout, cfg.fetch.min_rate) == (90.0, 512.5)
    settings = cfg.fetch
    assert (settings.total_timeout, settings.min_rate) == (90.0, 512.5)
    defaults = load(tmp_path, "").fetch
    assert (defaults.total_timeout, defaults.min_rate, defaults.rate_window) == (60.0, 1024.0, 30.0)


@pytest.mark.parametrize(
    ("key", "cap"), [("concurrency", MAX_CONCURRENCY), ("per_host", MAX_PER_HOST)]
)
def test_concurrency_and_per_host_are_capped(tmp_path: Path, key: str, cap: int) -> None:
    assert (MAX_CONCURRENCY, MAX_PER_HOST) == (1024, 256)
    assert getattr(load(tmp_path, f"[fetch]\n{key} = {cap}\n").fetch, key) == cap
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f"[fetch]\n{key} = {cap + 1}\n")
    assert str(info.value) == f"config key 'fetch.{key}' must be at most {cap}, got {cap + 1}"
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--concurrency", "1025"), "option --concurrency must be at most 1024, got 1025"),
        (("--concurrency", "0"), "option --concurrency must be greater than 0, got 0"),
        (("--per-host", "257"), "option --per-host must be at most 256, got 257"),
        (("--per-host", "-1"), "option --per-host must be greater than 0, got -1"),
        (("--timeout", "nan"), "option --timeout must be a finite number, got nan"),
        (("--timeout", "inf"), "option --timeout must be a finite number, got inf"),
        (("--timeout", "0"), "option --timeout must be greater than 0, got 0.0"),
        (("--wait", "nan"), "option --wait must be a finite number, got nan"),
    ],
)
def test_cli_overrides_are_bounded_like_their_keys(
    tmp_path: Path, options: tuple[str, str], message: str
) -> None:
    (tmp_path / "posts").mkdir()
    done = run_cli("crawl", "posts", *options, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (2, f"archiver: {message}\n")


def test_cli_overrides_within_bounds_apply() -> None:
    fetch = override_fetch(FetchConfig(), concurrency=1024, per_host=256, timeout=2.5)
    assert (fetch.concurrency, fetch.per_host) == (1024, 256)
    assert (fetch.connect_timeout, fetch.read_timeout) == (2.5, 2.5)
    assert override_fetch(FetchConfig()) == FetchConfig()


@pytest.mark.parametrize(
    "packed", [zlib.compress(PDF_HEAD * 500), zlib.compress(PDF_HEAD * 500)[2:-4]]
)
def test_deflate_with_or_without_its_wrapper_decodes_a_byte_at_a_time(packed: bytes) -> None:
    decoder = _Decoder("deflate")
    out = b"".join(piece for i in range(len(packed)) for piece in decoder.decode(packed[i : i + 1]))
    assert out == PDF_HEAD * 500


def test_one_read_of_a_bomb_decodes_in_bounded_steps_and_only_on_demand() -> None:
    chunk = b"".join(bomb(64))  # about 64 KB that inflate to 64 MiB
    pieces = _Decoder("gzip").decode(chunk)
    taken = [next(pieces) for _ in range(8)]
    assert all(len(p) <= _DECODE_STEP for p in taken) and sum(map(len, taken)) == 8 * _DECODE_STEP
    assert sum(len(p) for p in _Decoder("gzip").decode(chunk)) == len(PDF_HEAD) + 64 * MIB


@pytest.mark.parametrize("inner", [True, False])
def test_a_site_whose_sitemap_is_a_bomb_costs_no_more_than_its_cap(
    tmp_path: Path, server: LoopbackServer, inner: bool
) -> None:
    # inner: a .xml.gz bomb of about 1 MB, sent gzipped once more (a decoded page within
    # the cap, whose own gzip layer discovery unpacks); else a gzip-coded 1 GiB sitemap.
    packed = b"".join(bomb(1024, head=b'<?xml version="1.0"?><urlset>'))
    reply = (
        Reply(
            body=gzip.compress(packed),
            content_type="application/gzip",
            headers=[("Content-Encoding", "gzip")],
        )
        if inner
        else bomb_reply(1024)
    )
    source = server.route("/sitemap.xml.gz", reply)
    cfg = Config(
        db=tmp_path / "state" / "archive.db",
        store=tmp_path / "state" / "store",
        fetch=FetchConfig(retries=0, max_page_size=CAP),
    )
    warnings: list[str] = []
    tracemalloc.start()
    try:
        crawl(cfg, [Source(url=source, kind="sitemap")], clock=FakeClock(), warn=warnings.append)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * MIB, f"peak {peak} bytes"
    assert len(warnings) == 1 and warnings[0].startswith(f"{source}: ")
    reason = "a damaged or oversized gzip file" if inner else f"max_page_size of {CAP} bytes"
    assert reason in warnings[0]
