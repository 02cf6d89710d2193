"""Indexing a folder source: its new or changed posts parsed into the database.

Each post file is read and hashed once: an unchanged post (same bytes, same parse
version) is only touched, a changed one is parsed from the bytes already read. Posts
that vanished from the source keep their row (reports say so) but lose their links.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from archiver import extract, validate
from archiver.config import Source
from archiver.db.sqlite import Database
from archiver.extract import Reference
from archiver.net.localfiles import LocalRoots
from archiver.net.rules import UrlRules
from archiver.records import RefRow
from archiver.run.summary import RunSummary
from archiver.sources import folders

__all__ = ["IMAGE_POSITIONS", "index_folder", "parse_version", "ref_rows", "source_roots"]

#: Reference kinds that put a URL in an image position (so no extension is needed).
IMAGE_POSITIONS = (
    "markdown-image",
    "html-img",
    "html-srcset",
    "html-source",
    "css-url",
    "html-meta",
    "front-matter:",
)


def parse_version(rules: UrlRules) -> str:
    """What posts are saved under: the extractor's version, plus the URL rules' fingerprint,
    so that editing ``exclude_urls`` or ``[remap]`` re-reads every post once."""
    version = extract.EXTRACTOR_VERSION
    return f"{version}+rules.{rules.fingerprint}" if rules else version


def ref_rows(references: Iterable[Reference], rules: UrlRules) -> list[RefRow]:
    """The rows saved for a post's references: excluded URLs left out, remapped ones marked."""
    return [
        RefRow(
            url=r.url,
            fetch_url=rules.fetch_url(r.url),
            expect=validate.expected_kind(r.url, r.kind.startswith(IMAGE_POSITIONS)),
            line=r.line,
            kind=r.kind,
            text=r.text,
            as_written=r.as_written,
            start=r.start,
            end=r.end,
        )
        for r in references
        if rules.kept(r.url)
    ]


def source_roots(sources: Iterable[Source]) -> LocalRoots:
    """The folders ``file:`` URLs may be read from: each path source and its static roots."""
    roots = LocalRoots()
    for source in sources:
        if source.path is not None:
            roots += folders.source_roots(source.path, static_roots(source))
    return roots


def static_roots(source: Source) -> list[Path]:
    assert source.path is not None
    return list(source.static_roots) or folders.default_static_roots(source.path)


def index_folder(
    db: Database,
    source: Source,
    now: str,
    summary: RunSummary,
    warn: Callable[[str], None],
    rules: UrlRules | None = None,
) -> Iterator[int]:
    """Parses the source's new or changed posts into the database, yielding each post's id
    as soon as it is saved (so its links can be fetched while the next post is read)."""
    assert source.path is not None, "URL sources are indexed by archiver.sources.sites"
    root = source.path
    label = source.label
    roots = static_roots(source)
    rules = rules or UrlRules()
    version = parse_version(rules)
    seen: set[int] = set()

    def skipped(_: Path) -> None:
        summary.skipped_by_extension += 1

    for file in folders.iter_source_files(root, source.only, source.extensions, skipped):
        rel = file.relative_to(root).as_posix() if root.is_dir() else file.name
        try:
            data = file.read_bytes()
        except OSError as exc:
            warn(f"{file}: cannot read: {exc.strerror}")
            continue
        digest = hashlib.sha256(data).hexdigest()
        summary.posts += 1
        known = db.post(label, rel)
        if (
            known is not None
            and known.content_sha256 == digest
            and known.extractor_version == version
        ):
            with db.transaction():
                db.touch_post(known.id, now)
            seen.add(known.id)
            yield known.id
            continue
        post = folders.read_post(
            root,
            file,
            source=label,
            base_url=source.base_url,
            static_roots=roots,
            data=data,
            sha256=digest,
        )
        for w in post.warnings:
            warn(f"{file}{f':{w.line}' if w.line else ''}: {w.message}")
        if post.skipped:
            # Not read within its budget: its row and earlier links stay as they were
            # (nor is its hash saved, so the next run tries it again).
            if known is not None:
                with db.transaction():
                    db.touch_post(known.id, now)
                seen.add(known.id)
                yield known.id
            continue
        refs = ref_rows(post.references, rules)
        with db.transaction():
            post_id = db.save_post(
                source=label,
                path=rel,
                content_sha256=post.content_sha256,
                extractor_version=version,
                refs=refs,
                now=now,
            )
        summary.posts_parsed += 1
        seen.add(post_id)
        yield post_id
    if source.only:
        return  # some of the source's posts were named: the others are not gone
    # Posts that vanished from the source keep their row (reports say so) but lose their links.
    with db.transaction():
        db.mark_posts_gone([i for i, _ in db.live_posts(label) if i not in seen], now)
