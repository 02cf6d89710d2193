"""Getting archived bytes back out: which copy is good, and writing it somewhere.

Owns the notion of a *good copy* of a URL (its blob is in the store with the
recorded size and its last hash check passed) and the one way bytes leave the
store: re-hashed while they are copied, refused when the hash does not match.
A refused copy never leaves a partial file behind. Never fetches anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from archiver.db.location import Location
from archiver.db.sqlite import Database
from archiver.db.views import Copy, UrlQuery
from archiver.errors import DatabaseError, RestoreError
from archiver.extract import normalize_url
from archiver.store import BlobStore

__all__ = [
    "Copy",
    "RestoreError",
    "copies",
    "is_good",
    "newest_good",
    "pick_copy",
    "record_verification",
    "remember_if_damaged",
    "restore_to",
    "restore_to_stream",
    "restore_url",
]

_CHUNK = 1024 * 1024


def copies(db: Database, urls: UrlQuery | int | None = None) -> dict[int, list[Copy]]:
    """Every version of one URL, of the URLs a query covers, or of all; newest first."""
    return db.copies(urls)


def is_good(
    copy: Copy, store: BlobStore | None, sizes: Callable[[str], int | None] | None = None
) -> bool:
    """Restorable: blob present with its recorded size, and its last hash check passed.

    The hash computed while the store wrote the blob counts as its first check,
    so a blob never re-verified is good until ``verify`` (or a refused restore)
    finds it damaged. A non-null sha256 alone proves nothing. ``sizes`` stands in for
    ``store.size`` (a report's memo: many URLs share a blob).
    """
    if store is None or not copy.known or copy.verify_ok == 0:
        return False
    size = (sizes or store.size)(copy.sha256)
    if size is None:
        return False
    return copy.size is None or size == copy.size


def newest_good(
    versions: list[Copy],
    store: BlobStore | None,
    sizes: Callable[[str], int | None] | None = None,
) -> Copy | None:
    return next((c for c in versions if is_good(c, store, sizes)), None)


def pick_copy(db: Database, store: BlobStore, url: str, sha256: str | None = None) -> Copy:
    """The copy ``restore URL`` writes: the newest good one, or the version ``sha256`` names."""
    url_id = db.find_url_id(url)
    if url_id is None:
        with contextlib.suppress(ValueError):  # HTTP://Host:80/x#top is http://host/x
            url_id = db.find_url_id(normalize_url(url))
    if url_id is None:
        raise RestoreError(f"unknown URL {url}: it is in no crawled post (check the spelling)")
    versions = copies(db, url_id).get(url_id, [])
    if not versions:
        raise RestoreError(f"no archived copy of {url}: it was never fetched successfully")
    if sha256 is not None:
        # A unique prefix will do: reports and messages show 12 hex digits.
        chosen = [c for c in versions if c.sha256.startswith(sha256.lower())]
        if len(chosen) > 1:
            raise RestoreError(
                f"{sha256} matches {len(chosen)} versions of {url}: give more digits"
            )
        if not chosen:
            known = ", ".join(c.sha256[:12] for c in versions)
            raise RestoreError(f"{url} has no version {sha256} (versions: {known})")
        if not is_good(chosen[0], store):
            raise RestoreError(_damaged(chosen[0]))
        return chosen[0]
    good = newest_good(versions, store)
    if good is None:
        raise RestoreError(_damaged(versions[0]))
    return good


def _damaged(copy: Copy) -> str:
    return (
        f"the archived copy of {copy.url} (sha256 {copy.sha256}) is missing or damaged;"
        " run 'archiver verify --repair'"
    )


def record_verification(db: Database, sha256: str, ok: bool, now: str) -> None:
    """Remembers a hash check so reports stop calling a damaged blob restorable."""
    with db.transaction():
        db.set_verification(sha256, ok, now)


def remember_if_damaged(db_path: Location, store: BlobStore, copy: Copy, now: str) -> None:
    """After a refused copy, records a damaged blob if the database can be written.

    ``restore URL`` reads the database read-only (so it works on a full disk or a
    read-only file); remembering the damage is worth a write, but not a failure.
    """
    if store.hash_file(copy.sha256) == copy.sha256:
        return
    with contextlib.suppress(DatabaseError):
        db = Database(db_path)
        try:
            record_verification(db, copy.sha256, False, now)
        finally:
            db.close()


def copy_verified(store: BlobStore, sha256: str, out: IO[bytes]) -> int:
    """Copies a blob into ``out`` while hashing it; raises when the bytes do not match."""
    h = hashlib.sha256()
    n = 0
    try:
        with store.open(sha256) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
                n += len(chunk)
    except FileNotFoundError:
        raise RestoreError(f"blob {sha256} is missing from the store at {store.location}") from None
    if h.hexdigest() != sha256:
        raise RestoreError(
            f"blob {sha256} is corrupt (its bytes hash to {h.hexdigest()[:12]}…);"
            " refusing to restore it: run 'archiver verify --repair'"
        )
    return n


def restore_to(store: BlobStore, copy: Copy, dest: Path) -> int:
    """Writes the copy to ``dest`` atomically; a refused copy leaves ``dest`` untouched."""
    dest = Path(dest)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".restore-", dir=dest.parent)
    except OSError as exc:
        raise RestoreError(f"cannot write {dest}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            n = copy_verified(store, copy.sha256, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise RestoreError(f"cannot write {dest}: {exc.strerror}") from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return n


def restore_to_stream(store: BlobStore, copy: Copy, out: IO[bytes]) -> int:
    """Writes the copy to a stream only once all of it has hashed correctly."""
    with tempfile.SpooledTemporaryFile(max_size=16 * _CHUNK) as buf:
        n = copy_verified(store, copy.sha256, buf)
        buf.seek(0)
        while chunk := buf.read(_CHUNK):
            out.write(chunk)
        out.flush()
    return n


def restore_url(
    db: Database,
    store: BlobStore,
    url: str,
    *,
    now: str,
    dest: Path | None = None,
    out: IO[bytes] | None = None,
    sha256: str | None = None,
) -> Copy:
    """Writes the newest good copy of ``url`` (or version ``sha256``) to ``dest`` or ``out``.

    A copy found corrupt while copying is recorded as failing verification.
    """
    copy = pick_copy(db, store, url, sha256)
    try:
        if dest is not None:
            restore_to(store, copy, dest)
        else:
            assert out is not None
            restore_to_stream(store, copy, out)
    except RestoreError:
        if store.hash_file(copy.sha256) != copy.sha256:
            record_verification(db, copy.sha256, False, now)
        raise
    return copy
