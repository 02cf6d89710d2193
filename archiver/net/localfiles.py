"""Which local files archiver may read: only those inside a source folder.

Owns the one rule for ``file:`` URLs, wherever they come from (a post's relative
path, a ``<base href="file:...">``, a ``file:`` link in front matter or text): a
file is read only if its real path (symlinks and ``..`` resolved) is inside one of
the allowed roots, a source folder or one of its ``static_roots``. ``fetch`` asks
this module before it opens a file; nothing else reads ``file:`` URLs. Live-site
pages have no roots at all, so their local references are dropped (``sites``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["OUTSIDE_SOURCE", "LocalRoots", "is_local", "local_path"]

OUTSIDE_SOURCE = "outside-source"
"""error_class of a local reference outside every allowed root (state ``blocked``)."""


def is_local(url: str) -> bool:
    """Whether the URL names a local file (``file:``)."""
    return url[:5].lower() == "file:"


def local_path(url: str) -> Path | None:
    """The path a ``file:`` URL names, or None when it names another host's file."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        return None
    return Path(unquote(parts.path))


@dataclass(frozen=True)
class LocalRoots:
    """The folders local files may be read from, as real paths."""

    roots: tuple[Path, ...] = ()

    @classmethod
    def of(cls, folders: Iterable[Path]) -> LocalRoots:
        """Roots from folders as configured: resolved once, so symlinked roots still work."""
        return cls(tuple(dict.fromkeys(Path(os.path.realpath(f)) for f in folders)))

    def __add__(self, other: LocalRoots) -> LocalRoots:
        return LocalRoots(tuple(dict.fromkeys(self.roots + other.roots)))

    def refusal(self, path: Path) -> str | None:
        """Why ``path`` may not be read (its real path named), or None when it may."""
        real = Path(os.path.realpath(path))
        if any(real.is_relative_to(root) for root in self.roots):
            return None
        if not self.roots:
            return f"{path} is a local file, and no source folder allows local files here"
        shown = str(path) if real == path else f"{path} (really {real})"
        return f"{shown} is outside the source folders"
