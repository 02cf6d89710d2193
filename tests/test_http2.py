"""HTTP/2 over TLS on loopback: a hypercorn server with a trustme certificate.

The ASGI app records what the fetcher cannot see for itself: the protocol each request
came over, the client port (one port, one connection) and how many requests were in
flight at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.abc
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import media
import pytest
import trustme
from fetching import fetch_all
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from server import LoopbackServer, Reply
from test_transport import (
    FakeResolver,
    answering,
    black_hole,
    connecting_to,
    https_server,
    https_url,
)

from archiver.clock import FakeClock
from archiver.config import load_config
from archiver.errors import ConfigError
from archiver.net.fetch import Fetcher, FetchSettings, HostMapTransport
from archiver.net.guard import AddressGuard
from archiver.net.transport import Http2Transport, Http11Transport, OriginRouter
from archiver.ops.export import _http_headers
from archiver.store import Store

pytestmark = pytest.mark.anyio

PDF = media.deck("slides", 16_000)
SETTINGS = FetchSettings(
    retries=0, connect_timeout=2.0, read_timeout=5.0, per_host=4, transport="lean", http2=True
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Seen:
    """One request as the server saw it."""

    path: str
    http_version: str
    client_port: int


@dataclass
class App:
    """Serves ``bodies`` by path (404 otherwise) and records every request.

    With ``hold`` set, each request waits until that many are in flight at once (at most
    a few seconds), so a test can see whether the client ever sends more."""

    bodies: dict[str, bytes] = field(default_factory=dict)
    hold: int = 0
    seen: list[Seen] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    started: threading.Event = field(default_factory=threading.Event)
    _full: asyncio.Event | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                self.started.set()
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.seen.append(Seen(scope["path"], scope["http_version"], scope["client"][1]))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hold:
                await self._wait_for_company()
            body = self.bodies.get(scope["path"])
            status, body = (200, body) if body is not None else (404, b"not found")
            headers = [
                (b"content-type", b"application/pdf"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            self.in_flight -= 1

    async def _wait_for_company(self) -> None:
        if self._full is None:
            self._full = asyncio.Event()
        if self.in_flight >= self.hold:
            self._full.set()
        # If the client never sends that many at once, go on and let the test say so.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), timeout=5.0)

    def versions(self) -> set[str]:
        return {s.http_version for s in self.seen}

    def connections(self) -> int:
        return len({s.client_port for s in self.seen})


@dataclass
class H2Server:
    app: App
    port: int

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def route(self, path: str, body: bytes) -> str:
        self.app.bodies[path] = body
        return self.url(path)


@contextmanager
def h2_server(ca: trustme.CA, tmp_path: Path, *names: str) -> Iterator[H2Server]:
    """hypercorn on 127.0.0.1 in a thread of its own, offering h2 and http/1.1 (ALPN)."""
    pem = tmp_path / f"server-{'-'.join(names)}.pem"
    ca.issue_cert(*names).private_key_and_cert_chain_pem.write_to_path(str(pem))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = HypercornConfig()
    config.bind = [f"fd://{listener.detach()}"]  # bound already: the port is known now
    config.certfile = config.keyfile = str(pem)
    config.accesslog = config.errorlog = None
    config.graceful_timeout = 1.0
    app = App()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def run() -> None:
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    try:
        # The socket already listens, so a client that comes early waits in its backlog.
        assert app.started.wait(timeout=10), "hypercorn did not start"
        yield H2Server(app, port)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def h2(ca: trustme.CA, tmp_path: Path) -> Iterator[H2Server]:
    with h2_server(ca, tmp_path, "127.0.0.1") as srv:
        yield srv


async def test_a_pdf_over_https_is_archived_over_http2(
    h2: H2Server, trust: ssl.SSLContext, tmp_path: Path
) -> None:
    store = Store(tmp_path / "store")
    url = h2.route("/deck.pdf", PDF)
    async with Fetcher(SETTINGS, store=store, ssl_context=trust) as fetcher:
        r, blob = await fetcher.archive(url, expect="pdf")
        probe = await fetcher.fetch(url, expect="pdf", probe=True)
    assert (r.state, r.status_line, r.size) == ("ok", "HTTP/2 200 OK", len(PDF))
    assert r.sha256 == hashlib.sha256(PDF).hexdigest()
    assert blob is not None and blob.commit().path.read_bytes() == PDF
    assert (probe.state, probe.content_type) == ("ok", "application/pdf")
    assert h2.app.versions() == {"2"}


def test_an_http2_status_line_is_exported_as_http_1_1() -> None:
    """WARC replays HTTP/1.x messages: the recorded HTTP/2 answer becomes one."""
    headers = _http_headers("HTTP/2 200 OK", [("content-type", "application/pdf")], 15)
    assert (headers.protocol, headers.statusline) == ("HTTP/1.1", "200 OK")


async def test_many_urls_to_one_host_share_one_connection(
    h2: H2Server, trust: ssl.SSLContext
) -> None:
    urls = [h2.route(f"/{i}.pdf", PDF) for i in range(30)]
    async with Fetcher(SETTINGS, ssl_context=trust, clock=FakeClock()) as fetcher:
        results = await fetch_all(fetcher, [(url, "pdf") for url in urls])
    assert {(r.state, r.status_line) for r in results} == {("ok", "HTTP/2 200 OK")}
    assert len(h2.app.seen) == 30
    assert h2.app.connections() == 1


async def test_the_per_host_limit_holds_for_streams_on_one_connection(
    h2: H2Server, trust: ssl.SSLContext
) -> None:
    settings = FetchSettings(retries=0, per_host=3, concurrency=16, transport="lean", http2=True)
    h2.app.hold = settings.per_host
    urls = [h2.route(f"/{i}.pdf", PDF) for i in range(12)]
    async with Fetcher(settings, ssl_context=trust, clock=FakeClock()) as fetcher:
        results = await fetch_all(fetcher, [(url, "pdf") for url in urls])
    assert {r.state for r in results} == {"ok"}
    assert h2.app.max_in_flight == settings.per_host
    assert (h2.app.versions(), h2.app.connections()) == ({"2"}, 1)


async def test_a_server_without_http2_is_fetched_over_http_1_1(
    ca: trustme.CA, trust: ssl.SSLContext
) -> None:
    with https_server(ca, "127.0.0.1") as srv:
        for i in range(5):
            srv.route(f"/{i}.pdf", Reply(body=PDF))
        urls = [https_url(srv, f"/{i}.pdf") for i in range(5)]
        async with Fetcher(SETTINGS, ssl_context=trust, clock=FakeClock()) as fetcher:
            results = await fetch_all(fetcher, [(url, "pdf") for url in urls])
    assert {(r.state, r.status_line) for r in results} == {("ok", "HTTP/1.1 200 OK")}


async def test_http2_off_is_http_1_1_on_the_lean_transport(
    h2: H2Server, trust: ssl.SSLContext
) -> None:
    """Off, the context shared with an earlier HTTP/2 run offers h2 no more."""
    async with Fetcher(SETTINGS, ssl_context=trust) as fetcher:
        assert (await fetcher.fetch(h2.route("/first.pdf", PDF))).status_line == "HTTP/2 200 OK"
    h2.app.seen.clear()
    settings = FetchSettings(
        retries=0, connect_timeout=2.0, read_timeout=5.0, transport="lean", http2=False
    )
    urls = [h2.route(f"/{i}.pdf", PDF) for i in range(5)]
    async with Fetcher(settings, ssl_context=trust, clock=FakeClock()) as fetcher:
        assert isinstance(fetcher._client._transport, Http11Transport)  # type: ignore[union-attr]
        results = [await fetcher.fetch(url, expect="pdf") for url in urls]
    assert {(r.state, r.status_line) for r in results} == {("ok", "HTTP/1.1 200 OK")}
    assert (h2.app.versions(), h2.app.connections()) == ({"1.1"}, 1)


async def test_bodies_left_unread_do_not_stall_the_connection(
    h2: H2Server, trust: ssl.SSLContext
) -> None:
    """The server ignores Range, so each probe stops reading 1 MiB early, 20 MiB in all:
    more than the connection's 16 MiB flow-control window. Each abandoned stream is reset
    and its unread bytes given back, so the one connection keeps serving."""
    big = media.deck("slides", 1024 * 1024)
    urls = [h2.route(f"/{i}.pdf", big) for i in range(20)]
    async with Fetcher(SETTINGS, ssl_context=trust, clock=FakeClock()) as fetcher:
        results = [await fetcher.fetch(url, expect="pdf", probe=True) for url in urls]
    assert {(r.state, r.status_line, r.size) for r in results} == {
        ("ok", "HTTP/2 200 OK", len(big))
    }
    assert h2.app.connections() == 1


async def test_the_httpx_transport_stays_on_http_1_1(h2: H2Server, trust: ssl.SSLContext) -> None:
    """What a run behind a proxy uses (here without one): httpx's HTTP/2 never resets a
    stream left unread, so it is not offered there."""
    settings = FetchSettings(retries=0, transport="httpx", http2=True)
    url = h2.route("/a.pdf", PDF)
    async with Fetcher(settings, ssl_context=trust, clock=FakeClock()) as fetcher:
        r = await fetcher.fetch(url, expect="pdf")
    assert (r.state, r.status_line) == ("ok", "HTTP/1.1 200 OK")


async def test_plain_http_stays_on_the_lean_transport(
    server: LoopbackServer, trust: ssl.SSLContext
) -> None:
    server.route("/a.pdf", Reply(body=PDF))
    async with Fetcher(SETTINGS, ssl_context=trust, clock=FakeClock()) as fetcher:
        router = fetcher._client._transport  # type: ignore[union-attr]
        r = await fetcher.fetch(server.url("/a.pdf"), expect="pdf")
    assert isinstance(router, OriginRouter)
    assert (r.state, r.status_line) == ("ok", "HTTP/1.1 200 OK")


# --- names and certificates: as on the lean transport -------------------------------------


def resolved(trust: ssl.SSLContext, how: str, *names: str) -> httpx.AsyncBaseTransport:
    """``names`` -> 127.0.0.1, by the transport's resolver or by the test HostMapTransport."""
    table = dict.fromkeys(names, "127.0.0.1")
    if how == "resolver":
        h2 = Http2Transport(ssl_context=trust, resolver=FakeResolver(table))
        return OriginRouter(https=h2, other=Http11Transport())
    return HostMapTransport(table, inner=Http2Transport(ssl_context=trust))


@pytest.mark.parametrize("how", ["resolver", "hostmap"])
async def test_the_certificate_is_checked_against_the_url_name_not_the_address(
    ca: trustme.CA, trust: ssl.SSLContext, tmp_path: Path, how: str
) -> None:
    with h2_server(ca, tmp_path, "cdn.test") as srv:
        srv.route("/a.pdf", PDF)
        async with Fetcher(SETTINGS, transport=resolved(trust, how, "cdn.test")) as fetcher:
            r = await fetcher.fetch(srv.url("/a.pdf", "cdn.test"), expect="pdf")
    assert (r.state, r.status_line, r.sha256) == (
        "ok",
        "HTTP/2 200 OK",
        hashlib.sha256(PDF).hexdigest(),
    )


@pytest.mark.parametrize("how", ["resolver", "hostmap"])
async def test_a_certificate_for_another_name_is_a_tls_error_and_not_retried(
    ca: trustme.CA, trust: ssl.SSLContext, tmp_path: Path, how: str
) -> None:
    settings = FetchSettings(retries=3, transport="lean", http2=True)
    with h2_server(ca, tmp_path, "other.test") as srv:
        srv.route("/a.pdf", PDF)
        transport = resolved(trust, how, "cdn.test")
        async with Fetcher(settings, transport=transport, clock=FakeClock()) as fetcher:
            r = await fetcher.fetch(srv.url("/a.pdf", "cdn.test"), expect="pdf")
    assert (r.state, r.error_class, r.attempts, r.transient) == ("error", "tls", 1, False)
    assert r.error is not None and "Hostname mismatch" in r.error
    assert srv.app.seen == []


@pytest.mark.parametrize("how", ["resolver", "hostmap"])
async def test_a_connection_verified_for_one_name_never_carries_another(
    ca: trustme.CA, trust: ssl.SSLContext, tmp_path: Path, how: str
) -> None:
    """Two names on one address: the multiplexed connection to good.test proves nothing
    about evil.test, whose request must get its own handshake (and fail it)."""
    with h2_server(ca, tmp_path, "good.test") as srv:
        srv.route("/a.pdf", PDF)
        transport = resolved(trust, how, "good.test", "evil.test")
        async with Fetcher(SETTINGS, transport=transport) as fetcher:
            good = await fetcher.fetch(srv.url("/a.pdf", "good.test"), expect="pdf")
            evil = await fetcher.fetch(srv.url("/a.pdf", "evil.test"), expect="pdf")
    assert (good.state, good.status_line) == ("ok", "HTTP/2 200 OK")
    assert (evil.state, evil.error_class) == ("error", "tls")
    assert len(srv.app.seen) == 1


async def test_a_name_is_resolved_once_and_a_dead_one_is_dns(
    ca: trustme.CA, trust: ssl.SSLContext, tmp_path: Path
) -> None:
    resolver = FakeResolver({"assets.test": "127.0.0.1"})
    transport = Http2Transport(ssl_context=trust, resolver=resolver)
    with h2_server(ca, tmp_path, "assets.test") as srv:
        srv.route("/a.pdf", PDF)
        good = [srv.url(f"/a.pdf?{i}", "assets.test") for i in range(10)]
        bad = [srv.url(f"/a.pdf?{i}", "gone.test") for i in range(3)]
        async with Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher:
            results = await fetch_all(fetcher, [(url, "pdf") for url in good + bad])
    by_url = {r.url: r for r in results}
    assert {by_url[u].state for u in good} == {"ok"}
    assert {(by_url[u].state, by_url[u].error_class) for u in bad} == {("dead", "dns")}
    assert sorted(resolver.calls) == ["assets.test", "gone.test"]
    assert (transport.lookups, transport.connections_opened) == (2, 1)


# --- configuration ------------------------------------------------------------------------


def test_fetch_http2_is_read_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[fetch]\nhttp2 = false\n", encoding="utf-8")
    assert load_config(path).fetch.http2 is False
    path.write_text("[fetch]\nper_host = 2\n", encoding="utf-8")
    assert load_config(path).fetch.http2 is False  # the default since issue 10


def test_a_bad_fetch_http2_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[fetch]\nhttp2 = "yes"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "config key 'fetch.http2' must be true or false, got 'yes'"


@pytest.mark.parametrize("http2", [True, False])
async def test_ssl_cert_file_names_the_cas_a_run_trusts(
    h2: H2Server,
    ca: trustme.CA,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    http2: bool,
) -> None:
    # No ssl_context: the transports build their own, as a real run does.
    url = h2.route("/env.pdf", PDF)
    settings = FetchSettings(retries=0, transport="lean", http2=http2)
    async with Fetcher(settings, clock=FakeClock()) as fetcher:
        untrusted = await fetcher.fetch(url, expect="pdf")
    assert (untrusted.state, untrusted.error_class) == ("error", "tls")  # not in certifi
    bundle = tmp_path / "company-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    async with Fetcher(settings, clock=FakeClock()) as fetcher:
        trusted = await fetcher.fetch(url, expect="pdf")
    expected = "HTTP/2 200 OK" if http2 else "HTTP/1.1 200 OK"
    assert (trusted.state, trusted.status_line) == ("ok", expected)


async def test_a_black_holed_first_address_is_raced_over_http2_too(
    ca: trustme.CA, trust: ssl.SSLContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("archiver.net.transport._ATTEMPT_DELAY", 0.05)
    settings = FetchSettings(retries=0, connect_timeout=2.0, transport="lean", http2=True)
    with h2_server(ca, tmp_path, "cdn.test") as srv, black_hole() as hole:
        srv.route("/raced.pdf", PDF)
        transport = Http2Transport(
            ssl_context=trust, resolver=answering(hole, ("127.0.0.1", srv.port))
        )
        with anyio.fail_after(10):
            async with Fetcher(settings, transport=transport, clock=FakeClock()) as fetcher:
                r = await fetcher.fetch(srv.url("/raced.pdf", "cdn.test"), expect="pdf")
        assert connecting_to(hole) == 0
    assert (r.state, r.status_line, r.attempts) == ("ok", "HTTP/2 200 OK", 1)


async def test_no_request_searches_the_path_for_a_missing_module(
    h2: H2Server, trust: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpcore asks for sniffio at every lock it sets up; a module that is not installed
    # is searched for on sys.path each time (encode/httpcore#1103), ~0.2 ms a search.
    urls = [h2.route(f"/s{i}.pdf", PDF) for i in range(3)]
    searched: list[str] = []

    class Recorder(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, *args: object) -> None:
            searched.append(name)

    async with Fetcher(SETTINGS, ssl_context=trust, clock=FakeClock()) as fetcher:
        assert (await fetcher.fetch(urls[0], expect="pdf")).state == "ok"  # imports done
        monkeypatch.setattr(sys, "meta_path", [Recorder(), *sys.meta_path])
        results = [await fetcher.fetch(url, expect="pdf") for url in urls[1:]]
    assert [r.state for r in results] == ["ok", "ok"]
    assert searched == []


# --- the reach into httpcore's private attributes fails: HTTP/1.1, one warning ------------


@pytest.fixture
def http2_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP/2 not yet given up in this process (and given up for this test only)."""
    monkeypatch.setattr("archiver.net.transport._http2_broken", None)


async def test_a_missing_private_module_falls_back_to_http_1_1_with_one_warning(
    h2: H2Server, trust: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, http2_fresh: None
) -> None:
    # As if a httpcore release had moved its anyio backend: the import fails at connect.
    monkeypatch.setitem(sys.modules, "httpcore._backends.anyio", None)
    urls = [h2.route(f"/f{i}.pdf", PDF) for i in range(3)]
    warnings: list[str] = []
    async with Fetcher(SETTINGS, ssl_context=trust, clock=FakeClock(), warn=warnings.append) as f:
        results = [await f.fetch(url, expect="pdf") for url in urls]
        probe = await f.fetch(urls[0], expect="pdf", probe=True)
    assert [(r.state, r.status_line, r.attempts) for r in results] == [
        ("ok", "HTTP/1.1 200 OK", 1)
    ] * 3
    assert probe.state == "ok"
    assert h2.app.versions() == {"1.1"}
    assert len(warnings) == 1
    assert warnings[0].startswith("HTTP/2 is unavailable with this httpcore (ModuleNotFoundError")
    assert "httpcore._backends.anyio" in warnings[0]
    assert warnings[0].endswith("using HTTP/1.1 for the rest of the run")


async def test_an_attribute_error_inside_httpcore_falls_back_to_http_1_1(
    h2: H2Server, trust: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, http2_fresh: None
) -> None:
    import httpcore._async.http2 as core_h2

    monkeypatch.delattr(core_h2.AsyncHTTP2Connection, "_write_outgoing_data")
    url = h2.route("/renamed.pdf", PDF)
    warnings: list[str] = []
    async with Fetcher(SETTINGS, ssl_context=trust, clock=FakeClock(), warn=warnings.append) as f:
        first = await f.fetch(url, expect="pdf")
        second = await f.fetch(url, expect="pdf")
    assert [(r.state, r.status_line) for r in (first, second)] == [("ok", "HTTP/1.1 200 OK")] * 2
    assert len(warnings) == 1 and "AttributeError" in warnings[0]


async def test_a_stream_reset_that_finds_no_h2_state_gives_http2_up(
    h2: H2Server, trust: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, http2_fresh: None
) -> None:
    """A probe stops reading a large body; resetting its stream needs httpcore's
    ``_h2_state``. When that is not what we find, the connection is dropped, the probe's
    verdict stands, and the rest of the run is HTTP/1.1, after one warning."""
    import h2.connection as h2_connection

    big = PDF * 64  # far more than a probe reads
    url = h2.route("/big.pdf", big)
    warnings: list[str] = []
    async with Fetcher(SETTINGS, ssl_context=trust, clock=FakeClock(), warn=warnings.append) as f:
        first = await f.fetch(h2.route("/small.pdf", PDF), expect="pdf")  # connected over h2
        monkeypatch.setattr(h2_connection, "H2Connection", type("Renamed", (), {}))
        probe = await f.fetch(url, expect="pdf", probe=True)
        after = await f.fetch(url, expect="pdf")
    assert (first.status_line, probe.state, probe.status_line) == (
        "HTTP/2 200 OK",
        "ok",
        "HTTP/2 200 OK",
    )
    assert (after.state, after.status_line, after.size) == ("ok", "HTTP/1.1 200 OK", len(big))
    assert len(warnings) == 1 and "_h2_state" in warnings[0]


async def test_without_a_warn_hook_the_warning_is_logged_once(
    h2: H2Server,
    trust: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
    http2_fresh: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "httpcore._backends.anyio", None)
    url = h2.route("/logged.pdf", PDF)
    async with Fetcher(SETTINGS, ssl_context=trust, clock=FakeClock()) as f:
        results = [await f.fetch(url, expect="pdf") for _ in range(2)]
    assert [r.state for r in results] == ["ok", "ok"]
    logged = [r for r in caplog.records if r.name == "archiver" and r.levelname == "WARNING"]
    assert len(logged) == 1 and "HTTP/2 is unavailable" in logged[0].getMessage()


async def test_the_fallback_it_makes_itself_keeps_the_address_guard(
    h2: H2Server, trust: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given up HTTP/2 in this process: every request goes to the HTTP/1.1 fallback the
    # transport made, which must check addresses exactly as the transport would.
    monkeypatch.setattr("archiver.net.transport._http2_broken", "given up by the test")
    url = h2.route("/guarded.pdf", PDF)
    transport = Http2Transport(ssl_context=trust, guard=AddressGuard())
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError, match="refused address"):
            await client.get(url)
    unguarded = Http2Transport(ssl_context=trust)
    async with httpx.AsyncClient(transport=unguarded) as client:
        assert (await client.get(url)).http_version == "HTTP/1.1"
