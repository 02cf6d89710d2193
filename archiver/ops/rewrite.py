"""Pointing broken links in posts at the mirror, and putting them back.

Owns the only writes archiver makes to post files. Only the recorded spans of
the URLs as written change; every other byte of a post stays identical. A post
is touched only when its bytes still hash to what the last crawl parsed and
each span still holds the URL as written; otherwise it is skipped with a
warning. Each change is recorded (``rewrites``) before the file is replaced
atomically, so ``undo`` can restore the original URLs.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.errors import ArchiverError, ConfigError
from archiver.ops.mirror import mirror_url_for
from archiver.records import RecheckReason
from archiver.sources.folders import post_file
from archiver.store.directory import write_atomic
from archiver.text import plural

if TYPE_CHECKING:
    from archiver.db.sqlite import Database
    from archiver.db.views import ActiveRewrite, RewriteRef
    from archiver.store.base import BlobStore as Store

__all__ = ["PostChange", "RewritePlan", "Span", "apply_plan", "plan_rewrite", "plan_undo"]


@dataclass
class Span:
    """One replacement: ``text[start:end]`` was ``old`` and becomes ``new``."""

    url_id: int
    start: int
    end: int
    old: str
    new: str
    rewrite_id: int | None = None  # set when undoing a recorded rewrite


@dataclass
class PostChange:
    """The edit to one post file."""

    post_id: int
    path: str
    file: Path
    before_sha256: str
    before: str
    after: str
    spans: list[Span]
    #: Recorded rewrites of this post that stay active, with their offsets after the change.
    keep: list[tuple[int, int, int]] = field(default_factory=list)

    def diff(self) -> str:
        lines = difflib.unified_diff(
            self.before.splitlines(keepends=True),
            self.after.splitlines(keepends=True),
            f"a/{self.path}",
            f"b/{self.path}",
        )
        out = []
        for line in lines:
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
        return "".join(out)


@dataclass
class RewritePlan:
    """What a rewrite or undo will do; ``warnings`` name the posts it must skip."""

    undo: bool
    changes: list[PostChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Broken URLs that have no good archived copy, so nothing to point at.
    no_copy: list[str] = field(default_factory=list)
    #: Rewrites whose mirror URL is no longer in the post (put back by hand): forgotten.
    settled: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def diff(self) -> str:
        return "".join(c.diff() for c in self.changes)

    def line(self, applied: bool) -> str:
        n = sum(len(c.spans) for c in self.changes)
        verb = ("restored" if self.undo else "rewrote") if applied else "would change"
        return (
            f"{verb} {plural(n, 'link')} in {plural(len(self.changes), 'post')};"
            f" {plural(len(self.warnings), 'post')} skipped"
        )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load(row: RewriteRef | ActiveRewrite, plan: RewritePlan) -> tuple[Path, bytes | None]:
    """The post file of a reference row and its bytes; None (with a warning) if unreadable."""
    file = post_file(row.source, row.path)
    data = _read(file)
    if data is None:
        plan.warnings.append(f"{row.path}: cannot read {file}; skipped")
    return file, data


def _read(file: Path) -> bytes | None:
    try:
        return file.read_bytes()
    except OSError:
        return None


def _replace(text: str, spans: list[Span]) -> str:
    out = []
    pos = 0
    for s in sorted(spans, key=lambda s: s.start):
        out.append(text[pos : s.start])
        out.append(s.new)
        pos = s.end
    out.append(text[pos:])
    return "".join(out)


def _shift(pos: int, spans: Iterable[Span]) -> int:
    """Where an offset before or after the changed spans lands once they are replaced."""
    return pos + sum(len(s.new) - (s.end - s.start) for s in spans if s.end <= pos)


def _overlaps(spans: list[Span]) -> bool:
    ordered = sorted(spans, key=lambda s: s.start)
    return any(a.end > b.start for a, b in itertools.pairwise(ordered))


def plan_rewrite(
    db: Database,
    store: Store,
    mirror_url: str,
    states: tuple[str, ...],
    post: str | None = None,
) -> RewritePlan:
    """The edits that point every broken, mirrored link in the posts at ``mirror_url``."""
    import fnmatch

    from archiver.db.views import UrlQuery
    from archiver.ops.restore import copies, newest_good

    if not mirror_url.startswith(("http://", "https://")):
        raise ConfigError(
            "--mirror-url must be an http(s) URL like https://mirror.example.org/,"
            f" got {mirror_url!r}"
        )
    plan = RewritePlan(undo=False)
    refs = db.rewrite_refs(states)
    good = {
        url_id: newest_good(vs, store) is not None
        for url_id, vs in copies(db, UrlQuery(states=states, unreferenced=True)).items()
    }
    by_post: dict[int, list[RewriteRef]] = {}
    unmirrored: set[str] = set()
    for r in refs:
        if post and not fnmatch.fnmatch(r.path, post):
            continue
        if r.source.startswith(("http://", "https://")):
            continue  # a page of a live site: there is no file of ours to edit
        if not good.get(r.url_id):
            if r.url not in plan.no_copy:
                plan.no_copy.append(r.url)
            continue
        if r.mirror_path is None:
            unmirrored.add(r.url)
            continue
        by_post.setdefault(r.post_id, []).append(r)
    for url in sorted(unmirrored):
        plan.warnings.append(
            f"{url}: not in a mirror yet; run 'archiver restore --mirror DIR' first"
        )
    ours = db.rewritten_posts()
    for post_id, rows in by_post.items():
        first = rows[0]
        file, data = _load(first, plan)
        if data is None:
            continue
        digest = _sha(data)
        if digest != first.content_sha256:
            if digest != ours.get(post_id):  # an earlier rewrite is simply already done
                plan.warnings.append(
                    f"{first.path}: changed since the last crawl; run 'archiver crawl'"
                    " first; skipped"
                )
            continue
        text = data.decode("utf-8")
        spans = [
            Span(r.url_id, r.start, r.end, r.as_written, mirror_url_for(mirror_url, r.mirror_path))
            for r in rows
            if r.mirror_path is not None
        ]
        bad = [s for s in spans if text[s.start : s.end] != s.old]
        if bad or _overlaps(spans):
            where = bad[0].old if bad else "overlapping links"
            plan.warnings.append(
                f"{first.path}: recorded link {where!r} is not where the last crawl saw it;"
                " run 'archiver crawl' first; skipped"
            )
            continue
        after = _replace(text, spans)
        keep = (
            [
                (k.id, _shift(k.start, spans), _shift(k.end, spans))
                for k in db.active_rewrite_spans(post_id)
            ]
            if digest == ours.get(post_id)
            else []
        )
        plan.changes.append(PostChange(post_id, first.path, file, digest, text, after, spans, keep))
    return plan


def plan_undo(db: Database, urls: Iterable[str] = ()) -> RewritePlan:
    """The edits that put back the original URLs (of ``urls`` only, when given)."""
    plan = RewritePlan(undo=True)
    wanted = set(urls)
    rows = db.active_rewrites()
    unknown = wanted - {r.url for r in rows}
    if unknown:
        from archiver.ops.restore import RestoreError

        raise RestoreError(
            f"no rewrite of {sorted(unknown)[0]} to undo (see 'archiver restore --undo --dry-run')"
        )
    by_post: dict[int, list[ActiveRewrite]] = {}
    for r in rows:
        by_post.setdefault(r.post_id, []).append(r)
    for post_id, group in by_post.items():
        chosen = [r for r in group if not wanted or r.url in wanted]
        if not chosen:
            continue
        first = group[0]
        file, data = _load(first, plan)
        if data is None:
            continue
        digest = _sha(data)
        text = data.decode("utf-8", "replace")
        if digest != first.sha256 or any(text[r.start : r.end] != r.new_text for r in group):
            left = [r for r in chosen if r.new_text in text]
            if not left:  # every mirror URL is gone from the post: put back by hand
                plan.settled += [r.id for r in chosen]
                plan.notes.append(
                    f"{first.path}: the mirror URLs are no longer in the post;"
                    " nothing to undo there"
                )
                continue
            back = "; ".join(f"{r.new_text} -> {r.old_text}" for r in left)
            plan.warnings.append(
                f"{first.path}: edited since archiver rewrote it; put the original URLs"
                f" back by hand ({back}); skipped"
            )
            continue
        spans = [Span(r.url_id, r.start, r.end, r.new_text, r.old_text, r.id) for r in chosen]
        keep = [
            (r.id, _shift(r.start, spans), _shift(r.end, spans)) for r in group if r not in chosen
        ]
        plan.changes.append(
            PostChange(post_id, first.path, file, digest, text, _replace(text, spans), spans, keep)
        )
    return plan


def _write_atomic(file: Path, data: bytes) -> None:
    """Replaces the post in one rename, keeping its mode."""
    write_atomic(file, data, stat.S_IMODE(file.stat().st_mode))


def apply_plan(db: Database, plan: RewritePlan, now: str) -> list[str]:
    """Writes each change and records it; returns warnings for posts that changed meanwhile."""
    warnings: list[str] = []
    if plan.settled:
        with db.transaction():
            db.end_rewrites(plan.settled, now, undone=False)
    for change in plan.changes:
        data = _read(change.file)
        if data is None or _sha(data) != change.before_sha256:
            warnings.append(f"{change.path}: changed while planning; skipped")
            continue
        new = change.after.encode("utf-8")
        with db.transaction():
            _record(db, change, plan.undo, now, _sha(new))
            try:
                _write_atomic(change.file, new)
            except OSError as exc:
                raise ArchiverError(f"cannot write {change.file}: {exc.strerror}") from exc
    return warnings


def _record(db: Database, change: PostChange, undo: bool, now: str, after_sha: str) -> None:
    if undo:
        db.end_rewrites([s.rewrite_id for s in change.spans], now, undone=True)
        # The original link is back in the post: the next crawl checks it in full.
        db.mark_due(sorted({s.url_id for s in change.spans}), RecheckReason.UNDONE)
    else:
        # Rewrites recorded for an older state of this post can no longer be undone by offset.
        keep_ids = {k[0] for k in change.keep}
        db.end_rewrites(
            [k.id for k in db.active_rewrite_spans(change.post_id) if k.id not in keep_ids],
            now,
            undone=False,
        )
        delta = 0
        for s in sorted(change.spans, key=lambda s: s.start):
            db.add_rewrite(change.post_id, s.url_id, s.old, s.new, s.start + delta, now)
            delta += len(s.new) - (s.end - s.start)
    for rid, start, end in change.keep:
        db.move_rewrite(rid, start, end)
    db.set_rewritten_post(change.post_id, after_sha)
