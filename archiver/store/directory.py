"""The content-addressed blob store.

Owns the directory tree under the store root: ``<root>/<aa>/<sha256>`` holds
blobs named by the SHA-256 of their bytes (so ``sha256sum`` checks them) and
``<root>/tmp/`` holds bodies still being written, ``<root>/thumbs/`` previews of
image blobs (``archiver.thumbs``: a cache, not blobs; no sha256 starts with ``t``)
(``<root>/archiver-store.json``, the store's id, belongs to ``identity``). A blob appears under its
final name only by ``rename`` after ``fsync``, so a crash never leaves a partial
file there. Blobs are read-only once written and never modified or deleted
here (``gc`` is the only remover). Disk-full and permission errors become
``StoreError``: they are permanent and never retried.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from archiver.errors import StoreError

__all__ = ["BlobWriter", "Store", "StoredBlob", "sha256_of"]

_TMP_PREFIX = "partial-"
_CHUNK = 1024 * 1024
#: Directories of the store root that hold no blobs.
_NOT_BLOBS = frozenset({"tmp", "thumbs"})


@dataclass(frozen=True)
class StoredBlob:
    """A blob that is safely under its final name."""

    sha256: str
    size: int
    path: Path
    new: bool  # False when identical bytes were already stored


def _store_error(exc: OSError, what: str) -> StoreError:
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full: free space or point --store at a larger disk"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "permission denied: check the owner and mode of the store directory"
    else:
        hint = exc.strerror or str(exc)
    return StoreError(f"cannot {what}: {hint} ({exc.filename or ''})".replace(" ()", ""))


class BlobWriter:
    """Receives a body chunk by chunk, hashing as it writes to a temp file.

    Use ``write`` then either ``commit`` (fsync + rename into place) or ``abort``.
    As a context manager it aborts whatever was not committed.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self.size = 0
        self._closed = False
        try:
            fd, name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=store.tmp_dir)
        except OSError as exc:
            raise _store_error(exc, "create a temp file in the store") from exc
        self.tmp_path = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.abort()
            raise _store_error(exc, "write to the store") from exc
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def finish(self) -> str:
        """Flushes and fsyncs the temp file; returns the SHA-256. Idempotent."""
        if not self._closed:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
            except OSError as exc:
                self.abort()
                raise _store_error(exc, "write to the store") from exc
            self._closed = True
        return self.sha256

    def commit(self) -> StoredBlob:
        """Moves the finished body under its content name."""
        sha = self.finish()
        return self._store._adopt(self.tmp_path, sha, self.size)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        self._closed = True
        with contextlib.suppress(FileNotFoundError):
            self.tmp_path.unlink()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.tmp_path.exists():
            self.abort()


class Store:
    """A directory of blobs named by their SHA-256, with two-hex-digit fan-out."""

    def __init__(self, root: Path | str, *, create: bool = True) -> None:
        """``create=False`` (read-only commands, or before the store's identity is checked)
        makes nothing on disk; ``create()`` does it later."""
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        #: Thumbnails of image blobs, named after them (see ``archiver.thumbs``).
        self.thumbs_dir = self.root / "thumbs"
        if create:
            self.create()

    def create(self) -> None:
        """Makes the store's directories (a no-op when they exist)."""
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _store_error(exc, f"create the store at {self.root}") from exc

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put_bytes(self, data: bytes) -> StoredBlob:
        with self.writer() as w:
            w.write(data)
            return w.commit()

    def put_file(self, path: Path) -> StoredBlob:
        """Copies a local file into the store (for assets that live on disk)."""
        with self.writer() as w, path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                w.write(chunk)
            return w.commit()

    def open(self, sha256: str) -> BinaryIO:
        return self.path_for(sha256).open("rb")

    def hash_file(self, sha256: str) -> str | None:
        """Re-hashes a stored blob; None when it is missing."""
        return sha256_of(self.path_for(sha256))

    def iter_blobs(self) -> list[Path]:
        """Every file under a fan-out directory (named or not like a blob); never the
        temp files or the thumbnails, which verify and gc leave alone."""
        out: list[Path] = []
        if not self.root.is_dir():
            return out  # a store not made yet holds nothing
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and sub.name not in _NOT_BLOBS:
                out.extend(sorted(p for p in sub.iterdir()))
        return out

    def clean_temp(self) -> int:
        """Removes temp files left by a killed run; returns how many."""
        n = 0
        for p in self.tmp_dir.glob(_TMP_PREFIX + "*"):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                n += 1
        return n

    def total_size(self) -> int:
        return sum(p.stat().st_size for p in self.iter_blobs())

    def _adopt(self, tmp: Path, sha256: str, size: int) -> StoredBlob:
        final = self.path_for(sha256)
        if final.exists() and self.hash_file(sha256) == sha256:
            tmp.unlink(missing_ok=True)
            return StoredBlob(sha256, size, final, new=False)
        # New, or a damaged file under the name (verify made its URL due): these bytes win.
        try:
            final.parent.mkdir(exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _store_error(exc, "move a blob into the store") from exc
        return StoredBlob(sha256, size, final, new=True)


def sha256_of(path: Path) -> str | None:
    """The SHA-256 of a file's bytes, read in chunks; None when it cannot be read."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def write_atomic(file: Path, data: bytes, mode: int | None = None) -> None:
    """Replaces ``file`` in one rename (temp file, fsync, rename, fsync the directory):
    a crash leaves the old content or the new, never half. ``mode`` defaults to 0o644."""
    fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=file.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 if mode is None else mode)
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(file.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
