"""A scriptable HTTP/1.1 server on loopback, for tests that need a real peer.

Each route answers with a script: a sequence of ``Reply`` values (the last one
repeats) or a function of the request. A reply can misbehave the way real
servers do: hold the response until the test releases it, announce more bytes
than it sends, reset the connection (RST via ``SO_LINGER 0``), stall mid-body.
The server counts requests, body bytes and in-flight requests so tests observe
concurrency by waiting on conditions, never by sleeping.

Bind it to 127.0.0.1 and 127.0.0.2 to get two distinct hosts on one machine.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

__all__ = [
    "HOLD_TIMEOUT",
    "LoopbackServer",
    "Reply",
    "Request",
    "RouteStats",
    "conditional",
    "http_date",
]

# A held response waits at most this long, so a broken test fails instead of hanging.
HOLD_TIMEOUT = 10.0


@dataclass(frozen=True)
class Request:
    """What the server saw: method, full path and the headers (names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Reply:
    """One scripted response, and how it should misbehave."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    # A generated body (e.g. 50 MB without holding it); then ``length`` is required.
    chunks: Callable[[], Iterable[bytes]] | None = None
    # Content-Length to announce; more than is sent means "send, then close" (truncation).
    length: int | None = None
    # Wait on this event before sending anything.
    hold: threading.Event | None = None
    # After ``cut_at`` body bytes: "reset" (RST), "close" (FIN) or "stall" (wait on ``hold``).
    cut_at: int | None = None
    cut: Literal["reset", "close", "stall"] = "close"
    # Reset the connection instead of answering at all.
    reset: bool = False
    # Send no Content-Length: the body ends when the server closes the connection.
    until_close: bool = False

    @staticmethod
    def redirect(location: str, status: int = 302) -> Reply:
        return Reply(status=status, headers=[("Location", location)])


Script = Callable[[Request], Reply]


@dataclass
class RouteStats:
    """Per-route counters."""

    hits: int = 0
    bytes_sent: int = 0
    requests: list[Request] = field(default_factory=list)


def conditional(
    body: bytes, *, etag: str, last_modified: str, content_type: str = "application/pdf"
) -> Script:
    """A route that honours If-None-Match and If-Modified-Since with 304."""
    validators = [("ETag", etag), ("Last-Modified", last_modified)]
    modified = parsedate_to_datetime(last_modified)

    def script(req: Request) -> Reply:
        inm = req.headers.get("if-none-match")
        ims = req.headers.get("if-modified-since")
        if inm is not None:
            fresh = etag in (t.strip() for t in inm.split(","))
        else:
            fresh = ims is not None and parsedate_to_datetime(ims) >= modified
        if fresh:
            return Reply(status=304, headers=validators)
        return Reply(body=body, content_type=content_type, headers=validators)

    return script


def http_date(when: datetime) -> str:
    """An RFC 9110 date (as in Retry-After and Last-Modified) for an aware datetime."""
    return format_datetime(when, usegmt=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner = self.server.owner
        req = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        route = self.path.split("?", 1)[0]
        owner._enter()
        try:
            reply, stats = owner._next(route, req)
            self._respond(reply, stats)
        except OSError:
            self.close_connection = True
        finally:
            owner._leave()

    def _respond(self, reply: Reply, stats: RouteStats) -> None:
        if reply.hold is not None and reply.cut != "stall":
            reply.hold.wait(HOLD_TIMEOUT)
        if reply.reset:
            self._rst()
            return
        chunks: Iterable[bytes] = reply.chunks() if reply.chunks else [reply.body]
        length = reply.length if reply.length is not None else len(reply.body)
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.until_close:
            self.send_header("Connection", "close")
            self.close_connection = True
        elif reply.status not in (204, 304):
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD" or reply.status in (204, 304):
            return
        sent = 0
        for chunk in _limit(chunks, reply.cut_at):
            self.wfile.write(chunk)
            sent += len(chunk)
            with self.server.owner._lock:
                stats.bytes_sent += len(chunk)
        if reply.cut_at is not None and sent >= reply.cut_at:
            if reply.cut == "reset":
                self._rst()
                return
            if reply.cut == "stall" and reply.hold is not None:
                reply.hold.wait(HOLD_TIMEOUT)
            self.close_connection = True
        elif sent < length and not reply.until_close:
            self.close_connection = True

    def _rst(self) -> None:
        """Closes with SO_LINGER 0, so the peer gets a TCP RST instead of a FIN."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()
        self.close_connection = True


def _limit(chunks: Iterable[bytes], cut_at: int | None) -> Iterator[bytes]:
    sent = 0
    for chunk in chunks:
        if cut_at is not None and sent + len(chunk) >= cut_at:
            yield chunk[: cut_at - sent]
            return
        sent += len(chunk)
        yield chunk


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    owner: LoopbackServer

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up mid-response are part of the tests


class LoopbackServer:
    """A threaded HTTP/1.1 server on ``host`` with scripted routes; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._scripts: dict[str, list[Reply] | Script] = {}
        self._stats: dict[str, RouteStats] = {}
        self._gates: list[threading.Event] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd = _Server((host, 0), _Handler)
        self._httpd.owner = self
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def close(self) -> None:
        for gate in self._gates:
            gate.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(self, path: str, *replies: Reply | Script) -> str:
        """Scripts a path: replies in order (the last repeats), or one function; returns its URL."""
        if len(replies) == 1 and callable(replies[0]):
            self._scripts[path] = replies[0]
        else:
            self._scripts[path] = [r for r in replies if isinstance(r, Reply)]
        return self.url(path)

    def redirect_chain(self, prefix: str, hops: int, final: str) -> str:
        """Routes ``prefix/0`` -> ``prefix/1`` -> ... -> ``final`` in ``hops`` redirects.

        Returns the URL of the first hop."""
        for i in range(hops):
            target = f"{prefix}/{i + 1}" if i + 1 < hops else final
            self.route(f"{prefix}/{i}", Reply.redirect(target))
        return self.url(f"{prefix}/0")

    def gate(self) -> threading.Event:
        """An event that held replies wait on; released for good when the server closes."""
        event = threading.Event()
        self._gates.append(event)
        return event

    def stats(self, path: str) -> RouteStats:
        with self._lock:
            return self._stats.setdefault(path, RouteStats())

    def wait_for_in_flight(self, n: int, timeout: float = HOLD_TIMEOUT) -> bool:
        """Blocks until ``n`` requests are being answered at once; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.in_flight >= n, timeout)

    def _enter(self) -> None:
        with self._changed:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._changed.notify_all()

    def _leave(self) -> None:
        with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()

    def _next(self, route: str, req: Request) -> tuple[Reply, RouteStats]:
        with self._lock:
            stats = self._stats.setdefault(route, RouteStats())
            stats.hits += 1
            stats.requests.append(req)
            script = self._scripts.get(route)
            if script is None:
                return Reply(404, b"not found", "text/plain"), stats
            if callable(script):
                pass
            elif len(script) > 1:
                return script.pop(0), stats
            else:
                return script[0], stats
        return script(req), stats
