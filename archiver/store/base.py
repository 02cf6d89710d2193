"""What every blob store promises, whichever backend holds the bytes.

Owns the interface the rest of archiver sees (``BlobStore``), the one way a body
enters a store (``BlobWriter``: a local temp file, hashed as it is written, handed to
the backend by ``commit``) and the values a store hands back (``StoredBlob``,
``BlobEntry``). A backend (``directory``, ``s3``) says how a finished temp file
becomes a blob under its SHA-256 name and how blobs are read, listed and removed; no
code outside this package knows which one runs. ``commit`` returns only once the blob
is complete under its final name, so a row never names a blob that is not there.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import re
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, ClassVar, NoReturn

from archiver.errors import StoreError

__all__ = [
    "BlobEntry",
    "BlobStore",
    "BlobWriter",
    "StoredBlob",
    "is_sha256",
    "sha256_of",
    "write_atomic",
]

TMP_PREFIX = "partial-"
CHUNK = 1024 * 1024
#: A body is written and hashed where it arrives up to this many bytes (one read of
#: the event loop's socket); past them a thread of its own does it (``_Spooler``), so
#: the event loop that receives a large body goes on receiving meanwhile (write and
#: SHA-256 release the GIL): a small asset never pays for a thread.
INLINE_BYTES = 256 * 1024
#: Bytes a body's thread may have waiting; ``write`` blocks past them (memory stays
#: bounded when the disk is slower than the network, as a blocking write did before).
SPOOL_BYTES = 4 * 1024 * 1024
#: Chunks go to the thread in batches of about this many bytes: each hand-over wakes it.
_SPOOL_BATCH = 1024 * 1024
#: A body up to this size is kept in memory until it is finished (``BlobWriter``).
SMALL_BODY = 64 * 1024
_SHA = re.compile(r"[0-9a-f]{64}")


def is_sha256(name: str) -> bool:
    """A lowercase hex SHA-256, as blobs are named."""
    return bool(_SHA.fullmatch(name))


@dataclass(frozen=True)
class StoredBlob:
    """A blob that is complete under its final name."""

    sha256: str
    size: int
    path: Path | None  # the file, in a local store; None when the bytes live elsewhere
    new: bool  # False when identical bytes were already stored


@dataclass(frozen=True)
class BlobEntry:
    """Something found where a store keeps blobs (``iter_blobs``), blob or not."""

    name: str  # the file's or the key's last part
    #: How a message names it: the file's path, or the object's ``s3://`` URL.
    location: Path | str
    #: The SHA-256 it is named after when it sits under its own two-hex fan-out
    #: (archiver wrote it there), else None: a stray that gc never guesses about.
    sha256: str | None
    mtime: float  # seconds since the epoch
    size: int


def store_error(exc: OSError, what: str) -> StoreError:
    """A disk error as the operator reads it; full disks and permissions are permanent."""
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full: free space or point --store at a larger disk"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "permission denied: check the owner and mode of the store directory"
    else:
        hint = exc.strerror or str(exc)
    return StoreError(f"cannot {what}: {hint} ({exc.filename or ''})".replace(" ()", ""))


class _Spooler:
    """One body's writing thread: chunks in order into the file and the hash, at most
    ``SPOOL_BYTES`` waiting. A write error stops it; ``drain`` raises it.

    The event loop's side appends to a list; every ``_SPOOL_BATCH`` bytes the list goes
    through a C-level queue (one wake-up of the thread). A lock taken per chunk by both
    threads was a stall whenever the machine, busy with other work, preempted the thread
    holding it. Each byte count has one writer thread.
    """

    def __init__(self, file: BinaryIO, digest: hashlib._Hash) -> None:
        self._file, self._hash = file, digest
        self._chunks: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self._batch: list[bytes] = []
        self._batched = 0  # bytes in ``_batch``
        self._queued = 0  # bytes handed to the thread (the producer's count)
        self._written = 0  # bytes written and hashed (the thread's count)
        self._room = threading.Event()
        self._cancelled = False
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="blob writer", daemon=True)
        self._thread.start()

    def put(self, chunk: bytes) -> None:
        if self._queued - self._written > SPOOL_BYTES:
            self._room.clear()
            while self._queued - self._written > SPOOL_BYTES and self.error is None:
                self._room.wait()
                self._room.clear()
        if self.error is not None:
            raise self.error
        self._batch.append(chunk)
        self._batched += len(chunk)
        if self._batched >= _SPOOL_BATCH:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._batch:
            self._queued += self._batched
            self._chunks.put(self._batch)
            self._batch, self._batched = [], 0

    def drain(self) -> None:
        """Returns once every chunk is written and hashed and the thread has ended."""
        self._hand_over()
        self._chunks.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def cancel(self) -> None:
        """Drops what waits and ends the thread (after the chunk it is writing)."""
        self._cancelled = True
        self._chunks.put(None)
        self._thread.join()

    def _run(self) -> None:
        get, room = self._chunks.get, self._room
        while (batch := get()) is not None:
            for chunk in batch:
                if self._cancelled or self.error is not None:
                    pass  # dropped: only the end marker matters now
                else:
                    try:
                        self._file.write(chunk)
                    except OSError as exc:
                        self.error = exc
                    else:
                        self._hash.update(chunk)
                self._written += len(chunk)
            if not room.is_set():
                room.set()


class BlobWriter:
    """Receives a body chunk by chunk, hashing as it writes to a temp file.

    Use ``write`` then either ``commit`` (the backend puts it under its content name)
    or ``abort``. As a context manager it aborts whatever was not committed. Until
    then ``tmp_path`` is a local file holding the body (the deep check reads it).

    A body of up to ``SMALL_BODY`` bytes stays in memory until ``finish``: when the store
    already holds those bytes (``_holds``: a local store, a duplicate asset), no temp file
    is ever made, fsynced or removed, and ``commit`` does no I/O (``held``). Creating and
    removing a file per duplicate cost more than the download (issue 13 item 5).

    Past ``INLINE_BYTES`` the writing and hashing go on in a thread of the body's own;
    ``finish`` waits for it.
    """

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self.size = 0
        self._closed = False
        self._spool: _Spooler | None = None
        self._buf: bytearray | None = bytearray()  # None once the body is in a file
        self._tmp: Path | None = None
        self._file: BinaryIO | None = None
        #: ``finish`` found these bytes already stored: no temp file, ``commit`` is free.
        self.held = False

    def _open_temp(self) -> BinaryIO:
        """The temp file, made on first need, with what was buffered so far."""
        if self._file is None:
            try:
                fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=self._store.tmp_dir)
            except OSError as exc:
                raise store_error(exc, "create a temp file in the store") from exc
            self._tmp = Path(name)
            self._file = os.fdopen(fd, "wb")
            if self._buf:
                self._file.write(self._buf)
            self._buf = None
        return self._file

    @property
    def tmp_path(self) -> Path:
        """A local file holding the body (written now if the body was still in memory)."""
        if self._tmp is None:
            buffered = self._closed
            f = self._open_temp()
            if buffered:  # finished in memory: the file is only read (a deep check)
                f.close()
        assert self._tmp is not None
        return self._tmp

    def write(self, chunk: bytes) -> None:
        try:
            if self._spool is not None:
                self._spool.put(chunk)  # it hashes too
            elif self._buf is not None and len(self._buf) + len(chunk) <= SMALL_BODY:
                self._buf += chunk
                self._hash.update(chunk)
            elif self.size + len(chunk) > INLINE_BYTES:
                self._spool = _Spooler(self._open_temp(), self._hash)
                self._spool.put(chunk)
            else:
                self._open_temp().write(chunk)
                self._hash.update(chunk)
        except (OSError, StoreError) as exc:
            self._fail(exc)
        self.size += len(chunk)

    def _fail(self, exc: OSError | StoreError) -> NoReturn:
        """Aborts (no temp file is left) and raises why: a disk error as the operator
        reads it."""
        self.abort()
        if isinstance(exc, StoreError):
            raise exc
        raise store_error(exc, "write to the store") from exc

    @property
    def sha256(self) -> str:
        self._drain()
        return self._hash.hexdigest()

    def _drain(self) -> None:
        spool, self._spool = self._spool, None
        if spool is not None:
            try:
                spool.drain()
            except OSError as exc:
                self.abort()
                raise store_error(exc, "write to the store") from exc

    def finish(self) -> str:
        """Flushes (and, for a local store, fsyncs) the temp file; returns the SHA-256.
        A small body the store already holds is never written (``held``). Idempotent."""
        if not self._closed:
            self._drain()
            try:
                if self._buf is not None and self._store._holds(self.sha256, bytes(self._buf)):
                    self.held = True
                else:
                    f = self._open_temp()
                    f.flush()
                    if self._store.fsync_temp:
                        os.fsync(f.fileno())
                    f.close()
            except (OSError, StoreError) as exc:
                self._fail(exc)
            self._closed = True
        return self.sha256

    def commit(self, *, deferred: bool = False) -> StoredBlob:
        """Puts the finished body under its content name; returns once it is complete.

        ``deferred=True`` (group commit): a local store leaves out the fsync of the
        blob's directory, which the caller makes (``fsync_dir`` of ``path.parent``)
        before any row names the blob; a remote store is durable on return either way.
        """
        sha = self.finish()
        try:
            if self.held:
                return StoredBlob(sha, self.size, self._store.local_path(sha), new=False)
            assert self._tmp is not None
            if deferred:
                return self._store._adopt_deferred(self._tmp, sha, self.size)
            return self._store._adopt(self._tmp, sha, self.size)
        finally:
            self._buf = None
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)

    def abort(self) -> None:
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.cancel()
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._closed = True
        self._buf = None
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._tmp is None or self._tmp.exists():
            self.abort()


class BlobStore(ABC):
    """Blobs named by their SHA-256 (``<aa>/<sha256>``), wherever they are kept.

    Every backend has two local directories: ``tmp_dir`` for bodies being written and
    ``thumbs_dir`` for the report's thumbnails (a cache, never blobs).
    """

    tmp_dir: Path
    thumbs_dir: Path
    #: Whether a temp file is fsynced before ``_adopt``: a local store renames it into
    #: place, a remote one uploads it (the upload is what must be durable).
    fsync_temp: ClassVar[bool] = True

    @property
    @abstractmethod
    def location(self) -> str:
        """How messages name the store: its directory, or ``s3://bucket/prefix``."""

    @abstractmethod
    def create(self) -> None:
        """Makes what the store needs to be written (a no-op when it exists)."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether the store was ever made (a read-only report shows no copies else)."""

    @abstractmethod
    def has(self, sha256: str) -> bool: ...

    @abstractmethod
    def size(self, sha256: str) -> int | None:
        """The stored blob's size in bytes; None when it is missing."""

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """The blob's bytes, streamed; ``FileNotFoundError`` when it is missing."""

    @abstractmethod
    def local_file(self, sha256: str) -> contextlib.AbstractContextManager[Path]:
        """A local file holding the blob, for code that needs a path (a parser in a
        child process): the blob itself in a local store, a temp copy (removed on
        exit) otherwise. ``FileNotFoundError`` when it is missing."""

    @abstractmethod
    def local_path(self, sha256: str) -> Path | None:
        """The blob's own file when the store is a local directory (a mirror hard-links
        it), else None; never checks that it exists."""

    @abstractmethod
    def public_url(self, sha256: str) -> str | None:
        """The blob's plain URL where anyone may read it (a public-read bucket), else
        None. Never a presigned URL: it expires, and it carries a signature."""

    @abstractmethod
    def link_target(self, sha256: str) -> Path | str:
        """Where a report links the blob: its file, or the object's plain URL (never
        a presigned one)."""

    @abstractmethod
    def iter_blobs(self) -> Iterable[BlobEntry]:
        """Everything where blobs are kept (named like a blob or not); never the temp
        files, the thumbnails or the id file, which verify and gc leave alone."""

    @abstractmethod
    def open_entry(self, entry: BlobEntry) -> BinaryIO:
        """The bytes of something ``iter_blobs`` found (verify finds a moved blob by them)."""

    @abstractmethod
    def remove(self, entry: BlobEntry) -> None:
        """Deletes something ``iter_blobs`` found (gc, or a moved blob put back)."""

    @abstractmethod
    def discard(self, sha256: str) -> None:
        """Deletes the blob named ``sha256``, if any: a damaged one about to be replaced."""

    @abstractmethod
    def read_meta(self, name: str) -> bytes | None:
        """A small file beside the blobs (the store's id file); None when absent."""

    @abstractmethod
    def write_meta(self, name: str, data: bytes) -> None:
        """Replaces such a file whole: a crash leaves the old content or the new."""

    @abstractmethod
    def _adopt(self, tmp: Path, sha256: str, size: int) -> StoredBlob:
        """Puts a finished temp file under its content name; it may consume ``tmp``."""

    def _adopt_deferred(self, tmp: Path, sha256: str, size: int) -> StoredBlob:
        """``_adopt`` but for the fsync of the blob's directory, which the caller makes
        (group commit); a backend without one (a remote store) simply adopts."""
        return self._adopt(tmp, sha256, size)

    def _holds(self, sha256: str, data: bytes) -> bool:
        """Whether ``data`` (a small body, hashed to ``sha256``) is already stored intact,
        cheaply enough to ask before writing it (a local store); False when unsure."""
        return False

    # What every backend shares: the temp directory is local whatever holds the blobs.

    def meta_location(self, name: str) -> str:
        return f"{self.location}/{name}"

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put_bytes(self, data: bytes) -> StoredBlob:
        with self.writer() as w:
            w.write(data)
            return w.commit()

    def put_file(self, path: Path) -> StoredBlob:
        """Copies a local file into the store (for assets that live on disk)."""
        with self.writer() as w, path.open("rb") as f:
            while chunk := f.read(CHUNK):
                w.write(chunk)
            return w.commit()

    def hash_file(self, sha256: str) -> str | None:
        """Re-hashes a stored blob by streaming it; None when it is missing or unreadable."""
        return _hash_of(lambda: self.open(sha256))

    def hash_entry(self, entry: BlobEntry) -> str | None:
        return _hash_of(lambda: self.open_entry(entry))

    def temp_files(self) -> list[Path]:
        """Bodies still being written, or left by a run that died."""
        return sorted(self.tmp_dir.glob(TMP_PREFIX + "*"))

    def clean_temp(self) -> int:
        """Removes temp files left by a killed run; returns how many."""
        n = 0
        for p in self.temp_files():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                n += 1
        return n

    def total_size(self) -> int:
        return sum(e.size for e in self.iter_blobs())


def _hash_of(open_: Callable[[], BinaryIO]) -> str | None:
    """The SHA-256 of what ``open_`` opens, streamed; None when it is missing or unreadable."""
    try:
        with open_() as f:
            return _hash_stream(f)
    except (OSError, StoreError):
        return None


def _hash_stream(f: BinaryIO) -> str:
    h = hashlib.sha256()
    while chunk := f.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def sha256_of(path: Path) -> str | None:
    """The SHA-256 of a file's bytes, read in chunks; None when it cannot be read."""
    try:
        with path.open("rb") as f:
            return _hash_stream(f)
    except OSError:
        return None


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
    fsync_dir(file.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
