"""Markdown: the references in a post's body, and in Markdown held by its front matter.

A line scanner finds the block structure extraction needs (code blocks to skip,
paragraphs, headings, table rows and HTML blocks to read); an inline scanner then
walks those ranges of the original text for links, images, reference definitions,
autolinks, raw HTML (read by ``html.tag``), comments, code spans and bare URLs.
Offsets stay exact and each document is read once. (markdown-it-py was the first
block parser; it was several times slower and produced identical results on the
corpus. Tests compare the two on tricky block structure.)
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from archiver.extract import frontmatter, html
from archiver.extract.document import Document
from archiver.extract.urls import ASSET_EXTENSIONS, SCHEME, extension

__all__ = ["read"]

_TRIGGER = re.compile(r"\\[!-/:-@\[-`{-~]|`+|<|!\[|\[|\]")
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\x00-\x20<>]*)>")
_EMAIL_AUTOLINK = re.compile(r"<[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-]+@[A-Za-z0-9.\-]+>")
_CLOSE_TAG = re.compile(r"</[A-Za-z][A-Za-z0-9\-]*\s*>")
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
_TAG_TEXT = re.compile(r"<[^>]*>")
_COMMENT_CLOSE = re.compile("-->")
_LINK_TEXT_WINDOW = 4096  # characters after <a ...> searched for its </a>

_BLOCK_STARTERS = frozenset("`~-*+_#<>0123456789")
_BLOCKQUOTE = re.compile(r"(?:[ ]{0,3}>[ ]?)*")
_FENCE_OPEN = re.compile(r"[ ]*(?:(?:[-+*]|\d{1,9}[.)])[ ]+)?(`{3,}|~{3,})([^\r\n]*)")
_LIST_MARKER = re.compile(r"([ ]*)([-+*]|\d{1,9}[.)])(?:([ ]{1,4})(?=\S)|[ ]*$)")
_THEMATIC_BREAK = re.compile(r"[ ]{0,3}([-*_])(?:[ ]*\1){2,}[ ]*$")
_ATX_HEADING = re.compile(r"[ ]{0,3}#{1,6}(?:[ ]|$)")
_HTML_RAW_BLOCK = re.compile(r"[ ]{0,3}<(pre|script|style|textarea)(?=[\s>]|$)", re.IGNORECASE)
_HTML_COMMENT_BLOCK = re.compile(r"[ ]{0,3}<!--")


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
            close_tag = html.close_tag(raw.group(1).lower()).search(text, start)
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


class _Inline:
    """Markdown's inline scanner over one document, with what it learnt of the text.

    One per document: front-matter values are scanned before the body, and the
    memo of searches that found nothing (``no_close``) is shared by both.
    """

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.text = doc.text
        self.tick = doc.tick
        self.emit = doc.emit
        # Offsets from which a search is known to find nothing: an unclosed ``<!--``
        # or code span searched again from later on would make the scan quadratic.
        self.no_close: dict[tuple[str, int], int] = {}
        self.ref_labels: set[str] = set()
        self.label_uses: dict[str, tuple[bool, str]] = {}

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
        tag = html.parse_tag(text, start, end, self.tick)
        if tag is None or isinstance(tag, int):
            if tag is not None:
                self.no_close[(">", end)] = start if dead is None else min(start, dead)
            return start + 1
        name, attrs, tag_end = tag
        masks.append((start, tag_end))
        if name in html.RAW_TEXT_TAGS:
            raw_start = self.find_close("</" + name, html.close_tag(name), tag_end, end)
            if raw_start >= 0:
                raw_end = html.close_tag(name).match(text, raw_start)
                assert raw_end is not None
                masks.append((tag_end, raw_end.end()))
                return raw_end.end()
            return tag_end
        link_text = ""
        if name == "a":
            # Link text is only a label: looked for within a bounded window, so a run of
            # unclosed <a> tags costs linear time.
            window = min(end, tag_end + _LINK_TEXT_WINDOW)
            a_end = html.close_tag("a").search(text, tag_end, window)
            if a_end is not None:
                link_text = " ".join(_TAG_TEXT.sub("", text[tag_end : a_end.start()]).split())
        html.tag(self.doc, name, attrs, link_text, kind=kind)
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


def read(doc: Document) -> None:
    """Reads a Markdown post: its front matter, then the body."""
    inline = _Inline(doc)
    text = doc.text
    body_start = frontmatter.read(doc, inline.scan_inline)
    regions = _markdown_regions(text, doc.line_starts, doc.line_of(body_start) - 1, doc.tick)
    definitions: list[re.Match[str]] = []
    for index, (start, end) in enumerate(regions):
        # Definitions can only open a paragraph; they are not inline content.
        pos = start
        while (m := _REFDEF.match(text, pos, end)) is not None and m.group(1).strip():
            doc.tick()
            definitions.append(m)
            pos = m.end()
        regions[index] = (pos, end)
    inline.ref_labels = {normalizeReference(m.group(1)) for m in definitions}
    for start, end in regions:
        if start < end:
            inline.scan_inline(start, end)
    for m in definitions:
        doc.tick()
        group = 2 if m.group(2) is not None else 3
        used_as_image, alt = inline.label_uses.get(normalizeReference(m.group(1)), (False, ""))
        label = alt or " ".join(m.group(1).split())
        doc.emit(
            m.start(group),
            m.end(group),
            "markdown-ref",
            label,
            image=used_as_image,
            markdown=True,
        )


def normalizeReference(label: str) -> str:
    """CommonMark's label matching (markdown-it's), imported only when a post has labels."""
    from markdown_it.common.utils import normalizeReference as normalize

    return normalize(label)


@functools.cache
def _backtick_close(length: int) -> re.Pattern[str]:
    """The closing run for a code span opened by ``length`` backticks."""
    return re.compile(f"(?<!`)`{{{length}}}(?!`)")


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
