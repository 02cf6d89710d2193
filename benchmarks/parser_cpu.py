"""CPU per request of archiver's HTTP/1.1 path (``Http11Transport``), over http and TLS.

    .venv/bin/python benchmarks/parser_cpu.py            # ~1 min: live "after" next to "before"
    .venv/bin/python benchmarks/parser_cpu.py --json     # the live figures only, one JSON line

Issue 10 replaced the transport's hand-written HTTP/1.1 parser with h11. This measures
what that costs: the client runs in this process (its CPU is ``time.process_time``), a
small asyncio server in a child process answers every request with the same CDN-like
response (13 header fields, an 8 KiB PDF body, keep-alive), so the server's CPU is not
counted. Eight requests are in flight at once over eight kept-alive connections, as a
``check`` with ``per_host = 8`` sends them; each response body is read to its end. The
figure is the best of ``--rounds`` rounds (this VM's timings swing run to run, and
other processes share its two cores); the median is printed beside it.

"before" is not measured live: the old parser is gone from the tree. The figures below
were measured with this script on the base commit (``BEFORE_COMMIT``), by running it
with ``--json`` and ``PYTHONPATH`` pointing at a checkout of that commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_media import pdf_exact

#: The commit the "before" figures were measured on: main before issue 10, whose
#: ``archiver/transport.py`` parsed responses by hand.
BEFORE_COMMIT = "f1ce881"
#: ms of client CPU per request there: the best of four runs of 7 rounds of 3,000
#: requests, interleaved with runs of the h11 transport, on the machine described in
#: docs/benchmarks.md (2026-12-01, with other work sharing its two cores).
BEFORE = {"http": 0.081, "https": 0.104}

BODY = pdf_exact(9 + 256 * 32)  # a real PDF, as long as the filler body measured before
HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/pdf\r\n"
    b"Content-Length: %d\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 GMT\r\n"
    b"Last-Modified: Mon, 30 Nov 2026 09:00:00 GMT\r\n"
    b'ETag: "5f3a-8209-62c1e0a1b2c3d"\r\n'
    b"Accept-Ranges: bytes\r\n"
    b"Cache-Control: public, max-age=86400\r\n"
    b"Server: cdn-edge\r\n"
    b"Via: 1.1 varnish\r\n"
    b"X-Cache: HIT\r\n"
    b"X-Served-By: cache-fra-etou8220021-FRA\r\n"
    b"Age: 1834\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
) % len(BODY)
RESPONSE = HEAD + BODY


class _Answer(asyncio.Protocol):
    """Answers each request head (pipelined or not) with ``RESPONSE``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            self.buffer = self.buffer[self.buffer.rindex(b"\r\n\r\n") + 4 :]
            self.transport.write(RESPONSE * count)  # type: ignore[attr-defined]


def _serve(port: multiprocessing.connection.Connection, cert: str | None) -> None:
    """The server process: listens on 127.0.0.1, sends its port, serves until killed."""

    async def main() -> None:
        context = None
        if cert is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert)
        server = await asyncio.get_running_loop().create_server(
            _Answer, "127.0.0.1", 0, ssl=context
        )
        port.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


async def _round(url: str, context: ssl.SSLContext | None, n: int, width: int) -> float:
    """Client CPU seconds for ``n`` GETs, ``width`` in flight, over one transport."""
    import httpx

    from archiver.net.transport import Http11Transport

    transport = Http11Transport(max_idle_per_origin=width, ssl_context=context)
    timeouts = {"timeout": {"connect": 10.0, "read": 10.0, "write": 10.0, "pool": None}}
    headers = [("User-Agent", "archiver-bench"), ("Accept-Encoding", "identity")]

    async def one() -> None:
        request = httpx.Request("GET", url, headers=headers, extensions=timeouts)
        response = await transport.handle_async_request(request)
        size = 0
        async for chunk in response.stream:  # type: ignore[union-attr]
            size += len(chunk)
        await response.aclose()
        assert size == len(BODY), size

    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await asyncio.gather(*(worker(10) for _ in range(width)))  # connect and warm up
    started = time.process_time()
    await asyncio.gather(*(worker(n // width) for _ in range(width)))
    spent = time.process_time() - started
    assert transport.connections_opened == width, transport.connections_opened
    await transport.aclose()
    return spent / (n // width * width)


def measure(scheme: str, rounds: int, n: int, width: int, work: Path) -> tuple[float, float]:
    """(best, median) ms of client CPU per request over ``scheme``."""
    cert = context = None
    if scheme == "https":
        import trustme  # a development dependency, for a test certificate

        ca = trustme.CA()
        cert = str(work / "cert.pem")
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(cert)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ca.configure_trust(context)
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(theirs, cert), daemon=True
    )
    server.start()
    try:
        port = ours.recv()
        url = f"{scheme}://127.0.0.1:{port}/deck.pdf"
        figures = [asyncio.run(_round(url, context, n, width)) * 1000 for _ in range(rounds)]
    finally:
        server.kill()
        server.join()
    return min(figures), statistics.median(figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=3000, help="per round")
    parser.add_argument("--json", action="store_true", help="print the live figures only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        live = {
            scheme: measure(scheme, args.rounds, args.requests, 8, Path(tmp))
            for scheme in ("http", "https")
        }
    import archiver.net.transport

    if args.json:
        figures = {scheme: round(best, 4) for scheme, (best, _) in live.items()}
        print(json.dumps({**figures, "transport": archiver.net.transport.__file__}))
        return 0

    source = Path(archiver.net.transport.__file__).read_text(encoding="utf-8")
    parser_name = "h11" if "import h11" in source else "hand-written"
    print(f"client CPU per request, Http11Transport, 8 in flight, {args.requests:,} per round")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; best of {args.rounds}")
    before_label = f"before ({BEFORE_COMMIT}, hand-written)"
    print(f"{'':7}{before_label:>32}  {'after (' + parser_name + ', live)':>34}  ratio")
    for scheme, (best, middle) in live.items():
        before = BEFORE[scheme]
        ratio = f"{best / before:.2f}x" if before else "n/a"
        after = f"{best:.3f} ms (median {middle:.3f})"
        print(f"{scheme:7}{before:>29.3f} ms  {after:>34}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
