"""Finds the PDFs and images one post refers to, with the exact span of each URL.

This module owns the step from a post's *text* to ``Reference`` values: Markdown
(CommonMark + tables, YAML ``---`` or TOML ``+++`` front matter, raw HTML inside)
and HTML documents. Every reference carries ``start``/``end`` offsets such that
``text[start:end] == as_written``, because a later stage rewrites exactly those
spans. It must never touch the disk or the network: ``collect`` reads files and
resolves relative paths, ``fetch`` downloads.

How Markdown is read: a line scanner finds the block structure extraction needs
(code blocks to skip, paragraphs, headings, table rows and HTML blocks to read);
an inline scanner then walks those ranges of the original text for links,
images, reference definitions, autolinks, raw HTML, comments, code spans and bare
URLs. Offsets stay exact and each document is read once. (markdown-it-py was the
first block parser; it was several times slower and produced identical results on
the corpus. Tests compare the two on tricky block structure.)
"""

from __future__ import annotations

import functools
import itertools
import re
import time
import tomllib
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urljoin, urlsplit

from archiver.extract.budget import MAX_POST_CHARS, OverBudget, post_budget
from archiver.extract.urls import (
    ASSET_EXTENSIONS,
    FETCHABLE_SCHEMES,
    IMAGE_EXTENSIONS,
    KNOWN_IMAGE_CDNS,
    SCHEME,
    decode_entities,
    decode_markdown,
    extension,
    is_asset_url,
    normalize_fetchable,
    normalize_url,
)

if TYPE_CHECKING:
    import bs4
    import yaml

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

# Front matter past these bounds is treated as front matter that does not parse.
FRONT_MATTER_MAX_DEPTH = 64
"""Deepest nesting of lists and tables front matter may have (real posts use under 5)."""
YAML_ALIAS_BUDGET = 10_000
"""How many nodes YAML aliases may add to the document as written ("billion laughs")."""

_MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdx")
_HTML_SUFFIXES = (".html", ".htm")


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


# ------------------------------------------------------------------ scanning bits

_TRIGGER = re.compile(r"\\[!-/:-@\[-`{-~]|`+|<|!\[|\[|\]")
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\x00-\x20<>]*)>")
_EMAIL_AUTOLINK = re.compile(r"<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-]+@[A-Za-z0-9.\-]+>")
_CLOSE_TAG = re.compile(r"</[A-Za-z][A-Za-z0-9\-]*\s*>")
_OPEN_TAG = re.compile(r"<([A-Za-z][A-Za-z0-9\-]*)(?=[\s/>])")
_ATTR = re.compile(r"""[\s/]*([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")
_RAW_TEXT_TAGS = frozenset({"pre", "code", "script", "style", "textarea"})
_WS = re.compile(r"[ \t]*(?:\r\n?[ \t]*|\n[ \t]*)?")
_ANGLE_DEST = re.compile(r"<((?:[^<>\n\\]|\\[\s\S])*)>")
_PLAIN_DEST = re.compile(
    r"((?:\\[!-/:-@\[-`{-~]|\\|[^\s()\\]|\((?:\\[!-/:-@\[-`{-~]|\\|[^\s()\\])*\))+)"
)
_TITLE = re.compile(r"\"(?:[^\"\\]|\\[\s\S])*\"|'(?:[^'\\]|\\[\s\S])*'|\((?:[^()\\]|\\[\s\S])*\)")
# A destination with literal spaces is not a CommonMark link, but authors meant one
# (".../EnvoyCon UDPA 2019.pdf"); accepted only when it looks like a URL or asset path.
_LENIENT_DEST = re.compile(
    r"[ \t]*((?:[^\s()<>]|\([^()<>\n]*\))(?:[^()<>\n]|\([^()<>\n]*\))*?)"
    r"[ \t]*(?:\"[^\"\n]*\"[ \t]*)?\)"
)
_LABEL = re.compile(r"\[((?:[^\[\]\\]|\\[\s\S]){0,999})\]")
_BARE_URL = re.compile(r"https?://[^\s<>\"'`|\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]+")
_BARE_URL_START = re.compile(r"https?://")
_TRAILING_PUNCT = ".,:;!?*_~'\""
_REFDEF = re.compile(
    r"[ \t>]*(?:(?:[-+*]|\d{1,9}[.)])[ \t]+)?[ ]{0,3}\[((?:[^\[\]\\]|\\[\s\S]){1,999})\]:"
    r"[ \t]*(?:\r?\n[ \t>]*)?(?:<([^<>\n]*)>|([^\s<]\S*))"
    r"(?:[ \t]*(?:\r?\n[ \t>]*)?(?<=\s)(?:\"[^\"]*\"|'[^']*'|\([^()]*\)))?[ \t]*(?:\r?\n|\Z)"
)
# A quoted value never runs past its closing quote, nor an unquoted one past ``(``:
# with ``.*?`` a run of ``url(`` was searched to its end from each one (quadratic).
_CSS_URL = re.compile(
    r"url\(\s*(?:(\"|'|&quot;|&#0*34;|&#0*39;|&apos;)((?:(?!\1).)*)\1|([^()\s\"']*))\s*\)",
    re.IGNORECASE | re.DOTALL,
)
_SRCSET_WS = " \t\n\r\f"
_LINE_BREAK = re.compile(r"\r\n?|\n")
_TAG_TEXT = re.compile(r"<[^>]*>")
_COMMENT_CLOSE = re.compile("-->")
_LINK_TEXT_WINDOW = 4096  # characters after <a ...> searched for its </a>
_LINK_TEXT_NODES = 32  # descendants of an HTML <a> read for its link text
_META_IMAGE_NAMES = frozenset(
    {"og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"}
)
_IMAGE_KEY_WORDS = frozenset(
    {
        "avatar",
        "background",
        "banner",
        "cover",
        "hero",
        "icon",
        "image",
        "images",
        "img",
        "logo",
        "photo",
        "picture",
        "poster",
        "screenshot",
        "slide",
        "slides",
        "thumb",
        "thumbnail",
    }
)
_KEY_SPLIT = re.compile(r"[^a-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


def _is_image_key(key: str) -> bool:
    """A front-matter field whose value is shown as an image (``cover``, ``og_image``, ...)."""
    return any(word.lower() in _IMAGE_KEY_WORDS for word in _KEY_SPLIT.split(key) if word)


_BLOCK_STARTERS = frozenset("`~-*+_#<>0123456789")
_BLOCKQUOTE = re.compile(r"(?:[ ]{0,3}>[ ]?)*")
_FENCE_OPEN = re.compile(r"[ ]*(?:(?:[-+*]|\d{1,9}[.)])[ ]+)?(`{3,}|~{3,})([^\r\n]*)")
_LIST_MARKER = re.compile(r"([ ]*)([-+*]|\d{1,9}[.)])(?:([ ]{1,4})(?=\S)|[ ]*$)")
_THEMATIC_BREAK = re.compile(r"[ ]{0,3}([-*_])(?:[ ]*\1){2,}[ ]*$")
_ATX_HEADING = re.compile(r"[ ]{0,3}#{1,6}(?:[ ]|$)")
_HTML_RAW_BLOCK = re.compile(r"[ ]{0,3}<(pre|script|style|textarea)(?=[\s>]|$)", re.IGNORECASE)
_HTML_COMMENT_BLOCK = re.compile(r"[ ]{0,3}<!--")


def _line_starts(text: str) -> list[int]:
    """Offset of every line's first character; ``\r\n``, ``\r`` and ``\n`` end lines."""
    if "\r" in text:
        return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
    return [0, *itertools.accumulate(len(part) + 1 for part in text.split("\n")[:-1])]


@functools.cache
def _fence_close(fence: str) -> re.Pattern[str]:
    """A closing fence line for an opening ``fence`` (same character, at least as long)."""
    return re.compile(rf"^[ \t>]*{re.escape(fence)}{re.escape(fence[0])}*[ \t]*\r?$", re.MULTILINE)


def _markdown_regions(
    text: str, starts: list[int], first: int, tick: Callable[[], None]
) -> list[tuple[int, int]]:
    """Offsets of the Markdown blocks whose inline content must be scanned.

    A line scanner for CommonMark block structure, as far as extraction needs it:
    fenced and indented code blocks are left out (list items are tracked so their
    indented paragraphs are not mistaken for code), HTML comment and raw-text
    blocks run to their end even across blank lines, and paragraphs, headings,
    tables and other HTML blocks become regions ended by blank lines.
    """
    n = len(starts)
    size = len(text)
    regions: list[tuple[int, int]] = []
    region_start = -1
    in_paragraph = False  # the previous line can be lazily continued
    prev_blank = True
    lists: list[int] = []  # content columns of the open list items, innermost last
    i = first
    while i < n:
        tick()
        start = starts[i]
        end = starts[i + 1] if i + 1 < n else size
        line = text[start:end].rstrip("\r\n")
        if "\t" in line:
            line = line.expandtabs(4)  # only measured, never used for offsets
        if not line.strip():
            if region_start >= 0:
                regions.append((region_start, start))
                region_start = -1
            in_paragraph = False
            prev_blank = True
            i += 1
            continue
        stripped = line.lstrip(" ")
        if stripped[0] not in _BLOCK_STARTERS:
            # Fast path for the common line: plain text, no block syntax at all.
            if not in_paragraph:
                indent = len(line) - len(stripped)
                if lists and prev_blank:
                    while lists and indent < lists[-1]:
                        lists.pop()
                prev_blank = False
                if indent - (lists[-1] if lists else 0) >= 4:
                    i += 1  # an indented code line
                    continue
                if region_start < 0:
                    region_start = start
                in_paragraph = True
            i += 1
            continue
        body = line[_BLOCKQUOTE.match(line).end() :]  # type: ignore[union-attr]
        indent = len(body) - len(body.lstrip(" "))
        marker = _LIST_MARKER.match(body)
        if lists and (marker is not None or prev_blank):
            while lists and indent < lists[-1]:
                lists.pop()
        base = lists[-1] if lists else 0
        prev_blank = False
        block_end = -1  # set when this line starts a block with its own end
        skip = False
        fence = _FENCE_OPEN.match(body)
        if fence is not None and (fence.group(1)[0] == "~" or "`" not in fence.group(2)):
            close = _fence_close(fence.group(1)).search(text, end)
            i = n if close is None else bisect_right(starts, close.start())
            skip = True
        elif indent - base >= 4 and not in_paragraph:
            i += 1  # an indented code line
            skip = True
        elif _THEMATIC_BREAK.match(body):
            i += 1
            skip = True
        elif _ATX_HEADING.match(body):
            block_end = end
        elif _HTML_COMMENT_BLOCK.match(body):
            close_at = text.find("-->", text.find("<!--", start) + 2)
            block_end = size if close_at < 0 else close_at + 3
        elif raw := _HTML_RAW_BLOCK.match(body):
            close_tag = _close_tag(raw.group(1).lower()).search(text, start)
            block_end = size if close_tag is None else close_tag.end()
        if skip or block_end >= 0:
            if region_start >= 0:
                regions.append((region_start, start))
                region_start = -1
            in_paragraph = False
            if block_end >= 0:
                # The block owns the rest of its last line, as in CommonMark.
                i = bisect_right(starts, block_end - 1)
                regions.append((start, starts[i] if i < n else size))
            continue
        if marker is not None:
            spaces = marker.group(3)
            lists.append(indent + len(marker.group(2)) + (len(spaces) if spaces else 1))
        if region_start < 0:
            region_start = start
        in_paragraph = True
        i += 1
    if region_start >= 0:
        regions.append((region_start, size))
    return regions


@dataclass
class _Opener:
    """An unmatched ``[`` or ``![`` met by the inline scanner."""

    start: int
    text_start: int
    image: bool


class _Openers:
    """The stack of unmatched openers; closing a link deactivates the ``[`` below it.

    Deactivation is a mark (every link opener below ``floor`` is inactive), not a walk
    over the stack, so a run of links after many ``[`` stays linear.
    """

    def __init__(self) -> None:
        self.stack: list[_Opener] = []
        self.floor = 0

    def push(self, opener: _Opener) -> None:
        self.stack.append(opener)

    def pop(self) -> _Opener | None:
        """The innermost opener if it is still active; None otherwise (or when empty)."""
        if not self.stack:
            return None
        opener = self.stack.pop()
        index = len(self.stack)
        inactive = not opener.image and index < self.floor
        self.floor = min(self.floor, index)
        return None if inactive else opener

    def close_links(self) -> None:
        self.floor = len(self.stack)


class _Extractor:
    """Scans one document; holds the text, its line table and what was found."""

    def __init__(
        self,
        text: str,
        base_url: str | None,
        clock: Callable[[], float] = time.monotonic,
        deadline: float = float("inf"),
    ) -> None:
        self.text = text
        self.base_url = base_url
        self.clock = clock
        self.deadline = deadline
        # Offsets from which a search is known to find nothing: an unclosed ``<!--``
        # or code span searched again from later on would make the scan quadratic.
        self.no_close: dict[tuple[str, int], int] = {}
        self.line_starts = _line_starts(text)
        self.refs: list[Reference] = []
        self.warnings: list[ExtractWarning] = []
        self.ref_labels: set[str] = set()
        self.label_uses: dict[str, tuple[bool, str]] = {}

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

    def find_close(self, key: str, pattern: re.Pattern[str], pos: int, end: int) -> int:
        """Start of the first match of ``pattern`` in ``text[pos:end]``, or -1 (remembered)."""
        known = self.no_close.get((key, end))
        if known is not None and known <= pos:
            return -1
        m = pattern.search(self.text, pos, end)
        if m is None:
            self.no_close[(key, end)] = pos if known is None else min(pos, known)
            return -1
        return m.start()

    # ------------------------------------------------------------ emitting

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

    # ------------------------------------------------------------ Markdown

    def markdown(self) -> None:
        text = self.text
        body_start = self.front_matter()
        regions = _markdown_regions(text, self.line_starts, self.line_of(body_start) - 1, self.tick)
        definitions: list[re.Match[str]] = []
        for index, (start, end) in enumerate(regions):
            # Definitions can only open a paragraph; they are not inline content.
            pos = start
            while (m := _REFDEF.match(text, pos, end)) is not None and m.group(1).strip():
                self.tick()
                definitions.append(m)
                pos = m.end()
            regions[index] = (pos, end)
        self.ref_labels = {normalizeReference(m.group(1)) for m in definitions}
        for start, end in regions:
            if start < end:
                self.scan_inline(start, end)
        for m in definitions:
            self.tick()
            group = 2 if m.group(2) is not None else 3
            used_as_image, alt = self.label_uses.get(normalizeReference(m.group(1)), (False, ""))
            label = alt or " ".join(m.group(1).split())
            self.emit(
                m.start(group),
                m.end(group),
                "markdown-ref",
                label,
                image=used_as_image,
                markdown=True,
            )

    def scan_inline(
        self, start: int, end: int, *, kind: str | None = None, image: bool = False
    ) -> None:
        """Scans Markdown inline content (and raw HTML) in ``text[start:end]``.

        ``kind``/``image`` override the form for Markdown embedded in front matter.
        """
        text = self.text
        masks: list[tuple[int, int]] = []
        openers = _Openers()
        pos = start
        while True:
            self.tick()
            m = _TRIGGER.search(text, pos, end)
            if m is None:
                break
            token = m.group()
            first = token[0]
            if first == "\\":
                pos = m.end()
            elif first == "`":
                close = self.find_close(token, _backtick_close(len(token)), m.end(), end)
                if close < 0:
                    pos = m.end()
                else:
                    masks.append((m.start(), close + len(token)))
                    pos = close + len(token)
            elif first == "<":
                pos = self.angle(m.start(), end, masks, kind=kind)
            elif token == "]":
                pos = self.close_bracket(openers, m.start(), end, masks, kind=kind, image=image)
            else:
                openers.push(_Opener(m.start(), m.end(), token == "!["))
                pos = m.end()
        self.bare_urls(start, end, masks, kind=kind, image=image)

    def angle(self, start: int, end: int, masks: list[tuple[int, int]], *, kind: str | None) -> int:
        """Handles ``<`` at ``start``: comment, autolink, tag; returns where to go on."""
        text = self.text
        if text.startswith("<!--", start):
            close = self.find_close("-->", _COMMENT_CLOSE, start + 2, end)
            if close < 0:
                return start + 1
            masks.append((start, close + 3))
            return close + 3
        m = _AUTOLINK.match(text, start, end)
        if m is not None:
            self.emit(m.start(1), m.end(1), kind or "autolink", "", image=False, markdown=False)
            masks.append((start, m.end()))
            return m.end()
        m = _EMAIL_AUTOLINK.match(text, start, end) or _CLOSE_TAG.match(text, start, end)
        if m is not None:
            masks.append((start, m.end()))
            return m.end()
        # A start tag that runs to the end of the region without its ``>`` makes every
        # later ``<`` in it fail too (as in a browser, where it eats the rest): said once.
        dead = self.no_close.get((">", end))
        if dead is not None and dead <= start:
            return start + 1
        tag = _parse_tag(text, start, end, self.tick)
        if tag is None or isinstance(tag, int):
            if tag is not None:
                self.no_close[(">", end)] = start if dead is None else min(start, dead)
            return start + 1
        name, attrs, tag_end = tag
        masks.append((start, tag_end))
        if name in _RAW_TEXT_TAGS:
            raw_start = self.find_close("</" + name, _close_tag(name), tag_end, end)
            if raw_start >= 0:
                raw_end = _close_tag(name).match(text, raw_start)
                assert raw_end is not None
                masks.append((tag_end, raw_end.end()))
                return raw_end.end()
            return tag_end
        link_text = ""
        if name == "a":
            # Link text is only a label: looked for within a bounded window, so a run of
            # unclosed <a> tags costs linear time.
            window = min(end, tag_end + _LINK_TEXT_WINDOW)
            a_end = _close_tag("a").search(text, tag_end, window)
            if a_end is not None:
                link_text = " ".join(_TAG_TEXT.sub("", text[tag_end : a_end.start()]).split())
        self.tag(name, attrs, link_text, kind=kind)
        return tag_end

    def close_bracket(
        self,
        openers: _Openers,
        pos: int,
        end: int,
        masks: list[tuple[int, int]],
        *,
        kind: str | None,
        image: bool,
    ) -> int:
        """Handles ``]``: an inline link or image, a reference use, or plain text."""
        opener = openers.pop()
        if opener is None:
            return pos + 1
        text = self.text
        after = pos + 1
        label_text = text[opener.text_start : pos]
        if after < end and text[after] == "(":
            dest = _inline_destination(text, after + 1, end)
            if dest is not None:
                dest_start, dest_end, close = dest
                self.emit(
                    dest_start,
                    dest_end,
                    kind or ("markdown-image" if opener.image else "markdown-link"),
                    " ".join(label_text.split()),
                    image=opener.image or image,
                    markdown=True,
                )
                masks.append((after, close))
                if not opener.image:
                    openers.close_links()  # links may not contain links
                return close
        if not self.ref_labels:
            return after
        label = label_text
        next_pos = after
        if after < end and text[after] == "[":
            m = _LABEL.match(text, after, end)
            if m is not None:
                next_pos = m.end()
                if m.group(1).strip():
                    label = m.group(1)
        key = normalizeReference(label)
        if key not in self.ref_labels:
            return after
        if opener.image and not self.label_uses.get(key, (False, ""))[0]:
            self.label_uses[key] = (True, " ".join(label_text.split()))
        elif key not in self.label_uses:
            self.label_uses[key] = (False, "")
        if not opener.image:
            openers.close_links()
        return next_pos

    def bare_urls(
        self,
        start: int,
        end: int,
        masks: list[tuple[int, int]],
        *,
        kind: str | None,
        image: bool,
    ) -> None:
        """Finds ``http(s)://`` URLs in plain text, outside everything already parsed."""
        text = self.text
        if "//" not in text[start:end]:
            return
        masks.sort()
        mask_index = 0
        pos = start
        while True:
            self.tick()
            m = _BARE_URL_START.search(text, pos, end)
            if m is None:
                return
            url_start = m.start()
            while mask_index < len(masks) and masks[mask_index][1] <= url_start:
                mask_index += 1
            if mask_index < len(masks) and masks[mask_index][0] <= url_start:
                pos = masks[mask_index][1]
                continue
            full = _BARE_URL.match(text, url_start, end)
            if full is None:
                pos = m.end()
                continue
            url_end = full.end()
            if mask_index < len(masks):
                url_end = min(url_end, masks[mask_index][0])
            url_end = _trim_bare_url(text, url_start, url_end)
            self.emit(url_start, url_end, kind or "bare-url", "", image=image, markdown=True)
            pos = max(url_end, m.end())

    # ------------------------------------------------------------ HTML

    def tag(
        self, name: str, attrs: list[tuple[str, int, int]], link_text: str, *, kind: str | None
    ) -> None:
        """Emits the URLs one HTML start tag carries."""
        text = self.text
        values = {attr: text[s:e] for attr, s, e in attrs}
        alt = decode_entities(values.get("alt", "")).strip()
        for attr, s, e in attrs:
            if attr == "style":
                self.css_urls(s, e, kind=kind)
            elif name in ("img", "image") and attr in ("src", "data-src", "data-original"):
                self.emit(s, e, kind or "html-img", alt, image=True, markdown=False)
            elif name in ("img", "image", "source") and attr in ("srcset", "data-srcset"):
                self.srcset(s, e, alt, kind=kind)
            elif name == "source" and attr == "src":
                self.emit(s, e, kind or "html-source", "", image=False, markdown=False)
            elif name == "a" and attr == "href":
                self.emit(s, e, kind or "html-a", link_text, image=False, markdown=False)
            elif name == "object" and attr == "data":
                self.emit(s, e, kind or "html-object", "", image=False, markdown=False)
            elif name == "embed" and attr == "src":
                self.emit(s, e, kind or "html-embed", "", image=False, markdown=False)
            elif name == "iframe" and attr == "src":
                label = decode_entities(values.get("title", ""))
                self.emit(
                    s, e, kind or "html-iframe", label, image=False, markdown=False, pdf_only=True
                )
            elif name == "meta" and attr == "content":
                prop = values.get("property") or values.get("name") or ""
                if decode_entities(prop).strip().lower() in _META_IMAGE_NAMES:
                    self.emit(s, e, kind or "html-meta", "", image=True, markdown=False)

    def srcset(self, start: int, end: int, alt: str, *, kind: str | None) -> None:
        """Emits every candidate URL of a ``srcset`` (HTML's parsing rules, simplified)."""
        text = self.text
        pos = start
        while pos < end:
            self.tick()
            while pos < end and (text[pos] in _SRCSET_WS or text[pos] == ","):
                pos += 1
            url_start = pos
            while pos < end and text[pos] not in _SRCSET_WS:
                pos += 1
            url_end = pos
            trailing_comma = False
            while url_end > url_start and text[url_end - 1] == ",":
                url_end -= 1
                trailing_comma = True
            if url_end > url_start:
                self.emit(
                    url_start, url_end, kind or "html-srcset", alt, image=True, markdown=False
                )
            if not trailing_comma:  # skip the descriptors up to the next comma
                depth = 0
                while pos < end and (text[pos] != "," or depth):
                    depth += {"(": 1, ")": -1}.get(text[pos], 0)
                    pos += 1

    def css_urls(self, start: int, end: int, *, kind: str | None) -> None:
        """Emits ``url(...)`` values of a style attribute (backgrounds are images)."""
        for m in _CSS_URL.finditer(self.text, start, end):
            self.tick()
            group = 2 if m.group(1) is not None else 3
            self.emit(
                m.start(group), m.end(group), kind or "css-url", "", image=True, markdown=False
            )

    def html_document(self) -> None:
        # bs4 is imported here, not at the top: most runs read only Markdown, and its
        # import (with soupsieve) is a fifth of archiver's start-up time.
        from bs4 import Tag

        text = self.text
        try:
            soup = _soup_class()(text, self.tick)
        except OverBudget:
            raise
        except Exception as exc:  # html.parser is lenient; this is a last resort
            self.warn(0, f"HTML could not be parsed: {exc}")
            return
        base = soup.find("base", href=True)
        if isinstance(base, Tag):
            href = decode_entities(str(base.get("href", ""))).strip()
            if href:
                self.base_url = urljoin(self.base_url, href) if self.base_url else href
        newline_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        # Whether an element is inside <pre>, <script>, ... is carried down the tree as it
        # is walked (parents come first), not found by walking up from each element:
        # that was quadratic in the nesting depth.
        raw_text: set[int] = set()
        for element in soup.find_all(True):
            self.tick()
            parent = element.parent
            if parent is not None and (id(parent) in raw_text or parent.name in _RAW_TEXT_TAGS):
                raw_text.add(id(element))
                continue
            if element.sourceline is None or element.sourcepos is None:
                continue
            offset = newline_starts[element.sourceline - 1] + element.sourcepos
            parsed = _parse_tag(text, offset, len(text), self.tick)
            if parsed is None or isinstance(parsed, int):
                self.warn(offset, f"could not read the <{element.name}> tag")
                continue
            name, attrs, _ = parsed
            link_text = _link_text(element) if name == "a" else ""
            self.tag(name, attrs, link_text, kind=None)

    # ------------------------------------------------------------ front matter

    def front_matter(self) -> int:
        """Extracts front-matter references; returns the offset where the body starts."""
        text = self.text
        offset = 1 if text.startswith("\ufeff") else 0
        content_start = self.line_starts[1] if len(self.line_starts) > 1 else len(text)
        fence = text[offset:content_start].rstrip("\r\n").rstrip(" \t")
        if fence not in ("---", "+++"):
            return 0
        closing = re.compile(
            r"^(?:---|\.\.\.)[ \t]*\r?$" if fence == "---" else r"^\+\+\+[ \t]*\r?$", re.MULTILINE
        )
        close = closing.search(text, content_start)
        if close is None:
            self.warn(
                offset, f"front matter opened with {fence!r} is never closed; read as Markdown"
            )
            return 0
        content_end = close.start()
        body_start = close.end()
        if body_start < len(text) and text[body_start] == "\r":
            body_start += 1
        if body_start < len(text) and text[body_start] == "\n":
            body_start += 1
        if fence == "---":
            self.yaml_front_matter(content_start, content_end)
        else:
            self.toml_front_matter(content_start, content_end)
        return body_start

    def yaml_front_matter(self, start: int, end: int) -> None:
        import yaml  # only posts with YAML front matter pay for PyYAML's import

        source = self.text[start:end]
        try:
            over = _yaml_over_budget(source)
            if over is not None:
                self.warn(start, f"front matter {over}; its links are skipped")
                return
            node = yaml.compose(source, Loader=_yaml_loader())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = start + (mark.index if mark is not None else 0)
            # Hugo's YAML reader accepts trailing tabs that PyYAML rejects; blanking
            # them keeps every offset.
            lenient = re.sub(r"[ \t]+$", lambda m: " " * len(m.group()), source, flags=re.M)
            try:
                over = _yaml_over_budget(lenient)
                if over is not None:
                    self.warn(start, f"front matter {over}; its links are skipped")
                    return
                node = yaml.compose(lenient, Loader=_yaml_loader())
            except yaml.YAMLError:
                # No guessing at fields: a line-by-line reading of broken YAML turned
                # `cover: [https://...` under an unclosed quote into a bogus file: link.
                self.warn(
                    where,
                    f"front matter is not valid YAML ({_first_line(exc)}); no links read from it",
                )
                return
            self.warn(
                where,
                f"front matter is not valid YAML ({_first_line(exc)}); "
                "read after blanking trailing whitespace",
            )
        if node is not None:
            for key, scalar in _yaml_strings(node, ""):
                s = start + scalar.start_mark.index
                e = start + scalar.end_mark.index
                if scalar.style in ('"', "'") and e - s >= 2:
                    s, e = s + 1, e - 1
                self.front_matter_value(key, scalar.value, s, e)

    def toml_front_matter(self, start: int, end: int) -> None:
        source = self.text[start:end]
        try:
            data = tomllib.loads(source)
            if _nesting(data) > FRONT_MATTER_MAX_DEPTH:
                raise RecursionError
        except RecursionError:
            # tomllib recurses once per level; past Python's limit it raises this.
            self.warn(start, f"front matter {_TOO_DEEP}; its links are skipped")
            return
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            line_offset = int(m.group(1)) - 1 if m else 0
            where = self.line_starts[
                min(self.line_of(start) - 1 + line_offset, len(self.line_starts) - 1)
            ]
            self.warn(where, f"front matter is not valid TOML ({exc}); no links read from it")
            return
        cursor = start
        for key, value in _toml_strings(data, ""):
            found = self.text.find(value, cursor, end)
            if found < 0:
                found = self.text.find(value, start, end)
            if found < 0:
                if _front_matter_candidate(key, value.strip()):
                    self.warn(start, f"front-matter value of {key!r} could not be located")
                continue
            cursor = found + len(value)
            self.front_matter_value(key, value, found, found + len(value))

    def front_matter_value(self, key: str, value: str, start: int, end: int) -> None:
        """Emits a front-matter string if it is an asset URL or holds Markdown links."""
        stripped = value.strip()
        if not stripped:
            return
        kind = f"front-matter:{key}"
        image = _is_image_key(key)
        if "](" in stripped or "<" in stripped:
            self.scan_inline(start, end, kind=kind, image=image)
            return
        if not _front_matter_candidate(key, stripped):
            return
        raw = self.text[start:end]
        if raw.strip() != stripped:
            found = raw.find(stripped)
            if found < 0:
                self.warn(start, f"front-matter value of {key!r} could not be located")
                return
            start += found
            end = start + len(stripped)
        self.emit(start, end, kind, "", image=image, markdown=False)


def normalizeReference(label: str) -> str:
    """CommonMark's label matching (markdown-it's), imported only when a post has labels."""
    from markdown_it.common.utils import normalizeReference as normalize

    return normalize(label)


@functools.cache
def _yaml_loader() -> type[yaml.SafeLoader]:
    import yaml

    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return loader


@functools.cache
def _soup_class() -> Callable[[str, Callable[[], None]], bs4.BeautifulSoup]:
    """BeautifulSoup (html.parser) that ticks the post's budget once per tag and text.

    The parse is the costliest step for tag-dense HTML, and would otherwise run to its
    end however long it takes.
    """
    from bs4 import BeautifulSoup

    class _Soup(BeautifulSoup):
        def __init__(self, markup: str, tick: Callable[[], None]) -> None:
            self._tick = tick
            super().__init__(markup, "html.parser")

        def handle_starttag(self, *args: Any, **kwargs: Any) -> bs4.Tag | None:
            self._tick()
            return super().handle_starttag(*args, **kwargs)

        def handle_data(self, data: str) -> None:
            self._tick()
            super().handle_data(data)

    return _Soup


def _link_text(element: bs4.Tag) -> str:
    """An ``<a>``'s text as ``get_text(" ", strip=True)`` gives it, cut at 200 characters.

    Reads a bounded number of descendants, walked by hand: 10,000 nested ``<a>`` would
    otherwise read the whole subtree once per ``<a>`` (and bs4's ``descendants`` starts
    by finding the last one, itself a walk to the bottom).
    """
    from bs4.element import NavigableString, Tag

    parts: list[str] = []
    length = 0
    todo = list(reversed(element.contents))
    for _ in range(_LINK_TEXT_NODES):
        if not todo or length >= 200:
            break
        node = todo.pop()
        if isinstance(node, Tag):
            todo.extend(reversed(node.contents))
        elif type(node) is NavigableString:  # not comments, CDATA or doctype
            piece = node.strip()
            if piece:
                parts.append(piece)
                length += len(piece) + 1
    return " ".join(parts)[:200]


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split("\n")[0].split())


def _front_matter_candidate(key: str, value: str) -> bool:
    """Whether a front-matter string could be an asset URL at all."""
    if any(c.isspace() for c in value):
        # "Talk about a.png" is a title; "https://x/EnvoyCon UDPA 2019.pdf" is a URL.
        looks_like_url = SCHEME.match(value) is not None or value.startswith(("/", "./", "../"))
        return looks_like_url and extension(value) in ASSET_EXTENSIONS
    if is_asset_url(value):
        return True
    # An image-like key makes an extension-less URL an image, but not a bare word
    # such as ``icon: rocket`` (an icon-font name).
    return _is_image_key(key) and ("://" in value or value.startswith("//") or "/" in value)


def _yaml_strings(node: yaml.Node, key: str) -> Iterator[tuple[str, yaml.ScalarNode]]:
    """String scalars of a composed YAML document with their nearest mapping key."""
    import yaml

    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:str":
            yield key, node
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _yaml_strings(item, key)
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else key
            yield from _yaml_strings(value_node, name)


_TOO_DEEP = f"is nested deeper than {FRONT_MATTER_MAX_DEPTH} levels"


def _yaml_over_budget(source: str) -> str | None:
    """Why YAML front matter is refused before it is composed, or None when it may be.

    One pass over the parser's events (libyaml's parser keeps its own stack, so it does
    not recurse): the nesting depth as a loader would build it (aliases included) and
    how many nodes aliases would add. Composing only shares nodes, but whatever walks
    the result (PyYAML's constructor, ``_yaml_strings``) expands every alias.
    """
    import yaml

    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, height) once complete
    stack: list[list[int | str | None]] = []  # open collections: [anchor, nodes, height]
    added = 0

    def done(anchor: str | None, nodes: int, height: int) -> str | None:
        if anchor is not None:
            sizes[anchor] = (nodes, height)
        if len(stack) + height > FRONT_MATTER_MAX_DEPTH:
            return _TOO_DEEP
        if stack:
            parent = stack[-1]
            parent[1] = int(parent[1] or 0) + nodes
            parent[2] = max(int(parent[2] or 0), height + 1)
        return None

    try:
        events = list(yaml.parse(source, Loader=_yaml_loader()))
    except yaml.YAMLError as exc:
        # libyaml has a depth limit of its own, met while scanning ahead in flow style.
        if "maximum nesting depth" in str(exc):
            return _TOO_DEEP
        raise
    for event in events:
        why: str | None = None
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1, 1])
            why = _TOO_DEEP if len(stack) > FRONT_MATTER_MAX_DEPTH else None
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, nodes, height = stack.pop()
            why = done(
                anchor if isinstance(anchor, str) else None, int(nodes or 0), int(height or 0)
            )
        elif isinstance(event, yaml.ScalarEvent):
            why = done(event.anchor, 1, 0)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:  # unknown, or an alias inside its own anchor
                return "has a recursive YAML alias"
            nodes, height = sizes[event.anchor]
            added += nodes
            if added > YAML_ALIAS_BUDGET:
                return f"expands YAML aliases past {YAML_ALIAS_BUDGET} nodes"
            why = done(None, nodes, height)
        if why is not None:
            return why
    return None


def _nesting(value: object) -> int:
    """How deeply lists and tables nest in parsed TOML (iterative: no recursion limit)."""
    deepest = 0
    todo: list[tuple[object, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            if deepest > FRONT_MATTER_MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            todo.extend((child, depth + 1) for child in children)
    return deepest


def _toml_strings(value: object, key: str) -> Iterator[tuple[str, str]]:
    """String values of parsed TOML with their nearest key, in document order."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, list):
        for item in value:
            yield from _toml_strings(item, key)
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _toml_strings(item, str(name))


def _parse_tag(
    text: str, start: int, end: int, tick: Callable[[], None] | None = None
) -> tuple[str, list[tuple[str, int, int]], int] | int | None:
    """Reads an HTML start tag at ``start``: name, (attr, value start, value end), tag end.

    Lenient like browsers: unquoted values, missing spaces. Value spans exclude quotes.
    None when it is no tag; ``end`` when it runs to ``end`` without closing.
    """
    m = _OPEN_TAG.match(text, start, end)
    if m is None:
        return None
    name = m.group(1).lower()
    attrs: list[tuple[str, int, int]] = []
    pos = m.end()
    while pos < end:
        if tick is not None:
            tick()
        while pos < end and (text[pos].isspace() or text[pos] == "/"):
            pos += 1
        if pos >= end:
            return end
        if text[pos] == ">":
            return name, attrs, pos + 1
        a = _ATTR.match(text, pos, end)
        if a is None or a.end() == pos:
            return None
        value = a.group(2)
        if value is not None:
            vs, ve = a.start(2), a.end(2)
            if value[:1] in ("'", '"') and len(value) >= 2 and value[-1] == value[0]:
                vs, ve = vs + 1, ve - 1
            attrs.append((a.group(1).lower(), vs, ve))
        pos = a.end()
    return end


@functools.cache
def _backtick_close(length: int) -> re.Pattern[str]:
    """The closing run for a code span opened by ``length`` backticks."""
    return re.compile(f"(?<!`)`{{{length}}}(?!`)")


@functools.cache
def _close_tag(name: str) -> re.Pattern[str]:
    return re.compile(rf"</{name}\s*>", re.IGNORECASE)


def _skip_ws(text: str, pos: int, end: int) -> int:
    """Offset after spaces/tabs and at most one line break (CommonMark link whitespace)."""
    m = _WS.match(text, pos, end)
    return m.end() if m is not None else pos


def _inline_destination(text: str, pos: int, end: int) -> tuple[int, int, int] | None:
    """Parses ``dest "title")`` after ``](``: (dest start, dest end, offset after ``)``)."""
    i = _skip_ws(text, pos, end)
    m = _ANGLE_DEST.match(text, i, end) or _PLAIN_DEST.match(text, i, end)
    if m is not None:
        dest_start, dest_end, i = m.start(1), m.end(1), m.end()
    else:
        dest_start = dest_end = i
    j = _skip_ws(text, i, end)
    if j < end and text[j] == ")":
        return dest_start, dest_end, j + 1
    if j > i or m is None:
        title = _TITLE.match(text, j, end)
        if title is not None:
            k = _skip_ws(text, title.end(), end)
            if k < end and text[k] == ")":
                return dest_start, dest_end, k + 1
    lenient = _LENIENT_DEST.match(text, pos, end)
    if lenient is not None:
        dest = lenient.group(1)
        if " " in dest and (
            SCHEME.match(dest)
            or dest.startswith(("/", "./", "../"))
            or extension(dest) in ASSET_EXTENSIONS
        ):
            return lenient.start(1), lenient.end(1), lenient.end()
    return None


def _trim_bare_url(text: str, start: int, end: int) -> int:
    """Drops trailing punctuation and unbalanced closing brackets, like GFM autolinks."""
    # Counted once and kept up to date: recounting per bracket was quadratic.
    segment = text[start:end]
    excess = {
        ")": segment.count(")") - segment.count("("),
        "]": segment.count("]") - segment.count("["),
    }
    while end > start:
        last = text[end - 1]
        if last in _TRAILING_PUNCT:
            end -= 1
        elif last in ")]" and excess[last] > 0:
            excess[last] -= 1
            end -= 1
        else:
            break
    return end


def extract(
    text: str,
    fmt: Format,
    *,
    base_url: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Extraction:
    """Finds every PDF and image reference in a post's text, in source order.

    Relative references are made absolute against ``base_url`` (or an HTML
    ``<base href>``); without one they come back with ``relative=True``. A post longer
    than MAX_POST_CHARS, or not read within ``post_budget`` seconds of ``clock``, comes
    back ``skipped`` with one warning and no references.
    """
    if len(text) > MAX_POST_CHARS:
        limit = MAX_POST_CHARS // (1024 * 1024)
        return _skipped(f"post is larger than {limit} MiB; skipped, its earlier links kept")
    extractor = _Extractor(text, base_url, clock, clock() + post_budget(len(text)))
    try:
        if fmt == "html":
            extractor.html_document()
        else:
            extractor.markdown()
    except OverBudget:
        seconds = post_budget(len(text))
        return _skipped(
            f"post could not be read within its budget ({seconds:.1f} s);"
            " skipped, its earlier links kept"
        )
    references = sorted(extractor.refs, key=lambda r: (r.start, r.end))
    return Extraction(references, extractor.warnings)


def _skipped(message: str) -> Extraction:
    return Extraction([], [ExtractWarning(0, message)], skipped=True)
