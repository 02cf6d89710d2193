"""What a run did: the summary line, the ``runs`` table's figures and the exit code."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from archiver.text import plural

__all__ = ["RunSummary"]


@dataclass
class RunSummary:
    """What a run did, for the summary line, the ``runs`` table and the exit code."""

    run_id: int = 0
    posts: int = 0
    posts_parsed: int = 0
    #: Posts whose bytes were read: the others' stat said they had not changed.
    posts_read: int = 0
    urls: int = 0
    checked: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    new_blobs: int = 0
    newly_broken: list[str] = field(default_factory=list)
    #: URLs a guard refused this run that were not blocked before, with the reason.
    newly_blocked: list[tuple[str, str]] = field(default_factory=list)
    not_ok: int = 0
    transient: int = 0
    warnings: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    exit_code: int = 0
    network_down: bool = False
    #: Files in source folders not read as posts: their extension is not the source's.
    skipped_by_extension: int = 0

    def settle(self, not_ok: int, elapsed: float, fail_on: str) -> None:
        """The end of a run (or a worker's part of one): its broken count, its time, and
        the exit code ``--fail-on`` gives them (new: a link newly broken; any: a link not
        ok; none: 0)."""
        self.not_ok, self.elapsed = not_ok, elapsed
        if fail_on == "new":
            self.exit_code = 1 if self.newly_broken else 0
        elif fail_on == "any":
            self.exit_code = 1 if self.not_ok else 0
        else:
            self.exit_code = 0

    def line(self) -> str:
        states = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        if not self.checked:
            # Nothing was due: still say what is broken, or an hourly log reads "all good".
            states = (
                f"none due; {plural(self.not_ok, 'link')} still broken (list them: archiver report)"
                if self.not_ok
                else "none due; no link broken"
            )
        if self.transient:
            states += f" ({self.transient} transient)"
        line = (
            f"{plural(self.posts, 'post')}, {plural(self.urls, 'URL')},"
            f" checked {self.checked}: {states}; {_human_bytes(self.bytes)} downloaded,"
            f" {plural(self.new_blobs, 'new blob')}, {self.elapsed:.1f}s"
        )
        if self.skipped_by_extension:
            # A folder of .txt posts would otherwise read "0 posts" with no hint why.
            skipped = plural(self.skipped_by_extension, "file")
            line += f"; {skipped} skipped by extension (see --extensions)"
        return line


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
