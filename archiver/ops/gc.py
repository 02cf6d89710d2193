"""Garbage collection: removing blobs that no URL version references any more.

Owns the only deletions from the store. A blob is removed only when no
version and no URL names it *and* both its file and its row are older than
a grace period, so a blob a concurrent crawl has just committed (file first,
row after) is never taken. Plans by default; deletes only when asked. The
store's thumbnails are no blobs (``BlobStore.iter_blobs`` skips them): a removed
blob's thumbnail goes with it, every other stays.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from archiver.clock import parse_iso
from archiver.db.sqlite import Database
from archiver.store import BlobEntry, BlobStore
from archiver.text import plural
from archiver.thumbs import find_thumbnail

__all__ = ["GcResult", "collect_garbage"]


@dataclass(frozen=True)
class Garbage:
    sha256: str
    entry: BlobEntry
    size: int

    @property
    def path(self) -> Path | str:
        """Where it is: the file, or the object's ``s3://`` URL."""
        return self.entry.location


@dataclass
class GcResult:
    """Unreferenced blobs: those old enough (``garbage``) and those still in grace (``young``)."""

    garbage: list[Garbage] = field(default_factory=list)
    #: Temp files older than the grace period (bodies of runs that died mid-write).
    temp: list[Path] = field(default_factory=list)
    young: int = 0
    removed: bool = False

    @property
    def bytes(self) -> int:
        return sum(g.size for g in self.garbage)

    def line(self) -> str:
        verb = "removed" if self.removed else "would remove"
        young = f"; {self.young} unreferenced but still in the grace period" if self.young else ""
        temp = f" and {plural(len(self.temp), 'temp file')}" if self.temp else ""
        return f"gc: {verb} {plural(len(self.garbage), 'blob')} ({self.bytes} bytes){temp}{young}"


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    when = parse_iso(iso)
    return None if when is None else when.timestamp()


def collect_garbage(
    db: Database, store: BlobStore, *, grace: float, apply: bool = False, now: float | None = None
) -> GcResult:
    """Finds (with ``apply`` removes) blobs no version or URL names, older than ``grace``,
    and the temp files of runs that died, once as old."""
    now = time.time() if now is None else now
    referenced = db.named_blobs()
    stored = {sha: _epoch(first) for sha, first in db.blobs_first_stored().items()}
    result = GcResult()
    for entry in store.iter_blobs():
        sha = entry.sha256
        if sha is None or sha in referenced:
            continue  # not a blob under its own name: verify reports it, gc never guesses
        first = stored.get(sha)
        if now - entry.mtime < grace or (first is not None and now - first < grace):
            result.young += 1
            continue
        result.garbage.append(Garbage(sha, entry, entry.size))
    for path in store.temp_files():
        with contextlib.suppress(FileNotFoundError):
            if now - path.stat().st_mtime >= grace:  # a running crawl's are younger
                result.temp.append(path)
    if apply:
        for path in result.temp:
            path.unlink(missing_ok=True)
        removed = []
        for g in result.garbage:
            with db.transaction():
                # Re-checked under the write lock: a run may have named it meanwhile.
                if not db.forget_blob(g.sha256):
                    continue
                store.remove(g.entry)
            thumb = find_thumbnail(store.thumbs_dir, g.sha256)
            if thumb is not None:
                thumb.unlink(missing_ok=True)
            removed.append(g)
        result.garbage = removed
        result.removed = True
    return result
