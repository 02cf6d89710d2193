"""The network's settings: one type, read from ``[fetch]`` and the command line by
``archiver.config``, passed as is to ``net.fetch.Fetcher``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from archiver import __version__

__all__ = [
    "TRANSPORTS",
    "USER_AGENT",
    "FetchConfig",
    "HostHeaders",
    "StatusRanges",
    "TransportChoice",
    "sendable",
]

#: Which transport a run uses: ``lean`` (``net.transport.Http11Transport``; https goes to
#: ``net.transport.Http2Transport`` when ``http2`` is on), ``httpx`` (its own, which honours
#: proxy variables), or ``auto``: lean unless the environment names a proxy.
TransportChoice = Literal["auto", "lean", "httpx"]
TRANSPORTS: tuple[str, ...] = get_args(TransportChoice)

USER_AGENT = (
    f"archiver/{__version__} (+https://github.com/archiver; keeps event slides and images alive)"
)


#: Status codes a run takes as ``ok`` (``--accept``): inclusive ``(first, last)`` ranges.
StatusRanges = tuple[tuple[int, int], ...]

#: Headers sent to one host (``[hosts."name"] headers``): ``(host, ((name, value), ...))``,
#: the host lower-cased as the fetched URL names it.
HostHeaders = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


@dataclass(frozen=True)
class FetchConfig:
    """The network settings of a run (the ``[fetch]`` table, ``exclude_urls`` and the
    command line's overrides), passed as they are to ``net.fetch.Fetcher``, which calls
    them ``FetchSettings``. The defaults suit a polite archiver."""

    # CIDRs and host names the address guard lets through (internal addresses are refused;
    # ARCHIVER_ALLOW_ADDRESSES adds to them).
    allow_addresses: tuple[str, ...] = ()
    # Regexes: a redirect into one is not followed. Not a ``[fetch]`` key: ``Config`` sets
    # it from the top-level ``exclude_urls``, which also keeps the URLs out of the database.
    exclude_urls: tuple[str, ...] = ()
    concurrency: int = 16  # requests in flight overall
    per_host: int = 4  # requests in flight to one host, never more
    connect_timeout: float = 10.0
    read_timeout: float = 30.0  # between two reads
    # From sending a request to its final head (connect, TLS, 1xx, the head itself).
    total_timeout: float = 60.0
    # A body must bring at least ``min_rate`` bytes a second over any ``rate_window``
    # seconds (once the first window has passed): a trickle is cut, a slow link is not.
    min_rate: float = 1024.0
    rate_window: float = 30.0  # not a config key
    max_redirects: int = 10
    retries: int = 3  # attempts after the first, for transient failures only
    backoff_base: float = 0.5  # not a config key
    backoff_max: float = 30.0  # not a config key
    retry_after_cap: float = 300.0
    max_size: int = 1024 * 1024 * 1024  # decoded bytes; a larger body is an error, not archived
    max_page_size: int = 10 * 1024 * 1024  # decoded bytes; a larger crawled page is skipped
    user_agent: str = USER_AGENT
    transport: TransportChoice = "auto"
    # Offer HTTP/2 to https origins (lean transport, never through a proxy). Off by default:
    # it reaches into httpcore's private attributes (a failure of that reach falls back to
    # HTTP/1.1), costs about three times the lean transport's CPU per request, and the
    # per-host limit leaves multiplexing little to win but the handshakes it saves.
    http2: bool = False
    # Not ``[fetch]`` keys: ``--accept`` says which other statuses are ``ok`` (no copy, no
    # validation; a 2xx body is judged whatever it says), ``[hosts]`` which headers (a
    # token) go to a host. Kept out of the repr: a token must never reach a log.
    accept: StatusRanges = ()
    host_headers: HostHeaders = field(default=(), repr=False)

    def accepts(self, status: int) -> bool:
        """Whether ``--accept`` names ``status``."""
        return any(first <= status <= last for first, last in self.accept)

    def headers_for(self, host: str) -> tuple[tuple[str, str], ...]:
        """The configured headers for ``host`` (as the request URL names it), or none."""
        key = host.lower().rstrip(".")
        if not key.isascii():
            try:
                key = key.encode("idna").decode("ascii")
            except UnicodeError:
                return ()
        for name, headers in self.host_headers:
            if name == key:
                return headers
        return ()

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            choices = ", ".join(TRANSPORTS)
            raise ValueError(f"transport must be one of {choices}, got {self.transport!r}")
        if not sendable(self.user_agent):
            raise ValueError(f"user_agent must not contain CR, LF or NUL, got {self.user_agent!r}")


def sendable(value: str) -> bool:
    """Whether ``value`` may go in a header line: a CR or LF in it would start another."""
    return not any(c in value for c in "\r\n\0")
