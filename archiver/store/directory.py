"""The local directory backend of the blob store.

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
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from archiver.errors import StoreError
from archiver.store.base import (
    BlobEntry,
    BlobStore,
    BlobWriter,
    StoredBlob,
    fsync_dir,
    is_sha256,
    sha256_of,
    store_error,
    write_atomic,
)

__all__ = ["BlobWriter", "Store", "StoredBlob", "sha256_of", "write_atomic"]

def _link_new(tmp: Path, final: Path) -> bool:
    """Links ``tmp`` as ``final`` if that name is free; False when it is taken. On a file
    system without hard links, the same question asked with ``exists`` (racy, so two
    threads may both store the same bytes, harmlessly)."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if final.exists():
            return False
        os.replace(tmp, final)
    return True


#: Directories of the store root that hold no blobs.
_NOT_BLOBS = frozenset({"tmp", "thumbs"})


class Store(BlobStore):
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

    @property
    def location(self) -> str:
        return str(self.root)

    def create(self) -> None:
        """Makes the store's directories (a no-op when they exist)."""
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_error(exc, f"create the store at {self.root}") from exc

    def exists(self) -> bool:
        return self.root.is_dir()

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int | None:
        try:
            return self.path_for(sha256).stat().st_size
        except OSError:
            return None

    def open(self, sha256: str) -> BinaryIO:
        return self.path_for(sha256).open("rb")

    @contextlib.contextmanager
    def local_file(self, sha256: str) -> Iterator[Path]:
        path = self.path_for(sha256)
        if not path.is_file():
            raise FileNotFoundError(f"no blob {sha256} in {self.root}")
        yield path

    def local_path(self, sha256: str) -> Path:
        return self.path_for(sha256)

    def public_url(self, sha256: str) -> None:
        return None  # a directory is published as a mirror of files, not in place

    def link_target(self, sha256: str) -> Path:
        return self.path_for(sha256)

    def hash_file(self, sha256: str) -> str | None:
        """Re-hashes a stored blob; None when it is missing."""
        return sha256_of(self.path_for(sha256))

    def iter_blobs(self) -> list[BlobEntry]:
        """Every file under a fan-out directory (named or not like a blob); never the
        temp files or the thumbnails, which verify and gc leave alone."""
        out: list[BlobEntry] = []
        if not self.root.is_dir():
            return out  # a store not made yet holds nothing
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and sub.name not in _NOT_BLOBS:
                for path in sorted(sub.iterdir()):
                    try:
                        st = path.stat()
                    except FileNotFoundError:
                        continue  # gc removed it meanwhile
                    named = is_sha256(path.name) and sub.name == path.name[:2]
                    sha = path.name if named else None
                    out.append(BlobEntry(path.name, path, sha, st.st_mtime, st.st_size))
        return out

    def open_entry(self, entry: BlobEntry) -> BinaryIO:
        return Path(entry.location).open("rb")

    def remove(self, entry: BlobEntry) -> None:
        Path(entry.location).unlink(missing_ok=True)

    def discard(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def read_meta(self, name: str) -> bytes | None:
        path = self.root / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def write_meta(self, name: str, data: bytes) -> None:
        path = self.root / name
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
        except OSError as exc:
            raise StoreError(
                f"cannot write {path}: {exc.strerror or exc}"
                " (check the store directory's owner, mode and free space)"
            ) from exc

    def _adopt(self, tmp: Path, sha256: str, size: int) -> StoredBlob:
        return self._place(tmp, sha256, size, sync_dir=True)

    # Group commit (issue 13 item 5): the recorder fsyncs each touched fan-out directory
    # once per batch, before the batch's rows are committed, instead of once per blob.

    def _adopt_deferred(self, tmp: Path, sha256: str, size: int) -> StoredBlob:
        """``_adopt`` without the directory fsync: the caller fsyncs ``path.parent``
        before any row names the blob (the temp file itself was fsynced by ``finish``)."""
        return self._place(tmp, sha256, size, sync_dir=False)

    def _place(self, tmp: Path, sha256: str, size: int, *, sync_dir: bool) -> StoredBlob:
        """Puts the fsynced temp file under its name. A hard link creates the name only
        if it is free, so of two runs' threads committing the same bytes at once exactly
        one stores them (``new``); a name already taken is re-hashed, and a damaged file
        under it (verify made its URL due) is replaced: these bytes win."""
        final = self.path_for(sha256)
        try:
            if not final.parent.is_dir():
                final.parent.mkdir(exist_ok=True)
                fsync_dir(self.root)  # a new fan-out directory: at most 256 in a store's life
            os.chmod(tmp, 0o444)
            if not _link_new(tmp, final):
                if self.hash_file(sha256) == sha256:
                    return StoredBlob(sha256, size, final, new=False)
                os.replace(tmp, final)
            if sync_dir:
                fsync_dir(final.parent)
        except OSError as exc:
            raise store_error(exc, "move a blob into the store") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return StoredBlob(sha256, size, final, new=True)

    def _holds(self, sha256: str, data: bytes) -> bool:
        """Whether the blob is stored with exactly these bytes (a small body, compared
        whole: a damaged copy under the name is replaced, as ``_adopt`` does)."""
        path = self.path_for(sha256)
        try:
            with path.open("rb") as f:
                return f.read(len(data) + 1) == data
        except OSError:
            return False
