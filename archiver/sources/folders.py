"""Reads a source folder of posts and turns each into a ``Post`` with its references.

This module owns the file-system side of extraction: walking the source tree in a
deterministic order, reading bytes, hashing them, calling ``extract`` and
resolving the relative references it returns to files on disk (as ``file://``
URLs). It must never parse Markdown or HTML itself (that is ``extract``) nor touch
the network. An unreadable post is a ``Post`` with a warning, not an exception.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from archiver.config import DEFAULT_EXTENSIONS
from archiver.extract import ExtractWarning, Reference, extract, post_format
from archiver.net.localfiles import LocalRoots

__all__ = [
    "Post",
    "collect",
    "default_static_roots",
    "has_extension",
    "iter_post_files",
    "iter_post_stats",
    "iter_source_files",
    "iter_source_stats",
    "post_file",
    "read_post",
    "resolve_local",
    "source_roots",
]


@dataclass(frozen=True)
class Post:
    """One post file and the PDF/image references found in it (a record: never changed)."""

    source: str  # name of the source the post belongs to
    root: Path  # the source root the post was found under
    path: str  # posix path relative to ``root``
    abs_path: Path
    content_sha256: str  # hex digest of the file's bytes; unchanged posts need no re-parse
    references: list[Reference] = field(default_factory=list)
    warnings: list[ExtractWarning] = field(default_factory=list)
    #: Not read within its budget (see ``extract``): the caller keeps the post's
    #: earlier references instead of replacing them with none.
    skipped: bool = False


def default_static_roots(root: Path) -> list[Path]:
    """Where Hugo-style sites keep root-relative files: the root and ``<root>/static``."""
    return [root, root / "static"]


def has_extension(name: str, extensions: tuple[str, ...]) -> bool:
    """Whether a file name ends in one of ``extensions`` (lower case, no dot)."""
    lower = name.lower()
    return any(lower.endswith("." + ext) for ext in extensions)


def post_file(source: str, path: str) -> Path:
    """The file a folder source's post is read from: the database names a post by its
    path under the source, and a source that is one file by that file's name."""
    root = Path(source)
    if root.name == path and not root.is_dir():
        return root
    return root / path


def iter_post_files(
    root: Path,
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS,
    on_skip: Callable[[Path], None] | None = None,
) -> Iterator[Path]:
    """Post files under ``root`` in sorted order, skipping hidden files and folders.

    A file given as ``root`` is yielded as is, whatever its extension. A visible file
    of another extension is passed to ``on_skip``, so a run can say it was not read.
    """
    for path, _ in iter_post_stats(root, extensions, on_skip):
        yield path


def iter_post_stats(
    root: Path,
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS,
    on_skip: Callable[[Path], None] | None = None,
) -> Iterator[tuple[Path, os.stat_result]]:
    """``iter_post_files`` with each file's ``os.stat`` (the one that told it is a file),
    so a crawl can tell an unchanged post without another system call."""
    try:
        st = root.stat()
    except OSError:
        return
    if stat.S_ISREG(st.st_mode):
        yield root, st
        return
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(folder)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = base / name
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished, or a dangling symlink
            if not stat.S_ISREG(st.st_mode):
                continue
            if has_extension(name, extensions):
                yield path, st
            elif on_skip is not None:
                on_skip(path)


def iter_source_files(
    root: Path,
    only: tuple[Path, ...] = (),
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS,
    on_skip: Callable[[Path], None] | None = None,
) -> Iterator[Path]:
    """``iter_post_files`` of ``root``, or, when ``only`` names some of its files and
    folders, of each of those (a file as is), every file once."""
    for path, _ in iter_source_stats(root, only, extensions, on_skip):
        yield path


def iter_source_stats(
    root: Path,
    only: tuple[Path, ...] = (),
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS,
    on_skip: Callable[[Path], None] | None = None,
) -> Iterator[tuple[Path, os.stat_result]]:
    """``iter_source_files`` with each file's ``os.stat`` (see ``iter_post_stats``)."""
    if not only:
        yield from iter_post_stats(root, extensions, on_skip)
        return
    seen: set[Path] = set()
    for part in only:
        for file, st in iter_post_stats(part, extensions, on_skip):
            if file not in seen:
                seen.add(file)
                yield file, st


def _post_base_url(base_url: str, rel_dir: str) -> str:
    """The URL relative references of a post in ``rel_dir`` are joined against."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    return base + quote(rel_dir) + "/" if rel_dir else base


def resolve_local(ref_path: str, post_dir: Path, static_roots: list[Path]) -> list[Path]:
    """Candidate files for a relative reference, in the order they are tried.

    ``x.png`` is relative to the post's folder; ``/x.png`` is tried in the post's
    folder first (Hugo page bundles write ``cover: "/cover.jpg"``), then under each
    static root.
    """
    if ref_path.startswith("/"):
        tail = ref_path.lstrip("/")
        return [post_dir / tail, *(static / tail for static in static_roots)]
    return [post_dir / ref_path]


def source_roots(root: Path, static_roots: list[Path]) -> LocalRoots:
    """The folders a source's posts may read local files from: its own and its static roots.

    A source that is one file allows the folder the file is in.
    """
    folder = root.parent if root.is_file() else root
    return LocalRoots.of([folder, *static_roots])


def read_post(
    root: Path,
    file: Path,
    *,
    source: str,
    base_url: str | None,
    static_roots: list[Path],
    data: bytes | None = None,
    sha256: str | None = None,
) -> Post:
    """Reads and extracts one post; relative references become ``file://`` URLs.

    ``data`` (and its ``sha256``, if known) are the file's bytes when the caller has read
    them already (a crawl reads and hashes each post once, to tell whether it changed).
    """
    rel = file.name if file == root else file.relative_to(root).as_posix()
    abs_path = file.resolve()
    if data is None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            warning = ExtractWarning(0, f"cannot read {rel}: {exc.strerror or exc}")
            return Post(source, root, rel, abs_path, "", warnings=[warning])
        sha256 = None
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    if b"\0" in data:
        warning = ExtractWarning(0, f"{rel} looks binary (NUL bytes); skipped")
        return Post(source, root, rel, abs_path, sha256, warnings=[warning])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        warning = ExtractWarning(0, f"{rel} is not UTF-8 (byte {exc.start}); skipped")
        return Post(source, root, rel, abs_path, sha256, warnings=[warning])
    rel_dir = Path(rel).parent.as_posix()
    post_base = (
        None if base_url is None else _post_base_url(base_url, "" if rel_dir == "." else rel_dir)
    )
    result = extract(text, post_format(file.name) or "markdown", base_url=post_base)
    post_dir = file.parent.resolve()
    references: list[Reference] = []
    for ref in result.references:
        if not ref.relative:
            references.append(ref)
            continue
        # Resolved as the fetcher will read them: a path outside the source (``../..``,
        # a symlink out) is kept as a reference, and ``fetch`` records it as blocked.
        candidates = [c.resolve() for c in resolve_local(ref.url, post_dir, static_roots)]
        chosen = next((c for c in candidates if c.is_file()), candidates[0])
        references.append(dataclasses.replace(ref, url=chosen.as_uri(), relative=False))
    warnings = list(result.warnings)
    return Post(source, root, rel, abs_path, sha256, references, warnings, result.skipped)


def collect(
    root: Path,
    *,
    source: str | None = None,
    base_url: str | None = None,
    static_roots: list[Path] | None = None,
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS,
    on_skip: Callable[[Path], None] | None = None,
) -> Iterator[Post]:
    """Every post under ``root`` with its references, in a deterministic order.

    ``extensions`` and ``on_skip`` are as for ``iter_post_files``.
    """
    folder = root.parent if root.is_file() else root
    roots = default_static_roots(folder) if static_roots is None else static_roots
    name = source or folder.resolve().name
    for file in iter_post_files(root, extensions, on_skip):
        yield read_post(folder, file, source=name, base_url=base_url, static_roots=roots)
