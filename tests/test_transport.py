"""The HTTP transports: keep-alive, one DNS lookup per host, racing its addresses (Happy
Eyeballs), framing, stale connections, TLS on loopback (trustme certificates), and the
choice between the lean one and httpx's.

Failure classification through it (resets, truncation, timeouts, refused) is covered by
``test_fetch.py``, which runs on this transport by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hashlib
import socket
import ssl
import struct
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, get_args

import anyio
import anyio.abc
import httpx
import media
import pytest
import trustme
from fetching import fetch_all
from server import LoopbackServer, Reply

from archiver import config as config_module
from archiver.clock import FakeClock
from archiver.config import load_config
from archiver.errors import ConfigError
from archiver.net.fetch import (
    Fetcher,
    FetchSettings,
    HostMapTransport,
    TransportChoice,
    transport_kind,
)
from archiver.net.transport import (
    Http11Transport,
    Resolver,
    _happy_eyeballs,
    _interleave,
    _most_relevant,
)
from archiver.store import Store

pytestmark = pytest.mark.anyio

PDF = media.deck("slides", 16_000)
SMALL_PDF = media.deck("slides")  # the smallest: ~530 bytes
SETTINGS = FetchSettings(
    retries=0, connect_timeout=2.0, read_timeout=5.0, per_host=4, transport="lean"
)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeResolver:
    """Answers names from a table (everything else is unknown) and counts lookups."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        self.calls.append(host)
        await anyio.sleep(0)  # let concurrent requests pile up on the same lookup
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, (self.table[host], port))]


async def test_sequential_requests_reuse_one_connection(server: LoopbackServer) -> None:
    urls = [server.route(f"/{i}.pdf", Reply(body=PDF)) for i in range(20)]
    transport = Http11Transport()
    async with Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher:
        for url in urls:
            assert (await fetcher.fetch(url, expect="pdf")).state == "ok"
    assert transport.connections_opened == 1


async def test_concurrent_requests_open_no_more_connections_than_the_host_limit(
    server: LoopbackServer,
) -> None:
    urls = [server.route(f"/{i}.pdf", Reply(body=PDF)) for i in range(40)]
    transport = Http11Transport()
    async with Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher:
        results = await fetch_all(fetcher, [(url, "pdf") for url in urls])
    assert {r.state for r in results} == {"ok"}
    assert transport.connections_opened <= SETTINGS.per_host


async def test_a_name_is_resolved_once_per_run_even_when_it_does_not_exist(
    server: LoopbackServer,
) -> None:
    port = server.port
    server.route("/a.pdf", Reply(body=PDF))
    resolver = FakeResolver({"assets.test": "127.0.0.1"})
    transport = Http11Transport(resolver=resolver)
    good = [f"http://assets.test:{port}/a.pdf?{i}" for i in range(10)]
    bad = [f"http://gone.test:{port}/a.pdf?{i}" for i in range(5)]
    async with Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher:
        results = await fetch_all(fetcher, [(url, "pdf") for url in good + bad])
    by_url = {r.url: r for r in results}
    assert {by_url[u].state for u in good} == {"ok"}
    assert {(by_url[u].state, by_url[u].error_class) for u in bad} == {("dead", "dns")}
    assert sorted(resolver.calls) == ["assets.test", "gone.test"]
    # The Host header keeps the name: the server sees what it would in production.
    assert server.stats("/a.pdf").requests[0].headers["host"] == f"assets.test:{port}"


async def test_a_chunked_body_is_decoded(server: LoopbackServer) -> None:
    head, rest = SMALL_PDF[:9], SMALL_PDF[9:]
    chunked = b"9\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (head, len(rest), rest)
    url = server.route(
        "/c.pdf",
        Reply(body=chunked, headers=[("Transfer-Encoding", "chunked")], until_close=True),
    )
    async with Fetcher(SETTINGS, clock=FakeClock()) as fetcher:
        r = await fetcher.fetch(url, expect="pdf")
    assert (r.state, r.size, r.bytes_received) == ("ok", len(SMALL_PDF), len(SMALL_PDF))


async def test_a_connection_the_server_dropped_while_idle_is_replaced() -> None:
    """The server answers one request per connection, then closes without saying so."""
    served = 0

    async def handle(stream: anyio.abc.SocketStream) -> None:
        nonlocal served
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            served += 1
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(PDF)}\r\n\r\n".encode()
            await stream.send(head + PDF)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    transport = Http11Transport()
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        async with Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher:
            first = await fetcher.fetch(f"http://127.0.0.1:{port}/a.pdf", expect="pdf")
            second = await fetcher.fetch(f"http://127.0.0.1:{port}/b.pdf", expect="pdf")
        tg.cancel_scope.cancel()
    assert (first.state, second.state) == ("ok", "ok")
    assert (second.attempts, served, transport.connections_opened) == (1, 2, 2)


# --- racing a host's addresses (Happy Eyeballs) ---------------------------------------------


def answering(*addresses: tuple[str, int]) -> Resolver:
    """A resolver that answers every name with ``addresses``, in that order."""

    async def resolve(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, (ip, p)) for ip, p in addresses]

    return resolve


@contextmanager
def refusing() -> Iterator[tuple[str, int]]:
    """An address on 127.0.0.2 that refuses connections: a port bound but not listening
    (and held, so nothing else can listen there meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        yield sock.getsockname()


def accept_queue_full(listener: socket.socket) -> bool:
    # Linux's struct tcp_info reports a listening socket's accept queue length and limit
    # as tcpi_unacked and tcpi_sacked, at bytes 24 to 31.
    info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
    queued, limit = struct.unpack_from("II", info, 24)
    return bool(queued > limit)


@contextmanager
def black_hole() -> Iterator[tuple[str, int]]:
    """An address on 127.0.0.2 where connecting hangs, as behind a broken route.

    A socket listening with a backlog of 0 holds one connection nobody accepts: its
    accept queue is full, and Linux then drops every SYN to it (SYN cookies do not apply
    to a full accept queue), so a connect() is never answered. The queue is filled by
    the kernel's own count, and a probe checks that connecting really hangs."""
    if sys.platform != "linux":
        pytest.skip("the black hole is a full accept queue, which only Linux answers with silence")
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen(0)
        address = listener.getsockname()
        queued: list[socket.socket] = []
        try:
            while not accept_queue_full(listener) and len(queued) < 4:
                queued.append(socket.create_connection(address, timeout=5))
            with socket.socket() as probe:
                probe.settimeout(0.1)
                try:
                    probe.connect(address)
                except TimeoutError:
                    pass
                else:
                    pytest.fail("a SYN to a full accept queue was answered: no black hole here")
            yield address
        finally:
            for conn in queued:
                conn.close()


def connecting_to(address: tuple[str, int]) -> int:
    """Sockets on this machine still trying to connect to ``address`` (state SYN_SENT)."""
    ip = int.from_bytes(socket.inet_aton(address[0]), sys.byteorder)
    remote = f"{ip:08X}:{address[1]:04X}"
    with open("/proc/net/tcp", encoding="ascii") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return sum(row[2] == remote and row[3] == "02" for row in rows)


async def test_a_black_holed_address_is_raced_by_the_next(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first address never answers (a broken route): after the attempt delay the
    second is tried too and wins, well within the connect timeout, and the first attempt
    is cancelled."""
    monkeypatch.setattr("archiver.net.transport._ATTEMPT_DELAY", 0.05)
    server.route("/a.pdf", Reply(body=PDF))
    with black_hole() as hole:
        transport = Http11Transport(resolver=answering(hole, ("127.0.0.1", server.port)))
        with anyio.fail_after(10):
            async with Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher:
                r = await fetcher.fetch(f"http://cdn.test:{server.port}/a.pdf", expect="pdf")
        assert connecting_to(hole) == 0
    assert (r.state, r.attempts, r.sha256) == ("ok", 1, hashlib.sha256(PDF).hexdigest())
    assert (transport.connections_opened, server.stats("/a.pdf").hits) == (1, 1)


async def test_a_refused_address_hands_over_to_the_next_at_once(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waiting out the attempt delay would outlast the connect timeout of 2 s."""
    monkeypatch.setattr("archiver.net.transport._ATTEMPT_DELAY", 3600.0)
    server.route("/a.pdf", Reply(body=PDF))
    with refusing() as refused:
        transport = Http11Transport(resolver=answering(refused, ("127.0.0.1", server.port)))
        with anyio.fail_after(10):
            async with Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher:
                r = await fetcher.fetch(f"http://cdn.test:{server.port}/a.pdf", expect="pdf")
    assert (r.state, r.attempts, transport.connections_opened) == ("ok", 1, 1)


async def test_when_every_address_refuses_the_error_is_a_refusal() -> None:
    with refusing() as first, refusing() as second:
        transport = Http11Transport(resolver=answering(first, second))
        async with httpx.AsyncClient(transport=transport) as client:
            with anyio.fail_after(10), pytest.raises(httpx.ConnectError) as info:
                await client.get("http://cdn.test/a.pdf")
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    assert str(info.value).endswith(f"Connect call failed {second}")  # the last one tried
    assert transport.connections_opened == 0


@pytest.mark.parametrize("holes", [1, 2])
async def test_when_every_address_is_black_holed_the_connect_timeout_ends_it(
    monkeypatch: pytest.MonkeyPatch, holes: int
) -> None:
    monkeypatch.setattr("archiver.net.transport._ATTEMPT_DELAY", 0.05)
    with ExitStack() as stack:
        addresses = [stack.enter_context(black_hole()) for _ in range(holes)]
        transport = Http11Transport(resolver=answering(*addresses))
        async with httpx.AsyncClient(transport=transport) as client:
            with anyio.fail_after(10), pytest.raises(httpx.ConnectTimeout, match="timed out"):
                await client.get("http://cdn.test/a.pdf", timeout=httpx.Timeout(5, connect=0.3))
        assert [connecting_to(address) for address in addresses] == [0] * holes
    assert transport.connections_opened == 0


async def test_a_name_with_no_address_is_a_connect_error() -> None:
    transport = Http11Transport(resolver=answering())
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError) as info:
            await client.get("http://cdn.test/a.pdf")
    assert str(info.value) == "no address for cdn.test"


V6A = (socket.AF_INET6, ("::1", 1, 0, 0))
V6B = (socket.AF_INET6, ("::1", 2, 0, 0))
V4A = (socket.AF_INET, ("127.0.0.1", 3))
V4B = (socket.AF_INET, ("127.0.0.1", 4))
V4C = (socket.AF_INET, ("127.0.0.1", 5))


def test_address_families_are_interleaved_starting_with_the_first_listed() -> None:
    """RFC 8305 section 4; no connection is made here."""
    assert _interleave([V6A, V6B, V4A, V4B, V4C]) == [V6A, V4A, V6B, V4B, V4C]
    assert _interleave([V4A, V6A, V6B, V4B]) == [V4A, V6A, V4B, V6B]
    assert _interleave([V4A, V4B]) == [V4A, V4B]


async def test_attempts_follow_the_interleaved_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every attempt is refused (no connection is made), so each starts the next at once."""
    tried: list[tuple[int, tuple[Any, ...]]] = []

    async def refuse(family: int, address: tuple[Any, ...]) -> socket.socket:
        tried.append((family, address))
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    monkeypatch.setattr("archiver.net.transport._ATTEMPT_DELAY", 3600.0)
    monkeypatch.setattr("archiver.net.transport._connect_socket", refuse)
    with anyio.fail_after(10), pytest.raises(ConnectionRefusedError):
        await _happy_eyeballs([V6A, V6B, V4A, V4B])
    assert tried == [V6A, V4A, V6B, V4B]


async def test_a_loser_that_connects_as_the_winner_does_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second attempt connects and lets the first connect in the same turn of the
    event loop: one socket is returned, the other is closed before the race returns."""
    pair = socket.socketpair()
    connected: list[socket.socket] = []
    second_connected = asyncio.Event()

    async def connect(family: int, address: tuple[Any, ...]) -> socket.socket:
        first = address == V4A[1]
        if first:
            await second_connected.wait()
        else:
            second_connected.set()
        connected.append(pair[0] if first else pair[1])
        return connected[-1]

    monkeypatch.setattr("archiver.net.transport._ATTEMPT_DELAY", 0.0)
    monkeypatch.setattr("archiver.net.transport._connect_socket", connect)
    try:
        with anyio.fail_after(10):
            won = await _happy_eyeballs([V4A, V4B])
        assert sorted(s.fileno() != -1 for s in pair) == [False, True]
        assert won in pair and won.fileno() != -1
        assert len(connected) == 2  # both connected: the one that lost was closed, not cancelled
    finally:
        for sock in pair:
            sock.close()


def test_a_refusal_outranks_a_broken_route_whatever_the_order() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    unreachable = OSError(errno.ENETUNREACH, "Network is unreachable")
    assert _most_relevant([refused, unreachable]) is refused
    assert _most_relevant([unreachable, refused]) is refused
    other = OSError(errno.EHOSTUNREACH, "No route to host")
    assert _most_relevant([unreachable, other]) is other


# --- TLS on loopback -------------------------------------------------------------------------


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the machine says, no proxy variable is set (in either case)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@contextmanager
def https_server(
    ca: trustme.CA, *names: str, sni: list[str | None] | None = None
) -> Iterator[LoopbackServer]:
    """The loopback server behind TLS, with a certificate from ``ca`` for ``names``.

    ``sni`` collects the server name each client asked for."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    if sni is not None:
        context.sni_callback = lambda _sock, name, _ctx: sni.append(name)
    srv = LoopbackServer("127.0.0.1")
    # The handshake runs on the handler's first read, in its own thread: a client that
    # rejects the certificate never stalls the thread that accepts connections.
    srv._httpd.socket = context.wrap_socket(
        srv._httpd.socket, server_side=True, do_handshake_on_connect=False
    )
    with srv:
        yield srv


def https_url(srv: LoopbackServer, path: str, host: str = "127.0.0.1") -> str:
    return f"https://{host}:{srv.port}{path}"


async def test_a_pdf_over_https_is_archived(
    ca: trustme.CA, trust: ssl.SSLContext, tmp_path: Path
) -> None:
    store = Store(tmp_path / "store")
    with https_server(ca, "127.0.0.1") as srv:
        srv.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
        transport = Http11Transport(ssl_context=trust)
        async with Fetcher(SETTINGS, store=store, transport=transport) as fetcher:
            r, blob = await fetcher.archive(https_url(srv, "/deck.pdf"), expect="pdf")
    assert (r.state, r.status_line, r.size) == ("ok", "HTTP/1.1 200 OK", len(PDF))
    assert r.sha256 == hashlib.sha256(PDF).hexdigest()
    assert blob is not None
    assert blob.commit().path.read_bytes() == PDF


async def test_keep_alive_over_tls_uses_one_connection(
    ca: trustme.CA, trust: ssl.SSLContext
) -> None:
    with https_server(ca, "127.0.0.1") as srv:
        for i in range(10):
            srv.route(f"/{i}.pdf", Reply(body=PDF))
        urls = [https_url(srv, f"/{i}.pdf") for i in range(10)]
        transport = Http11Transport(ssl_context=trust)
        async with Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher:
            results = [await fetcher.fetch(url, expect="pdf") for url in urls]
    assert {r.state for r in results} == {"ok"}
    assert transport.connections_opened == 1


def resolved(trust: ssl.SSLContext, how: str) -> httpx.AsyncBaseTransport:
    """``cdn.test`` -> 127.0.0.1, by the transport's resolver or by the test HostMapTransport."""
    if how == "resolver":
        return Http11Transport(ssl_context=trust, resolver=FakeResolver({"cdn.test": "127.0.0.1"}))
    return HostMapTransport({"cdn.test": "127.0.0.1"}, inner=Http11Transport(ssl_context=trust))


@pytest.mark.parametrize("how", ["resolver", "hostmap"])
async def test_the_certificate_is_checked_against_the_url_name_not_the_address(
    ca: trustme.CA, trust: ssl.SSLContext, how: str
) -> None:
    """The certificate names only cdn.test: connecting to 127.0.0.1 must still verify it."""
    names: list[str | None] = []
    with https_server(ca, "cdn.test", sni=names) as srv:
        srv.route("/a.pdf", Reply(body=PDF))
        async with Fetcher(SETTINGS, transport=resolved(trust, how)) as fetcher:
            r = await fetcher.fetch(https_url(srv, "/a.pdf", "cdn.test"), expect="pdf")
    assert (r.state, r.sha256) == ("ok", hashlib.sha256(PDF).hexdigest())
    assert names == ["cdn.test"]


@pytest.mark.parametrize("how", ["resolver", "hostmap"])
async def test_a_certificate_for_another_name_is_a_tls_error_and_not_retried(
    ca: trustme.CA, trust: ssl.SSLContext, how: str
) -> None:
    settings = FetchSettings(retries=3, transport="lean")
    with https_server(ca, "other.test") as srv:
        srv.route("/a.pdf", Reply(body=PDF))
        async with Fetcher(settings, transport=resolved(trust, how), clock=FakeClock()) as fetcher:
            r = await fetcher.fetch(https_url(srv, "/a.pdf", "cdn.test"), expect="pdf")
        hits = srv.stats("/a.pdf").hits
    assert (r.state, r.error_class, r.attempts, r.transient, r.unreachable) == (
        "error",
        "tls",
        1,
        False,
        False,
    )
    assert r.error is not None and r.error.startswith("TLS failed: ")
    assert "Hostname mismatch" in r.error
    assert hits == 0


@pytest.mark.parametrize("certified", ["cdn.test", "other.test"])
async def test_tls_through_the_second_address_checks_the_url_name(
    ca: trustme.CA, trust: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, certified: str
) -> None:
    """The first address is black-holed: the handshake runs on the second, against
    cdn.test, and a certificate for another name fails at once, the race being over."""
    monkeypatch.setattr("archiver.net.transport._ATTEMPT_DELAY", 0.05)
    names: list[str | None] = []
    with https_server(ca, certified, sni=names) as srv, black_hole() as hole:
        srv.route("/a.pdf", Reply(body=PDF))
        resolver = answering(hole, ("127.0.0.1", srv.port))
        transport = Http11Transport(ssl_context=trust, resolver=resolver)
        with anyio.fail_after(10):
            async with Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher:
                r = await fetcher.fetch(https_url(srv, "/a.pdf", "cdn.test"), expect="pdf")
        assert connecting_to(hole) == 0
        hits = srv.stats("/a.pdf").hits
    assert names == ["cdn.test"]
    if certified == "cdn.test":
        assert (r.state, r.sha256, hits) == ("ok", hashlib.sha256(PDF).hexdigest(), 1)
        assert transport.connections_opened == 1
    else:
        assert (r.state, r.error_class, r.attempts, hits) == ("error", "tls", 1, 0)
        assert r.error is not None and "Hostname mismatch" in r.error


async def test_a_connection_verified_for_one_name_never_carries_another(
    ca: trustme.CA, trust: ssl.SSLContext
) -> None:
    """Two names on one address: the kept-alive connection to good.test proves nothing
    about evil.test, whose request must get its own handshake (and fail it)."""
    lean = Http11Transport(ssl_context=trust)
    mapping = {"good.test": "127.0.0.1", "evil.test": "127.0.0.1"}
    with https_server(ca, "good.test") as srv:
        srv.route("/a.pdf", Reply(body=PDF))
        async with Fetcher(SETTINGS, transport=HostMapTransport(mapping, inner=lean)) as fetcher:
            good = await fetcher.fetch(https_url(srv, "/a.pdf", "good.test"), expect="pdf")
            evil = await fetcher.fetch(https_url(srv, "/a.pdf", "evil.test"), expect="pdf")
    assert good.state == "ok"
    assert (evil.state, evil.error_class) == ("error", "tls")
    assert lean.connections_opened == 1


@pytest.mark.parametrize("kind", ["lean", "httpx"])
@pytest.mark.usefixtures("no_proxy_env")
async def test_certificates_are_verified_by_default(ca: trustme.CA, kind: TransportChoice) -> None:
    """No ssl_context given: certifi's roots, which do not include the test CA."""
    settings = FetchSettings(retries=2, transport=kind)
    with https_server(ca, "127.0.0.1") as srv:
        srv.route("/a.pdf", Reply(body=PDF))
        async with Fetcher(settings, clock=FakeClock()) as fetcher:
            r = await fetcher.fetch(https_url(srv, "/a.pdf"), expect="pdf")
    assert (r.state, r.error_class, r.attempts) == ("error", "tls", 1)
    assert r.error is not None and "certificate verify failed" in r.error


@pytest.mark.parametrize("kind", ["lean", "httpx"])
@pytest.mark.usefixtures("no_proxy_env")
async def test_a_certificate_from_an_untrusted_ca_is_a_tls_error(
    ca: trustme.CA, trust: ssl.SSLContext, kind: TransportChoice
) -> None:
    stranger = trustme.CA()
    settings = FetchSettings(retries=2, transport=kind)
    with https_server(stranger, "127.0.0.1") as srv:
        srv.route("/a.pdf", Reply(body=PDF))
        async with Fetcher(settings, clock=FakeClock(), ssl_context=trust) as fetcher:
            r = await fetcher.fetch(https_url(srv, "/a.pdf"), expect="pdf")
    assert (r.state, r.error_class, r.attempts) == ("error", "tls", 1)


async def test_a_body_that_ends_when_a_tls_connection_closes_is_read_whole(
    ca: trustme.CA, trust: ssl.SSLContext
) -> None:
    with https_server(ca, "127.0.0.1") as srv:
        srv.route("/a.pdf", Reply(body=PDF, until_close=True))
        async with Fetcher(SETTINGS, transport=Http11Transport(ssl_context=trust)) as fetcher:
            r = await fetcher.fetch(https_url(srv, "/a.pdf"), expect="pdf")
    assert (r.state, r.size) == ("ok", len(PDF))


# --- which transport: lean, or httpx's for proxies -----------------------------------------


@pytest.mark.parametrize(
    ("choice", "env", "kind"),
    [
        ("auto", {}, "lean"),
        ("auto", {"HTTPS_PROXY": "http://proxy.test:3128"}, "httpx"),
        ("auto", {"http_proxy": "http://proxy.test:3128"}, "httpx"),
        ("auto", {"All_Proxy": "socks5://proxy.test:1080"}, "httpx"),
        ("auto", {"HTTP_PROXY": " "}, "lean"),  # set but empty: no proxy
        ("auto", {"NO_PROXY": "*"}, "lean"),  # only exceptions, nothing to go through
        ("auto", {"FTP_PROXY": "http://proxy.test:3128"}, "lean"),
        ("lean", {"HTTPS_PROXY": "http://proxy.test:3128"}, "lean"),
        ("httpx", {}, "httpx"),
    ],
)
def test_auto_is_lean_unless_the_environment_names_a_proxy(
    monkeypatch: pytest.MonkeyPatch, choice: TransportChoice, env: dict[str, str], kind: str
) -> None:
    for name in (*PROXY_VARIABLES, "FTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert transport_kind(choice) == kind


@pytest.mark.usefixtures("no_proxy_env")
async def test_auto_goes_through_the_proxy_the_environment_names(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loopback server plays the proxy: it gets the absolute URL. The name cdn.test is
    looked up here only for the address guard (see test_guard), which it passes."""
    server.route("http://cdn.test/a.pdf", Reply(body=PDF))
    monkeypatch.setenv("ARCHIVER_TEST_HOSTS", "cdn.test=127.0.0.2")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    async with Fetcher(FetchSettings(retries=0), clock=FakeClock()) as fetcher:
        r = await fetcher.fetch("http://cdn.test/a.pdf", expect="pdf")
    assert (r.state, r.sha256) == ("ok", hashlib.sha256(PDF).hexdigest())
    assert server.stats("http://cdn.test/a.pdf").requests[0].headers["host"] == "cdn.test"


@pytest.mark.usefixtures("no_proxy_env")
async def test_no_proxy_is_honoured(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.route("/a.pdf", Reply(body=PDF))
    with socket.socket() as s:  # a proxy that is not there: using it would fail
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{dead}")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    async with Fetcher(FetchSettings(retries=0), clock=FakeClock()) as fetcher:
        r = await fetcher.fetch(server.url("/a.pdf"), expect="pdf")
    assert r.state == "ok"


@pytest.mark.usefixtures("no_proxy_env")
async def test_the_httpx_transport_fetches_plain_and_tls(
    server: LoopbackServer, ca: trustme.CA, trust: ssl.SSLContext
) -> None:
    settings = FetchSettings(retries=0, transport="httpx")
    server.route(
        "/chunked.pdf",
        Reply(
            body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMALL_PDF), SMALL_PDF),
            headers=[("Transfer-Encoding", "chunked")],
            until_close=True,
        ),
    )
    with https_server(ca, "127.0.0.1") as srv:
        srv.route("/a.pdf", Reply(body=PDF))
        async with Fetcher(settings, clock=FakeClock(), ssl_context=trust) as fetcher:
            plain = await fetcher.fetch(server.url("/chunked.pdf"), expect="pdf")
            tls = await fetcher.fetch(https_url(srv, "/a.pdf"), expect="pdf")
            redirected = await fetcher.fetch(server.url("/gone.pdf"), expect="pdf")
    assert (plain.state, plain.size) == ("ok", len(SMALL_PDF))
    assert (tls.state, tls.sha256) == ("ok", hashlib.sha256(PDF).hexdigest())
    assert (redirected.state, redirected.http_status) == ("dead", 404)


def test_fetch_transport_is_read_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[fetch]\ntransport = "httpx"\n', encoding="utf-8")
    assert load_config(path).fetch.transport == "httpx"
    path.write_text("[fetch]\nper_host = 2\n", encoding="utf-8")
    assert load_config(path).fetch.transport == "auto"
    assert get_args(TransportChoice) == config_module.TRANSPORTS


def test_a_bad_fetch_transport_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[fetch]\ntransport = "fast"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        "config key 'fetch.transport' must be one of 'auto', 'lean', 'httpx', got 'fast'"
    )
    with pytest.raises(ValueError, match="transport must be one of auto, lean, httpx"):
        FetchSettings(transport="fast")  # type: ignore[arg-type]


# --- framing the real world sends -----------------------------------------------------------


class RawServer:
    """Answers each request head with canned bytes, for framing a stdlib server never sends.

    The answers are used in order (the last one repeats); with ``close`` the server
    closes the connection after each answer."""

    def __init__(self, host: str, port: int, answers: tuple[bytes, ...], close: bool) -> None:
        self.host, self.port, self.answers, self.close = host, port, answers, close
        self.heads: list[bytes] = []

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        buffer = b""
        async with stream:
            try:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        buffer += await stream.receive()
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    self.heads.append(head)
                    await stream.send(self.answers[min(len(self.heads), len(self.answers)) - 1])
                    if self.close:
                        return
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return  # the client hung up, as it does after a response it will not reuse


@asynccontextmanager
async def raw_server(
    *answers: bytes, close: bool = False, host: str = "127.0.0.1"
) -> AsyncIterator[RawServer]:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=0)
    raw = RawServer(host, listener.extra(anyio.abc.SocketAttribute.local_port), answers, close)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, raw.handle)
        yield raw
        tg.cancel_scope.cancel()


def response(
    body: bytes, *headers: str, status: str = "200 OK", version: str = "HTTP/1.1"
) -> bytes:
    return "\r\n".join([f"{version} {status}", *headers, "", ""]).encode() + body


def chunked(body: bytes, trailers: bytes = b"") -> bytes:
    """``body`` in chunks of 4 bytes, with a chunk extension on the first."""
    parts = [body[i : i + 4] for i in range(0, len(body), 4)]
    out = b"".join(
        b"%x%s\r\n%s\r\n" % (len(p), b";ext=1" if i == 0 else b"", p) for i, p in enumerate(parts)
    )
    return out + b"0\r\n" + trailers + b"\r\n"


async def fetch_twice(*answers: bytes, close: bool = False) -> tuple[list[Any], int]:
    """Two fetches of one raw server: their results and how many connections they took."""
    transport = Http11Transport()
    async with (
        raw_server(*answers, close=close) as raw,
        Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher,
    ):
        results = [await fetcher.fetch(raw.url(f"/{i}.pdf"), expect="pdf") for i in range(2)]
    return results, transport.connections_opened


async def test_chunked_with_trailers_keeps_the_connection() -> None:
    body = chunked(SMALL_PDF, trailers=b"X-Checksum: 1234\r\nX-Served-By: edge\r\n")
    results, connections = await fetch_twice(response(body, "Transfer-Encoding: chunked"))
    assert [(r.state, r.size) for r in results] == [("ok", len(SMALL_PDF))] * 2
    assert connections == 1


async def test_chunked_wins_over_content_length_and_the_connection_is_dropped() -> None:
    """RFC 9112 section 6.3: Transfer-Encoding overrides Content-Length; such a message may
    be a smuggling attempt, so the connection it came on is not used again."""
    both = response(chunked(SMALL_PDF), "Content-Length: 1000", "Transfer-Encoding: chunked")
    results, connections = await fetch_twice(both)
    assert [(r.state, r.size, r.error_class) for r in results] == [("ok", len(SMALL_PDF), None)] * 2
    assert connections == 2


async def test_a_transfer_coding_other_than_chunked_is_a_protocol_error() -> None:
    """h11 frames only chunked; reading another coding until close (as this transport
    once did) takes whatever a server appends as part of the body (issue 10)."""
    answer = response(SMALL_PDF, "Transfer-Encoding: identity", "Content-Length: 4")
    results, connections = await fetch_twice(answer, close=True)
    assert [(r.state, r.error_class) for r in results] == [("error", "protocol")] * 2
    assert "Only Transfer-Encoding: chunked is supported" in (results[0].error or "")
    assert connections == 2


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        # h11's words for them (issue 10 replaced the hand-written parser with h11).
        (("Content-Length: 15, 20",), "conflicting Content-Length headers"),
        (("Content-Length: -15",), "bad Content-Length"),
        (("Transfer-Encoding: chunked",), "illegal chunk header"),
    ],
)
async def test_malformed_framing_is_a_protocol_error(
    headers: tuple[str, ...], message: str
) -> None:
    body = b"-f\r\n" + SMALL_PDF + b"\r\n0\r\n\r\n" if "chunked" in headers[0] else SMALL_PDF
    results, _ = await fetch_twice(response(body, *headers))
    assert {(r.state, r.error_class) for r in results} == {("error", "protocol")}
    assert message in (results[0].error or "")


async def test_no_body_after_head_204_and_304_whatever_content_length_says() -> None:
    """The announced length belongs to the GET that was not sent: reading it would
    swallow the next response. One connection carries all four exchanges."""
    answers = (
        response(b"", "Content-Length: 100"),  # to HEAD
        response(b"", "Content-Length: 100", status="204 No Content"),
        response(b"", "Content-Length: 100", 'ETag: "v1"', status="304 Not Modified"),
        response(SMALL_PDF, f"Content-Length: {len(SMALL_PDF)}"),
    )
    transport = Http11Transport()
    async with raw_server(*answers) as raw, httpx.AsyncClient(transport=transport) as client:
        head = await client.head(raw.url("/a.pdf"))
        empty = await client.get(raw.url("/a.pdf"))
        same = await client.get(raw.url("/a.pdf"), headers={"If-None-Match": '"v1"'})
        full = await client.get(raw.url("/a.pdf"))
    assert [r.status_code for r in (head, empty, same, full)] == [200, 204, 304, 200]
    assert (head.content, empty.content, same.content, full.content) == (b"", b"", b"", SMALL_PDF)
    assert transport.connections_opened == 1


@pytest.mark.parametrize("length", [True, False])
async def test_connection_close_is_honoured(length: bool) -> None:
    headers = ["Connection: close"] + ([f"Content-Length: {len(SMALL_PDF)}"] if length else [])
    results, connections = await fetch_twice(response(SMALL_PDF, *headers), close=True)
    assert [(r.state, r.size) for r in results] == [("ok", len(SMALL_PDF))] * 2
    assert connections == 2


async def test_an_http_1_0_server() -> None:
    """No Content-Length, no reason phrase, no keep-alive: the body ends at the close."""
    answer = response(SMALL_PDF, "Content-Type: application/pdf", status="200", version="HTTP/1.0")
    results, connections = await fetch_twice(answer, close=True)
    assert [(r.state, r.size, r.status_line) for r in results] == [
        ("ok", len(SMALL_PDF), "HTTP/1.0 200 OK")
    ] * 2
    assert connections == 2


async def test_long_headers_are_read_and_an_endless_head_is_an_error() -> None:
    """Heads up to 64 KiB are read; a longer one is a protocol error (issue 10)."""
    cookie = "Set-Cookie: session=" + "a" * 20_000  # with the rest, about 60 KB
    many = [f"X-Header-{i}: {i}" for i in range(2000)]
    fine = response(SMALL_PDF, cookie, *many, f"Content-Length: {len(SMALL_PDF)}")
    results, connections = await fetch_twice(fine)
    assert [r.state for r in results] == ["ok", "ok"]
    assert connections == 1
    endless = response(SMALL_PDF, "X-Junk: " + "a" * 300_000, f"Content-Length: {len(SMALL_PDF)}")
    results, _ = await fetch_twice(endless)
    assert {(r.state, r.error_class) for r in results} == {("error", "protocol")}
    assert "longer than 65536 bytes" in (results[0].error or "")


async def test_an_ipv6_literal_url() -> None:
    try:
        context = raw_server(response(PDF, f"Content-Length: {len(PDF)}"), host="::1")
        raw = await context.__aenter__()
    except OSError as exc:
        pytest.skip(f"this machine cannot listen on ::1 ({exc})")
    transport = Http11Transport()
    try:
        async with Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher:
            first = await fetcher.fetch(raw.url("/a.pdf"), expect="pdf")
            second = await fetcher.fetch(raw.url("/b.pdf"), expect="pdf")
    finally:
        await context.__aexit__(None, None, None)
    assert (first.state, second.state, first.final_url) == ("ok", "ok", raw.url("/a.pdf"))
    assert first.url.startswith("http://[::1]:")
    assert raw.heads[0].split(b"\r\n")[1].lower() == f"host: [::1]:{raw.port}".encode()
    assert transport.connections_opened == 1


class RepoolingClock(FakeClock):
    """Each wait between attempts, another URL of the host is fetched (as in a busy run),
    so the next attempt finds a kept-alive connection in the pool."""

    fetcher: Fetcher | None = None
    url = ""

    async def sleep(self, seconds: float) -> None:
        assert self.fetcher is not None
        assert (await self.fetcher.fetch(self.url, expect="pdf")).state == "ok"
        await super().sleep(seconds)


async def test_a_reset_on_a_kept_alive_connection_is_re_sent_at_once_only_once_per_url(
    server: LoopbackServer,
) -> None:
    """A reset before any byte on a reused connection may be a stale keep-alive: re-sent
    at once on a fresh one. When that is reset too, the reset is the URL's own: its later
    attempts, each on a reused connection again, wait for their backoff, not re-sent."""
    ok = server.route("/ok.pdf", Reply(body=PDF))
    rst = server.route("/rst.pdf", Reply(reset=True))
    clock = RepoolingClock()
    clock.url = ok
    transport = Http11Transport()
    settings = FetchSettings(retries=3, connect_timeout=2.0, read_timeout=5.0, transport="lean")
    async with Fetcher(settings, transport=transport, clock=clock) as fetcher:
        clock.fetcher = fetcher
        assert (await fetcher.fetch(ok, expect="pdf")).state == "ok"  # a connection to reuse
        r = await fetcher.fetch(rst, expect="pdf")
    assert (r.state, r.error_class, r.attempts) == ("error", "reset", 4)
    # 4 attempts and the one immediate re-send of the first (8 before: one per attempt).
    assert server.stats("/rst.pdf").hits == 5
    assert len(clock.sleeps) == 3  # the backoff schedule is unchanged
    assert server.stats("/ok.pdf").hits == 4 and transport.connections_opened == 5


async def test_a_retried_error_page_that_came_whole_keeps_its_connection() -> None:
    """A 503 or 429 page arrives with its head: skipping it keeps the connection for the
    retry, instead of a new one (and a TLS handshake) per attempt. A body still on its
    way is not waited for: that connection is dropped."""
    replies = {
        "/busy.pdf": [b"503 Service Unavailable", b"429 Too Many Requests", b"200 OK"],
        "/big.pdf": [b"503 Service Unavailable"] * 3,
    }
    connections = 0

    async def handle(stream: anyio.abc.SocketStream) -> None:
        nonlocal connections
        connections += 1
        # The client drops a connection when it likes: its end is no error here.
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
            async with stream:
                await serve(stream)

    async def serve(stream: anyio.abc.SocketStream) -> None:
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, data = data.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1].decode()
            status = replies[path].pop(0)
            body = PDF if status == b"200 OK" else b"busy " * 20
            if path == "/big.pdf":  # 1 MiB announced, 100 bytes sent: the rest waits
                await stream.send(b"HTTP/1.1 %s\r\nContent-Length: 1048576\r\n\r\n" % status + body)
                await stream.receive()  # until the client drops it
                return
            reply = b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n" % (status, len(body))
            await stream.send(reply + body)  # the whole page in one write

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    transport = Http11Transport()
    settings = FetchSettings(retries=2, connect_timeout=2.0, read_timeout=5.0, transport="lean")
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        async with Fetcher(settings, transport=transport, clock=FakeClock()) as fetcher:
            r = await fetcher.fetch(f"http://127.0.0.1:{port}/busy.pdf", expect="pdf")
            assert (r.state, r.attempts, transport.connections_opened) == ("ok", 3, 1)
            big = await fetcher.fetch(f"http://127.0.0.1:{port}/big.pdf", expect="pdf")
        tg.cancel_scope.cancel()
    assert (big.error_class, big.attempts) == ("http-503", 3)
    # The first big one went on the kept connection; each after it needed a new one.
    assert transport.connections_opened == connections == 3


async def test_host_headers_never_leave_https_for_plain_http(
    ca: trustme.CA, trust: ssl.SSLContext, server: LoopbackServer
) -> None:
    # The same host (127.0.0.1) on two ports: https redirects to plain http. The token
    # went over TLS; the hop in clear goes without it (the header and its value alike).
    plain = server.route("/clear.pdf", Reply(body=PDF, content_type="application/pdf"))
    settings = dataclasses.replace(
        SETTINGS, host_headers=(("127.0.0.1", (("Authorization", "Bearer s3cr3t"),)),)
    )
    with https_server(ca, "127.0.0.1") as srv:
        srv.route("/deck.pdf", Reply.redirect(plain))
        srv.route("/direct.pdf", Reply(body=PDF, content_type="application/pdf"))
        transport = Http11Transport(ssl_context=trust)
        async with Fetcher(settings, transport=transport, clock=FakeClock()) as fetcher:
            moved = await fetcher.fetch(https_url(srv, "/deck.pdf"), expect="pdf")
            direct = await fetcher.fetch(https_url(srv, "/direct.pdf"), expect="pdf")
            clear = await fetcher.fetch(plain, expect="pdf")
        (hop,) = srv.stats("/deck.pdf").requests
        (tls,) = srv.stats("/direct.pdf").requests
    assert (moved.state, moved.final_url, direct.state, clear.state) == ("ok", plain, "ok", "ok")
    assert hop.headers["authorization"] == tls.headers["authorization"] == "Bearer s3cr3t"
    downgraded, asked = server.stats("/clear.pdf").requests
    assert "authorization" not in downgraded.headers
    # A plain-http URL asked as such is the configuration's choice: it carries them.
    assert asked.headers["authorization"] == "Bearer s3cr3t"
