"""Fetching: from a URL to a state and, for a good asset, a finished blob.

Owns the HTTP client (and which transport it runs on), the concurrency limits
(global and per host), redirects, retries with backoff, and streaming bodies
through the validator into the store, with bounded work per response: one content
coding at most, decoded within the size cap, and deadlines for the head and for the
body's pace. Pages to crawl (HTML, sitemaps, feeds, robots.txt) take the same road
but end in memory, unjudged: HTML is what a page is, not a soft 404. A failing link
is a value (a frozen ``FetchResult``, ``records.Outcome``, with a state), never an
exception: only the store (``StoreError``) or a bug stops a fetch. This module never
commits a blob and never touches the database: ``Fetcher.archive`` hands back the
outcome and, beside it, a finished (fsynced) writer (``Fetched``), and the caller
commits it and records it, in that order. The settings are ``config.FetchConfig``
(``FetchSettings`` here), as the config and the command line made them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import operator
import os
import random
import socket
import ssl
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, cast
from urllib.parse import urljoin, urlsplit

import anyio
import httpx

from archiver.clock import Clock, SystemClock
from archiver.net.guard import AddressGuard, BlockedAddress
from archiver.net.localfiles import OUTSIDE_SOURCE, LocalRoots, local_path
from archiver.net.rules import UrlRules
from archiver.net.settings import USER_AGENT, FetchConfig, TransportChoice
from archiver.net.settings import sendable as _sendable
from archiver.net.transport import (
    RESEND_STALE,
    Http2Transport,
    Http11Transport,
    OriginRouter,
    _Lookups,
    system_resolver,
)
from archiver.records import Outcome, UrlState
from archiver.store.base import BlobStore as Store
from archiver.store.base import BlobWriter
from archiver.validate import HEAD_SIZE, Expected, Verdict, describe, verdict

if TYPE_CHECKING:
    from tenacity import RetryCallState  # tenacity itself loads on the first transient failure

__all__ = [
    "USER_AGENT",
    "FetchResult",
    "FetchSettings",
    "Fetched",
    "Fetcher",
    "HostMapTransport",
    "PageResult",
    "State",
    "TransportChoice",
    "host_answered",
    "is_network",
    "should_retry",
    "transport_kind",
]

State = Literal[
    "ok",  # the asset is there and is what the link promised (or unchanged: 304)
    "dead",  # gone for good: 404, 410, other permanent 4xx, unknown host, redirect loop
    "invalid",  # the server answered 200 with the wrong thing: a soft 404 or the wrong type
    "error",  # still failing after retries: 5xx, 429, timeout, reset, truncated, TLS, refused
    "blocked",  # never asked: a guard refused it (internal address, outside the source folder)
]

# What a fetch is for: archive the asset, probe its head only, or read a page into memory.
_Mode = Literal["archive", "probe", "page"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_TRANSIENT_CLASSES = frozenset({"connect", "refused", "timeout", "reset", "truncated"})
_DNS_MESSAGES = (
    "name or service not known",
    "temporary failure in name resolution",
    "no address associated with hostname",
    "nodename nor servname",
    "getaddrinfo failed",
)
# The resolver's answers that say the name does not exist; any other failure (EAI_AGAIN,
# EAI_FAIL: SERVFAIL, a timeout) says the resolver could not answer, which proves nothing.
_NO_SUCH_NAME = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
)
_NO_SUCH_NAME_MESSAGES = ("name or service not known", "no address associated", "nodename nor")
_PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy"})
_IDLE_EXPIRY = 4.0  # seconds, as the lean transport keeps an idle connection
_FILE_CHUNK = 1024 * 1024
# A probe asks for exactly the head the validator judges, no more.
_PROBE_RANGE = f"bytes=0-{HEAD_SIZE - 1}"
# A 200 that ignored Range is still read to its end when it is this small: finishing the
# body keeps the connection alive, which is cheaper than a new connection for the next URL.
_PROBE_DRAIN = 64 * 1024
# Decoded bytes per step of a content decoder: a step never holds more, whatever one
# compressed chunk expands to (64 KiB of gzip can stand for 64 MiB of zeros).
_DECODE_STEP = 64 * 1024
# The content codings we undo; any other label (br, zstd, "none", "utf-8"...) is left as
# sent, as httpx leaves what it cannot decode, and the body is judged as it came.
_ZLIB_CODINGS = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}
#: The response headers a check records (``FetchResult.headers``), lower-cased.
_STORED_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "content-encoding",
        "etag",
        "last-modified",
        "date",
        "location",
    }
)
_STORED_HEADERS_MAX = 8 * 1024  # bytes of them per check


#: The network settings of a run: one type, read from the config (``[fetch]``) and the
#: command line, passed to the fetcher as it is.
FetchSettings = FetchConfig


#: What became of one URL (the public name of ``records.Outcome``).
FetchResult = Outcome


class Fetched(NamedTuple):
    """An archiving fetch: its outcome and, for a good body, the finished (fsynced) writer
    that the caller commits to the store before any row names it, or aborts."""

    outcome: Outcome
    blob: BlobWriter | None = None


@dataclass(frozen=True)
class PageResult:
    """A page fetched into memory: its ``result`` and, for a 2xx within the cap, its bytes."""

    result: Outcome
    body: bytes = b""


def transport_kind(
    choice: TransportChoice, environ: Mapping[str, str] | None = None
) -> Literal["lean", "httpx"]:
    """The transport ``choice`` means here: ``auto`` is lean unless a proxy variable is set.

    Only httpx's transport honours HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY (in
    any case), and a run that ignored a proxy it was told to use would find no host.
    """
    if choice == "lean" or choice == "httpx":
        return choice
    return "httpx" if proxy_in_environment(environ) else "lean"


def proxy_in_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Whether HTTP_PROXY, HTTPS_PROXY or ALL_PROXY (any case) names a proxy."""
    env = os.environ if environ is None else environ
    return any(name.lower() in _PROXY_VARIABLES and value.strip() for name, value in env.items())


def should_retry(result: Outcome) -> bool:
    """Only transient failures are retried: connecting (not DNS), timeouts, resets,
    truncated bodies, 408, 425, 429 and 5xx."""
    if result.error_class in _TRANSIENT_CLASSES:
        return True
    status = result.http_status
    return (
        status is not None
        and result.error_class == f"http-{status}"
        and (status in _TRANSIENT_STATUSES or 500 <= status <= 599)
    )


def is_network(result: Outcome) -> bool:
    """Whether the URL went over the network (``file://`` assets never do)."""
    return _scheme(result.url) in ("http", "https")


def host_answered(result: Outcome) -> bool:
    """Whether some host answered this fetch; a redirect proves one did. A blocked URL
    proves nothing either way: a guard refused it (maybe after a redirect)."""
    if result.state == "blocked":
        return False
    return (
        not result.unreachable
        or result.http_status is not None
        or result.final_url not in (None, result.url)
    )


class HostMapTransport(httpx.AsyncBaseTransport):
    """A resolver for tests: names in ``mapping`` go to their IP, any other name is unknown.

    The Host header (and TLS SNI) keep the name, so servers see what they would in production.
    """

    def __init__(
        self, mapping: Mapping[str, str], inner: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._map = {name.lower(): ip for name, ip in mapping.items()}
        self._inner = inner or httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if not _is_ip(host):
            ip = self._map.get(host.lower())
            if ip is None:
                raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)
            request.extensions = {**request.extensions, "sni_hostname": host}
            request.url = request.url.copy_with(host=ip)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Cookies(httpx.Cookies):
    """The client's cookie jar; a response without Set-Cookie (nearly all) costs nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class _Sink(Protocol):
    size: int

    @property
    def sha256(self) -> str: ...

    def write(self, chunk: bytes) -> None: ...

    def finish(self) -> str: ...

    def abort(self) -> None: ...


class _HashSink:
    """Hashes and counts a body without keeping it (for checks that do not archive)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def finish(self) -> str:
        return self.sha256

    def abort(self) -> None:
        pass


class _MemorySink(_HashSink):
    """Keeps a body in memory as well: a page, to be parsed rather than archived."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def write(self, chunk: bytes) -> None:
        super().write(chunk)
        self.data += chunk

    def abort(self) -> None:
        self.data = bytearray()


_Failure = tuple[State, str, str]  # state, error_class, human line


class _Intake:
    """Feeds a body into a sink, judging its head and enforcing the size cap on the way.

    ``expect=None`` judges nothing: a page is whatever it is, HTML included.
    """

    def __init__(
        self, sink: _Sink, expect: Expected | None, max_size: int, *, page: bool = False
    ) -> None:
        self.sink = sink
        self._expect = expect
        self._max_size = max_size
        self._over = _too_large(max_size, page=page)
        self._head = bytearray()
        self.verdict: Verdict | None = None

    def feed(self, chunk: bytes) -> _Failure | None:
        if self.sink.size + len(chunk) > self._max_size:
            return self._over
        self.sink.write(chunk)
        if self.verdict is None and self._expect is not None:
            self._head += chunk[: HEAD_SIZE - len(self._head)]
            if len(self._head) >= HEAD_SIZE:
                return self._judge()
        return None

    def end(self) -> _Failure | None:
        return self._judge() if self.verdict is None and self._expect is not None else None

    def _judge(self) -> _Failure | None:
        assert self._expect is not None
        head = bytes(self._head)
        self.verdict = verdict(self._expect, head)
        if self.verdict.ok or self.verdict.reason is None:
            return None
        return "invalid", self.verdict.reason, describe(self._expect, self.verdict, head)


class _HeadTimeout(Exception):
    """No final response head within ``total_timeout``."""


class _Decoder:
    """Undoes the body's content coding (one layer at most) in steps of bounded output.

    httpx's decoders expand a whole chunk at once, and one per layer: a 16 KB body
    coded ``gzip, gzip`` grew to 10 GiB in memory. Here each step yields at most
    ``_DECODE_STEP`` bytes, so the size cap stops a bomb before it costs memory.
    """

    def __init__(self, coding: str | None) -> None:
        self.coding = coding
        self._inflater = zlib.decompressobj(_ZLIB_CODINGS[coding]) if coding else None
        self._sniffing = coding == "deflate"
        self._first = b""

    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of ``data``; raises ``zlib.error`` for a damaged stream."""
        inflater = self._inflater
        if inflater is None:
            if data:
                yield data
            return
        if self._sniffing:
            # "deflate" is meant to be zlib-wrapped (RFC 9110), but servers often send
            # the raw stream: a zlib header (method 8, checksum of 31) tells them apart.
            data = self._first = self._first + data
            if len(data) < 2:
                return
            self._sniffing = False
            if data[0] & 0x0F != 8 or (data[0] << 8 | data[1]) % 31:
                inflater = self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        while data and not inflater.eof:
            piece = inflater.decompress(data, _DECODE_STEP)
            data = inflater.unconsumed_tail
            if piece:
                yield piece
            # A full step may leave output inside zlib with no input left: ask for it.
            while len(piece) == _DECODE_STEP and not data and not inflater.eof:
                piece = inflater.decompress(b"", _DECODE_STEP)
                if piece:
                    yield piece


def _decoder(fields: dict[str, str]) -> _Decoder | _Failure:
    """The decoder for the body's Content-Encoding, or why the body is refused.

    More than one coding (``gzip, gzip``) is refused: one layer is all a server that
    compresses against our ``identity`` request has reason to send, and a stack only
    serves to multiply what a small body expands to.
    """
    codings = [
        token
        for token in (t.strip().lower() for t in fields.get("content-encoding", "").split(","))
        if token and token != "identity"
    ]
    if len(codings) > 1:
        listed = ", ".join(codings)
        return "error", "bad-encoding", f"content codings stacked ({listed}): one at most"
    coding = codings[0] if codings else None
    return _Decoder(coding if coding in _ZLIB_CODINGS else None)


class _Pace:
    """Whether a body keeps the minimum rate: ``rate`` bytes a second on average over any
    ``window`` seconds, once the first window has passed since the head arrived.

    An average over a window, not a per-read rule, so a large PDF on a slow but honest
    link is never cut, nor a pause of a few seconds, while one byte every 2 s is. Arrivals
    are kept in buckets of a sixteenth of the window (a trickle of 1-byte reads costs no
    memory); a bucket counts until ``window`` after its last byte, which errs lenient.
    """

    def __init__(self, rate: float, window: float, now: float) -> None:
        self._need = rate * window
        self._window = window
        self._start = now
        self._bucket_span = window / 16
        self._buckets: deque[list[float]] = deque()  # [opened, last arrival, bytes]
        self._held = 0.0  # bytes in the buckets

    def feed(self, size: int, now: float) -> None:
        """Counts ``size`` bytes that arrived at ``now``."""
        last = self._buckets[-1] if self._buckets else None
        if last is not None and now - last[0] < self._bucket_span:
            last[1] = now
            last[2] += size
        else:
            self._buckets.append([now, now, float(size)])
        self._held += size
        while self._buckets and self._buckets[0][1] + self._window <= now:
            self._held -= self._buckets.popleft()[2]  # out of every window from now on

    @property
    def deadline(self) -> float:
        """When the rate is missed unless more bytes come first."""
        if self._need <= 0:
            return math.inf
        left, dropped = self._held, self._start
        for _opened, last, size in self._buckets:
            if left < self._need:
                break
            left -= size
            dropped = max(dropped, last)
        return dropped + self._window

    def missed(self, now: float) -> bool:
        return now >= self.deadline


@dataclass(frozen=True, slots=True)
class _Ask:
    """What a fetch asks of every attempt and every hop of one URL."""

    expect: Expected
    validators: dict[str, str]
    mode: _Mode
    #: A page crawler's rule for redirects: a target it refuses is not followed.
    stay: Callable[[str], bool] | None = None


@dataclass
class _Hop:
    """The outcome of one request: a result, or a redirect to follow."""

    result: Outcome
    #: A good body's finished (fsynced), uncommitted writer.
    blob: BlobWriter | None = None
    location: str | None = None
    retry_after: float | None = None
    body: bytes = b""  # a page's bytes (page mode only)


class Fetcher:
    """Fetches URLs within the limits of ``settings``; use ``async with``."""

    def __init__(
        self,
        settings: FetchSettings | None = None,
        *,
        store: Store | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        ssl_context: ssl.SSLContext | None = None,
        warn: Callable[[str], None] | None = None,
        local_roots: LocalRoots | None = None,
    ) -> None:
        """``transport`` replaces the one ``settings.transport`` chooses (tests pass one);
        ``ssl_context`` replaces the default trust (certifi's CAs, hostnames checked);
        ``warn`` hears what the operator should know but does not stop a fetch (logged
        as a warning by default); ``file:`` URLs are read only inside ``local_roots``
        (none by default)."""
        self.settings = settings or FetchSettings()
        self._warn = warn
        self._local_roots = local_roots or LocalRoots()
        self._store = store
        self._transport = transport
        self._ssl_context = ssl_context
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._client: httpx.AsyncClient | None = None
        self._direct: httpx.AsyncBaseTransport | None = None
        self._base_headers: list[tuple[str, str]] = []
        self._extensions: dict[str, Any] = {}
        self._global: anyio.Semaphore | None = None
        self._hosts: dict[str, anyio.Semaphore] = {}
        self._guard = AddressGuard.of(self.settings.allow_addresses)
        self._exclude = UrlRules.compile(self.settings.exclude_urls)
        # Set when requests go through httpx's client (a proxy, or its own transport):
        # the target is resolved and checked here before the client sends it anywhere.
        self._precheck: _Lookups | None = None

    @property
    def store(self) -> Store | None:
        """Where ok bodies go; None when fetching only checks."""
        return self._store

    async def __aenter__(self) -> Fetcher:
        s = self.settings
        transport = self._transport
        if transport is None and transport_kind(s.transport) == "lean":
            # Keep-alive and one DNS lookup per host come from the transport; the limits
            # here already cap connections per host, so its pool only has to keep them.
            transport = Http11Transport(
                max_idle_per_origin=s.per_host, ssl_context=self._ssl_context, guard=self._guard
            )
            if s.http2:
                # h2c (HTTP/2 without TLS) is rare and gains little: plain http stays lean.
                https = Http2Transport(
                    max_idle_per_origin=s.per_host,
                    ssl_context=self._ssl_context,
                    guard=self._guard,
                    fallback=transport,
                    warn=self._warn,
                )
                transport = OriginRouter(https=https, other=transport)
        # No transport: httpx builds its own from ``verify`` and ``limits``, and mounts the
        # proxies the environment names (NO_PROXY too). The slots here cap connections.
        # It stays on HTTP/1.1: its HTTP/2 never resets a stream whose body is left unread
        # (a redirect, an error page, a probe), and the unread bytes stall the connection.
        self._client = httpx.AsyncClient(
            transport=transport,
            verify=self._ssl_context or True,
            limits=httpx.Limits(
                max_connections=None,
                max_keepalive_connections=s.concurrency,
                keepalive_expiry=_IDLE_EXPIRY,
            ),
            trust_env=True,
            headers={"User-Agent": s.user_agent, "Accept-Encoding": "identity"},
            timeout=httpx.Timeout(
                None, connect=s.connect_timeout, read=s.read_timeout, write=s.read_timeout
            ),
            follow_redirects=False,
        )
        # Same jar, same cookies: only a response that sets none skips httpx's urllib
        # adapters (~0.1 ms of CPU per response), as the jar would ignore it anyway.
        self._client._cookies = _Cookies()
        if transport is not None and not proxy_in_environment():
            # No proxy to route through: requests go straight to the transport, which
            # spares the client's auth, redirect and hook layers (~0.15 ms per request).
            # ``_send`` keeps what they did for us: default headers, timeouts, cookies.
            self._direct = transport
            self._base_headers = list(self._client.headers.multi_items())
            self._extensions = {"timeout": self._client.timeout.as_dict()}
        else:
            # httpx connects (to the host, or to a proxy that resolves it): the guard
            # cannot pick the address, so every address of the host must be allowed. The
            # proxy's own address is not checked: the operator chose it.
            self._precheck = _Lookups(system_resolver, self._guard)
        self._global = _slots(s.concurrency)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def fetch(
        self,
        url: str,
        *,
        expect: Expected = "any",
        validators: Mapping[str, str] | None = None,
        probe: bool = False,
        waiting: Callable[[], None] | None = None,
    ) -> FetchResult:
        """Fetches one URL (http, https or file) and says what became of it; never raises
        for it. An archived body is discarded: ``archive`` keeps it.

        ``probe=True`` checks without archiving: it asks for the first bytes only and reads
        no more than the verdict needs, so the result has no sha256. ``waiting`` is called
        before each wait between attempts (a backoff, a Retry-After), when the fetch holds
        no request slot: the caller may lend what it holds for this URL meanwhile.
        """
        fetched = await self._fetch(url, expect, validators, probe, waiting)
        if fetched.blob is not None:
            fetched.blob.abort()
        return fetched.outcome

    async def archive(
        self,
        url: str,
        *,
        expect: Expected = "any",
        validators: Mapping[str, str] | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> Fetched:
        """Fetches one URL in full; a good body comes back as a finished, uncommitted blob
        (with a store), which the caller commits before recording it, or aborts.
        ``waiting`` is ``fetch``'s."""
        return await self._fetch(url, expect, validators, False, waiting)

    async def _fetch(
        self,
        url: str,
        expect: Expected,
        validators: Mapping[str, str] | None,
        probe: bool,
        waiting: Callable[[], None] | None = None,
    ) -> Fetched:
        started = anyio.current_time()
        scheme = _scheme(url)
        if scheme in ("http", "https"):
            mode: _Mode = "probe" if probe else "archive"
            ask = _Ask(expect, dict(validators or {}), mode)
            hop = await self._fetch_http(url, ask, started, waiting=waiting)
            return Fetched(hop.result, hop.blob)  # its elapsed time set already
        if scheme == "file":
            result, blob = await self._fetch_file(url, expect, probe)
        else:
            result, blob = _failed(url, "dead", "bad-url", f"not a fetchable URL: {url}"), None
        return Fetched(_evolve(result, elapsed=anyio.current_time() - started), blob)

    async def fetch_page(
        self,
        url: str,
        *,
        validators: Mapping[str, str] | None = None,
        stay: Callable[[str], bool] | None = None,
    ) -> PageResult:
        """Fetches a page (HTML, sitemap, feed, robots.txt) into memory; never raises for it.

        Redirects, retries, limits and failures are those of ``fetch``, but the body is
        not judged as an asset and not stored: it comes back whole for a 2xx, or not at
        all when it is larger than ``settings.max_page_size`` (``error``, ``too-large``).
        A redirect to a URL ``stay`` refuses is not followed (``blocked``,
        ``off-site-redirect``): a site's crawler keeps to its site.
        """
        started = anyio.current_time()
        body = b""
        if _scheme(url) in ("http", "https"):
            ask = _Ask("any", dict(validators or {}), "page", stay)
            hop = await self._fetch_http(url, ask, started)
            return PageResult(hop.result, hop.body)
        result = _failed(url, "dead", "bad-url", f"not a page URL: {url}")
        return PageResult(_evolve(result, elapsed=anyio.current_time() - started), body)

    async def _fetch_http(
        self,
        url: str,
        ask: _Ask,
        started: float,
        *,
        waiting: Callable[[], None] | None = None,
    ) -> _Hop:
        """Every attempt at ``url``; the result's ``elapsed`` counts from ``started``."""
        attempts = received = 0
        reset = False

        async def attempt() -> _Hop:
            nonlocal attempts, received, reset
            attempts += 1
            # A stale keep-alive connection is re-sent at once on a fresh one (the
            # transport), but only while the URL has not been reset: after a reset, a
            # fresh connection was reset too, so the next reset is the URL's own and
            # waits for its backoff like any other (one immediate re-send per URL at most).
            hop = await self._follow(url, ask, resend=not reset)
            reset = hop.result.error_class == "reset"
            received += hop.result.bytes_received
            return hop

        # Most URLs answer for good at once: only a transient failure pays for the
        # retry machinery, which then runs the remaining attempts with their backoff.
        hop = await attempt()
        if should_retry(hop.result) and self.settings.retries > 0:
            from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt

            async def pause(seconds: float) -> None:
                # No slot is held between attempts; ``waiting`` lets the caller lend its
                # own (a scheduler's worker) to other URLs until this one is due again.
                if waiting is not None:
                    waiting()
                await self._clock.sleep(seconds)

            first = hop
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.settings.retries),
                wait=lambda state: self._wait(state, offset=1),
                retry=retry_if_result(lambda hop: should_retry(hop.result)),
                sleep=pause,
                retry_error_callback=_last_outcome,
                reraise=True,
            )
            await pause(self._delay(first, attempt_number=1))
            hop = cast(_Hop, await retrying(attempt))
        result = hop.result
        # A resolver that cannot answer is not asked again (its failure is cached for the
        # run), yet the failure is transient: the next run asks again.
        transient = result.state != "ok" and (
            should_retry(result) or result.error_class == "dns-temporary"
        )
        hop.result = _evolve(
            result,
            attempts=attempts,
            bytes_received=received,
            transient=transient,
            elapsed=anyio.current_time() - started,
        )
        return hop

    def _wait(self, state: RetryCallState, *, offset: int = 0) -> float:
        """Tenacity's wait: the delay after attempt ``state.attempt_number + offset``."""
        outcome = state.outcome
        hop = None
        if outcome is not None and not outcome.failed:
            hop = cast(_Hop, outcome.result())
        return self._delay(hop, attempt_number=state.attempt_number + offset)

    def _delay(self, hop: _Hop | None, *, attempt_number: int) -> float:
        """Retry-After when the server sent one (capped), else exponential backoff, equal jitter."""
        if hop is not None and hop.retry_after is not None:
            return min(hop.retry_after, self.settings.retry_after_cap)
        s = self.settings
        delay = min(s.backoff_max, s.backoff_base * 2.0 ** min(attempt_number - 1, 62))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    async def _follow(self, url: str, ask: _Ask, resend: bool = True) -> _Hop:
        """One attempt: requests ``url`` and follows its redirects, each hop within the limits.

        Each hop is a request of its own, so the address guard checks every one; a hop
        into ``exclude_urls`` (or out of what ``stay`` accepts) is not asked at all. Once
        a hop was https, a plain-http hop never carries the ``[hosts]`` headers (a token
        for the host would cross the network in clear), even to the same host.
        """
        current = url
        visited: set[str] = set()  # filled on the first redirect: most URLs never need it
        secure = False
        for _ in range(self.settings.max_redirects + 1):
            scheme = _scheme(current)
            secure = secure or scheme == "https"
            hop = await self._exchange(current, ask, resend, not (secure and scheme == "http"))
            if hop.result.url != url or hop.result.final_url != current:  # after a redirect
                hop.result = _evolve(hop.result, url=url, final_url=current)
            if hop.location is None:
                return hop
            target = urljoin(current, hop.location.strip())
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                return _hop_failed(hop, "dead", "bad-url", f"redirect to {target}")
            if self._exclude.excluded(target):
                why = f"redirect to {target}, which exclude_urls excludes: not followed"
                return _redirect_blocked(hop, target, "excluded-redirect", why)
            if ask.stay is not None and not ask.stay(target):
                why = f"redirect off the site to {target}: not followed"
                return _redirect_blocked(hop, target, "off-site-redirect", why)
            visited = visited or {_normal(url)}
            key = _normal(target)
            if key in visited:
                return _hop_failed(hop, "dead", "redirect-loop", f"redirect loop via {target}")
            visited.add(key)
            current = target
        limit = self.settings.max_redirects
        return _hop_failed(hop, "dead", "too-many-redirects", f"more than {limit} redirects")

    def _host_limiter(self, host: str) -> anyio.Semaphore:
        limiter = self._hosts.get(host)
        if limiter is None:
            limiter = self._hosts[host] = _slots(self.settings.per_host)
        return limiter

    async def _exchange(
        self, url: str, ask: _Ask, resend: bool = True, host_headers: bool = True
    ) -> _Hop:
        """Sends one request, without following redirects, and reads the body if it is the asset.

        ``host_headers=False``: the ``[hosts]`` headers stay home (a redirect left https).
        """
        if self._client is None:
            raise RuntimeError("use the Fetcher inside 'async with'")
        probe = ask.mode == "probe"
        # A validator the server sent us with CR, LF or NUL (or one recorded before we
        # checked) would inject header lines into our request: it is never sent back.
        validators = {name: value for name, value in ask.validators.items() if _sendable(value)}
        headers = {**validators, "Range": _PROBE_RANGE} if probe else validators
        try:
            request = self._request(url, headers, resend, host_headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return _Hop(_failed(url, "dead", "bad-url", f"invalid URL: {exc}"))
        assert self._global is not None
        # The host's slot before a global one: a request queued behind a busy host must
        # not sit on a global slot another host could use.
        async with self._host_limiter(request.url.host.lower()), self._global:
            try:
                response = await self._head(request)
                if probe and response.status_code == 416:
                    # An empty file, or a server that mishandles ranges: asking again without
                    # a range lets the body speak for itself, as it would in a crawl.
                    await response.aclose()
                    again = self._request(url, validators, resend, host_headers)
                    response = await self._head(again)
            except httpx.HTTPError as exc:
                return _Hop(_transport_failed(url, exc))
            except _HeadTimeout:
                limit = self.settings.total_timeout
                error = f"no response within the total_timeout of {limit:g} s"
                return _Hop(_failed(url, "error", "timeout", error))
            try:
                return await self._answer(url, response, ask.expect, bool(validators), ask.mode)
            finally:
                await response.aclose()

    async def _checked(self, request: httpx.Request) -> None:
        """Resolves the request's host here and raises unless the guard allows every
        address: httpx's client (or the proxy it goes through) connects on its own."""
        assert self._precheck is not None
        url = request.url
        try:
            await self._precheck.check(url.host, url.port or (443 if url.scheme == "https" else 80))
        except OSError as exc:  # BlockedAddress, or the lookup failed (socket.gaierror)
            raise httpx.ConnectError(str(exc), request=request) from exc

    def _request(
        self, url: str, headers: dict[str, str], resend: bool = True, host_headers: bool = True
    ) -> httpx.Request:
        """A GET of ``url``; the ``[hosts]`` headers of its own host go with it (unless
        ``host_headers`` is False), so a redirect to another host never carries them.
        ``resend=False``: no immediate re-send on a fresh connection if a reused one
        turns out closed (``transport.RESEND_STALE``)."""
        assert self._client is not None
        extra = self.settings.headers_for(urlsplit(url).hostname or "") if host_headers else ()
        if extra:
            headers = {**dict(extra), **headers}
        stale = None if resend else {RESEND_STALE: False}
        if self._direct is None:
            return self._client.build_request("GET", url, headers=headers, extensions=stale)
        base = self._base_headers
        if extra:
            names = {name.lower() for name in headers}
            base = [(k, v) for k, v in base if k.lower() not in names]
        return httpx.Request(
            "GET",
            url,
            headers=[*base, *headers.items()],
            extensions={**self._extensions, **stale} if stale else self._extensions,
        )

    async def _head(self, request: httpx.Request) -> httpx.Response:
        """``_send`` within ``total_timeout``: per-read timeouts alone let a server hold a
        request forever (a head one byte at a time, an endless run of ``100 Continue``).
        Raises ``_HeadTimeout`` when the final head has not arrived in time."""
        with anyio.move_on_after(self.settings.total_timeout):
            return await self._send(request)
        raise _HeadTimeout

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """The response to ``request``, its body still to be read."""
        assert self._client is not None
        if self._precheck is not None:
            await self._checked(request)
        if self._direct is None:
            return await self._client.send(request, stream=True)
        cookies = self._client.cookies
        if cookies:
            cookies.set_cookie_header(request)
        response = await self._direct.handle_async_request(request)
        response.request = request
        cookies.extract_cookies(response)
        return response

    async def _answer(
        self,
        url: str,
        response: httpx.Response,
        expect: Expected,
        conditional: bool,
        mode: _Mode,
    ) -> _Hop:
        status = response.status_code
        reason = response.reason_phrase or _phrase(status)
        headers, fields = _read_headers(response)
        result = Outcome(
            url=url,
            state=UrlState.OK,
            final_url=url,
            http_status=status,
            status_line=f"{response.http_version} {status} {reason}",
            headers=_stored(headers),
            etag=_validator(fields.get("etag")),
            last_modified=_validator(fields.get("last-modified")),
        )
        if status in _REDIRECTS and "location" in fields:
            return _Hop(result, location=fields["location"])
        if status == 304 and conditional:
            return _Hop(_evolve(result, not_modified=True))
        if 200 <= status < 300:
            if mode == "probe":
                return _Hop(await self._probe(result, response, fields, expect))
            return await self._receive(result, response, fields, expect, page=mode == "page")
        if self.settings.accepts(status):
            return _Hop(result)  # --accept: the status is the verdict; no body, no copy
        transient = status in _TRANSIENT_STATUSES or 500 <= status <= 599
        state: State = "dead" if 400 <= status < 500 and not transient else "error"
        result = _fail(result, state, f"http-{status}", f"HTTP {status} {reason}")
        return _Hop(result, retry_after=self._retry_after(fields) if transient else None)

    async def _receive(
        self,
        result: Outcome,
        response: httpx.Response,
        fields: dict[str, str],
        expect: Expected,
        *,
        page: bool,
    ) -> _Hop:
        """Streams the body into a sink; any failure aborts the sink, so nothing partial stays.

        A page goes to memory, unjudged and capped at ``max_page_size``; an asset to the
        store (or only a hash, without one), judged and capped at ``max_size``.
        """
        declared = _content_length(fields)
        cap = self.settings.max_page_size if page else self.settings.max_size
        if declared is not None and declared > cap:
            return _Hop(_fail(result, *_too_large(cap, page=page)))
        decoder = _decoder(fields)
        if not isinstance(decoder, _Decoder):
            return _Hop(_fail(result, *decoder))
        sink = _MemorySink() if page else self._sink()
        intake = _Intake(sink, None if page else expect, cap, page=page)
        try:
            failure, _ = await self._read_body(response, decoder, intake)
            got = response.num_bytes_downloaded
            result = _evolve(result, bytes_received=got)
            short = declared is not None and got < declared
            if short and (failure is None or failure[1] == "truncated"):
                failure = "error", "truncated", f"body truncated: got {got} of {declared} bytes"
            failure = failure or intake.end()
            if failure is not None:
                intake.sink.abort()
                return _Hop(_fail(result, *failure))
            result, blob = await self._finished(result, intake, fields.get("content-type"))
            body = bytes(sink.data) if isinstance(sink, _MemorySink) else b""
            return _Hop(result, blob, body=body)
        except BaseException:
            intake.sink.abort()
            raise

    async def _probe(
        self,
        result: Outcome,
        response: httpx.Response,
        fields: dict[str, str],
        expect: Expected,
    ) -> Outcome:
        """Reads only as much body as the verdict needs; nothing is hashed into the result.

        A 206 carries just the head and is read to its end, so the connection stays
        reusable; so is a small 200. A large 200 (a server that ignores Range) is dropped
        as soon as its type is known: closing the stream closes the connection, and the
        rest of the body is never downloaded.
        """
        total = _total_size(response.status_code, fields)
        cap = self.settings.max_size
        if total is not None and total > cap:
            return _fail(result, *_too_large(cap))
        declared = _content_length(fields)
        drain = response.status_code == 206 or (declared is not None and declared <= _PROBE_DRAIN)
        decoder = _decoder(fields)
        if not isinstance(decoder, _Decoder):
            return _fail(result, *decoder)
        intake = _Intake(_HashSink(), expect, cap)

        def enough() -> bool:
            return intake.verdict is not None and (not drain or intake.sink.size > _PROBE_DRAIN)

        failure, stopped = await self._read_body(response, decoder, intake, enough)
        got = response.num_bytes_downloaded
        short = not stopped and declared is not None and got < declared
        if short and (failure is None or failure[1] == "truncated"):
            failure = "error", "truncated", f"body truncated: got {got} of {declared} bytes"
        failure = failure or intake.end()
        if failure is not None:
            return _fail(_evolve(result, bytes_received=got), *failure)
        return _judged(result, intake, fields.get("content-type"), total, bytes_received=got)

    async def _read_body(
        self,
        response: httpx.Response,
        decoder: _Decoder,
        intake: _Intake,
        enough: Callable[[], bool] = lambda: False,
    ) -> tuple[_Failure | None, bool]:
        """Reads the body, decoded, into ``intake`` until it ends, fails, or is ``enough``;
        returns the failure, if any, and whether ``enough`` stopped it early.

        Failing to read, to decode, or to keep ``min_rate`` are failures (values): the
        rate is checked as each chunk arrives and, through the scope's deadline, when
        none does, so a server that sends one byte every few seconds is cut in time.
        """
        s = self.settings
        pace = _Pace(s.min_rate, s.rate_window, anyio.current_time())
        slow: _Failure = (
            "error",
            "timeout",
            f"body slower than the min_rate of {s.min_rate:g} bytes/s over {s.rate_window:g} s",
        )
        with anyio.CancelScope(deadline=pace.deadline) as scope:
            try:
                async for chunk in response.aiter_raw():
                    now = anyio.current_time()
                    pace.feed(len(chunk), now)
                    if pace.missed(now):
                        return slow, False
                    scope.deadline = pace.deadline
                    for piece in decoder.decode(chunk):
                        if failure := intake.feed(piece):
                            return failure, False
                        if enough():
                            return None, True
            except httpx.HTTPError as exc:
                return _classify(exc)[:3], False
            except zlib.error as exc:
                return ("error", "bad-encoding", f"damaged {decoder.coding} body: {exc}"), False
        if scope.cancelled_caught:
            return slow, False
        return None, False

    async def _finished(self, result: Outcome, intake: _Intake, server_type: str | None) -> Fetched:
        sink = intake.sink
        blob = None
        if isinstance(sink, BlobWriter):
            await anyio.to_thread.run_sync(sink.finish)  # fsync off the event loop
            blob = sink
        sniffed = intake.verdict.content_type if intake.verdict else None
        result = _evolve(
            result,
            sha256=sink.sha256,
            size=sink.size,
            content_type=sniffed or _media_type(server_type),
        )
        return Fetched(result, blob)

    async def _fetch_file(self, url: str, expect: Expected, probe: bool = False) -> Fetched:
        """Reads a ``file://`` URL from disk, judged and stored like a download.

        A probe reads the head only and stores nothing, as it would over HTTP.
        """
        path = local_path(url)
        if path is None:
            return Fetched(_failed(url, "dead", "bad-url", f"file URL on another host: {url}"))
        if (refused := self._local_roots.refusal(path)) is not None:
            return Fetched(_failed(url, "blocked", OUTSIDE_SOURCE, refused))
        result = Outcome(url=url, state=UrlState.OK, final_url=url, attempts=1)
        try:
            f = await anyio.open_file(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return Fetched(_fail(result, "dead", "missing-file", f"no such file: {path}"))
        except OSError as exc:
            why = f"cannot read {path}: {exc.strerror}"
            return Fetched(_fail(result, "error", "unreadable", why))
        cap = self.settings.max_size
        intake = _Intake(_HashSink() if probe else self._sink(), expect, cap)
        try:
            async with f:
                size = os.fstat(f.wrapped.fileno()).st_size
                failure: _Failure | None = _too_large(cap) if probe and size > cap else None
                while not failure and (chunk := await f.read(HEAD_SIZE if probe else _FILE_CHUNK)):
                    failure = intake.feed(chunk)
                    if probe and intake.verdict is not None:
                        break
            result = _evolve(result, bytes_received=intake.sink.size)
            failure = failure or intake.end()
            if failure is not None:
                intake.sink.abort()
                return Fetched(_fail(result, *failure))
            if probe:
                return Fetched(_judged(result, intake, None, size))
            return await self._finished(result, intake, None)
        except OSError as exc:
            intake.sink.abort()
            why = f"cannot read {path}: {exc.strerror}"
            return Fetched(_fail(result, "error", "unreadable", why))
        except BaseException:
            intake.sink.abort()
            raise

    def _sink(self) -> _Sink:
        return self._store.writer() if self._store is not None else _HashSink()

    def _retry_after(self, fields: dict[str, str]) -> float | None:
        """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date), if any."""
        value = fields.get("retry-after", "").strip()
        if not value:
            return None
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - self._clock.now()).total_seconds())


def _judged(
    result: Outcome, intake: _Intake, server_type: str | None, size: int | None, **more: Any
) -> Outcome:
    """A probed result: the type as sniffed and the full size if known, but no sha256.

    Nor validators: an ETag or Last-Modified recorded from a probe would describe bytes
    that were never archived, and a later crawl would send them and take the 304 as
    "the copy we hold is current" when it is not. The headers still keep them.
    """
    sniffed = intake.verdict.content_type if intake.verdict else None
    content_type = sniffed or _media_type(server_type)
    return _evolve(
        result, etag=None, last_modified=None, content_type=content_type, size=size, **more
    )


_OUTCOME_FIELDS = tuple(f.name for f in fields(Outcome))
_OUTCOME_INDEX = {name: i for i, name in enumerate(_OUTCOME_FIELDS)}
_outcome_values = operator.attrgetter(*_OUTCOME_FIELDS)


def _evolve(result: Outcome, **changes: Any) -> Outcome:
    """``dataclasses.replace`` for an Outcome at half its cost (8 against 17 µs here:
    ``replace`` walks ``fields()`` and builds keyword arguments each time), for the few
    new outcomes every URL's fetch makes; the outcome stays frozen."""
    values = list(_outcome_values(result))
    for name, value in changes.items():
        values[_OUTCOME_INDEX[name]] = value
    return Outcome(*values)


def _last_outcome(state: RetryCallState) -> _Hop:
    """When retries run out, the last failure is the answer (a value, not a RetryError)."""
    assert state.outcome is not None
    return cast(_Hop, state.outcome.result())


def _failed(url: str, state: State, error_class: str, error: str) -> Outcome:
    return Outcome(
        url=url, state=UrlState(state), error_class=error_class, error=error, final_url=url
    )


def _fail(result: Outcome, state: State, error_class: str, error: str) -> Outcome:
    return _evolve(result, state=UrlState(state), error_class=error_class, error=error)


def _hop_failed(hop: _Hop, state: State, error_class: str, error: str) -> _Hop:
    return _Hop(_fail(hop.result, state, error_class, error))


def _redirect_blocked(hop: _Hop, target: str, error_class: str, error: str) -> _Hop:
    """A redirect not followed: ``blocked``, with the target it named as the final URL."""
    result = _failed(hop.result.url, "blocked", error_class, error)
    return _Hop(_evolve(result, final_url=target, bytes_received=hop.result.bytes_received))


def _too_large(cap: int, *, page: bool = False) -> _Failure:
    if page:
        return "error", "too-large", f"page larger than the max_page_size of {cap} bytes"
    return "error", "too-large", f"larger than the size cap of {cap} bytes"


def _transport_failed(url: str, exc: httpx.HTTPError) -> Outcome:
    state, error_class, error, unreachable = _classify(exc)
    return _evolve(_failed(url, state, error_class, error), unreachable=unreachable)


def _classify(exc: httpx.HTTPError) -> tuple[State, str, str, bool]:
    """Maps a transport exception to (state, error class, human line, unreachable)."""
    chain = list(_causes(exc))
    blocked = next((e for e in chain if isinstance(e, BlockedAddress)), None)
    if blocked is not None:  # never connected: neither an answer nor a failure to reach
        return "blocked", "blocked-address", str(blocked), False
    text = _strip_errno(str(exc))
    lowered = text.lower()
    tls = any(isinstance(e, ssl.SSLError) for e in chain) or "ssl" in lowered
    if isinstance(exc, httpx.ConnectTimeout):
        return "error", "timeout", "timed out connecting", True
    if isinstance(exc, httpx.TimeoutException):
        return "error", "timeout", "timed out waiting for the server", False
    if isinstance(exc, httpx.ConnectError):
        gai = next((e for e in chain if isinstance(e, socket.gaierror)), None)
        if gai is not None or any(m in lowered for m in _DNS_MESSAGES):
            if _no_such_name(gai, lowered):
                return "dead", "dns", text or "Name or service not known", True
            return "error", "dns-temporary", f"name resolution failed: {text}", True
        if tls:
            return "error", "tls", f"TLS failed: {text}", False
        if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in lowered:
            return "error", "refused", "Connection refused", True
        return "error", "connect", text or "could not connect", True
    if tls:
        return "error", "tls", f"TLS failed: {text}", False
    if isinstance(exc, httpx.RemoteProtocolError) and "message body" in lowered:
        return "error", "truncated", f"body truncated: {text}", False
    if isinstance(exc, httpx.ReadError | httpx.WriteError) or "disconnected" in lowered:
        return "error", "reset", text or "Connection reset by peer", False
    return "error", "protocol", text or type(exc).__name__, False


def _no_such_name(gai: socket.gaierror | None, lowered: str) -> bool:
    """Whether a resolver failure says the name does not exist (NXDOMAIN), not "cannot tell"."""
    if gai is not None and gai.errno is not None:
        return gai.errno in _NO_SUCH_NAME
    return any(m in lowered for m in _NO_SUCH_NAME_MESSAGES)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and the members of any exception group."""
    stack, seen = [exc], set()
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        stack.extend(x for x in (e.__cause__, e.__context__) if x is not None)


def _strip_errno(text: str) -> str:
    """'[Errno -2] Name or service not known' -> 'Name or service not known'."""
    if text.startswith("[Errno") and "] " in text:
        return text.split("] ", 1)[1]
    return text


def _slots(n: int) -> anyio.Semaphore:
    """``n`` request slots. A free slot is taken without yielding to the event loop
    (CapacityLimiter yields on every acquire): a yield queues the request behind every
    response being handled, which put ~1 ms between a freed slot and its next request."""
    return anyio.Semaphore(n, fast_acquire=True)


def _scheme(url: str) -> str:
    """The URL's scheme, lower-cased; empty for a URL too broken to split."""
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _normal(url: str) -> str:
    """A URL as compared for redirect loops: httpx's normal form, without the fragment."""
    try:
        return str(httpx.URL(url).copy_with(fragment=None))
    except httpx.InvalidURL:
        return url


def _read_headers(response: httpx.Response) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The response's header lines as sent, and its fields by lower-cased name (repeated
    fields joined with ", ", as httpx joins them). Read once: each lookup in httpx's
    Headers decodes and scans every line again, and a response needs about six."""
    lines: list[tuple[str, str]] = []
    fields: dict[str, str] = {}
    for raw_name, raw_value in response.headers.raw:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        lines.append((name, value))
        key = name.lower()
        fields[key] = f"{fields[key]}, {value}" if key in fields else value
    return lines, fields


def _validator(value: str | None) -> str | None:
    """An ETag or Last-Modified to keep and send back later; None when it cannot be sent."""
    return value if value is not None and _sendable(value) else None


def _stored(lines: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The header lines a check records: those archiver reads again or a WARC replay
    needs, in the order sent, at most ``_STORED_HEADERS_MAX`` bytes of them. The rest
    (cookies, a 60 KB junk header) would only grow the database on every check."""
    kept: list[tuple[str, str]] = []
    room = _STORED_HEADERS_MAX
    for name, value in lines:
        if name.lower() in _STORED_HEADERS:
            room -= len(name) + len(value) + 4  # as the line was sent: "name: value\r\n"
            if room < 0:
                break
            kept.append((name, value))
    return tuple(kept)


def _content_length(fields: dict[str, str]) -> int | None:
    """The body length the server declared; none when Transfer-Encoding frames the body
    (it overrides Content-Length, RFC 9112 section 6.3: the bytes are not short of it)."""
    if "transfer-encoding" in fields:
        return None
    value = fields.get("content-length", "")
    return int(value) if value.strip().isdigit() else None


def _total_size(status: int, fields: dict[str, str]) -> int | None:
    """The whole resource's size: from ``Content-Range: bytes 0-8191/123456`` on a 206."""
    if status != 206:
        return _content_length(fields)
    total = fields.get("content-range", "").rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


def _media_type(value: str | None) -> str | None:
    return value.split(";", 1)[0].strip().lower() or None if value else None


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
