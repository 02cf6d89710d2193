"""The S3 backend of the blob store: blobs as objects in a bucket, through obstore.

Owns the keys under ``s3://bucket/prefix``: ``<prefix>/<aa>/<sha256>`` per blob (the
directory's layout, so a listing reads like one) and ``<prefix>/archiver-store.json``,
the store's id file. A body is written to a local temp file while it is hashed (the
memory a 1 GB asset costs is a few upload parts, not the asset), then uploaded under
its SHA-256: a small one in one PUT that only creates (``If-None-Match: *``), a large
one in parts, after a HEAD that finds it absent. ``commit`` returns once the object is
complete, so a row never names a blob that is not there. An object already under the
name is kept when its ETag (the MD5 S3 computes) or, failing that, its re-hashed bytes
match; a damaged one is replaced. The temp files and the report's thumbnails stay in a
local directory (``[s3] cache``): a thumbnail is made from a local file by a child
process and read by every report, which should not cost a GET each.

The client's endpoint is configuration, not content, so it does not go through the
fetcher's address guard. Credentials (from ``[s3]`` or the ``AWS_*`` environment) are
never part of a message: errors are reduced to their kind and first line, with the
configured keys cut out.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from archiver.errors import StoreError
from archiver.store.base import (
    CHUNK,
    TMP_PREFIX,
    BlobEntry,
    BlobStore,
    StoredBlob,
    is_sha256,
    store_error,
)

if TYPE_CHECKING:
    from obstore import ObjectMeta
    from obstore.store import ClientConfig, RetryConfig, S3Config

    from archiver.config import StoreSettings

__all__ = ["PART_SIZE", "UPLOAD_BUDGET", "S3Store", "UploadBudget"]

#: Upload part size: bodies up to this go in one conditional PUT (which obstore holds in
#: memory), larger ones in parts of this size, ``_PARTS_IN_FLIGHT`` at a time.
PART_SIZE = 8 * 1024 * 1024
_PARTS_IN_FLIGHT = 4
#: Upload bodies one store holds in memory at once, over all its uploads together: a run
#: commits many blobs at a time (one thread each), and each single PUT holds its whole
#: body, each multipart upload ``_PARTS_IN_FLIGHT`` parts. Beyond this, uploads queue.
UPLOAD_BUDGET = 64 * 1024 * 1024
#: ``size`` asks the object itself this many times, then lists the bucket once.
_HEADS_BEFORE_LISTING = 32
#: Top-level folders under the prefix that hold no blobs (none today; kept out of listings
#: so a bucket shared with thumbnails later would not report them as strays).
_NOT_BLOBS = frozenset({"tmp", "thumbs"})


class UploadBudget:
    """Bytes of upload bodies in memory, shared by every upload of a store: an upload
    takes its share before reading its body and gives it back when the object is in."""

    def __init__(self, cap: int = UPLOAD_BUDGET) -> None:
        self.cap = cap
        self.used = 0
        #: The most ever held at once (tests and benchmarks read it).
        self.peak = 0
        self._cond = threading.Condition()

    def acquire(self, n: int, timeout: float | None = None) -> bool:
        """Takes ``n`` bytes (at most the whole budget); False if ``timeout`` passed first."""
        n = min(n, self.cap)
        with self._cond:
            if not self._cond.wait_for(lambda: self.used + n <= self.cap, timeout):
                return False
            self.used += n
            self.peak = max(self.peak, self.used)
            return True

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= min(n, self.cap)
            self._cond.notify_all()

    @contextlib.contextmanager
    def hold(self, n: int) -> Iterator[None]:
        self.acquire(n)
        try:
            yield
        finally:
            self.release(n)


class S3Store(BlobStore):
    """Blobs in an S3-compatible bucket, named ``<prefix>/<aa>/<sha256>``."""

    fsync_temp = False  # the upload is the durable step

    def __init__(self, settings: StoreSettings, local: Path, *, create: bool = True) -> None:
        if not settings.url:
            raise StoreError('an S3 store needs store = "s3://bucket/prefix"')
        self._settings = settings
        self.local = Path(local)
        self.tmp_dir = self.local / "tmp"
        self.thumbs_dir = self.local / "thumbs"
        self._client: Any = None
        #: How many multipart uploads this store made (tests and benchmarks read it).
        self.multipart_uploads = 0
        self.budget = UploadBudget()
        self._size_asks = 0
        #: Object sizes from one listing, once ``size`` was asked often (see there); kept
        #: current with what this store writes and deletes.
        self._sizes: dict[str, int] | None = None
        if create:
            self.create()

    # -- the client and its errors -------------------------------------------------

    @property
    def location(self) -> str:
        return str(self._settings.url)

    def _obs(self) -> Any:
        """The obstore client, made on first use (``archiver --version`` never loads it)."""
        if self._client is None:
            try:
                from obstore.store import S3Store as Client
            except ImportError as exc:
                raise StoreError(
                    f"store {self.location} needs obstore: pip install 'archiver[s3]'"
                ) from exc
            s = self._settings
            config: S3Config = {}
            if s.endpoint:
                config["endpoint"] = s.endpoint
            if s.region:
                config["region"] = s.region
            if s.access_key_id:
                config["access_key_id"] = s.access_key_id
            if s.secret_access_key:
                config["secret_access_key"] = s.secret_access_key
            options: ClientConfig = {
                "connect_timeout": timedelta(seconds=10),
                "timeout": timedelta(hours=1),  # a whole streamed GET of a large blob
            }
            if s.allow_http:
                options["allow_http"] = True
            # A transient failure (a 5xx, a reset connection) is retried with backoff for
            # up to a minute, then stops the command: a dead endpoint is not waited on.
            retry: RetryConfig = {
                "max_retries": 5,
                "retry_timeout": timedelta(seconds=60),
                "backoff": {"init_backoff": timedelta(milliseconds=200), "base": 2.0},
            }
            try:
                self._client = Client(
                    s.bucket,
                    prefix=s.prefix or None,
                    config=config,
                    client_options=options,
                    retry_config=retry,
                )
            except Exception as exc:  # obstore's configuration errors
                raise self._error(exc, "open") from None
        return self._client

    def _error(self, exc: BaseException, what: str, key: str = "") -> StoreError:
        """``exc`` as one line that names the object but no credential."""
        where = f"{self.location}/{key}" if key else self.location
        return StoreError(f"cannot {what} {where}: {self._reason(exc)}")

    def _reason(self, exc: BaseException) -> str:
        kind = type(exc).__name__
        if isinstance(exc, FileNotFoundError):
            return "not found: check that the bucket exists (archiver never creates one)"
        if kind in ("PermissionDeniedError", "UnauthenticatedError"):
            return "access denied: check the credentials ([s3] or AWS_*) and the bucket's policy"
        text = (str(exc).strip().splitlines() or [""])[0]
        status = re.search(r"status code: (\d{3}[^:<]*)", text)
        text = f"the server answered {status[1].strip()}" if status else text[:200]
        for secret in (
            self._settings.secret_access_key,
            self._settings.access_key_id,
            os.environ.get("AWS_SECRET_ACCESS_KEY"),
            os.environ.get("AWS_SESSION_TOKEN"),
        ):
            if secret:
                text = text.replace(secret, "***")
        return f"{kind}: {text} (check the [s3] settings and that the endpoint answers)"

    def _key(self, sha256: str) -> str:
        return f"{sha256[:2]}/{sha256}"

    def _head(self, key: str) -> ObjectMeta | None:
        import obstore

        try:
            meta = obstore.head(self._obs(), key)
        except FileNotFoundError:  # obstore raises it for a 404
            return None
        except Exception as exc:
            raise self._error(exc, "look up", key) from None
        return meta

    def _stream(self, key: str) -> BinaryIO:
        import obstore

        try:
            got = obstore.get(self._obs(), key)
        except FileNotFoundError:
            raise FileNotFoundError(f"no object {self.location}/{key}") from None
        except Exception as exc:
            raise self._error(exc, "read", key) from None
        chunks = iter(got.stream(min_chunk_size=CHUNK))
        return io.BufferedReader(_ObjectReader(chunks, lambda e: self._error(e, "read", key)))

    # -- the interface ---------------------------------------------------------------

    def create(self) -> None:
        """Makes the local directories; the bucket must exist (archiver never makes one)."""
        try:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            self.thumbs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_error(exc, f"create the store's local directory {self.local}") from exc

    def exists(self) -> bool:
        return True  # a bucket is not made by archiver: asking it is the first real read

    def has(self, sha256: str) -> bool:
        return self._head(self._key(sha256)) is not None

    def size(self, sha256: str) -> int | None:
        """One HEAD for the first few; from then on one listing answers them all (a
        report asks for the size of every URL's copy: 100,000 HEADs would take minutes,
        a listing of 100,000 objects is 100 requests)."""
        if self._sizes is None and self._size_asks < _HEADS_BEFORE_LISTING:
            self._size_asks += 1
            meta = self._head(self._key(sha256))
            return None if meta is None else int(meta["size"])
        if self._sizes is None:
            self._sizes = {e.sha256: e.size for e in self.iter_blobs() if e.sha256}
        return self._sizes.get(sha256)

    def open(self, sha256: str) -> BinaryIO:
        return self._stream(self._key(sha256))

    def hash_file(self, sha256: str) -> str | None:
        """Re-hashes the object by streaming it; None when it is missing. A failing
        connection is a ``StoreError``, never a missing blob."""
        try:
            with self.open(sha256) as f:
                h = hashlib.sha256()
                while chunk := f.read(CHUNK):
                    h.update(chunk)
        except FileNotFoundError:
            return None
        return h.hexdigest()

    @contextlib.contextmanager
    def local_file(self, sha256: str) -> Iterator[Path]:
        """A temp copy in the local directory, removed on exit."""
        self.create()
        fd, name = tempfile.mkstemp(prefix=TMP_PREFIX + "copy-", dir=self.tmp_dir)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out, self.open(sha256) as f:
                while chunk := f.read(CHUNK):
                    out.write(chunk)
            yield path
        finally:
            path.unlink(missing_ok=True)

    def local_path(self, sha256: str) -> None:
        return None

    def public_url(self, sha256: str) -> str | None:
        public = self._settings.public_url
        if not public:
            return None
        prefix, key = self._settings.prefix, self._key(sha256)
        return f"{public}/{prefix}/{key}" if prefix else f"{public}/{key}"

    def link_target(self, sha256: str) -> str:
        return self.public_url(sha256) or f"{self.location}/{self._key(sha256)}"

    def iter_blobs(self) -> Iterator[BlobEntry]:
        import obstore

        try:
            for batch in obstore.list(self._obs(), chunk_size=1000):
                for meta in batch:
                    entry = self._entry(meta)
                    if entry is not None:
                        yield entry
        except StoreError:
            raise
        except Exception as exc:
            raise self._error(exc, "list") from None

    def _entry(self, meta: ObjectMeta) -> BlobEntry | None:
        key = str(meta["path"])
        parts = key.split("/")
        if len(parts) < 2 or parts[0] in _NOT_BLOBS:
            return None  # the id file, beside the fan-out folders
        name = parts[-1]
        named = len(parts) == 2 and is_sha256(name) and parts[0] == name[:2]
        return BlobEntry(
            name=name,
            location=f"{self.location}/{key}",
            sha256=name if named else None,
            mtime=meta["last_modified"].timestamp(),
            size=int(meta["size"]),
        )

    def _entry_key(self, entry: BlobEntry) -> str:
        return str(entry.location)[len(self.location) + 1 :]

    def open_entry(self, entry: BlobEntry) -> BinaryIO:
        return self._stream(self._entry_key(entry))

    def remove(self, entry: BlobEntry) -> None:
        self._delete(self._entry_key(entry))
        if self._sizes is not None and entry.sha256:
            self._sizes.pop(entry.sha256, None)

    def discard(self, sha256: str) -> None:
        self._delete(self._key(sha256))
        if self._sizes is not None:
            self._sizes.pop(sha256, None)

    def _delete(self, key: str) -> None:
        import obstore

        try:
            obstore.delete(self._obs(), key)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._error(exc, "delete", key) from None

    def read_meta(self, name: str) -> bytes | None:
        try:
            with self._stream(name) as f:
                return f.read(1024 * 1024)  # the id file is a few hundred bytes
        except FileNotFoundError:
            return None

    def write_meta(self, name: str, data: bytes) -> None:
        import obstore

        try:
            obstore.put(self._obs(), name, data)  # one PUT: the old object or the new
        except Exception as exc:
            raise self._error(exc, "write", name) from None

    def _adopt(self, tmp: Path, sha256: str, size: int) -> StoredBlob:
        stored = self._upload(tmp, sha256, size)
        if self._sizes is not None:
            self._sizes[sha256] = size
        return stored

    def _upload(self, tmp: Path, sha256: str, size: int) -> StoredBlob:
        key = self._key(sha256)
        if size > PART_SIZE:
            held = self._head(key)
            if held is None:
                self._put_parts(tmp, key)
                return StoredBlob(sha256, size, None, new=True)
        elif self._put_new(tmp, key):
            return StoredBlob(sha256, size, None, new=True)
        else:
            held = self._head(key)
        if held is not None and self._intact(held, tmp, sha256, size):
            return StoredBlob(sha256, size, None, new=False)
        # Damaged (verify made its URL due), or gone since: these bytes win.
        if size > PART_SIZE:
            self._put_parts(tmp, key)
        else:
            self._put(tmp, key, mode="overwrite")
        return StoredBlob(sha256, size, None, new=True)

    def _put_new(self, tmp: Path, key: str) -> bool:
        """One PUT that only creates; False when an object is already under the key."""
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            self._put(tmp, key, mode="create")
        except (AlreadyExistsError, PreconditionError):
            return False
        return True

    def _put(self, tmp: Path, key: str, *, mode: str) -> None:
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        with self.budget.hold(_file_size(tmp)):
            try:
                body = tmp.read_bytes()  # at most PART_SIZE: obstore holds one PUT whole
            except OSError as exc:
                raise store_error(exc, "read a temp file of the store") from exc
            try:
                obstore.put(self._obs(), key, body, mode=mode, use_multipart=False)  # type: ignore[arg-type]
            except (AlreadyExistsError, PreconditionError):
                raise
            except Exception as exc:
                raise self._error(exc, "upload", key) from None
            finally:
                del body

    def _put_parts(self, tmp: Path, key: str) -> None:
        """A multipart upload: visible only once every part is in (S3 completes it whole)."""
        import obstore

        with self.budget.hold(PART_SIZE * _PARTS_IN_FLIGHT):
            try:
                obstore.put(
                    self._obs(),
                    key,
                    tmp,
                    use_multipart=True,
                    chunk_size=PART_SIZE,
                    max_concurrency=_PARTS_IN_FLIGHT,
                )
            except Exception as exc:
                raise self._error(exc, "upload", key) from None
        self.multipart_uploads += 1

    def _intact(self, held: ObjectMeta, tmp: Path, sha256: str, size: int) -> bool:
        """Whether the object under the name holds these bytes: its size and ETag say so
        (one local read), or, for an ETag computed another way, its re-hashed bytes."""
        if int(held["size"]) != size:
            return False
        etag = str(held.get("e_tag") or "").strip('"')
        if etag and etag in _etags(tmp, size):
            return True
        return self.hash_file(sha256) == sha256


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # read_bytes says why


def _etags(path: Path, size: int) -> set[str]:
    """The ETags S3 gives these bytes: the MD5 of one PUT, and of parts of ``PART_SIZE``."""
    whole = hashlib.md5(usedforsecurity=False)
    parts: list[bytes] = []
    with path.open("rb") as f:
        while block := f.read(PART_SIZE):
            whole.update(block)
            parts.append(hashlib.md5(block, usedforsecurity=False).digest())
    out = {whole.hexdigest()}
    if size > PART_SIZE:
        joined = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest()
        out.add(f"{joined}-{len(parts)}")
    return out


class _ObjectReader(io.RawIOBase):
    """A streamed GET as a file: chunks are read as the caller asks for them."""

    def __init__(self, chunks: Iterator[Any], error: Any) -> None:
        self._chunks = chunks
        self._error = error
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = memoryview(bytes(next(self._chunks)))
            except StopIteration:
                return 0
            except Exception as exc:
                raise self._error(exc) from None
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
