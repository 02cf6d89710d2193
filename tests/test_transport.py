"""The lean HTTP/1.1 transport: keep-alive, one DNS lookup per host, framing, stale connections.

Failure classification through it (resets, truncation, timeouts, refused) is covered by
``test_fetch.py``, which runs on this transport by default.
"""

from __future__ import annotations

import socket
from typing import Any

import anyio
import pytest
from server import LoopbackServer, Reply

from archiver.clock import FakeClock
from archiver.fetch import Fetcher, FetchSettings
from archiver.transport import Http11Transport

pytestmark = pytest.mark.anyio

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 64
SETTINGS = FetchSettings(retries=0, connect_timeout=2.0, read_timeout=5.0, per_host=4)


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
        results = await fetcher.run_all((url, "pdf") for url in urls)
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
        results = await fetcher.run_all((url, "pdf") for url in good + bad)
    by_url = {r.url: r for r in results}
    assert {by_url[u].state for u in good} == {"ok"}
    assert {(by_url[u].state, by_url[u].error_class) for u in bad} == {("dead", "dns")}
    assert sorted(resolver.calls) == ["assets.test", "gone.test"]
    # The Host header keeps the name: the server sees what it would in production.
    assert server.stats("/a.pdf").requests[0].headers["host"] == f"assets.test:{port}"


async def test_a_chunked_body_is_decoded(server: LoopbackServer) -> None:
    chunked = b"9\r\n%PDF-1.7\n\r\n6\r\nslides\r\n0\r\n\r\n"
    url = server.route(
        "/c.pdf",
        Reply(body=chunked, headers=[("Transfer-Encoding", "chunked")], until_close=True),
    )
    async with Fetcher(SETTINGS, clock=FakeClock()) as fetcher:
        r = await fetcher.fetch(url, expect="pdf")
    assert (r.state, r.size, r.bytes_received) == ("ok", 15, 15)


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
