"""A light HTTP/1.1 server for benchmarks: generated assets, a fixed per-request latency.

It stands in for a CDN: every response waits ``--latency`` seconds (the round trip we
cannot avoid) and costs the server almost no CPU, so the client is what gets measured.
Run it as a subprocess; it prints ``PORT <n>`` once listening and, on SIGTERM or SIGINT,
one JSON line with its own CPU time, requests, connections and the most requests it had
in flight at once, so the benchmark can show it was not the bottleneck, that
connections were reused and that a per-host limit held.

Routes (the number only makes URLs distinct; every asset has ``--size`` bytes)::

    /a/<n>.pdf, /a/<n>.png   the asset (206 for ``Range: bytes=a-b`` unless --ignore-range)
    /gone/<n>.<ext>          404
    /soft/<n>.<ext>          200 with an HTML page (a soft 404)

Assets are a real PDF and a real PNG (``bench_media``), carry an ``ETag`` and answer a
matching ``If-None-Match`` with 304. With ``--distinct`` each number gets bytes of its own
(still ``--size`` bytes, still opening in pypdf and Pillow), as an event site's decks and
photos are: the client then stores, deep-checks and thumbnails one blob per URL instead of
one per kind. Standard library only; bind it to loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import struct
import sys
import zlib

from bench_media import pdf_exact, png_exact

_REASONS = {200: "OK", 206: "Partial Content", 304: "Not Modified", 404: "Not Found"}
_HTML = b"<!doctype html><html><head><title>Not found</title></head><body>Gone</body></html>"


class Stats:
    requests = 0
    connections = 0
    in_flight = 0  # requests received and not yet answered
    max_in_flight = 0


class Assets:
    """Bodies generated once per kind; a request only slices them (or, ``distinct``,
    stamps its number into a copy: a few bytes rewritten, not a file generated)."""

    #: The PNG's stamp: a ``tEXt`` chunk of fixed length carrying the number.
    _STAMP = 12 + len(b"n\0") + 10

    def __init__(self, size: int, distinct: bool = False) -> None:
        self.distinct = distinct
        png_size = size - self._STAMP if distinct else size
        self.bodies = {"pdf": pdf_exact(size), "png": png_exact(png_size)}
        self.etag = f'"bench-{size}"'
        # Where the PDF's page stream starts: its comment filler takes the number.
        self._pdf_at = self.bodies["pdf"].index(b"stream\n%") + len(b"stream\n%")

    def body(self, ext: str, number: str) -> bytes:
        base = self.bodies[ext]
        if not self.distinct:
            return base
        digits = number.encode("ascii")[-10:].rjust(10, b"0")
        if ext == "pdf":
            return base[: self._pdf_at] + digits + base[self._pdf_at + len(digits) :]
        data = b"n\0" + digits
        chunk = struct.pack(">I", len(data)) + b"tEXt" + data
        chunk += struct.pack(">I", zlib.crc32(b"tEXt" + data))
        return base[:-12] + chunk + base[-12:]  # before IEND

    def etag_of(self, number: str) -> str:
        return f'{self.etag[:-1]}-{number}"' if self.distinct else self.etag


def _response(status: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def answer(target: str, headers: dict[str, str], assets: Assets, honour_range: bool) -> bytes:
    """The full response (head and body) for one GET."""
    path = target.split("?", 1)[0]
    parts = path.split("/")
    kind = parts[1] if len(parts) == 3 else ""
    number, _, ext = parts[-1].rpartition(".")
    if kind == "soft":
        return _response(200, [("Content-Type", "text/html")], _HTML)
    if kind != "a" or ext not in assets.bodies:
        return _response(404, [("Content-Type", "text/plain")], b"not found")
    body = assets.body(ext, number)
    etag = assets.etag_of(number)
    ctype = "application/pdf" if ext == "pdf" else "image/png"
    common = [("Content-Type", ctype), ("ETag", etag), ("Accept-Ranges", "bytes")]
    if headers.get("if-none-match") == etag:
        return _response(304, [("ETag", etag)], b"")
    spec = headers.get("range", "")
    if honour_range and spec.startswith("bytes="):
        first, _, last = spec[6:].partition("-")
        start = int(first)
        end = min(int(last) if last else len(body) - 1, len(body) - 1)
        rng = ("Content-Range", f"bytes {start}-{end}/{len(body)}")
        return _response(206, [*common, rng], body[start : end + 1])
    return _response(200, common, body)


class HTTPProtocol(asyncio.Protocol):
    """Keep-alive HTTP/1.1, one request at a time per connection (as clients send them)."""

    def __init__(self, assets: Assets, latency: float, honour_range: bool) -> None:
        self._assets = assets
        self._latency = latency
        self._range = honour_range
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Stats.connections += 1
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while (end := self._buf.find(b"\r\n\r\n")) >= 0:
            head, self._buf = self._buf[:end], self._buf[end + 4 :]
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            Stats.requests += 1
            Stats.in_flight += 1
            Stats.max_in_flight = max(Stats.max_in_flight, Stats.in_flight)
            reply = answer(target, headers, self._assets, self._range)
            if self._latency > 0:
                asyncio.get_running_loop().call_later(self._latency, self._send, reply)
            else:
                self._send(reply)

    def _send(self, reply: bytes) -> None:
        Stats.in_flight -= 1
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(reply)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def serve(
    host: str, port: int, latency: float, size: int, honour_range: bool, distinct: bool = False
) -> None:
    loop = asyncio.get_running_loop()
    assets = Assets(size, distinct)
    server = await loop.create_server(
        lambda: HTTPProtocol(assets, latency, honour_range), host, port, backlog=1024
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()
    figures = {
        "cpu_seconds": round(cpu_seconds(), 3),
        "requests": Stats.requests,
        "connections": Stats.connections,
        "max_in_flight": Stats.max_in_flight,
    }
    print(json.dumps(figures), flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.02, help="seconds before each response")
    ap.add_argument("--size", type=int, default=100_000, help="bytes per asset")
    ap.add_argument("--ignore-range", action="store_true", help="answer 200 to ranged GETs")
    ap.add_argument("--distinct", action="store_true", help="different bytes for each number")
    args = ap.parse_args(argv)
    if not args.host.startswith("127."):
        sys.exit("latency_server: bind to loopback only (127.x.x.x)")
    asyncio.run(
        serve(args.host, args.port, args.latency, args.size, not args.ignore_range, args.distinct)
    )


if __name__ == "__main__":
    main()
