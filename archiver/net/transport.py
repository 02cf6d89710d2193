"""HTTP/1.1 on asyncio, framed by h11: the lean transport the fetcher uses by default.

Owns connections: one DNS answer per host for the whole run, its addresses raced as
browsers do (Happy Eyeballs, RFC 8305: a broken IPv6 route costs 250 ms, not the connect
timeout), and a keep-alive pool per origin. It parses nothing by hand: every byte a
server sends goes to h11, which frames the response (Content-Length, chunked, until
close) and refuses what RFC 9110/9112 forbid; what h11 refuses is a protocol error here.
It exists because per-request CPU is what limits a link check: httpcore's
general-purpose pool costs about 1.5 ms of CPU per request on this load, this transport
well under half of that (``benchmarks/run.py``, ``benchmarks/parser_cpu.py``). It speaks
HTTP/1.1 only, sends request bodies whole, raises only httpx exceptions (so ``fetch``
classifies failures the same whichever transport runs), and resends a request only when
a kept-alive connection turns out to have been closed by the server before it answered
anything, as browsers do. asyncio only.

It must never reuse a connection for a name its certificate was not checked against, nor
unless the previous response ended exactly where h11 framed it (both sides back to IDLE)
with no byte waiting after it (in h11, in TLS, in the kernel), nor after a response whose
framing is in doubt (RFC 9112 section 6.3): the next response on that connection could
then be read from the middle of this one. Response heads are capped at 64 KiB and
informational (1xx) responses at 16 per request. It knows nothing of proxies: ``fetch``
hands a run to httpx's own transport when the environment names one.

``Http2Transport`` is the https side when HTTP/2 is on (opt-in): httpcore's pool (one
multiplexed connection per origin where the server offers h2), fed by the same
once-per-host lookups and address race, and keeping the same promise about names;
``OriginRouter`` picks between the two by scheme.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import re
import socket
import ssl
import time
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from typing import TYPE_CHECKING, Any, TypedDict, Unpack, cast

import anyio
import anyio.abc
import h11
import httpx

from archiver.net.guard import AddressGuard

if TYPE_CHECKING:  # imported when first used: only an HTTP/2 run pays for them
    import httpcore

__all__ = ["RESEND_STALE", "Http2Transport", "Http11Transport", "OriginRouter", "Resolver"]

#: ``(host, port) -> [(family, address tuple), ...]``; swappable so tests never touch DNS.
Resolver = Callable[[str, int], Awaitable[list[tuple[int, tuple[Any, ...]]]]]

_log = logging.getLogger("archiver")
#: Set, for the whole process, once the HTTP/2 path's reach into httpcore has failed.
_http2_broken: str | None = None

#: A response head (status line and fields) longer than this is a protocol error: no
#: server we archive from needs more, and what a head holds is what we keep of it.
_MAX_HEAD = 64 * 1024
#: Informational (1xx) responses one request may take before its final one; an endless
#: stream of ``100 Continue`` is a protocol error, not a wait.
_MAX_INFORMATIONAL = 16
#: Bytes received and not yet consumed before the connection stops reading (flow control).
_READ_AHEAD = 256 * 1024
_IDLE_EXPIRY = 4.0  # seconds; servers commonly drop idle connections after 5 s or more
_ATTEMPT_DELAY = 0.25  # seconds an address has before the next is tried too (RFC 8305)
#: (scheme, host, port, TLS server name): a connection verified for one name never
#: carries a request for another, even when both names resolve to the same address.
_Origin = tuple[str, str, int, str]


#: A request extension: ``False`` says not to re-send the request at once on a fresh
#: connection when a reused one turns out closed (the fetcher sets it for a URL whose last
#: attempt was reset: that reset was the URL's own, not a stale connection's).
RESEND_STALE = "archiver_resend_stale"


class _Stale(Exception):
    """A reused connection was closed by the server before any byte of the response;
    ``error`` is what the request fails with when it is not re-sent."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Wire(asyncio.Protocol):
    """One connection's bytes, fed to its h11 state machine as they arrive.

    h11 owns every byte received: what it has not consumed stays in its buffer, so
    "nothing is waiting" is a question h11 answers, not one the stream layer hides.
    Reading stops while more than ``_READ_AHEAD`` bytes wait unconsumed.
    """

    def __init__(self) -> None:
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self.transport: asyncio.Transport | None = None
        self.closed = False  # the peer ended the connection, or it was lost
        self.lost: Exception | None = None  # why, when it was not a clean end
        self.received = 0  # bytes received since the current request was sent
        self._unread = 0
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None

    # -- asyncio.Protocol --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self._unread += len(data)
        self.h11.receive_data(data)
        if self._unread > _READ_AHEAD and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._end(None)
        return False  # close our side too: nothing more will be sent on it

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- what the transport asks -------------------------------------------

    async def send(self, data: bytes, timeout: float | None) -> None:
        assert self.transport is not None
        self.received = 0
        self.transport.write(data)
        if self._writing_paused and not self.closed:  # else the kernel took it all
            self._drained = asyncio.get_running_loop().create_future()
            async with asyncio.timeout(timeout):
                await self._drained
        if self.lost is not None:
            raise self.lost

    async def next_event(self, timeout: float | None) -> Any:
        """h11's next event, waiting (up to ``timeout`` each time) for the bytes it needs."""
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError:
                if isinstance(self.lost, OSError):
                    raise self.lost from None  # a reset, not an end: said as the socket said
                raise
            if event is not h11.NEED_DATA:
                return event
            self._unread = 0  # h11 has consumed what it was given: let more in
            if self._reading_paused and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            finally:
                self._waiter = None

    def idle(self) -> bool:
        """True when both sides are back to IDLE and h11 holds no byte past the response."""
        if self.closed or self.transport is None or self.transport.is_closing():
            return False
        if self.h11.our_state is not h11.IDLE or self.h11.their_state is not h11.IDLE:
            return False
        return self.h11.trailing_data == (b"", False)

    def quiet(self, sock: socket.socket) -> bool:
        """``idle``, and no byte waits in TLS or in the kernel either: a byte the server
        sent past its response must never start the next one."""
        if not self.idle():
            return False
        assert self.transport is not None
        tls = self.transport.get_extra_info("ssl_object")
        if tls is not None and tls.pending():
            return False
        try:
            waiting = sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        return not waiting  # a byte waits, or b"": the peer closed

    def _end(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.lost = exc
            with contextlib.suppress(RuntimeError):  # h11 was already told
                self.h11.receive_data(b"")
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Connection:
    __slots__ = ("idle_since", "origin", "reuse", "sock", "wire")

    def __init__(self, wire: _Wire, sock: socket.socket, origin: _Origin) -> None:
        self.wire = wire
        self.sock = sock  # kept to look (MSG_PEEK) for bytes not yet read off it
        self.origin = origin
        self.idle_since = 0.0
        self.reuse = True  # False once a response's framing is in doubt

    def open(self) -> bool:
        """Fit for the pool: its last exchange ended exactly at the response's end."""
        return self.reuse and self.wire.idle()

    def reusable(self) -> bool:
        """Fit for the next request: fresh, and nothing arrived since (looked at once, here,
        as bytes a server sends past its response may come after the response did)."""
        if time.monotonic() - self.idle_since >= _IDLE_EXPIRY:
            return False
        return self.reuse and self.wire.quiet(self.sock)

    def close(self) -> None:
        """Drops the connection at once: unread response bytes are discarded, never read."""
        if self.wire.transport is not None:
            self.wire.transport.abort()


async def system_resolver(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    """The operating system's resolver (getaddrinfo), off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, addr) for family, _, _, _, addr in infos]


class _Lookups:
    """One DNS answer per (host, port) for a transport's life, failures included:
    concurrent requests for a host share the one lookup, and a dead name is not asked again.

    Every address is put to ``guard`` before it is tried (IP literals too): a refused one
    is never connected to, and a host whose addresses are all refused raises
    ``guard.BlockedAddress``.
    """

    def __init__(self, resolver: Resolver, guard: AddressGuard | None = None) -> None:
        self._resolver = resolver
        # No guard given: the default one, opened only by ARCHIVER_ALLOW_ADDRESSES.
        self.guard = guard if guard is not None else AddressGuard.of()
        self._answers: dict[tuple[str, int], asyncio.Future[list[tuple[int, tuple[Any, ...]]]]] = {}
        self.count = 0

    async def resolve(self, host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            return [(family, (host, port))]
        key = (host.lower(), port)
        lookup = self._answers.get(key)
        if lookup is None:
            self.count += 1
            lookup = self._answers[key] = asyncio.ensure_future(self._resolver(host, port))
            lookup.add_done_callback(lambda f: f.cancelled() or f.exception())
        return await asyncio.shield(lookup)

    async def connect(self, host: str, port: int) -> socket.socket:
        """A TCP connection to ``host``: its one lookup, then its addresses raced."""
        addresses = await self.resolve(host, port)
        if not addresses:
            raise OSError(f"no address for {host}")
        return await _happy_eyeballs(self.guard.allowed(host, addresses))

    async def check(self, host: str, port: int) -> None:
        """Raises ``BlockedAddress`` unless every address of ``host`` is allowed: for a
        request another client sends (through a proxy), which picks among them itself."""
        addresses = await self.resolve(host, port)
        self.guard.check_every(host, [str(addr[0]) for _, addr in addresses])


#: ``(family, address tuple)``, one entry of a resolver's answer.
_Address = tuple[int, tuple[Any, ...]]


def _interleave(addresses: list[_Address]) -> list[_Address]:
    """The addresses with their families alternating, the first one listed first
    (RFC 8305 section 4): v6, v6, v4, v4 -> v6, v4, v6, v4."""
    by_family: dict[int, list[_Address]] = {}
    for entry in addresses:
        by_family.setdefault(entry[0], []).append(entry)
    rounds = itertools.zip_longest(*by_family.values())
    return [entry for entry in itertools.chain.from_iterable(rounds) if entry is not None]


async def _happy_eyeballs(addresses: list[_Address]) -> socket.socket:
    """A TCP connection to the first of ``addresses`` that accepts one (RFC 8305 section 5).

    An address that has neither connected nor failed after ``_ATTEMPT_DELAY`` keeps
    trying while the next one is tried too; a failure starts the next at once. When one
    connects, the others are cancelled (one that connects anyway is closed): no attempt
    outlives the call. The caller's timeout bounds the whole race.
    """
    queue = deque(_interleave(addresses))
    if len(queue) == 1:  # nothing to race: no task, no timer
        return await _connect_socket(*queue[0])
    attempts: set[asyncio.Task[socket.socket]] = set()
    try:
        won = await _race(queue, attempts)
    except BaseException:
        await _abandon(attempts)
        raise
    attempts.remove(won)
    try:
        await _abandon(attempts)
    except BaseException:  # cancelled while the losers wound down: the winner goes too
        won.result().close()
        raise
    return won.result()


async def _race(
    queue: deque[_Address], attempts: set[asyncio.Task[socket.socket]]
) -> asyncio.Task[socket.socket]:
    """Starts attempts from ``queue`` (kept in ``attempts``) until one connects."""
    errors: list[OSError] = []
    starts = 1
    while True:
        for _ in range(min(starts, len(queue))):
            attempts.add(asyncio.create_task(_connect_socket(*queue.popleft())))
        if not attempts:
            raise _most_relevant(errors)
        done, _ = await asyncio.wait(
            attempts,
            timeout=_ATTEMPT_DELAY if queue else None,
            return_when=asyncio.FIRST_COMPLETED,
        )
        for attempt in done:
            error = attempt.exception()
            if error is None:
                return attempt  # any other that connected too stays in attempts, to be closed
            attempts.remove(attempt)
            if not isinstance(error, OSError):
                raise error
            errors.append(error)
        starts = len(done) or 1  # one more per failure, or one after the delay


async def _connect_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    """One TCP connection attempt; its socket is closed unless it connects."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


async def _abandon(attempts: set[asyncio.Task[socket.socket]]) -> None:
    """Cancels ``attempts`` and waits for them to end; a socket one connected is closed."""
    for attempt in attempts:
        attempt.add_done_callback(_close_connected)  # runs before the wait below returns
        attempt.cancel()
    if attempts:
        await asyncio.wait(attempts)


def _close_connected(attempt: asyncio.Task[socket.socket]) -> None:
    if not attempt.cancelled() and attempt.exception() is None:
        attempt.result().close()


def _most_relevant(errors: list[OSError]) -> OSError:
    """The last failure, unless an address refused: that the host answered tells more
    than that the way to one of its addresses is broken (unreachable network or host)."""
    refused = [e for e in errors if isinstance(e, ConnectionRefusedError)]
    return (refused or errors)[-1]


class Dialing(TypedDict, total=False):
    """How a transport connects: the keyword arguments both transports take."""

    #: Idle keep-alive connections kept per origin (16).
    max_idle_per_origin: int
    #: Every address a name resolves to is checked before connecting (None: none is).
    guard: AddressGuard | None
    #: None: httpx's default context, made at the first https request.
    ssl_context: ssl.SSLContext | None
    #: None: the system resolver, off the event loop.
    resolver: Resolver | None


class _Dialer(httpx.AsyncBaseTransport):
    """What both transports share: how they look names up, guard and connect."""

    def __init__(self, **dialing: Unpack[Dialing]) -> None:
        self._dialing = dialing
        self._max_idle = dialing.get("max_idle_per_origin", 16)
        self._ssl = dialing.get("ssl_context")
        self._names = _Lookups(dialing.get("resolver") or system_resolver, dialing.get("guard"))

    @property
    def lookups(self) -> int:
        """Names looked up so far (each host once, however many requests it took)."""
        return self._names.count


class Http11Transport(_Dialer):
    """Keep-alive HTTP/1.1 for ``httpx.AsyncClient``; counts what it opens and resolves."""

    def __init__(self, **dialing: Unpack[Dialing]) -> None:
        super().__init__(**dialing)
        self._idle: dict[_Origin, deque[_Connection]] = {}
        self.connections_opened = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported scheme {url.scheme!r}", request=request)
        https = url.scheme == "https"
        sni = str(request.extensions.get("sni_hostname") or url.host) if https else ""
        origin = (url.scheme, url.host, url.port or (443 if https else 80), sni)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise RuntimeError("Http11Transport needs an async request body")
        body = b"".join([part async for part in request.stream])
        try:
            # h11 checks every name and value we send: no CR, LF or NUL gets on the wire.
            message = h11.Request(
                method=request.method, target=url.raw_path, headers=request.headers.raw
            )
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(f"invalid request: {exc}", request=request) from exc
        conn = self._checkout(origin)
        if conn is not None:
            try:
                return await self._exchange(conn, request, message, body, timeouts, reused=True)
            except _Stale as stale:
                # The server closed it while idle, we take it: one fresh connection, as
                # browsers do (RFC 9112 section 9.3.1; a GET is idempotent). Not when the
                # caller says this URL was just reset on a fresh connection as well.
                if request.extensions.get(RESEND_STALE, True) is False:
                    error, cause = stale.error, stale.__cause__
                    raise error from (error.__cause__ if error is cause else cause)
        conn = await self._connect(request, origin, timeouts.get("connect"))
        return await self._exchange(conn, request, message, body, timeouts, reused=False)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    # -- connections -------------------------------------------------------

    def _checkout(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()  # the most recently used is the least likely to have expired
            if conn.reusable():
                return conn
            conn.close()
        return None

    def _release(self, conn: _Connection) -> None:
        """Pools ``conn`` if its exchange ended exactly at the response's end, else drops it."""
        wire = conn.wire
        idle = self._idle.setdefault(conn.origin, deque())
        if wire.h11.our_state is h11.DONE and wire.h11.their_state is h11.DONE:
            wire.h11.start_next_cycle()
        if len(idle) >= self._max_idle or not conn.open():
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def _connect(
        self, request: httpx.Request, origin: _Origin, timeout: float | None
    ) -> _Connection:
        scheme, host, port, sni = origin
        # The certificate is checked against the URL's name (or the name a test resolver
        # mapped to this address), never against the address we connect to.
        context = self._context() if scheme == "https" else None
        wire = _Wire()
        try:
            async with asyncio.timeout(timeout):
                sock = await self._names.connect(host, port)
                # TLS runs on the winner only: another address would present the same
                # certificate, so an ssl.SSLError is final. The transport owns the socket now.
                await asyncio.get_running_loop().create_connection(
                    lambda: wire, sock=sock, ssl=context, server_hostname=sni if context else None
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("timed out connecting", request=request) from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        self.connections_opened += 1
        return _Connection(wire, sock, origin)

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        # Set at each connection, as httpcore sets its own: a context shared with the
        # HTTP/2 transport must not offer h2 to a server this transport would then misread.
        self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl

    # -- one exchange ------------------------------------------------------

    async def _exchange(
        self,
        conn: _Connection,
        request: httpx.Request,
        message: h11.Request,
        body: bytes,
        timeouts: dict[str, float | None],
        *,
        reused: bool,
    ) -> httpx.Response:
        wire = conn.wire
        try:
            data = wire.h11.send(message) or b""
            if body:
                data += wire.h11.send(h11.Data(data=body)) or b""
            data += wire.h11.send(h11.EndOfMessage()) or b""
            await wire.send(data, timeouts.get("write"))
            response = await _final_response(wire, timeouts.get("read"))
        except Exception as exc:
            conn.close()
            error = _translate(exc, request, "waiting for the response")
            if reused and wire.received == 0 and _closed(exc, wire):
                raise _Stale(error) from exc
            if error is exc:
                raise
            raise error from exc
        except BaseException:
            conn.close()  # cancelled: the connection is in an unknown state
            raise
        headers = response.headers.raw_items()
        if _framed_twice(headers):
            # Transfer-Encoding overrides Content-Length (RFC 9112 section 6.3), but a
            # server and we may disagree on where such a message ends (request smuggling):
            # it is read as h11 frames it, and its connection is never used again.
            conn.reuse = False
        stream = _Body(self, conn, request, timeouts.get("read"))
        return httpx.Response(
            response.status_code,
            headers=headers,
            stream=stream,
            extensions={
                "http_version": b"HTTP/" + response.http_version,
                "reason_phrase": bytes(response.reason),
            },
        )


async def _final_response(wire: _Wire, timeout: float | None) -> h11.Response:
    """The final response's head: informational ones are skipped, up to a count, and
    heads longer than ``_MAX_HEAD`` (informational ones included) are refused, however
    their bytes arrived (h11 bounds only what it holds unparsed)."""
    informational = 0
    while True:
        event = await wire.next_event(timeout)
        # What h11 has consumed so far is heads; fewer bytes received cannot be too many.
        if wire.received > _MAX_HEAD and wire.received - len(wire.h11.trailing_data[0]) > _MAX_HEAD:
            raise h11.RemoteProtocolError(f"response head longer than {_MAX_HEAD} bytes")
        if isinstance(event, h11.Response):
            return event
        if not isinstance(event, h11.InformationalResponse):
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} before a response")
        informational += 1
        if informational > _MAX_INFORMATIONAL:
            raise h11.RemoteProtocolError(
                f"more than {_MAX_INFORMATIONAL} informational (1xx) responses"
            )


def _framed_twice(headers: list[tuple[bytes, bytes]]) -> bool:
    names = {name.lower() for name, _ in headers}
    return b"transfer-encoding" in names and b"content-length" in names


class _Body(httpx.AsyncByteStream):
    """One response body, as h11 frames it (Content-Length, chunked, or until close).

    Closing it after the last byte returns the connection to the pool if nothing else
    waits on it; closing it early drops the connection, so an unread body costs nothing
    more, unless all of the rest has already arrived: a small error page (a 503, a 429)
    comes with its head, and skipping it keeps the connection for the URL's retry
    instead of a new handshake.
    """

    def __init__(
        self,
        transport: Http11Transport,
        conn: _Connection,
        request: httpx.Request,
        timeout: float | None,
    ) -> None:
        self._transport = transport
        self._conn = conn
        self._request = request
        self._timeout = timeout
        self._closed = False
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        wire = self._conn.wire
        try:
            while True:
                event = await wire.next_event(self._timeout)
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
                else:
                    raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in a body")
            self._done = True
        except Exception as exc:
            self._conn.close()
            error = _translate(exc, self._request, "reading the body")
            if error is exc:
                raise
            raise error from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._done or self._rest_arrived():
            self._transport._release(self._conn)
        else:
            self._conn.close()

    def _rest_arrived(self) -> bool:
        """Skips what is left of the body if h11 already holds all of it, never waiting
        for a byte: True when the message's end was reached so."""
        wire = self._conn.wire
        if wire.closed or wire._reading_paused:
            return False
        try:
            while True:
                event = wire.h11.next_event()
                if isinstance(event, h11.EndOfMessage):
                    wire._unread = 0  # h11 has consumed all it was given
                    return True
                if not isinstance(event, h11.Data):
                    return False  # NEED_DATA: the rest is still on its way
        except h11.RemoteProtocolError:
            return False


class Http2Transport(_Dialer):
    """HTTPS with HTTP/2 where the server offers it (ALPN), else HTTP/1.1, over httpcore.

    Requests to one origin share one multiplexed connection; names are looked up as the
    lean transport looks them up (once per host, by the same kind of resolver), and
    certificates are checked against the URL's name (or the TLS server name a test
    resolver asked for), never against the address. A connection verified for one name
    never carries a request for another: each server name gets a pool of its own.

    It reaches into httpcore's private attributes (see ``_cancel_stream``). When that
    reach fails (ImportError, AttributeError: a httpcore release moved them), this and
    every later request of the process go to ``fallback`` (HTTP/1.1), after one warning.
    """

    def __init__(
        self,
        *,
        fallback: httpx.AsyncBaseTransport | None = None,
        warn: Callable[[str], None] | None = None,
        **dialing: Unpack[Dialing],
    ) -> None:
        # httpcore sets ALPN (h2, http/1.1) on the SSL context at each connection. The
        # default one is made at the first https request: loading the CA bundle costs
        # ~0.1 s, which a run over plain http (or a run with nothing due) never needs.
        super().__init__(**dialing)
        # The fallback a caller passes is theirs to close; one made here is ours.
        self._fallback = fallback
        self._own_fallback: Http11Transport | None = None
        self._warn = warn or _log.warning
        self._backend = _ResolvingBackend(self._names)
        self._pools: dict[str, httpcore.AsyncConnectionPool] = {}

    @property
    def connections_opened(self) -> int:
        """TCP connections opened so far, over all origins."""
        return self._backend.opened

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _http2_broken:
            return await self._http11().handle_async_request(request)
        try:
            return await self._send(request)
        except (ImportError, AttributeError) as exc:
            # Nothing of the response was read: the request goes again, over HTTP/1.1.
            self.give_up(exc)
            return await self._http11().handle_async_request(request)

    def give_up(self, exc: BaseException) -> None:
        """HTTP/1.1 from now on, for the whole process: httpcore is not what we reach for."""
        global _http2_broken
        if not _http2_broken:
            _http2_broken = f"{type(exc).__name__}: {exc}"
            self._warn(
                f"HTTP/2 is unavailable with this httpcore ({_http2_broken});"
                " using HTTP/1.1 for the rest of the run"
            )

    def _http11(self) -> httpx.AsyncBaseTransport:
        if self._fallback is None:
            # The same dialing, the address guard included (the SSL context as made so far).
            dialing = self._dialing.copy()
            dialing["ssl_context"] = self._ssl
            self._fallback = self._own_fallback = Http11Transport(**dialing)
        return self._fallback

    async def _send(self, request: httpx.Request) -> httpx.Response:
        import httpcore

        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise RuntimeError("Http2Transport needs an async request body")
        url = request.url
        pool = self._pool(str(request.extensions.get("sni_hostname") or ""))
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = await pool.handle_async_request(core)
        except _httpcore_errors() as exc:
            raise _from_httpcore(exc, request) from exc
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            response.status,
            headers=response.headers,
            stream=_CoreBody(response.stream, request, response.extensions, self),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        try:
            for pool in self._pools.values():
                await pool.aclose()
            self._pools.clear()
        finally:
            if self._own_fallback is not None:
                await self._own_fallback.aclose()

    def _pool(self, server_name: str) -> httpcore.AsyncConnectionPool:
        import httpcore

        pool = self._pools.get(server_name)
        if pool is None:
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            pool = self._pools[server_name] = httpcore.AsyncConnectionPool(
                ssl_context=self._ssl,
                max_connections=None,  # the fetcher's limits cap requests in flight
                max_keepalive_connections=self._max_idle,
                keepalive_expiry=_IDLE_EXPIRY,
                http1=True,
                http2=True,
                network_backend=cast("httpcore.AsyncNetworkBackend", self._backend),
            )
        return pool


class OriginRouter(httpx.AsyncBaseTransport):
    """Sends https requests to one transport and every other request to another."""

    def __init__(self, *, https: httpx.AsyncBaseTransport, other: httpx.AsyncBaseTransport) -> None:
        self._https = https
        self._other = other

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        inner = self._https if request.url.scheme == "https" else self._other
        return await inner.handle_async_request(request)

    async def aclose(self) -> None:
        try:
            await self._https.aclose()
        finally:
            await self._other.aclose()


class _ResolvingBackend:
    """httpcore's anyio backend, connecting to the addresses ``names`` gives for a host.

    (An ``httpcore.AsyncNetworkBackend``: httpcore only calls its methods.)
    """

    def __init__(self, names: _Lookups) -> None:
        self.names = names
        self.opened = 0
        # httpcore (and h2) are imported at the first https connection: ~40 ms that a
        # run over plain http never needs.
        self._core: httpcore.AnyIOBackend | None = None

    @property
    def _inner(self) -> httpcore.AnyIOBackend:
        if self._core is None:
            import httpcore

            self._core = httpcore.AnyIOBackend()
        return self._core

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        import httpcore
        from httpcore._backends.anyio import AnyIOStream

        try:
            async with asyncio.timeout(timeout):
                # Raced as for HTTP/1.1: a black-holed first address costs the attempt
                # delay, not the whole connect timeout.
                sock = await self.names.connect(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("timed out connecting") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        try:
            stream = await anyio.abc.SocketStream.from_socket(sock)
        except BaseException:
            sock.close()
            raise
        self.opened += 1
        return AnyIOStream(stream)  # what httpcore's own backend wraps its sockets in

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _CoreBody(httpx.AsyncByteStream):
    """An httpcore response body, its errors translated to httpx's.

    Closed before its end, an HTTP/2 body has its stream reset: see ``_cancel_stream``.
    """

    def __init__(
        self,
        stream: AsyncIterable[bytes],
        request: httpx.Request,
        extensions: Mapping[str, Any],
        transport: Http2Transport,
    ) -> None:
        self._stream = stream
        self._request = request
        self._transport = transport
        self._h2 = extensions.get("http_version") == b"HTTP/2"
        self._network = extensions.get("network_stream")
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
            self._done = True
        except _httpcore_errors() as exc:
            raise _from_httpcore(exc, self._request) from exc
        except (ImportError, AttributeError) as exc:
            # A reset, so the fetcher tries again: over HTTP/1.1 from now on.
            self._transport.give_up(exc)
            raise httpx.ReadError(f"HTTP/2 unavailable: {exc}", request=self._request) from exc

    async def aclose(self) -> None:
        try:
            try:
                cancelled = not self._h2 or self._done or await _cancel_stream(self._stream)
            except (ImportError, AttributeError) as exc:
                self._transport.give_up(exc)
                cancelled = False
            if not cancelled and self._network is not None:
                await self._network.aclose()  # the stream could not be reset: drop them all
        finally:
            close = getattr(self._stream, "aclose", None)
            if close is not None:
                await close()


async def _cancel_stream(stream: object) -> bool:
    """Resets an HTTP/2 stream whose body we stopped reading, and gives back the
    connection's flow-control credit for the bytes it left unread; False if it could not.

    httpcore does neither (encode/httpcore#943): the server would keep sending up to the
    stream's 16 MiB window, and the dropped bytes, never acknowledged, would shrink the
    connection's window until every stream on it stalls. This reaches into httpcore 1.0's
    HTTP/2 connection; when that is not what we find, it raises AttributeError (the
    caller then closes the connection and gives HTTP/2 up for the run).
    """
    import h2.connection
    import h2.errors
    import h2.events
    import h2.exceptions

    inner = getattr(stream, "_stream", None)
    conn = getattr(inner, "_connection", None)
    stream_id = getattr(inner, "_stream_id", None)
    state = getattr(conn, "_h2_state", None)
    events = getattr(conn, "_events", None)
    write = getattr(conn, "_write_outgoing_data", None)
    request = getattr(inner, "_request", None)
    if not (isinstance(state, h2.connection.H2Connection) and isinstance(stream_id, int)):
        raise AttributeError("httpcore's HTTP/2 stream has no _h2_state or _stream_id")
    if not isinstance(events, dict) or write is None or request is None:
        raise AttributeError("httpcore's HTTP/2 connection has no _events or _write_outgoing_data")
    for event in events.get(stream_id, ()):
        if isinstance(event, h2.events.DataReceived):
            state.acknowledge_received_data(event.flow_controlled_length, stream_id)
    # A stream that had already ended has nothing more to stop.
    with contextlib.suppress(h2.exceptions.ProtocolError):
        state.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
    try:
        await write(request)
    except Exception:  # the connection is broken: closing it is all that is left
        return False
    return True


def _httpcore_errors() -> tuple[type[Exception], ...]:
    """The roots of httpcore's exceptions (it has no single one)."""
    import httpcore

    return (
        httpcore.NetworkError,
        httpcore.TimeoutException,
        httpcore.ProtocolError,
        httpcore.UnsupportedProtocol,
        httpcore.ProxyError,
    )


def _from_httpcore(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    """httpx names each of httpcore's errors the same: ConnectError -> httpx.ConnectError."""
    for cls in type(exc).__mro__:
        mapped = getattr(httpx, cls.__name__, None)
        if isinstance(mapped, type) and issubclass(mapped, httpx.TransportError):
            return mapped(str(exc), request=request)
    return httpx.TransportError(str(exc), request=request)


def _closed(exc: BaseException, wire: _Wire) -> bool:
    """Whether ``exc`` says the peer had closed the connection (reset or end of stream)."""
    return wire.closed or isinstance(exc, ConnectionResetError | BrokenPipeError)


def _readable(text: str, limit: int = 300) -> str:
    """h11's message with the offending bytes quoted, not as ``bytearray(b'...')``, and
    short: it becomes the URL's one-line ``error``."""
    text = re.sub(r"(?:bytearray\()?b(['\"])(.*?)\1\)?", r"'\2'", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _translate(exc: Exception, request: httpx.Request, doing: str) -> httpx.HTTPError:
    """Maps what h11 and asyncio raise to the httpx exception ``fetch`` classifies."""
    if isinstance(exc, httpx.HTTPError):
        return exc
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(f"timed out {doing}", request=request)
    if isinstance(exc, h11.RemoteProtocolError):
        text = str(exc)
        if doing != "reading the body" and "closed" in text:
            text = "Server disconnected without sending a response."
        elif "Receive buffer too long" in text:
            text = f"response head longer than {_MAX_HEAD} bytes"
        return httpx.RemoteProtocolError(_readable(text), request=request)
    if isinstance(exc, h11.LocalProtocolError):
        return httpx.LocalProtocolError(str(exc), request=request)
    if isinstance(exc, OSError):
        return httpx.ReadError(str(exc) or type(exc).__name__, request=request)
    return httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}", request=request)
