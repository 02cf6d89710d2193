"""One post being read: its text, its line table, its time budget and what was found.

The Markdown, HTML and front-matter readers all write through ``Document.emit``, so
one rule decides whether a span is a PDF or image reference and what URL it names.
"""

from __future__ import annotations

import itertools
import re
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

from archiver.extract.budget import OverBudget
from archiver.extract.urls import (
    FETCHABLE_SCHEMES,
    SCHEME,
    decode_entities,
    decode_markdown,
    extension,
    is_asset_url,
    normalize_fetchable,
)

__all__ = ["Document", "ExtractWarning", "Reference"]

_LINE_BREAK = re.compile(r"\r\n?|\n")


@dataclass(frozen=True)
class Reference:
    """One occurrence of a PDF or image URL in a post."""

    url: str  # normalised absolute URL; if ``relative``, the decoded path as written
    as_written: str  # exactly ``text[start:end]``
    line: int  # 1-based line of ``start``
    kind: str  # syntactic form: "markdown-image", "html-img", "front-matter:cover", ...
    text: str  # link text, alt text, or "" when the form has none
    start: int
    end: int
    relative: bool = False  # True: no base URL was known; the caller resolves ``url``


@dataclass(frozen=True)
class ExtractWarning:
    """Something in the post could not be read; extraction went on without it."""

    line: int
    message: str


def _line_starts(text: str) -> list[int]:
    """Offset of every line's first character; ``\r\n``, ``\r`` and ``\n`` end lines."""
    if "\r" in text:
        return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
    return [0, *itertools.accumulate(len(part) + 1 for part in text.split("\n")[:-1])]


class Document:
    """Scans one document; holds the text, its line table and what was found."""

    def __init__(
        self,
        text: str,
        base_url: str | None,
        clock: Callable[[], float] = time.thread_time,
        deadline: float = float("inf"),
    ) -> None:
        self.text = text
        self.base_url = base_url
        self.clock = clock
        self.deadline = deadline
        self.line_starts = _line_starts(text)
        self.refs: list[Reference] = []
        self.warnings: list[ExtractWarning] = []

    def line_of(self, offset: int) -> int:
        """1-based line number of a character offset."""
        return bisect_right(self.line_starts, offset)

    def warn(self, offset: int, message: str) -> None:
        self.warnings.append(ExtractWarning(self.line_of(offset), message))

    def tick(self) -> None:
        """Called once per step of every scanning loop; raises when the budget is spent.

        The clock is read every time (tens of nanoseconds): a single step can be costly
        (html.parser's start-tag regex scans to the end of an unclosed run of tags).
        """
        if self.clock() > self.deadline:
            raise OverBudget

    def emit(
        self,
        start: int,
        end: int,
        kind: str,
        label: str,
        *,
        image: bool,
        markdown: bool,
        pdf_only: bool = False,
    ) -> None:
        """Records ``text[start:end]`` as a reference if it is a PDF or image URL."""
        text = self.text
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start >= end:
            return
        raw = text[start:end]
        decoded = (decode_markdown(raw) if markdown else decode_entities(raw)).strip()
        if not decoded or decoded[0] in "#?":
            return
        scheme = SCHEME.match(decoded)
        if scheme and scheme.group(1).lower() not in FETCHABLE_SCHEMES:
            return  # data:, mailto:, javascript:, ftp:, ...
        if pdf_only:
            if extension(urlsplit(decoded).path) != "pdf":
                return
        elif not image and not is_asset_url(decoded):
            return
        relative = scheme is None and not decoded.startswith("//")
        try:
            if not relative:
                url = normalize_fetchable(decoded)
            elif self.base_url is not None and SCHEME.match(self.base_url):
                url = normalize_fetchable(urljoin(self.base_url, decoded))
                relative = False
            else:
                if self.base_url is not None:  # a relative <base href>
                    decoded = urljoin(self.base_url, decoded)
                url = unquote(urlsplit(decoded).path)
                if not url:
                    return
        except ValueError as exc:
            self.warn(start, f"skipped unparseable URL {raw!r}: {exc}")
            return
        line = self.line_of(start)
        self.refs.append(Reference(url, raw, line, kind, label, start, end, relative))
