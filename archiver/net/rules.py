"""URL rules from the config: ``exclude_urls`` drops URLs, ``[remap]`` says where to fetch them.

Pure functions over strings, applied to the references of every source kind before
they are saved or fetched. A remapped URL keeps its original as its identity (the
post still says the old URL, and reports must name what the post says); the
remapped one is only where the bytes are fetched from. Never touches the network,
the disk or the database.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from archiver.errors import ConfigError

__all__ = ["UrlRules", "compile_pattern"]


def compile_pattern(key: str, pattern: str) -> re.Pattern[str]:
    """A regex from the config; a bad one is a ``ConfigError`` naming its key."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(
            f"config key '{key}' is not a valid regular expression ({exc}): {pattern!r}"
        ) from None


@dataclass(frozen=True)
class UrlRules:
    """Compiled ``exclude_urls`` patterns and ``[remap]`` rules, in config order."""

    exclude: tuple[re.Pattern[str], ...] = ()
    remap: tuple[tuple[re.Pattern[str], str], ...] = ()
    include: tuple[re.Pattern[str], ...] = ()  # ``--include``: when given, keep only these

    @classmethod
    def compile(
        cls,
        exclude: Iterable[str] = (),
        remap: Iterable[tuple[str, str]] = (),
        include: Iterable[str] = (),
    ) -> UrlRules:
        """Compiles the rules, checking each replacement's group references up front."""
        patterns = tuple(compile_pattern(f"exclude_urls[{i}]", p) for i, p in enumerate(exclude))
        rules = []
        for pattern, replacement in remap:
            key = f"remap.{_toml_key(pattern)}"
            compiled = compile_pattern(key, pattern)
            try:
                # The template is parsed even when nothing matches: a bad \3 fails here.
                compiled.sub(replacement, "")
            except (re.error, IndexError) as exc:
                raise ConfigError(
                    f"config key '{key}' has an invalid replacement {replacement!r} ({exc})"
                ) from None
            rules.append((compiled, replacement))
        kept = tuple(compile_pattern(f"--include[{i}]", p) for i, p in enumerate(include))
        return cls(patterns, tuple(rules), kept)

    def __bool__(self) -> bool:
        return bool(self.exclude or self.remap or self.include)

    def excluded(self, url: str) -> bool:
        """True when an ``exclude_urls`` pattern matches anywhere in the URL."""
        return any(p.search(url) for p in self.exclude)

    def kept(self, url: str) -> bool:
        """Whether an asset URL is saved: not excluded, and included when ``include`` is set."""
        if self.excluded(url):
            return False
        return not self.include or any(p.search(url) for p in self.include)

    def fetch_url(self, url: str) -> str | None:
        """Where to fetch ``url`` from: the first matching remap rule's result, or None."""
        for pattern, replacement in self.remap:
            if pattern.search(url):
                remapped = pattern.sub(replacement, url, count=1)
                return remapped if remapped != url else None
        return None

    @property
    def fingerprint(self) -> str:
        """Changes whenever the rules do, so posts saved under other rules are re-read."""
        if not self:
            return ""
        text = "\n".join(
            ["exclude", *(p.pattern for p in self.exclude), "remap"]
            + [f"{p.pattern}\t{r}" for p, r in self.remap]
            # Only when given: the fingerprint of rules without it stays as it was.
            + (["include", *(p.pattern for p in self.include)] if self.include else [])
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _toml_key(key: str) -> str:
    """How a key is written in TOML, so the error message can be searched for in the file."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else '"' + key.replace('"', '\\"') + '"'
