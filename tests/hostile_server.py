"""A raw-socket HTTP server on loopback that answers with exact bytes, for hostile cases.

``tests/server.py`` speaks correct HTTP through the stdlib; this one does not have to.
Each route maps a request path to a *handler*: a function that gets the connected
socket and the raw request head, and writes whatever it likes (a body longer than its
Content-Length, a 204 with a body, a header with a bare LF, one byte every few
seconds, an endless stream of ``100 Continue``...). Connections are kept alive: after
a handler returns, the server reads the next request head on the same socket, so the
tests see what a client does with the bytes a previous response left behind.

The server counts connections and requests per path so tests assert outcomes (which
bytes were archived, how many connections were opened) without sleeping.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["HostileServer", "Seen", "raw", "read_head"]

#: A handler writes a raw response for one request; return False to close the connection.
Handler = Callable[[socket.socket, bytes], "bool | None"]

# A handler that waits on the client gives up after this long, so a broken test fails.
_IO_TIMEOUT = 30.0
_MAX_HEAD = 256 * 1024


@dataclass
class Seen:
    """What the server saw: request heads in order, and connections accepted."""

    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    def paths(self) -> list[str]:
        return [_path(head) for head in self.requests]


def read_head(sock: socket.socket, buffered: bytearray) -> bytes | None:
    """Reads one request head (through the blank line); None when the client hung up."""
    while b"\r\n\r\n" not in buffered:
        if len(buffered) > _MAX_HEAD:
            return None
        try:
            chunk = sock.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        buffered += chunk
    end = buffered.index(b"\r\n\r\n") + 4
    head = bytes(buffered[:end])
    del buffered[:end]
    return head


def raw(*parts: bytes, close: bool = False) -> Handler:
    """A handler that sends ``parts`` verbatim, then keeps the connection (or closes it)."""

    def handler(sock: socket.socket, head: bytes) -> bool:
        for part in parts:
            sock.sendall(part)
        return not close

    return handler


def _path(head: bytes) -> str:
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    return parts[1] if len(parts) >= 2 else ""


class HostileServer:
    """Raw-socket server on ``host`` (127.0.0.1 by default); use as a context manager.

    With ``tls``, each connection is TLS first (a server context: certificate loaded),
    and handlers write their exact bytes inside it."""

    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self._tls = tls
        self.seen = Seen()
        self._routes: dict[str, Handler] = {}
        self._lock = threading.Lock()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        try:
            self._listener.close()
        finally:
            with self._lock:
                for client in self._clients:
                    with contextlib.suppress(OSError):
                        client.shutdown(socket.SHUT_RDWR)
                    client.close()

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> str:
        """Answers ``path`` with ``handler``; returns its URL."""
        self._routes[path] = handler
        return self.url(path)

    def routes(self, handlers: Iterable[tuple[str, Handler]]) -> list[str]:
        return [self.route(path, handler) for path, handler in handlers]

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.settimeout(_IO_TIMEOUT)
            with self._lock:
                self.seen.connections += 1
                self._clients.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        buffered = bytearray()
        try:
            if self._tls is not None:
                client = self._tls.wrap_socket(client, server_side=True)
            while not self._closed.is_set():
                head = read_head(client, buffered)
                if head is None:
                    return
                with self._lock:
                    self.seen.requests.append(head)
                handler = self._routes.get(_path(head))
                if handler is None:
                    client.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")
                    continue
                if handler(client, head) is False:
                    return
        except OSError:
            return
        finally:
            client.close()
