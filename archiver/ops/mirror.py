"""A static mirror of archived assets: ``DIR/<host>/<path>`` plus ``DIR/manifest.json``.

Owns the mapping from a URL to a file name inside the mirror, and writing the
mirror. The mapping must never produce a name outside ``DIR``: dot segments
(plain or percent-encoded), backslashes and absolute paths are neutralised,
and every name is valid on Linux, macOS and Windows. A name that had to be
changed gets a short hash of the URL, so two URLs never share a file; the
names handed out are remembered in the database (``mirror_paths``) so they
stay stable across runs and ``restore --rewrite`` can point posts at them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from archiver.errors import ArchiverError, ConfigError
from archiver.redact import public_url, url_sha256
from archiver.store.base import sha256_of, write_atomic
from archiver.text import plural

if TYPE_CHECKING:
    from archiver.db.sqlite import Database
    from archiver.store import BlobStore

__all__ = [
    "MirrorSummary",
    "Skip",
    "assign_paths",
    "build_mirror",
    "manifest_entry",
    "mirror_url_for",
    "query_mark",
    "safe_relpath",
]

MANIFEST = "manifest.json"

# Characters Windows forbids in names, plus controls; '%' stays (it is legal everywhere).
_BAD = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {
    f"{p}{i}" for p in ("COM", "LPT") for i in "123456789¹²³"
}
_MAX_NAME = 180  # bytes; leaves room for a hash suffix under the usual 255
_TYPE_EXT = {
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/svg+xml": ".svg",
    "image/avif": ".avif",
    "image/bmp": ".bmp",
    "image/x-icon": ".ico",
    "image/vnd.microsoft.icon": ".ico",
}


def _url_hash(url: str) -> str:
    return url_sha256(url)[:10]


def _clean_segment(seg: str) -> tuple[str, bool]:
    """A path segment as a portable file name; True when it had to change."""
    name = unicodedata.normalize("NFC", seg)
    name = _BAD.sub("_", name)
    # Windows drops trailing dots and spaces, which would merge names.
    stripped = name.rstrip(". ")
    name = stripped if stripped else "_"
    if name.split(".", 1)[0].upper() in _RESERVED:
        name = "_" + name
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME:
        stem, ext = _split_ext(name)
        name = _truncate(stem, _MAX_NAME - len(ext.encode())) + ext
    return name, name != seg


def _truncate(text: str, limit: int) -> str:
    data = text.encode("utf-8", "surrogatepass")[:limit]
    return data.decode("utf-8", "ignore")


def _split_ext(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if dot and stem and 0 < len(ext) <= 8 and ext.isalnum():
        return stem, "." + ext
    return name, ""


def safe_relpath(url: str, content_type: str | None = None) -> str:
    """The mirror path ``<host>/<path>`` of a URL, as a relative POSIX path.

    Dot segments are resolved the way a browser would, never above the host
    directory; a query string adds ``~q-<hash of the query>`` (never the query:
    it may hold a token); a name without an extension gets one from the content
    type, so a static server sends the right type. Any lossy change adds
    ``~<hash of the URL>`` to the name. Userinfo never reaches a name.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        # An asset read from disk: publish its name only, never the machine's folders.
        # The hash of the full URL keeps two ``cover.jpg`` of different posts apart.
        name = PurePosixPath(unquote(parts.path)).name or "index"
        clean, _ = _clean_segment(name)
        stem, ext = _split_ext(clean)
        return f"local/{stem}~{_url_hash(url)}{ext}"
    host = (parts.hostname or "unknown-host").lower()
    if parts.port and parts.port not in (80, 443):
        host = f"{host}_{parts.port}"
    host, host_changed = _clean_segment(host)
    lossy = host_changed
    segments: list[str] = []
    raw = parts.path.replace("\\", "/")
    if raw != parts.path or "//" in raw:
        lossy = True
    trailing = raw.endswith("/") or not raw
    for seg in raw.split("/"):
        decoded = unquote(seg, errors="replace")
        # An encoded separator is part of the name, not a path; bad UTF-8 is replaced.
        if "/" in decoded or "\\" in decoded or decoded.count("\ufffd") > seg.count("\ufffd"):
            lossy = True
        seg = decoded
        if seg in ("", "."):
            continue
        if seg == "..":
            lossy = True
            if segments:
                segments.pop()
            continue
        clean, changed = _clean_segment(seg)
        lossy |= changed
        segments.append(clean)
    if trailing or not segments:
        segments.append("index")
        lossy = True
    stem, ext = _split_ext(segments[-1])
    # The query may hold a token: the name carries its hash, never the query itself.
    mark = query_mark(parts.query)
    type_ext = _TYPE_EXT.get((content_type or "").split(";")[0].strip().lower())
    if type_ext and (not ext or parts.query) and ext.lower() not in (type_ext, ".jpeg"):
        ext += type_ext
        lossy = True
    hashed = f"~{_url_hash(url)}"
    name, changed = _clean_segment(stem + mark + (hashed if lossy else "") + ext)
    if changed:
        # Shortened: the query's mark and the URL's hash come after the cut, so both stay.
        name, _ = _clean_segment(f"{_truncate(stem, _MAX_NAME - 50)}{mark}{hashed}{ext}")
    segments[-1] = name
    return "/".join([host, *segments])


def query_mark(query: str) -> str:
    """What a mirror name carries for a query: ``~q-`` and 16 hex digits of its SHA-256."""
    return f"~q-{url_sha256(query)[:16]}" if query else ""


def _holds_query(url: str, path: str) -> bool:
    """True for a name given before names hid queries: the query is in it, not its hash."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return False
    return bool(query) and query_mark(query) not in path


def _fallback(url: str, path: str, attempt: int) -> str:
    """A name for a URL whose natural name is taken: beside nothing else, under ``_/``."""
    host, _, rest = path.partition("/")
    digest = hashlib.sha256(f"{attempt}:{url}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"{host}/_~{digest[:16]}/{PurePosixPath(rest).name}"


class _Taken:
    """The names already handed out: files and the directories they need, case-folded."""

    def __init__(self, paths: list[str]) -> None:
        self.files: set[str] = set()
        self.dirs: set[str] = set()
        for p in paths:
            self.add(p)

    def add(self, path: str) -> None:
        key = path.casefold()
        self.files.add(key)
        parts = key.split("/")
        for i in range(1, len(parts)):
            self.dirs.add("/".join(parts[:i]))

    def clashes(self, path: str) -> bool:
        key = path.casefold()
        if key in self.files or key in self.dirs:
            return True
        parts = key.split("/")
        return any("/".join(parts[:i]) in self.files for i in range(1, len(parts)))


def assign_paths(db: Database, items: list[tuple[int, str, str | None]]) -> dict[int, str]:
    """Mirror paths for (url_id, url, content_type) items, handing out and recording new ones.

    A path once given to a URL stays its path, so re-runs write the same files; only
    a name that holds a query string verbatim (given by an older archiver) is replaced.
    """
    known = db.mirror_paths()
    stale = {i for i, url, _ in items if i in known and _holds_query(url, known[i])}
    taken = _Taken([p for i, p in known.items() if i not in stale])
    out: dict[int, str] = {}
    new: list[tuple[int, str]] = []
    for url_id, url, content_type in sorted(items, key=lambda i: i[1]):
        if url_id in known and url_id not in stale:
            out[url_id] = known[url_id]
            continue
        path = safe_relpath(url, content_type)
        attempt = 0
        while taken.clashes(path):
            attempt += 1
            path = _fallback(url, path, attempt)
        taken.add(path)
        out[url_id] = path
        new.append((url_id, path))
    if new:
        with db.transaction():
            db.set_mirror_paths(new, replace=stale)
    return out


def mirror_url_for(base: str, path: str) -> str:
    """The public URL of a mirror file, with each segment percent-encoded."""
    return base.rstrip("/") + "/" + quote(path, safe="/")


#: Why a URL got no mirror file, as the summary counts it (``skipped 2: 1 with no copy, ...``).
NO_COPY = "with no copy"
DAMAGED = "damaged copy"
UNSAFE = "unsafe name"


@dataclass(frozen=True)
class Skip:
    """A URL the mirror has no file for: which kind of reason, and the reason in words."""

    url: str
    kind: str  # NO_COPY, DAMAGED or UNSAFE
    why: str


@dataclass
class MirrorSummary:
    """What a mirror run did; ``skipped`` says why a URL has no file."""

    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    linked: int = 0
    copied: int = 0
    #: ``--link``: a manifest of public URLs (``public`` new entries), no files.
    link: bool = False
    public: int = 0
    skipped: list[Skip] = field(default_factory=list)
    #: Files of an older mirror whose names held a query string: (old path, new path or None
    #: when the file was removed, its URL not mirrored this run).
    renamed: list[tuple[str, str | None]] = field(default_factory=list)
    manifest: dict[str, dict[str, Any]] = field(default_factory=dict)

    def line(self) -> str:
        """``mirror: 2 written (...), 0 unchanged, 2 skipped (1 with no copy, 1 damaged copy)``."""
        renamed = f", {len(self.renamed)} renamed" if self.renamed else ""
        counts = {k: 0 for k in (NO_COPY, DAMAGED, UNSAFE)}
        for s in self.skipped:
            counts[s.kind] += 1
        why = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        copies = "1 copy" if self.copied == 1 else f"{self.copied} copies"
        how = (
            plural(self.public, "public URL")
            if self.link
            else f"{plural(self.linked, 'hard link')}, {copies}"
        )
        return (
            f"mirror: {len(self.written)} written ({how}), {len(self.unchanged)} unchanged,"
            f" {len(self.skipped)} skipped{f' ({why})' if why else ''}{renamed}"
        )


def _inside(root: Path, target: Path) -> bool:
    """True when ``target`` (after resolving symlinks) stays under ``root``."""
    try:
        return Path(os.path.realpath(target)).is_relative_to(os.path.realpath(root))
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _is_link_to(target: Path, blob: Path) -> bool:
    """A hard link to the blob already is the blob (whose health ``verify`` watches)."""
    try:
        return os.path.samefile(target, blob)
    except OSError:
        return False


def _same_bytes(path: Path, sha256: str) -> bool:
    return sha256_of(path) == sha256


def _place(store: BlobStore, sha256: str, dest: Path, summary: MirrorSummary) -> None:
    """Puts the blob at ``dest``: a hard link to a local blob when possible, else a
    verified copy (always, from a bucket)."""
    from archiver.ops.restore import RestoreError, copy_verified

    blob = store.local_path(sha256)
    if blob is not None and not _same_bytes(blob, sha256):
        raise RestoreError(f"blob {sha256} is corrupt or missing; run 'archiver verify --repair'")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".mirror-{os.getpid()}-{dest.name[:40]}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        if blob is None:
            raise OSError(errno.EXDEV, "the blob is not on this machine")
        os.link(blob, tmp)
        summary.linked += 1
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        fd, name = tempfile.mkstemp(prefix=".mirror-", dir=dest.parent)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                copy_verified(store, sha256, out)
            os.chmod(tmp, 0o444)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        summary.copied += 1
    os.replace(tmp, dest)


def build_mirror(
    db: Database, store: BlobStore, dest: Path, states: tuple[str, ...]
) -> MirrorSummary:
    """Writes ``dest/<host>/<path>`` for the newest good copy of each URL in ``states``.

    Idempotent: a file already holding the right bytes is left alone. The
    manifest keeps entries of earlier runs whose files are still there.
    """
    from archiver.db.views import UrlQuery
    from archiver.ops.restore import RestoreError, copies, newest_good

    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArchiverError(f"cannot create the mirror {dest}: {exc.strerror}") from exc
    urls = db.urls_in_states(states)
    versions = copies(db, UrlQuery(states=states, unreferenced=True))
    summary = MirrorSummary()
    chosen = []
    for u in urls:
        good = newest_good(versions.get(u.id, []), store)
        if good is None:
            if versions.get(u.id):
                summary.skipped.append(Skip(u.url, DAMAGED, "archived copy damaged"))
            else:
                summary.skipped.append(Skip(u.url, NO_COPY, "no archived copy"))
            continue
        chosen.append(good)
    paths = assign_paths(db, [(c.url_id, c.url, c.content_type) for c in chosen])
    manifest, legacy = _read_manifest(dest)
    by_hash = {e["url_hash"]: key for key, e in manifest.items()}
    for c in chosen:
        rel = paths[c.url_id]
        target = dest / rel
        if not _inside(dest, _nearest_existing(target.parent)):
            summary.skipped.append(Skip(c.url, UNSAFE, f"{rel} would leave the mirror"))
            continue
        digest = url_sha256(c.url)
        old_key = by_hash.get(digest)
        try:
            if old_key in legacy and manifest[old_key]["path"] != rel:
                _move_old(dest, manifest[old_key], target, summary)
            local = store.local_path(c.sha256)
            if (local is not None and _is_link_to(target, local)) or _same_bytes(target, c.sha256):
                summary.unchanged.append(c.url)
            else:
                _place(store, c.sha256, target, summary)
                if not _inside(dest, target):
                    target.unlink()
                    summary.skipped.append(Skip(c.url, UNSAFE, f"{rel} would leave the mirror"))
                    continue
                summary.written.append(c.url)
        except RestoreError as exc:
            summary.skipped.append(Skip(c.url, DAMAGED, str(exc)))
            continue
        except OSError as exc:
            raise ArchiverError(f"cannot write {target}: {exc.strerror}") from exc
        if old_key is not None:
            legacy.discard(old_key)
            del manifest[old_key]
        manifest[_manifest_key(manifest, c.url, digest)] = {
            "path": rel,
            "sha256": c.sha256,
            "content_type": c.content_type,
            "url_hash": digest,
        }
    for key in [k for k in manifest if k in legacy]:
        # An older mirror's file named after its query, whose URL this run did not mirror.
        old = manifest.pop(key)
        _remove(dest / old["path"], old["sha256"])
        summary.renamed.append((old["path"], None))
    manifest = {u: e for u, e in manifest.items() if (dest / e["path"]).is_file()}
    _write_json(dest / MANIFEST, manifest)
    summary.manifest = manifest
    return summary


def build_link_mirror(
    db: Database, store: BlobStore, dest: Path, states: tuple[str, ...]
) -> MirrorSummary:
    """``--mirror DIR --link``: only ``DIR/manifest.json``, each entry naming the object's
    plain public URL (``url``) instead of a file, for a bucket anyone may read.

    Never a presigned URL: one expires, and it carries a credential's signature. A DIR
    holding a mirror of files is refused (its entries name files, these name URLs).
    """
    from archiver.db.views import UrlQuery
    from archiver.ops.restore import copies, newest_good

    if store.public_url("0" * 64) is None:
        raise ConfigError(
            f"--link writes the objects' public URLs, and store {store.location} has none:"
            " set [s3] public_url to where anyone may read the bucket"
        )
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        old = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        old = {}
    except (OSError, ValueError) as exc:
        raise ArchiverError(f"cannot read the mirror manifest in {dest}: {exc}") from exc
    if not isinstance(old, dict) or any(
        not isinstance(e, dict) or "path" in e for e in old.values()
    ):
        raise ArchiverError(
            f"{dest} holds a mirror of files; --link writes a manifest of links: use another DIR"
        )
    versions = copies(db, UrlQuery(states=states, unreferenced=True))
    summary = MirrorSummary(link=True)
    manifest: dict[str, dict[str, Any]] = {}
    for u in db.urls_in_states(states):
        good = newest_good(versions.get(u.id, []), store)
        if good is None:
            kind, why = (
                (DAMAGED, "archived copy damaged")
                if versions.get(u.id)
                else (
                    NO_COPY,
                    "no archived copy",
                )
            )
            summary.skipped.append(Skip(u.url, kind, why))
            continue
        digest = url_sha256(good.url)
        entry = {
            "url": store.public_url(good.sha256),
            "sha256": good.sha256,
            "content_type": good.content_type,
            "url_hash": digest,
        }
        key = _manifest_key(manifest, good.url, digest)
        if old.get(key) == entry:
            summary.unchanged.append(good.url)
        else:
            summary.written.append(good.url)
            summary.public += 1
        manifest[key] = entry
    _write_json(dest / MANIFEST, manifest)
    summary.manifest = manifest
    return summary


def _manifest_key(manifest: dict[str, dict[str, Any]], url: str, digest: str) -> str:
    """The URL as the manifest publishes it (``public_url``); ``#<hash>`` when two URLs
    differ only in what it hides (their userinfo), so neither entry overwrites the other."""
    key = public_url(url)
    held = manifest.get(key)
    if held is not None and held.get("url_hash") != digest:
        key = f"{key}#{digest[:16]}"
    return key


def manifest_entry(manifest: dict[str, dict[str, Any]], url: str) -> dict[str, Any] | None:
    """The manifest's entry for ``url``, looked up by its ``url_hash``, or None."""
    digest = url_sha256(url)
    return next((e for e in manifest.values() if e.get("url_hash") == digest), None)


def _move_old(dest: Path, old: dict[str, Any], target: Path, summary: MirrorSummary) -> None:
    """Moves a file an older mirror named after its query to the name that hides it."""
    source = dest / old["path"]
    if not (source.is_file() and _inside(dest, source) and _same_bytes(source, old["sha256"])):
        return
    if target.exists():
        source.unlink()
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
    summary.renamed.append((old["path"], target.relative_to(dest).as_posix()))


def _remove(path: Path, sha256: str) -> None:
    """Removes a mirror file we wrote (it still holds the bytes the manifest names)."""
    with contextlib.suppress(OSError):
        if path.is_file() and _same_bytes(path, sha256):
            path.unlink()


def _read_manifest(dest: Path) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """The manifest of an earlier run, in today's form, and the keys whose file names
    hold a query verbatim (named before queries were hashed: they must go).

    An entry without ``url_hash`` is from an older archiver, keyed by the URL as
    recorded: it is re-keyed by ``public_url`` here, so no secret is written back.
    """
    try:
        data = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, set()
    if not isinstance(data, dict):
        return {}, set()
    out: dict[str, dict[str, Any]] = {}
    legacy: set[str] = set()
    for key, e in data.items():
        if not (
            isinstance(e, dict)
            and isinstance(e.get("path"), str)
            and isinstance(e.get("sha256"), str)
            and _inside(dest, dest / e["path"])
        ):
            continue
        if isinstance(e.get("url_hash"), str):
            out[key] = e
            continue
        entry = {**e, "url_hash": url_sha256(key)}
        new_key = _manifest_key(out, key, entry["url_hash"])
        out[new_key] = entry
        if _holds_query(key, e["path"]):
            legacy.add(new_key)
    return out, legacy


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    write_atomic(path, text.encode("utf-8"))
