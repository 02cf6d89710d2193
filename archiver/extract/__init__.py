"""Finds the PDFs and images one post refers to, with the exact span of each URL.

This package owns the step from a post's *text* to ``Reference`` values: Markdown
(CommonMark + tables, YAML ``---`` or TOML ``+++`` front matter, raw HTML inside)
and HTML documents. Every reference carries ``start``/``end`` offsets such that
``text[start:end] == as_written``, because a later stage rewrites exactly those
spans. It must never touch the disk or the network: ``collect`` reads files and
resolves relative paths, ``fetch`` downloads.

Its modules, each owning one concern:

- ``urls``: what a URL is (canonical form, PDF or image), and decoding it as written;
- ``budget``: how long and how large a post may be;
- ``document``: one post being read, and the one rule that turns a span into a
  ``Reference`` (``Document.emit``);
- ``markdown``: block and inline structure of a Markdown post;
- ``html``: the URLs HTML start tags carry, and HTML documents;
- ``frontmatter``: YAML and TOML front matter, with its bounds.

PyYAML, BeautifulSoup and markdown-it-py are imported only by a post that needs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from archiver.extract import html, markdown
from archiver.extract.budget import MAX_POST_CHARS, OverBudget, post_budget
from archiver.extract.document import Document, ExtractWarning, Reference
from archiver.extract.frontmatter import FRONT_MATTER_MAX_DEPTH, YAML_ALIAS_BUDGET
from archiver.extract.urls import (
    ASSET_EXTENSIONS,
    IMAGE_EXTENSIONS,
    KNOWN_IMAGE_CDNS,
    is_asset_url,
    normalize_url,
)

__all__ = [
    "ASSET_EXTENSIONS",
    "EXTRACTOR_VERSION",
    "FRONT_MATTER_MAX_DEPTH",
    "IMAGE_EXTENSIONS",
    "KNOWN_IMAGE_CDNS",
    "MAX_POST_CHARS",
    "YAML_ALIAS_BUDGET",
    "ExtractWarning",
    "Extraction",
    "Format",
    "Reference",
    "extract",
    "is_asset_url",
    "normalize_url",
    "post_budget",
    "post_format",
]

EXTRACTOR_VERSION = "2"  # 2: file: URLs are references (for the local-file rule)
"""Bump whenever ``extract`` could return something different for the same text."""

Format = Literal["markdown", "html"]

_MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdx")
_HTML_SUFFIXES = (".html", ".htm")


@dataclass
class Extraction:
    """What ``extract`` found in one post, in source order."""

    references: list[Reference] = field(default_factory=list)
    warnings: list[ExtractWarning] = field(default_factory=list)
    #: True when the post could not be read within its budget: nothing was extracted,
    #: and the caller keeps what it knew of the post before.
    skipped: bool = False


def post_format(path: str) -> Format | None:
    """The format a file name implies, or None when it is not a post."""
    lower = path.lower()
    if lower.endswith(_MARKDOWN_SUFFIXES):
        return "markdown"
    if lower.endswith(_HTML_SUFFIXES):
        return "html"
    return None


def extract(
    text: str,
    fmt: Format,
    *,
    base_url: str | None = None,
    clock: Callable[[], float] = time.thread_time,
) -> Extraction:
    """Finds every PDF and image reference in a post's text, in source order.

    Relative references are made absolute against ``base_url`` (or an HTML
    ``<base href>``); without one they come back with ``relative=True``. A post longer
    than MAX_POST_CHARS, or not read within ``post_budget`` seconds of ``clock`` (CPU time
    of this thread: a loaded machine does not skip posts), comes back ``skipped`` with
    one warning and no references.
    """
    if len(text) > MAX_POST_CHARS:
        limit = MAX_POST_CHARS // (1024 * 1024)
        return _skipped(f"post is larger than {limit} MiB; skipped, its earlier links kept")
    doc = Document(text, base_url, clock, clock() + post_budget(len(text)))
    try:
        if fmt == "html":
            html.read_document(doc)
        else:
            markdown.read(doc)
    except OverBudget:
        seconds = post_budget(len(text))
        return _skipped(
            f"post could not be read within its budget ({seconds:.1f} s);"
            " skipped, its earlier links kept"
        )
    references = sorted(doc.refs, key=lambda r: (r.start, r.end))
    return Extraction(references, doc.warnings)


def _skipped(message: str) -> Extraction:
    return Extraction([], [ExtractWarning(0, message)], skipped=True)
