"""Recording a run's results: blobs committed first, then the rows, in batches.

Owns the order that makes a crash harmless (a blob is durable in the store before any
row names it), the batching (group commit: one transaction per batch, as a commit per
result would cost a disk sync per URL and stall the event loop; and one fsync per
touched fan-out directory per batch, made before that transaction, instead of one per
blob), and the crash-test hooks (``ARCHIVER_FAULT``). Each new blob's own bytes are
fsynced before its rename (``BlobWriter.finish``); only the directory entries wait for
the batch, and no row of the batch is committed until they are durable.

Before a new body is committed it is deep-checked (``validate_deep``: does it open?),
in a bounded child process, off the event loop, at most ``DEEP_CHECKS`` at a time: a
``corrupt`` body makes the outcome ``invalid`` (error class ``corrupt``) and is never
stored, so it never replaces the copy the URL holds. A blob already stored and checked is
not checked again. ``ARCHIVER_DEEP_CHECK=off`` turns this off (a test hook, as the fault
points are: it lets a test store a body that does not open).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import anyio

from archiver.clock import Clock, iso, parse_iso
from archiver.config import Config
from archiver.db.sqlite import Database
from archiver.net.fetch import Fetched
from archiver.records import CheckRecord, DueUrl, Outcome, UrlState
from archiver.run.summary import RunSummary
from archiver.states import Previous, may_clear, transition
from archiver.store.base import BlobStore as Store
from archiver.store.base import BlobWriter, fsync_dir
from archiver.thumbs import thumbnail_blob
from archiver.validate_deep import DeepCheck, DeepLimits, deep_check, deep_kind

__all__ = ["BATCH_ROWS", "BATCH_SECONDS", "DEEP_CHECKS", "Recorder", "fault"]

#: A batch of results is recorded in one transaction once it has this many rows...
BATCH_ROWS = 500
#: ...or once its oldest result has waited this long (a kill loses at most this much work).
BATCH_SECONDS = 0.5
#: Deep checks running at once (each a child process of up to 150 MB, mostly CPU).
DEEP_CHECKS = 2
#: Verdicts of this run's deep checks kept by SHA-256, so the same bytes under many URLs
#: are checked once even before the first row is committed (bounded: cleared when full).
_VERDICTS = 4096

_Pending = tuple[DueUrl, Outcome, bool, datetime, DeepCheck | None]


class Recorder:
    """Commits each result's blob, then records results in batches, counting them into
    ``summary``. ``flush`` writes what waits (call it when the run ends, however)."""

    def __init__(
        self,
        db: Database,
        config: Config,
        clock: Clock,
        summary: RunSummary,
        *,
        probe: bool,
        store: Store | None = None,
        judged: Callable[[str, str, str | None], None] | None = None,
    ) -> None:
        self._db, self._clock, self._summary, self._probe = db, clock, summary, probe
        self._store = store
        #: Hears each URL, the state recorded for it and why when it is not ok (``-v``),
        #: once its batch commits:
        #: the recorded state, not the fetch's verdict (a first 404 is ``failing``, a body
        #: that does not open ``invalid``), so the line agrees with ``report``.
        self._judged = judged
        self._confirm_runs, self._confirm_after = config.confirm_runs, config.confirm_after
        self._pending: list[_Pending] = []
        #: Fan-out directories the pending rows' blobs are in, fsynced before they commit.
        self._dirs: set[Path] = set()
        #: SHA-256 -> the corrupt outcome's reason, or None for bytes that open.
        self._verdicts: dict[str, str | None] = {}
        self._oldest = 0.0
        self._deep = not probe and os.environ.get("ARCHIVER_DEEP_CHECK", "") != "off"
        self._deep_limits = DeepLimits()
        self._deep_slots: anyio.CapacityLimiter | None = None

    async def record(self, url: DueUrl, fetched: Fetched) -> None:
        outcome, blob = fetched
        deep = None
        if outcome.state == UrlState.OK and blob is not None:
            outcome, deep = await self._deep_check(outcome, blob)
        when = self._clock.now()
        archived = False
        if outcome.state == UrlState.OK and blob is not None:
            fault("after-temp-write")
            # The blob is in place before any row names it, and its directory entry is
            # durable before that row commits (``_sync_dirs``, once per batch). A rename
            # runs off the event loop, which other transfers need meanwhile; bytes the
            # store already held (``held``) cost no I/O at all.
            commit = functools.partial(blob.commit, deferred=True)
            stored = commit() if blob.held else await anyio.to_thread.run_sync(commit)
            fault("after-rename")
            archived = True
            if stored.path is not None:
                self._dirs.add(stored.path.parent)
            if stored.new:
                self._summary.new_blobs += 1
                await self._thumbnail(stored.sha256)
        elif blob is not None:
            blob.abort()
        if not self._pending:
            self._oldest = anyio.current_time()
        self._pending.append((url, outcome, archived, when, deep))
        if len(self._pending) >= BATCH_ROWS or anyio.current_time() - self._oldest >= BATCH_SECONDS:
            await self._flush_batch()

    async def _flush_batch(self) -> None:
        """``flush`` with the directory fsyncs off the event loop; results recorded
        meanwhile go to the next batch. Shielded: a batch whose blobs are being made
        durable is committed even when the run is being cancelled."""
        pending, dirs = self._pending, self._dirs
        self._pending, self._dirs = [], set()
        with anyio.CancelScope(shield=True):
            if dirs:
                await anyio.to_thread.run_sync(_sync_dirs, dirs)
            self._write(pending)

    def _slots(self) -> anyio.CapacityLimiter:
        """The child processes a run starts at once (made in the event loop, on first use)."""
        if self._deep_slots is None:
            self._deep_slots = anyio.CapacityLimiter(DEEP_CHECKS)
        return self._deep_slots

    async def _thumbnail(self, sha256: str) -> None:
        """The HTML report's thumbnail of a new image blob, made as it is stored (a bounded
        child process, in the deep checks' slots); ``verify`` makes any still missing."""
        if self._store is None or not self._deep:
            return
        store = self._store
        await anyio.to_thread.run_sync(lambda: thumbnail_blob(store, sha256), limiter=self._slots())

    async def _deep_check(
        self, outcome: Outcome, blob: BlobWriter
    ) -> tuple[Outcome, DeepCheck | None]:
        """Whether the finished body opens; a corrupt one turns the outcome ``invalid``."""
        kind = deep_kind(outcome.content_type)
        if not self._deep or kind is None:
            return outcome, None
        sha = blob.finish()  # the fetcher finished (fsynced) it: a no-op
        if sha in self._verdicts:  # the same bytes, checked earlier in this run
            reason = self._verdicts[sha]
            return (outcome, None) if reason is None else (_corrupt(outcome, reason), None)
        if self._db.deep_checked(sha):
            return outcome, None  # these bytes were checked when first stored
        check = functools.partial(deep_check, blob.tmp_path, kind, self._deep_limits)
        deep = await anyio.to_thread.run_sync(check, limiter=self._slots())
        if len(self._verdicts) >= _VERDICTS:
            self._verdicts.clear()
        if deep.verdict != "corrupt":
            self._verdicts[sha] = None
            return outcome, deep
        reason = deep.reason or f"the {kind} does not open"
        self._verdicts[sha] = reason
        return _corrupt(outcome, reason), None

    def flush(self) -> None:
        """Records what waits: its blobs' directories made durable, then its rows."""
        pending, dirs = self._pending, self._dirs
        self._pending, self._dirs = [], set()
        _sync_dirs(dirs)
        self._write(pending)

    def _write(self, pending: list[_Pending]) -> None:
        """The batch's rows in one transaction (its blobs are durable already)."""
        summary = self._summary
        if not pending:
            return
        # Rows that name a blob are written in SHA-256 order: workers sharing a PostgreSQL
        # database store the same body (one file under two hosts' URLs) in batches of
        # their own, and two batches locking those blob rows in different orders
        # deadlock. The rest keep their order (the sort is stable), and -v still hears
        # the batch in the order its results came.
        order = sorted(
            range(len(pending)),
            key=lambda i: (pending[i][1].sha256 or "") if pending[i][2] else "",
        )
        recorded: list[tuple[str, str, str | None] | None] = [None] * len(pending)
        with self._db.transaction():
            for i in order:
                url, outcome, archived, when, deep = pending[i]
                # Each URL is checked once per run, so what the due query read is current.
                prev = Previous(url.state, url.confirm_count, parse_iso(url.confirm_last))
                changes = may_clear(url, outcome, probe=self._probe)
                if changes:
                    t = transition(
                        prev,
                        outcome.state,
                        when,
                        confirm_runs=self._confirm_runs,
                        confirm_after=self._confirm_after,
                    )
                    state, newly_broken = t.state, t.newly_broken
                    count, last = t.confirm_count, t.confirm_last
                else:
                    state, newly_broken = url.state, False
                    count, last = url.confirm_count, prev.confirm_last
                self._db.record_check(
                    CheckRecord(
                        url_id=url.url_id,
                        run_id=summary.run_id,
                        now=iso(when),
                        state=state,
                        outcome=outcome,
                        archived=archived,
                        confirm_count=count,
                        confirm_last=iso(last) if last else None,
                        became=iso(when) if newly_broken else None,
                        held_sha256=url.sha256,
                        changes_url=changes,
                        deep=deep,
                    )
                )
                summary.counts[state] += 1
                summary.checked += 1
                recorded[i] = (url.url, state, None if state == UrlState.OK else outcome.error)
                if newly_broken:
                    summary.newly_broken.append(url.url)
                if state == UrlState.BLOCKED and prev.state != UrlState.BLOCKED:
                    summary.newly_blocked.append((url.url, outcome.error or "blocked"))
                if outcome.transient and outcome.state != UrlState.OK:
                    summary.transient += 1
            fault("before-commit")
        if self._judged is not None:
            for name, judged, why in filter(None, recorded):
                self._judged(name, judged, why)


def _corrupt(outcome: Outcome, reason: str) -> Outcome:
    """A body that does not open: ``invalid``, never stored."""
    return dataclasses.replace(
        outcome, state=UrlState.INVALID, error=reason, error_class="corrupt", transient=False
    )


def _sync_dirs(dirs: Iterable[Path]) -> None:
    """Makes the batch's new directory entries durable: one fsync per directory."""
    for path in dirs:
        fault("before-dir-sync")
        fsync_dir(path)


_fault_hits: Counter[str] = Counter()


def fault(point: str) -> None:
    """Crash-test hook: ``ARCHIVER_FAULT=point[:n]`` kills the process at the n-th ``point``;
    ``point[:n]:raise`` raises an unexpected exception there instead (a stand-in for a bug).

    Points: ``after-temp-write`` (body fsynced in the temp file), ``after-rename`` (blob
    under its final name, no row yet), ``before-dir-sync`` (a batch's blobs renamed, their
    directory not yet fsynced, no row written), ``before-commit`` (rows written, not
    committed), ``worker-indexed-batch`` (a ``crawl --worker`` queued a batch of posts'
    URLs, its source not yet recorded as indexed).
    Used by the kill -9 and exit-70 tests; unset in normal runs (one dict lookup).
    """
    spec = os.environ.get("ARCHIVER_FAULT")
    if not spec:
        return
    name, _, rest = spec.partition(":")
    if name != point:
        return
    nth, _, action = rest.partition(":")
    _fault_hits[point] += 1
    if action == "raise":
        if _fault_hits[point] == int(nth or 1):  # once: one bug, one exception
            raise RuntimeError(f"fault injected at {point} (ARCHIVER_FAULT)")
    elif _fault_hits[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
