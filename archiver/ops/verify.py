"""Keeping the store honest: re-hash blobs, find rows that point nowhere and files no row knows.

Owns ``blobs.verified_at`` / ``blobs.verify_ok``, which reports read to say
whether a copy is restorable. Checks the least recently verified blobs first,
so a time budget (``max_duration``) checks a large store a slice per run.
Repair only ever puts back the exact bytes a blob is named after: from a
misnamed file in the store, or from the origin when it still serves them, asked
through the crawl's own ``Fetcher`` and settings (never a client of its own).

``deep`` also asks the parsers whether each blob that hashes right still opens
(``validate_deep``): a hash proves the bytes are those stored, not that they were ever
a whole file (a crawl run with deep checking off, or before it existed). One that does
not open is marked like a damaged blob (never deleted, never "repaired" with the same
bytes) and its URLs are fetched in full at the next crawl.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from archiver import eventloop
from archiver.db.sqlite import Database
from archiver.net.fetch import Fetcher, FetchSettings
from archiver.net.localfiles import LocalRoots
from archiver.net.rules import UrlRules
from archiver.ops.restore import record_verification
from archiver.records import RecheckReason
from archiver.redact import clean_text, shown_url
from archiver.store import BlobEntry, BlobStore
from archiver.text import plural
from archiver.thumbs import find_thumbnail, thumbnail_blob
from archiver.validate_deep import deep_check, deep_kind

if TYPE_CHECKING:
    import httpx

__all__ = ["VerifyResult", "verify"]

#: Files younger than this may belong to a crawl that has not recorded them yet
#: (the default grace period; ``archiver verify --grace`` sets another).
YOUNG = 3600.0


@dataclass
class VerifyResult:
    """What a verification found; ``wrong`` decides the exit code."""

    checked: int = 0
    ok: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    #: Database rows that name a blob no ``blobs`` row knows, as one line each.
    dangling: list[str] = field(default_factory=list)
    #: Files (objects) in the store that are not a known blob under its own name.
    unknown: list[Path | str] = field(default_factory=list)
    #: Blob-named files no row knows (a run died before recording them): ``gc`` removes them.
    orphans: list[Path | str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    unrepaired: list[tuple[str, str]] = field(default_factory=list)
    #: Blobs left for the next run when the time budget ran out.
    remaining: int = 0
    #: ``deep``: blobs whose bytes hash right but do not open, with the parser's reason.
    undecodable: list[tuple[str, str]] = field(default_factory=list)
    #: ``deep`` was asked for (the summary line then counts what does not open).
    deep: bool = False
    #: Thumbnails made for image blobs that had none (the HTML report shows them).
    thumbnails: int = 0

    @property
    def wrong(self) -> bool:
        broken = (set(self.missing) | set(self.corrupt)) - set(self.repaired)
        return bool(broken or self.dangling or self.unknown or self.undecodable)

    def lines(self) -> list[str]:
        fixed = set(self.repaired)
        out = [f"missing blob: {s}" for s in self.missing if s not in fixed]
        out += [f"corrupt blob: {s}" for s in self.corrupt if s not in fixed]
        out += [f"blob does not open: {s}: {why}" for s, why in self.undecodable]
        out += [f"repaired blob: {s}" for s in self.repaired]
        out += [f"could not repair {s}: {why}" for s, why in self.unrepaired]
        out += [f"dangling row: {d}" for d in self.dangling]
        out += [f"unknown file: {p}" for p in self.unknown]
        out += [f"orphan blob (archiver gc removes it): {p}" for p in self.orphans]
        return out

    def line(self) -> str:
        orphans = f", {plural(len(self.orphans), 'orphan blob')} for gc" if self.orphans else ""
        rest = (
            f", {self.remaining} not re-hashed this run (least recently checked go first)"
            if self.remaining
            else ""
        )
        opens = f", {len(self.undecodable)} not opening" if self.deep else ""
        return (
            f"verify: {plural(self.checked, 'blob')} checked, {self.ok} ok,"
            f" {len(self.missing)} missing, {len(self.corrupt)} corrupt{opens},"
            f" {len(self.repaired)} repaired, {plural(len(self.dangling), 'dangling row')},"
            f" {plural(len(self.unknown), 'unknown file')}{orphans}{rest}"
        )


def _dangling(db: Database) -> list[str]:
    out = [f"version {d.sha256} of {d.url} has no blob row" for d in db.dangling_versions()]
    out += [f"{d.url} names blob {d.sha256} which has no blob row" for d in db.dangling_urls()]
    return out


def _unknown(store: BlobStore, known: set[str], now: float, grace: float) -> list[BlobEntry]:
    """What the store holds that no row names, once ``grace`` seconds old."""
    return [
        e
        for e in store.iter_blobs()
        if (e.sha256 is None or e.sha256 not in known) and now - e.mtime >= grace
    ]


def verify(
    db: Database,
    store: BlobStore,
    *,
    now: str,
    max_duration: float | None = None,
    limit: int | None = None,
    repair: bool = False,
    settings: FetchSettings | None = None,
    rules: UrlRules | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    local_roots: LocalRoots | None = None,
    monotonic: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    grace: float = YOUNG,
    deep: bool = False,
) -> VerifyResult:
    """Re-hashes blobs (oldest check first, within the budget), then checks rows and files.

    Store files no row knows are reported once they are ``grace`` seconds old. A
    repair fetches through ``archiver.net.fetch.Fetcher`` with ``settings`` (a crawl's:
    limits, size caps, redirects, User-Agent, timeouts) and ``rules`` (``[remap]``
    and ``exclude_urls``), so it asks no URL a crawl would not ask, and no other way.
    ``deep`` also re-runs the deep check on each blob that hashes right.
    """
    result = VerifyResult(deep=deep)
    blobs = db.blobs_to_verify()
    types = db.blob_content_types() if deep else {}
    started = monotonic()
    for i, sha in enumerate(blobs):
        out_of_time = max_duration is not None and monotonic() - started >= max_duration
        if (limit is not None and i >= limit) or (out_of_time and i > 0):
            result.remaining = len(blobs) - i
            break
        actual = store.hash_file(sha)
        result.checked += 1
        opens = True
        if actual == sha:
            result.ok += 1
            if deep:
                opens = _opens(db, store, sha, types.get(sha), result)
            if opens:
                _thumbnail(store, sha, result)
        elif actual is None:
            result.missing.append(sha)
        else:
            result.corrupt.append(sha)
        record_verification(db, sha, actual == sha and opens, now)
    result.dangling = _dangling(db)
    strays = _unknown(store, set(blobs), wall(), grace)
    result.unknown = [e.location for e in strays if e.sha256 is None]
    result.orphans = [e.location for e in strays if e.sha256 is not None]
    if repair:
        _repair(
            db,
            store,
            result,
            now,
            _Refetch(settings, rules or UrlRules(), transport, local_roots or LocalRoots()),
            strays,
        )
    _make_due(db, result)
    return result


def _opens(
    db: Database, store: BlobStore, sha: str, content_type: str | None, result: VerifyResult
) -> bool:
    """Re-runs the deep check on a blob whose hash is right; False when it does not open."""
    kind = deep_kind(content_type)
    if kind is None:
        return True
    try:
        with store.local_file(sha) as path:
            check = deep_check(path, kind)
    except FileNotFoundError:
        return True  # removed since it hashed right: the next verify finds it missing
    with db.transaction():
        db.set_deep_check(sha, check)
    if check.verdict != "corrupt":
        return True
    result.ok -= 1
    result.undecodable.append((sha, check.reason or f"the {kind} does not open"))
    return False


def _thumbnail(store: BlobStore, sha: str, result: VerifyResult) -> None:
    """Makes a sound image blob's missing thumbnail: one per blob, skipped when present."""
    if find_thumbnail(store.thumbs_dir, sha) is None and thumbnail_blob(store, sha):
        result.thumbnails += 1


def _make_due(db: Database, result: VerifyResult) -> None:
    """The URLs of a blob still missing or damaged are fetched again at the next crawl.

    A crawl would otherwise revalidate them (a 304 keeps the lost copy "ok") or leave
    them alone until ``recheck_after``; a repaired blob needs nothing.
    """
    fixed = set(result.repaired)
    missing = [s for s in result.missing if s not in fixed]
    corrupt = [s for s in result.corrupt if s not in fixed]
    corrupt += [s for s, _ in result.undecodable]
    if missing or corrupt:
        with db.transaction():
            db.mark_due_by_blob(missing, RecheckReason.COPY_MISSING)
            db.mark_due_by_blob(corrupt, RecheckReason.COPY_DAMAGED)


@dataclass(frozen=True)
class _Refetch:
    """How a repair asks the origin again: the run's fetch settings and URL rules."""

    settings: FetchSettings | None
    rules: UrlRules
    transport: httpx.AsyncBaseTransport | None
    local_roots: LocalRoots  # where a ``file:`` asset may be read again, as in the crawl


def _repair(
    db: Database,
    store: BlobStore,
    result: VerifyResult,
    now: str,
    refetch: _Refetch,
    strays: list[BlobEntry],
) -> None:
    damaged = [*result.missing, *result.corrupt]
    if not damaged:
        return
    # A blob renamed or moved inside the store is found again by its bytes.
    by_hash: dict[str, BlobEntry] = {}
    for entry in strays:
        if (digest := store.hash_entry(entry)) in damaged:
            by_hash.setdefault(str(digest), entry)
    outcome: dict[str, str | None] = {}
    for sha in damaged:
        if sha in by_hash:
            found_at = by_hash[sha]
            why = outcome[sha] = _put_back(store, sha, found_at)
            if why is None:
                store.remove(found_at)
                for found in (result.unknown, result.orphans):
                    if found_at.location in found:
                        found.remove(found_at.location)
    rest = [sha for sha in damaged if outcome.get(sha, "") is not None]
    if rest:
        outcome.update(eventloop.run(_refetch_all, db, store, rest, refetch))
    for sha in damaged:
        why = outcome[sha]
        if why is None:
            result.repaired.append(sha)
            record_verification(db, sha, True, now)
        else:
            result.unrepaired.append((sha, why))


def _put_back(store: BlobStore, sha: str, source: BlobEntry) -> str | None:
    """Stores ``source`` under ``sha`` when its bytes hash to it; None on success."""
    with store.writer() as w:
        try:
            with store.open_entry(source) as f:
                while chunk := f.read(1024 * 1024):
                    w.write(chunk)
        except OSError as exc:
            return f"cannot read {source.location}: {exc.strerror}"
        if w.finish() != sha:
            return f"{source.location} no longer holds the same bytes"
        store.discard(sha)  # the damaged file, if any
        w.commit()
    return None


async def _refetch_all(
    db: Database, store: BlobStore, damaged: list[str], refetch: _Refetch
) -> dict[str, str | None]:
    """Asks the origins again for each damaged blob, one URL at a time, through one Fetcher."""
    out: dict[str, str | None] = {}
    async with Fetcher(
        refetch.settings,
        store=store,
        transport=refetch.transport,
        local_roots=refetch.local_roots,
    ) as fetcher:
        for sha in damaged:
            out[sha] = await _refetch(db, store, sha, fetcher, refetch.rules)
    return out


async def _refetch(
    db: Database, store: BlobStore, sha: str, fetcher: Fetcher, rules: UrlRules
) -> str | None:
    """Fetches the blob again from a URL that had it; None on success, else why not."""
    urls = db.urls_that_served(sha)
    if not urls:
        return "no URL ever served these bytes"
    reasons = []
    for url in urls:
        why = await _fetch_into(store, sha, url, fetcher, rules)
        if why is None:
            return None
        reasons.append(f"{shown_url(url)} {clean_text(why)}")
    return "; ".join(reasons)


async def _fetch_into(
    store: BlobStore, sha: str, url: str, fetcher: Fetcher, rules: UrlRules
) -> str | None:
    """Fetches ``url`` as a crawl would; commits the blob only when it is exactly ``sha``."""
    if rules.excluded(url):
        return "is excluded by exclude_urls"
    target = rules.fetch_url(url) or url
    via = f" (fetched as {shown_url(target)})" if target != url else ""
    # "any": the bytes once passed the check a crawl made; their hash is the real test.
    result, blob = await fetcher.archive(target, expect="any")
    try:
        if result.state != "ok":
            status = result.http_status
            if status is not None and result.error_class == f"http-{status}":
                return f"answers HTTP {status}{via}"
            return f"cannot be fetched{via} ({result.error})"
        if blob is None or result.sha256 != sha:
            return f"now serves different bytes{via}"
        await anyio.to_thread.run_sync(store.discard, sha)  # the damaged copy, if any
        await anyio.to_thread.run_sync(blob.commit)
        blob = None
    finally:
        if blob is not None:
            blob.abort()
    return None
