"""The records that pass between pipeline stages: frozen, typed, holding no open resource.

A stage takes and returns these, never a database row or a mapping of column names,
so a column can change without every stage knowing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archiver.validate import Expected
    from archiver.validate_deep import DeepCheck

__all__ = ["CheckRecord", "DueUrl", "IdSet", "Outcome", "RecheckReason", "RefRow", "UrlState"]


class IdSet:
    """The URL ids a run has considered: one bit per id, not a Python ``set``.

    A run remembers every URL its posts link, so that each is considered once; at
    1,100,000 URLs a ``set[int]`` of them held ~67 MB (an int object and a hash slot per
    id) and was most of what a check's memory grew with. Database ids are dense small
    integers, so a bit array takes 1 bit per id: 140 KB for those 1.1M.
    """

    __slots__ = ("_bits", "_count")

    def __init__(self) -> None:
        self._bits = bytearray()
        self._count = 0

    def claim(self, ids: Iterable[int]) -> set[int]:
        """Marks ``ids`` as considered and returns those that were not yet."""
        bits = self._bits
        new: set[int] = set()
        add = new.add  # the loop runs once per linked URL: as fast as a set difference
        for i in ids:
            byte, mask = i >> 3, 1 << (i & 7)
            try:
                value = bits[byte]
            except IndexError:
                bits.extend(bytes(max(byte + 1 - len(bits), len(bits))))
                value = 0
            if not value & mask:
                bits[byte] = value | mask
                add(i)
        self._count += len(new)
        return new

    def __contains__(self, i: int) -> bool:
        byte = i >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (i & 7)))

    def __len__(self) -> int:
        return self._count


class UrlState(StrEnum):
    """Every state a URL can be in (a ``str``: it compares, prints and serialises as one)."""

    OK = "ok"
    FAILING = "failing"
    DEAD = "dead"
    INVALID = "invalid"
    ERROR = "error"
    BLOCKED = "blocked"
    PENDING = "pending"


class RecheckReason(StrEnum):
    """Why a URL must be fetched in full at the next run, whatever its last check said."""

    COPY_MISSING = "copy-missing"  # verify found its blob gone from the store
    COPY_DAMAGED = "copy-damaged"  # verify found its blob's bytes changed
    UNDONE = "undone"  # restore --undo put the original link back in a post


@dataclass(frozen=True, slots=True)
class RefRow:
    """One reference of a post as saved: where it points, where [remap] fetches it from,
    what it must be, and where it is written in the post."""

    url: str
    line: int
    kind: str
    as_written: str
    start: int
    end: int
    text: str | None = None
    expect: Expected = "any"
    fetch_url: str | None = None  # None: fetched from ``url`` itself


@dataclass(frozen=True, slots=True)
class DueUrl:
    """A URL the due rule picked for this run, with what its last check left behind.

    ``fetch_url`` is what is requested (``url`` unless a [remap] rule sends the fetch
    elsewhere) and ``fetch_host`` its host: the host whose slots the request takes.
    """

    url_id: int
    url: str
    fetch_url: str
    fetch_host: str
    expect: Expected
    state: UrlState
    sha256: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_checked: str | None = None
    confirm_count: int = 0
    confirm_last: str | None = None
    recheck: RecheckReason | None = None
    #: The last full fetch (a crawl's) of a URL in a failed state failed; read for a
    #: ``check`` only (see ``states.may_clear``).
    full_fetch_failed: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one fetch. Holds no open resource: an archived body's finished
    writer travels beside it (``net.fetch.Fetched``), so an outcome can be kept, queued
    or compared freely."""

    url: str
    state: UrlState  # ok, dead, invalid, error or blocked
    http_status: int | None = None
    error: str | None = None  # one human line, e.g. "HTTP 404 Not Found"
    error_class: str | None = None  # a short slug, e.g. "http-404", "dns", "soft-404"
    final_url: str | None = None
    sha256: str | None = None
    size: int | None = None
    content_type: str | None = None  # sniffed MIME, else the server's
    status_line: str | None = None  # e.g. "HTTP/1.1 200 OK"
    headers: tuple[tuple[str, str], ...] = ()
    etag: str | None = None
    last_modified: str | None = None
    elapsed: float = 0.0  # seconds, backoff included
    attempts: int = 0
    bytes_received: int = 0  # body bytes over the wire, over all attempts and hops
    not_modified: bool = False
    unreachable: bool = False  # the last failure was name resolution or connecting
    transient: bool = False  # the last failure was of a kind worth retrying later


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """What one check writes: the outcome, the state the rules gave it, and whether its
    body was archived (a committed blob named by ``outcome.sha256``)."""

    url_id: int
    run_id: int | None
    now: str
    state: UrlState  # what the URL becomes (``states.transition``)
    outcome: Outcome
    archived: bool = False
    confirm_count: int = 0
    confirm_last: str | None = None
    became: str | None = None  # set when this check newly made the link broken
    #: The copy the URL had (``DueUrl.sha256``): a 304 renews it.
    held_sha256: str | None = None
    #: False: the check is recorded, the URL's row is left as it was (``states.may_clear``).
    changes_url: bool = True
    #: What the parsers said of the archived body (``validate_deep``), recorded on its
    #: blob; None when it was not checked (a kind no parser reads, or already checked).
    deep: DeepCheck | None = None
