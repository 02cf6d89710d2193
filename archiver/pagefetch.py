"""Fetching the pages of a site (HTML, sitemaps, feeds, robots.txt) into memory.

Owns the HTTP side of discovery. ``fetch.Fetcher`` judges every body as an asset
(an HTML page *is* a soft 404 there) and streams it into the store; a page is
the opposite: HTML is what we want, and its bytes are parsed, never archived.
So pages get their own small client with the same manners: the run's
``FetchSettings`` (user agent, timeouts, global and per-host limits, redirect
cap, retries with backoff and Retry-After through the same ``should_retry``)
and a size cap of their own. A failing page is a value, never an exception.
"""

from __future__ import annotations

import random
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import cast
from urllib.parse import urljoin, urlsplit

import anyio
import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt

from .clock import Clock, SystemClock
from .fetch import FetchResult, FetchSettings, State, should_retry

__all__ = ["PageFetcher", "PageResponse"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_DNS_MESSAGES = (
    "name or service not known",
    "temporary failure in name resolution",
    "no address associated with hostname",
    "nodename nor servname",
    "getaddrinfo failed",
)


@dataclass
class PageResponse:
    """One page's outcome (``result``, as for an asset) and, when it is 2xx, its body."""

    result: FetchResult
    body: bytes = b""
    retry_after: float | None = None  # seconds the server asked us to wait, for the retry loop
    location: str | None = None  # a redirect still to follow


class PageFetcher:
    """Fetches pages within the limits of ``settings``, bodies capped at ``max_size``."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        max_size: int,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.max_size = max_size
        self._transport = transport
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._client: httpx.AsyncClient | None = None
        self._global = anyio.CapacityLimiter(settings.concurrency)
        self._hosts: dict[str, anyio.CapacityLimiter] = {}

    async def __aenter__(self) -> PageFetcher:
        s = self.settings
        self._client = httpx.AsyncClient(
            transport=self._transport or httpx.AsyncHTTPTransport(retries=0),
            headers={"User-Agent": s.user_agent, "Accept-Encoding": "identity"},
            timeout=httpx.Timeout(
                None, connect=s.connect_timeout, read=s.read_timeout, write=s.read_timeout
            ),
            follow_redirects=False,
        )
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

    async def get(self, url: str, validators: Mapping[str, str] | None = None) -> PageResponse:
        """Fetches one page, following redirects and retrying transient failures."""
        started = anyio.current_time()
        attempts = received = 0

        async def attempt() -> PageResponse:
            nonlocal attempts, received
            attempts += 1
            page = await self._follow(url, dict(validators or {}))
            received += page.result.bytes_received
            return page

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retries + 1),
            wait=self._wait,
            retry=retry_if_result(lambda page: should_retry(page.result)),
            sleep=self._clock.sleep,
            retry_error_callback=_last_outcome,
            reraise=True,
        )
        page = cast(PageResponse, await retrying(attempt))
        r = page.result
        r.attempts, r.bytes_received = attempts, received
        r.transient = r.state != "ok" and should_retry(r)
        r.elapsed = anyio.current_time() - started
        return page

    def _wait(self, state: RetryCallState) -> float:
        """Retry-After when the server sent one (capped), else exponential backoff with jitter."""
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            retry_after = cast(PageResponse, outcome.result()).retry_after
            if retry_after is not None:
                return min(retry_after, self.settings.retry_after_cap)
        s = self.settings
        delay = min(s.backoff_max, s.backoff_base * 2.0 ** min(state.attempt_number - 1, 62))
        return delay / 2 + self._rng.uniform(0, delay / 2)

    async def _follow(self, url: str, validators: dict[str, str]) -> PageResponse:
        """One attempt: the request and its redirects; a loop or too long a chain is dead."""
        current = url
        visited = {_normal(url)}
        for _ in range(self.settings.max_redirects + 1):
            page = await self._exchange(current, validators)
            page.result.url, page.result.final_url = url, current
            if page.location is None:
                return page
            target = urljoin(current, page.location.strip())
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                return _failed_page(page, "dead", "bad-url", f"redirect to {target}")
            if _normal(target) in visited:
                return _failed_page(page, "dead", "redirect-loop", f"redirect loop via {target}")
            visited.add(_normal(target))
            current = target
        limit = self.settings.max_redirects
        return _failed_page(page, "dead", "too-many-redirects", f"more than {limit} redirects")

    @asynccontextmanager
    async def _slot(self, host: str) -> AsyncIterator[None]:
        """The host's slot first, then a global one (as ``Fetcher`` does)."""
        limiter = self._hosts.get(host)
        if limiter is None:
            limiter = self._hosts[host] = anyio.CapacityLimiter(self.settings.per_host)
        async with limiter, self._global:
            yield

    async def _exchange(self, url: str, validators: dict[str, str]) -> PageResponse:
        if self._client is None:
            raise RuntimeError("use the PageFetcher inside 'async with'")
        try:
            request = self._client.build_request("GET", url, headers=validators)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return PageResponse(_failed(url, "dead", "bad-url", f"invalid URL: {exc}"))
        async with self._slot(request.url.host.lower()):
            try:
                response = await self._client.send(request, stream=True)
            except httpx.HTTPError as exc:
                return PageResponse(_transport_failed(url, exc))
            try:
                return await self._answer(url, response, bool(validators))
            finally:
                await response.aclose()

    async def _answer(self, url: str, response: httpx.Response, conditional: bool) -> PageResponse:
        status = response.status_code
        reason = response.reason_phrase or ""
        result = FetchResult(
            url=url,
            state="ok",
            http_status=status,
            status_line=f"{response.http_version} {status} {reason}".rstrip(),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw],
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            content_type=_media_type(response.headers.get("content-type")),
        )
        if status in _REDIRECTS and "location" in response.headers:
            return PageResponse(result, location=response.headers["location"])
        if status == 304 and conditional:
            result.not_modified = True
            return PageResponse(result)
        if 200 <= status < 300:
            return await self._receive(result, response)
        transient = status in _TRANSIENT_STATUSES or 500 <= status <= 599
        state: State = "dead" if 400 <= status < 500 and not transient else "error"
        _fail(result, state, f"http-{status}", f"HTTP {status} {reason}".rstrip())
        return PageResponse(result, retry_after=self._retry_after(response) if transient else None)

    async def _receive(self, result: FetchResult, response: httpx.Response) -> PageResponse:
        """Reads the body into memory, abandoning it at the size cap."""
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_size:
            _fail(result, "error", "too-large", _too_large(self.max_size))
            return PageResponse(result)
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_size:
                    result.bytes_received = response.num_bytes_downloaded
                    _fail(result, "error", "too-large", _too_large(self.max_size))
                    return PageResponse(result)
        except httpx.HTTPError as exc:
            state, error_class, error, _ = _classify(exc)
            result.bytes_received = response.num_bytes_downloaded
            _fail(result, state, error_class, error)
            return PageResponse(result)
        result.bytes_received = response.num_bytes_downloaded
        if declared.isdigit() and response.num_bytes_downloaded < int(declared):
            got = response.num_bytes_downloaded
            _fail(result, "error", "truncated", f"body truncated: got {got} of {declared} bytes")
            return PageResponse(result)
        result.size = len(body)
        return PageResponse(result, bytes(body))

    def _retry_after(self, response: httpx.Response) -> float | None:
        value = response.headers.get("retry-after", "").strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - self._clock.now()).total_seconds())


def _last_outcome(state: RetryCallState) -> PageResponse:
    """When retries run out, the last failure is the answer (a value, not a RetryError)."""
    assert state.outcome is not None
    return cast(PageResponse, state.outcome.result())


def _too_large(cap: int) -> str:
    return f"page larger than the max_page_size of {cap} bytes"


def _failed(url: str, state: State, error_class: str, error: str) -> FetchResult:
    return FetchResult(url=url, state=state, error_class=error_class, error=error, final_url=url)


def _fail(result: FetchResult, state: State, error_class: str, error: str) -> FetchResult:
    result.state, result.error_class, result.error = state, error_class, error
    return result


def _failed_page(page: PageResponse, state: State, error_class: str, error: str) -> PageResponse:
    return PageResponse(_fail(page.result, state, error_class, error))


def _transport_failed(url: str, exc: httpx.HTTPError) -> FetchResult:
    state, error_class, error, unreachable = _classify(exc)
    result = _failed(url, state, error_class, error)
    result.unreachable = unreachable
    return result


def _classify(exc: httpx.HTTPError) -> tuple[State, str, str, bool]:
    """(state, error class, human line, unreachable) in ``fetch``'s vocabulary of classes."""
    text = str(exc)
    if text.startswith("[Errno") and "] " in text:
        text = text.split("] ", 1)[1]
    lowered = text.lower()
    causes: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(causes) < 10:
        causes.append(e)
        e = e.__cause__ or e.__context__
    if isinstance(exc, httpx.ConnectTimeout):
        return "error", "timeout", "timed out connecting", True
    if isinstance(exc, httpx.TimeoutException):
        return "error", "timeout", "timed out waiting for the server", False
    if isinstance(exc, httpx.ConnectError):
        if any(isinstance(c, socket.gaierror) for c in causes) or any(
            m in lowered for m in _DNS_MESSAGES
        ):
            return "dead", "dns", text or "Name or service not known", True
        if any(isinstance(c, ssl.SSLError) for c in causes):
            return "error", "tls", f"TLS failed: {text}", False
        if "refused" in lowered or any(isinstance(c, ConnectionRefusedError) for c in causes):
            return "error", "refused", "Connection refused", True
        return "error", "connect", text or "could not connect", True
    if isinstance(exc, httpx.RemoteProtocolError) and "message body" in lowered:
        return "error", "truncated", f"body truncated: {text}", False
    if isinstance(exc, httpx.ReadError | httpx.WriteError) or "disconnected" in lowered:
        return "error", "reset", text or "Connection reset by peer", False
    return "error", "protocol", text or type(exc).__name__, False


def _normal(url: str) -> str:
    """A URL as compared for redirect loops: httpx's normal form, without the fragment."""
    try:
        return str(httpx.URL(url).copy_with(fragment=None))
    except httpx.InvalidURL:
        return url


def _media_type(value: str | None) -> str | None:
    return (value.split(";", 1)[0].strip().lower() or None) if value else None
