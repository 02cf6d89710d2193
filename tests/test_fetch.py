"""The fetcher against a real HTTP server on loopback; backoff runs on a fake clock."""

from __future__ import annotations

import gzip
import hashlib
import socket
import ssl
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import media
import pytest
from fetching import fetch_all
from server import LoopbackServer, Reply, Request, conditional, http_date

from archiver.clock import FakeClock
from archiver.net.fetch import (
    USER_AGENT,
    Fetched,
    Fetcher,
    FetchResult,
    FetchSettings,
    HostMapTransport,
    should_retry,
)
from archiver.net.localfiles import LocalRoots
from archiver.run.reachability import Reachability
from archiver.store import Store

pytestmark = pytest.mark.anyio

PDF = media.deck("slides", 16_000)
PNG = media.picture("PNG", 1, side=26)  # ~2 KB
HTML = b"<!DOCTYPE html><html><head><title>Not found</title></head><body>Gone</body></html>"
FAST = FetchSettings(retries=2, connect_timeout=2.0, read_timeout=5.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def temp_files(store: Store) -> list[Path]:
    return list(store.tmp_dir.iterdir())


class Got:
    """An archiving fetch as the tests read it: the outcome's fields, and the blob beside."""

    def __init__(self, fetched: Fetched) -> None:
        self.outcome, self.blob = fetched

    def __getattr__(self, name: str) -> Any:
        return getattr(self.outcome, name)


async def fetch(
    url: str,
    clock: FakeClock,
    settings: FetchSettings = FAST,
    store: Store | None = None,
    **kwargs: Any,
) -> Got:
    """``Fetcher.archive`` (or a probe, with ``probe=True``) of one URL."""
    async with Fetcher(settings, store=store, clock=clock) as fetcher:
        if kwargs.pop("probe", False):
            return Got(Fetched(await fetcher.fetch(url, probe=True, **kwargs)))
        return Got(await fetcher.archive(url, **kwargs))


def free_port() -> int:
    """A port nobody listens on (bound, then released), so connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- ok ------------------------------------------------------------------------------------


async def test_ok_pdf_is_finished_in_the_store_but_not_committed(
    server: LoopbackServer, store: Store, fake_clock: FakeClock
) -> None:
    url = server.route("/deck.pdf", Reply(body=PDF, content_type="text/html; charset=utf-8"))
    r = await fetch(url, fake_clock, store=store, expect="pdf")

    assert (r.state, r.http_status, r.error, r.error_class) == ("ok", 200, None, None)
    assert r.sha256 == hashlib.sha256(PDF).hexdigest()
    assert r.size == r.bytes_received == len(PDF)
    assert r.content_type == "application/pdf"  # sniffed: the server's type was a lie
    assert r.status_line == "HTTP/1.1 200 OK"
    assert ("Content-Length", str(len(PDF))) in r.headers
    assert r.final_url == url and r.attempts == 1
    assert not (r.not_modified or r.unreachable or r.transient)
    assert r.blob is not None and r.blob.tmp_path.exists()  # fsynced, still a temp file
    assert not store.has(r.sha256)
    stored = r.blob.commit()
    assert store.hash_file(r.sha256) == r.sha256 and stored.size == len(PDF)
    assert temp_files(store) == []


async def test_every_request_says_identity_and_who_we_are(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    url = server.route("/a.png", Reply(body=PNG, content_type="image/png"))
    await fetch(url, fake_clock)
    headers = server.stats("/a.png").requests[0].headers
    assert headers["accept-encoding"] == "identity"
    assert headers["user-agent"] == USER_AGENT
    assert USER_AGENT.startswith("archiver/0.") and "keeps event slides" in USER_AGENT


async def test_a_cookie_set_on_a_redirect_goes_back_with_the_next_request(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    # Some CDNs answer a first visit with a redirect that sets a cookie, and serve the
    # file only to a request that carries it back.
    def gated(req: Request) -> Reply:
        if "token=ok" in req.headers.get("cookie", ""):
            return Reply(body=PDF, content_type="application/pdf")
        return Reply(status=403, body=HTML, content_type="text/html")

    server.route("/real.pdf", gated)
    url = server.route(
        "/deck.pdf",
        Reply(status=302, headers=[("Location", "/real.pdf"), ("Set-Cookie", "token=ok; Path=/")]),
    )
    r = await fetch(url, fake_clock, expect="pdf")
    assert r.state == "ok" and r.sha256 == hashlib.sha256(PDF).hexdigest()
    assert "cookie" not in server.stats("/deck.pdf").requests[0].headers


async def test_a_body_compressed_against_our_identity_request_is_stored_decoded(
    server: LoopbackServer, fake_clock: FakeClock, store: Store
) -> None:
    # We ask for identity; a server that gzips anyway still means the PDF inside.
    url = server.route(
        "/gz.pdf",
        Reply(
            body=gzip.compress(PDF),
            content_type="application/pdf",
            headers=[("Content-Encoding", "gzip")],
        ),
    )
    r = await fetch(url, fake_clock, store=store, expect="pdf")
    assert r.state == "ok" and r.sha256 == hashlib.sha256(PDF).hexdigest()
    probe = await fetch(url, fake_clock, expect="pdf", probe=True)
    assert probe.state == "ok" and probe.content_type == "application/pdf"


async def test_without_a_store_the_body_is_only_hashed(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    url = server.route("/img", Reply(body=PNG, content_type="application/octet-stream"))
    r = await fetch(url, fake_clock, expect="image")
    assert (r.state, r.blob, r.content_type) == ("ok", None, "image/png")
    assert r.sha256 == hashlib.sha256(PNG).hexdigest() and r.size == len(PNG)


async def test_content_that_changes_between_requests(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    v2 = PDF + b"% revised\n"
    url = server.route("/deck.pdf", Reply(body=PDF), Reply(body=v2))
    first, second = await fetch(url, fake_clock), await fetch(url, fake_clock)
    assert first.sha256 == hashlib.sha256(PDF).hexdigest()
    assert second.sha256 == hashlib.sha256(v2).hexdigest()


# --- dead and not retried ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "line"),
    [(404, "HTTP 404 Not Found"), (410, "HTTP 410 Gone"), (403, "HTTP 403 Forbidden")],
)
async def test_permanent_4xx_is_dead_and_not_retried(
    server: LoopbackServer, fake_clock: FakeClock, status: int, line: str
) -> None:
    url = server.route("/x.pdf", Reply(status=status, body=b"no", content_type="text/plain"))
    r = await fetch(url, fake_clock)
    assert (r.state, r.http_status, r.error, r.error_class) == (
        "dead",
        status,
        line,
        f"http-{status}",
    )
    assert (r.attempts, r.transient, r.unreachable) == (1, False, False)
    assert server.stats("/x.pdf").hits == 1 and fake_clock.sleeps == []


# --- retries -------------------------------------------------------------------------------


async def test_503_503_200_ends_ok_after_backoff(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    url = server.route("/x.pdf", Reply(status=503), Reply(status=503), Reply(body=PDF))
    r = await fetch(url, fake_clock, FetchSettings(retries=3, backoff_base=0.5))
    assert (r.state, r.attempts, r.transient) == ("ok", 3, False)
    assert server.stats("/x.pdf").hits == 3
    first, second = fake_clock.sleeps
    assert 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0  # exponential, with jitter


async def test_backoff_is_capped(server: LoopbackServer, fake_clock: FakeClock) -> None:
    url = server.route("/x.pdf", Reply(status=500))
    settings = FetchSettings(retries=6, backoff_base=1.0, backoff_max=4.0)
    r = await fetch(url, fake_clock, settings)
    assert (r.state, r.error_class, r.attempts) == ("error", "http-500", 7)
    assert r.transient and r.error == "HTTP 500 Internal Server Error"
    assert all(s <= 4.0 for s in fake_clock.sleeps) and fake_clock.sleeps[-1] >= 2.0


async def test_retry_after_seconds(server: LoopbackServer, fake_clock: FakeClock) -> None:
    url = server.route("/x.png", Reply(status=429, headers=[("Retry-After", "7")]), Reply(body=PNG))
    r = await fetch(url, fake_clock)
    assert (r.state, r.attempts) == ("ok", 2)
    assert fake_clock.sleeps == [7.0]


async def test_retry_after_http_date(server: LoopbackServer, fake_clock: FakeClock) -> None:
    when = http_date(fake_clock.now() + timedelta(seconds=120))
    url = server.route(
        "/x.png", Reply(status=503, headers=[("Retry-After", when)]), Reply(body=PNG)
    )
    r = await fetch(url, fake_clock)
    assert r.state == "ok"
    assert fake_clock.sleeps == [120.0]


async def test_retry_after_is_capped_and_retries_run_out(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    url = server.route("/x.png", Reply(status=429, headers=[("Retry-After", "86400")]))
    settings = FetchSettings(retries=2, retry_after_cap=60.0)
    r = await fetch(url, fake_clock, settings)
    assert (r.state, r.http_status, r.error_class) == ("error", 429, "http-429")
    assert r.error == "HTTP 429 Too Many Requests"
    assert (r.attempts, r.transient) == (3, True)
    assert fake_clock.sleeps == [60.0, 60.0]


async def test_refused_is_error_unreachable_and_retried(fake_clock: FakeClock) -> None:
    r = await fetch(f"http://127.0.0.1:{free_port()}/x.pdf", fake_clock)
    assert (r.state, r.error_class, r.error) == ("error", "refused", "Connection refused")
    assert (r.unreachable, r.transient, r.attempts, r.http_status) == (True, True, 3, None)
    assert len(fake_clock.sleeps) == 2


# --- redirects -----------------------------------------------------------------------------


async def test_redirects_across_hosts_end_ok(
    server: LoopbackServer, server2: LoopbackServer, fake_clock: FakeClock
) -> None:
    final = server2.route("/real/deck.pdf", Reply(body=PDF))
    server.route("/b", Reply.redirect(final, status=301))
    url = server.route("/a", Reply.redirect("/b", status=307))
    r = await fetch(url, fake_clock, expect="pdf")
    assert (r.state, r.url, r.final_url, r.http_status) == ("ok", url, final, 200)


async def test_a_chain_of_max_redirects_is_followed(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    server.route("/deck.pdf", Reply(body=PDF))
    url = server.redirect_chain("/c", 10, "/deck.pdf")
    r = await fetch(url, fake_clock)
    assert (r.state, r.final_url) == ("ok", server.url("/deck.pdf"))


async def test_one_redirect_too_many_is_dead(server: LoopbackServer, fake_clock: FakeClock) -> None:
    server.route("/deck.pdf", Reply(body=PDF))
    url = server.redirect_chain("/c", 11, "/deck.pdf")
    r = await fetch(url, fake_clock)
    assert (r.state, r.error_class, r.error) == (
        "dead",
        "too-many-redirects",
        "more than 10 redirects",
    )
    assert server.stats("/deck.pdf").hits == 0 and r.attempts == 1


async def test_redirect_loop_is_dead(server: LoopbackServer, fake_clock: FakeClock) -> None:
    server.route("/loop/b", Reply.redirect("/loop/c"))
    server.route("/loop/c", Reply.redirect(server.url("/loop/a")))
    url = server.route("/loop/a", Reply.redirect("/loop/b"))
    r = await fetch(url, fake_clock)
    assert (r.state, r.error_class) == ("dead", "redirect-loop")
    assert r.error == f"redirect loop via {url}"
    assert server.stats("/loop/a").hits == 1 and r.attempts == 1


# --- invalid -------------------------------------------------------------------------------


async def test_html_for_a_pdf_is_a_soft_404_and_nothing_is_kept(
    server: LoopbackServer, store: Store, fake_clock: FakeClock
) -> None:
    url = server.route("/deck.pdf", Reply(body=HTML, content_type="application/pdf"))
    r = await fetch(url, fake_clock, store=store, expect="pdf")
    assert (r.state, r.error_class, r.http_status) == ("invalid", "soft-404", 200)
    assert r.error == "got an HTML page where a PDF was expected (soft 404)"
    assert (r.blob, r.sha256, r.attempts) == (None, None, 1)
    assert temp_files(store) == []


async def test_wrong_type_is_invalid(
    server: LoopbackServer, store: Store, fake_clock: FakeClock
) -> None:
    url = server.route("/deck.pdf", Reply(body=PNG, content_type="application/pdf"))
    r = await fetch(url, fake_clock, store=store, expect="pdf")
    assert (r.state, r.error_class, r.content_type) == ("invalid", "wrong-type", None)
    assert r.error == "got image/png where a PDF was expected"
    assert temp_files(store) == []


# --- broken transfers ----------------------------------------------------------------------


async def test_truncated_body_is_error_and_leaves_no_temp_file(
    server: LoopbackServer, store: Store, fake_clock: FakeClock
) -> None:
    url = server.route("/deck.pdf", Reply(body=PDF[:1000], length=len(PDF)))
    r = await fetch(url, fake_clock, store=store, expect="pdf")
    assert (r.state, r.error_class, r.transient) == ("error", "truncated", True)
    assert r.error == f"body truncated: got 1000 of {len(PDF)} bytes"
    assert r.attempts == 3 and server.stats("/deck.pdf").hits == 3
    assert r.bytes_received == 3000 == server.stats("/deck.pdf").bytes_sent
    assert (r.blob, r.sha256) == (None, None)
    assert temp_files(store) == []


async def test_reset_mid_body_is_error(
    server: LoopbackServer, store: Store, fake_clock: FakeClock
) -> None:
    url = server.route("/deck.pdf", Reply(body=PDF, cut_at=9000, cut="reset"))
    r = await fetch(url, fake_clock, store=store)
    assert (r.state, r.error_class, r.transient, r.unreachable) == ("error", "reset", True, False)
    assert r.error == "Connection reset by peer" and r.attempts == 3
    assert temp_files(store) == []


async def test_reset_before_any_response_is_error(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    url = server.route("/deck.pdf", Reply(reset=True), Reply(reset=True), Reply(body=PDF))
    r = await fetch(url, fake_clock)
    assert (r.state, r.attempts) == ("ok", 3)


async def test_read_timeout_is_error_not_unreachable(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    gate = server.gate()
    url = server.route("/slow.pdf", Reply(body=PDF, cut_at=100, cut="stall", hold=gate))
    r = await fetch(url, fake_clock, FetchSettings(retries=0, read_timeout=0.1))
    gate.set()
    assert (r.state, r.error_class, r.error) == (
        "error",
        "timeout",
        "timed out waiting for the server",
    )
    assert (r.transient, r.unreachable, r.attempts) == (True, False, 1)


# --- size cap ------------------------------------------------------------------------------


async def test_declared_size_over_the_cap_is_too_large_and_not_retried(
    server: LoopbackServer, store: Store, fake_clock: FakeClock
) -> None:
    url = server.route("/big.pdf", Reply(body=PDF))
    r = await fetch(url, fake_clock, FetchSettings(max_size=1000), store=store)
    assert (r.state, r.error_class, r.transient, r.attempts) == ("error", "too-large", False, 1)
    assert r.error == "larger than the size cap of 1000 bytes"
    assert r.bytes_received == 0 and temp_files(store) == []


async def test_undeclared_size_over_the_cap_stops_the_download(
    server: LoopbackServer, store: Store, fake_clock: FakeClock
) -> None:
    block = b"%PDF-1.7\n" + b"\0" * (64 * 1024)
    url = server.route("/big.pdf", Reply(chunks=lambda: [block] * 200, length=0, until_close=True))
    r = await fetch(url, fake_clock, FetchSettings(max_size=200_000), store=store)
    assert (r.state, r.error_class, server.stats("/big.pdf").hits) == ("error", "too-large", 1)
    assert 200_000 <= r.bytes_received < 2_000_000
    assert temp_files(store) == []


async def test_a_50_mb_body_streams_with_flat_memory(
    server: LoopbackServer, store: Store, fake_clock: FakeClock
) -> None:
    block = hashlib.sha512(b"seed").digest() * 1024  # 64 KiB, reused: no allocation per chunk
    count = 50 * 1024 * 1024 // len(block)

    def chunks() -> Iterator[bytes]:
        yield b"%PDF-1.7\n"
        for _ in range(count):
            yield block

    expected = hashlib.sha256()
    for chunk in chunks():
        expected.update(chunk)
    size = 9 + count * len(block)
    url = server.route("/huge.pdf", Reply(chunks=chunks, length=size))

    tracemalloc.start()
    try:
        r = await fetch(url, fake_clock, store=store, expect="pdf")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (r.state, r.size, r.sha256) == ("ok", size, expected.hexdigest())
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte body"
    assert r.blob is not None and r.blob.commit().path.stat().st_size == size


# --- concurrency ---------------------------------------------------------------------------


async def test_a_saturated_host_never_exceeds_its_limit_nor_slows_another(
    server: LoopbackServer, server2: LoopbackServer, fake_clock: FakeClock
) -> None:
    gate = server.gate()
    slow = [server.route(f"/s/{i}.png", Reply(body=PNG, hold=gate)) for i in range(10)]
    fast = [server2.route(f"/f/{i}.png", Reply(body=PNG)) for i in range(6)]
    # Fewer global slots than slow requests: taking a global slot before the host's would let
    # queued slow requests hold every global slot and starve host 2 until the gate opens.
    settings = FetchSettings(concurrency=6, per_host=4)
    fast_done = anyio.Event()
    seen: list[FetchResult] = []

    def on_result(r: FetchResult) -> None:
        seen.append(r)
        if sum(x.url in fast for x in seen) == len(fast):
            fast_done.set()

    async with Fetcher(settings, clock=fake_clock) as fetcher, anyio.create_task_group() as tg:
        tg.start_soon(fetch_all, fetcher, [(u, "image", None) for u in slow + fast], on_result)
        with anyio.fail_after(5):
            await fast_done.wait()
        assert await anyio.to_thread.run_sync(server.wait_for_in_flight, 4)
        assert server.in_flight == 4 and not any(r.url in slow for r in seen)
        gate.set()

    assert len(seen) == 16 and all(r.state == "ok" for r in seen)
    assert server.max_in_flight == 4
    assert server2.max_in_flight <= 4


async def test_fetches_run_concurrently_with_validators(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    lm = "Wed, 01 Jan 2025 00:00:00 GMT"
    url = server.route("/c.pdf", conditional(PDF, etag='"v1"', last_modified=lm))
    got: list[str] = []

    def on_result(r: FetchResult) -> None:
        got.append(r.state)

    async with Fetcher(FAST, clock=fake_clock) as fetcher:
        results = await fetch_all(
            fetcher,
            [(url, "pdf", {"If-None-Match": '"v1"'}), (server.url("/nope"), "any", None)],
            on_result,
        )
    assert sorted(got) == ["dead", "ok"] and len(results) == 2
    assert any(r.not_modified for r in results)


# --- conditional requests ------------------------------------------------------------------


async def test_304_with_validators_is_ok_and_moves_no_body(
    server: LoopbackServer, store: Store, fake_clock: FakeClock
) -> None:
    lm = "Wed, 01 Jan 2025 00:00:00 GMT"
    url = server.route("/deck.pdf", conditional(PDF, etag='"v1"', last_modified=lm))
    first = await fetch(url, fake_clock, store=store)
    assert (first.etag, first.last_modified) == ('"v1"', lm)
    assert first.blob is not None
    first.blob.abort()
    sent = server.stats("/deck.pdf").bytes_sent

    for validators in ({"If-None-Match": '"v1"'}, {"If-Modified-Since": lm}):
        r = await fetch(url, fake_clock, store=store, validators=validators)
        assert (r.state, r.http_status, r.not_modified) == ("ok", 304, True)
        assert (r.blob, r.sha256, r.size, r.bytes_received) == (None, None, None, 0)
        assert r.etag == '"v1"'
    assert server.stats("/deck.pdf").bytes_sent == sent
    sent_headers = [q.headers for q in server.stats("/deck.pdf").requests]
    assert sent_headers[1]["if-none-match"] == '"v1"'
    assert sent_headers[2]["if-modified-since"] == lm
    assert temp_files(store) == []


async def test_stale_validators_get_the_new_body(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    lm = "Wed, 01 Jan 2025 00:00:00 GMT"
    url = server.route("/deck.pdf", conditional(PDF, etag='"v2"', last_modified=lm))
    r = await fetch(url, fake_clock, validators={"If-None-Match": '"v1"'})
    assert (r.state, r.http_status, r.not_modified, r.etag) == ("ok", 200, False, '"v2"')


# --- unknown hosts and a network that is down ----------------------------------------------


async def test_host_map_resolves_names_and_keeps_the_host_header(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    server.route("/deck.pdf", Reply(body=PDF))
    transport = HostMapTransport({"Slides.Example": "127.0.0.1"})
    url = f"http://slides.example:{server.port}/deck.pdf"
    async with Fetcher(FAST, transport=transport, clock=fake_clock) as fetcher:
        r = await fetcher.fetch(url)
    assert (r.state, r.final_url) == ("ok", url)
    assert server.stats("/deck.pdf").requests[0].headers["host"] == f"slides.example:{server.port}"


async def test_unknown_host_is_dead_dns_unreachable_and_not_retried(
    fake_clock: FakeClock,
) -> None:
    async with Fetcher(FAST, transport=HostMapTransport({}), clock=fake_clock) as fetcher:
        r = await fetcher.fetch("https://gone.example/deck.pdf")
    assert (r.state, r.error_class, r.error) == ("dead", "dns", "Name or service not known")
    assert (r.unreachable, r.transient, r.attempts, r.http_status) == (True, False, 1, None)
    assert fake_clock.sleeps == []


async def test_network_down_when_no_host_answers(
    server: LoopbackServer, fake_clock: FakeClock
) -> None:
    server.route("/deck.pdf", Reply(body=PDF))
    offline = HostMapTransport({})  # every name fails, as on a machine without network
    urls = [("https://a.example/x.pdf", "pdf"), ("http://b.example/y.png", "image")]
    async with Fetcher(FAST, transport=offline, clock=fake_clock) as fetcher:
        down = await fetch_all(fetcher, urls)
    assert Reachability.of(down).down

    online = HostMapTransport({"a.example": "127.0.0.1"})
    mixed = [(f"http://a.example:{server.port}/deck.pdf", "pdf"), *urls[1:]]
    async with Fetcher(FAST, transport=online, clock=fake_clock) as fetcher:
        up = await fetch_all(fetcher, mixed)
    assert not Reachability.of(up).down  # one host answered: the other one is really dead


def result(url: str, **kwargs: Any) -> FetchResult:
    return FetchResult(url=url, state=kwargs.pop("state", "error"), **kwargs)


@pytest.mark.parametrize(
    ("results", "down"),
    [
        ([], False),
        ([result("file:///x.pdf", state="dead", error_class="missing-file")], False),
        ([result("http://a/x", unreachable=True), result("https://b/y", unreachable=True)], True),
        (
            [
                result("http://a/x", unreachable=True),
                result("file:///x.pdf", state="dead", error_class="missing-file"),
            ],
            True,
        ),
        ([result("http://a/x", unreachable=True), result("http://b/y", http_status=404)], False),
        ([result("http://a/x", unreachable=True), result("http://b/y", state="ok")], False),
        # a redirect proves a host answered, even if the next one did not
        ([result("http://a/x", unreachable=True, final_url="http://c/z")], False),
        # a URL too broken to split is no sign of being offline, nor a reason to crash
        ([result("http://[::1/x", state="dead", error_class="bad-url")], False),
    ],
)
def test_network_down(results: list[FetchResult], down: bool) -> None:
    assert Reachability.of(results).down is down


# --- errors classified without a server (one-function units) --------------------------------


def raising(exc: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.MockTransport(handler)


async def test_connect_timeout_is_unreachable(fake_clock: FakeClock) -> None:
    transport = raising(httpx.ConnectTimeout("timed out"))
    async with Fetcher(FAST, transport=transport, clock=fake_clock) as fetcher:
        r = await fetcher.fetch("http://198.51.100.1/x.pdf")
    assert (r.state, r.error_class, r.unreachable, r.transient, r.attempts) == (
        "error",
        "timeout",
        True,
        True,
        3,
    )


async def test_tls_failure_is_error_and_not_retried(fake_clock: FakeClock) -> None:
    exc = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    exc.__cause__ = ssl.SSLCertVerificationError("certificate verify failed")
    async with Fetcher(FAST, transport=raising(exc), clock=fake_clock) as fetcher:
        r = await fetcher.fetch("https://198.51.100.1/x.pdf")
    assert (r.state, r.error_class, r.unreachable, r.transient, r.attempts) == (
        "error",
        "tls",
        False,
        False,
        1,
    )
    assert r.error is not None and r.error.startswith("TLS failed: ")


@pytest.mark.parametrize(
    ("kwargs", "retry"),
    [
        ({"error_class": "http-503", "http_status": 503}, True),
        ({"error_class": "http-408", "http_status": 408}, True),
        ({"error_class": "http-425", "http_status": 425}, True),
        ({"error_class": "http-429", "http_status": 429}, True),
        ({"error_class": "http-404", "http_status": 404}, False),
        ({"error_class": "truncated", "http_status": 200}, True),
        ({"error_class": "too-large", "http_status": 200}, False),
        ({"error_class": "soft-404", "http_status": 200}, False),
        ({"error_class": "timeout"}, True),
        ({"error_class": "reset"}, True),
        ({"error_class": "refused"}, True),
        ({"error_class": "dns"}, False),
        ({"error_class": "tls"}, False),
        ({"error_class": "redirect-loop", "http_status": 302}, False),
    ],
)
def test_should_retry(kwargs: dict[str, object], retry: bool) -> None:
    assert should_retry(result("http://a/x", **kwargs)) is retry


# --- file URLs and other schemes -----------------------------------------------------------


async def test_file_urls_are_read_judged_and_stored(
    tmp_path: Path, store: Store, fake_clock: FakeClock
) -> None:
    deck = tmp_path / "my deck.pdf"
    deck.write_bytes(PDF)
    page = tmp_path / "page.pdf"
    page.write_bytes(HTML)
    roots = LocalRoots.of([tmp_path])
    async with Fetcher(FAST, store=store, clock=fake_clock, local_roots=roots) as fetcher:
        ok = Got(await fetcher.archive(deck.as_uri(), expect="pdf"))
        soft = Got(await fetcher.archive(page.as_uri(), expect="pdf"))
        missing = await fetcher.fetch((tmp_path / "gone.pdf").as_uri())
    assert (ok.state, ok.sha256, ok.content_type) == (
        "ok",
        hashlib.sha256(PDF).hexdigest(),
        "application/pdf",
    )
    assert ok.blob is not None and ok.blob.commit().size == len(PDF)
    assert (soft.state, soft.error_class) == ("invalid", "soft-404")
    assert (missing.state, missing.error_class) == ("dead", "missing-file")
    assert missing.error == f"no such file: {tmp_path / 'gone.pdf'}"
    assert temp_files(store) == []
    assert not Reachability.of([missing]).down


async def test_file_urls_outside_the_local_roots_are_blocked_unread(
    tmp_path: Path, store: Store, fake_clock: FakeClock
) -> None:
    inside, outside = tmp_path / "src", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (outside / "secret.pdf").write_bytes(PDF)
    (inside / "link.pdf").symlink_to(outside / "secret.pdf")
    urls = [
        (outside / "secret.pdf").as_uri(),
        (inside / "link.pdf").as_uri(),  # a symlink inside pointing out
        (inside / ".." / "elsewhere" / "secret.pdf").as_uri(),
        "file://localhost" + str(outside / "secret.pdf"),
    ]
    roots = LocalRoots.of([inside])
    async with Fetcher(FAST, store=store, clock=fake_clock, local_roots=roots) as fetcher:
        results = [Got(await fetcher.archive(url)) for url in urls]
    async with Fetcher(FAST, store=store, clock=fake_clock) as fetcher:  # no roots: none
        results.append(Got(await fetcher.archive((inside / "link.pdf").as_uri())))
    assert [(r.state, r.error_class) for r in results] == [("blocked", "outside-source")] * 5
    assert "outside the source folders" in (results[1].error or "")
    assert str(outside / "secret.pdf") in (results[1].error or "")
    assert all(r.sha256 is None and r.blob is None and r.bytes_received == 0 for r in results)
    assert list(store.root.rglob("*.pdf")) == [] and temp_files(store) == []


async def test_unfetchable_scheme_is_dead(fake_clock: FakeClock) -> None:
    r = await fetch("mailto:someone@example.org", fake_clock)
    assert (r.state, r.error_class) == ("dead", "bad-url")


def test_evolve_is_dataclasses_replace_for_every_field() -> None:
    """The fetcher's cheap copy of an Outcome changes what it is given and nothing else."""
    import dataclasses

    from archiver.net.fetch import _evolve
    from archiver.records import Outcome, UrlState

    base = Outcome(url="http://127.0.0.1/a.pdf", state=UrlState.OK, headers=(("etag", '"1"'),))
    samples: dict[str, object] = {"url": "http://127.0.0.1/b.pdf", "state": UrlState.DEAD}
    for field in dataclasses.fields(Outcome):
        value = samples.get(field.name, getattr(base, field.name))
        if field.name not in samples:
            value = {bool: True, int: 7, float: 1.5, str: "x"}.get(type(value), "x")
            if field.name == "headers":
                value = (("server", "nginx"),)
        new = _evolve(base, **{field.name: value})
        assert new == dataclasses.replace(base, **{field.name: value})
        assert getattr(new, field.name) == value
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.url = "http://127.0.0.1/c.pdf"  # type: ignore[misc]
