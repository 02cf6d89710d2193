"""HTML: the URLs a start tag carries (``src``, ``href``, ``srcset``, CSS ``url()``, ...).

Tags are read from the original text by ``parse_tag``, so value spans are exact. An
HTML document is walked with BeautifulSoup (html.parser) only to find where its
elements start; raw HTML inside Markdown is read by the Markdown scanner, which calls
``tag`` for each start tag it meets.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from archiver.extract.budget import OverBudget
from archiver.extract.document import Document
from archiver.extract.urls import decode_entities

if TYPE_CHECKING:
    import bs4

__all__ = ["RAW_TEXT_TAGS", "close_tag", "parse_tag", "read_document", "tag"]

_OPEN_TAG = re.compile(r"<([A-Za-z][A-Za-z0-9\-]*)(?=[\s/>])")
_ATTR = re.compile(r"""[\s/]*([^\s"'>/=]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")
RAW_TEXT_TAGS = frozenset({"pre", "code", "script", "style", "textarea"})
"""Elements whose content is text, not markup: nothing inside them is a reference."""
# A quoted value never runs past its closing quote, nor an unquoted one past ``(``:
# with ``.*?`` a run of ``url(`` was searched to its end from each one (quadratic).
_CSS_URL = re.compile(
    r"url\(\s*(?:(\"|'|&quot;|&#0*34;|&#0*39;|&apos;)((?:(?!\1).)*)\1|([^()\s\"']*))\s*\)",
    re.IGNORECASE | re.DOTALL,
)
_SRCSET_WS = " \t\n\r\f"
_LINK_TEXT_NODES = 32  # descendants of an HTML <a> read for its link text
_META_IMAGE_NAMES = frozenset(
    {"og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"}
)


def tag(
    doc: Document,
    name: str,
    attrs: list[tuple[str, int, int]],
    link_text: str,
    *,
    kind: str | None,
) -> None:
    """Emits the URLs one HTML start tag carries."""
    text = doc.text
    values = {attr: text[s:e] for attr, s, e in attrs}
    alt = decode_entities(values.get("alt", "")).strip()
    for attr, s, e in attrs:
        if attr == "style":
            css_urls(doc, s, e, kind=kind)
        elif name in ("img", "image") and attr in ("src", "data-src", "data-original"):
            doc.emit(s, e, kind or "html-img", alt, image=True, markdown=False)
        elif name in ("img", "image", "source") and attr in ("srcset", "data-srcset"):
            srcset(doc, s, e, alt, kind=kind)
        elif name == "source" and attr == "src":
            doc.emit(s, e, kind or "html-source", "", image=False, markdown=False)
        elif name == "a" and attr == "href":
            doc.emit(s, e, kind or "html-a", link_text, image=False, markdown=False)
        elif name == "object" and attr == "data":
            doc.emit(s, e, kind or "html-object", "", image=False, markdown=False)
        elif name == "embed" and attr == "src":
            doc.emit(s, e, kind or "html-embed", "", image=False, markdown=False)
        elif name == "iframe" and attr == "src":
            label = decode_entities(values.get("title", ""))
            doc.emit(s, e, kind or "html-iframe", label, image=False, markdown=False, pdf_only=True)
        elif name == "meta" and attr == "content":
            prop = values.get("property") or values.get("name") or ""
            if decode_entities(prop).strip().lower() in _META_IMAGE_NAMES:
                doc.emit(s, e, kind or "html-meta", "", image=True, markdown=False)


def srcset(doc: Document, start: int, end: int, alt: str, *, kind: str | None) -> None:
    """Emits every candidate URL of a ``srcset`` (HTML's parsing rules, simplified)."""
    text = doc.text
    pos = start
    while pos < end:
        doc.tick()
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
            doc.emit(url_start, url_end, kind or "html-srcset", alt, image=True, markdown=False)
        if not trailing_comma:  # skip the descriptors up to the next comma
            depth = 0
            while pos < end and (text[pos] != "," or depth):
                depth += {"(": 1, ")": -1}.get(text[pos], 0)
                pos += 1


def css_urls(doc: Document, start: int, end: int, *, kind: str | None) -> None:
    """Emits ``url(...)`` values of a style attribute (backgrounds are images)."""
    for m in _CSS_URL.finditer(doc.text, start, end):
        doc.tick()
        group = 2 if m.group(1) is not None else 3
        doc.emit(m.start(group), m.end(group), kind or "css-url", "", image=True, markdown=False)


def read_document(doc: Document) -> None:
    """Reads an HTML post: every element's start tag, outside raw-text elements."""
    # bs4 is imported here, not at the top: most runs read only Markdown, and its
    # import (with soupsieve) is a fifth of archiver's start-up time.
    from bs4 import Tag

    text = doc.text
    try:
        soup = _soup_class()(text, doc.tick)
    except OverBudget:
        raise
    except Exception as exc:  # html.parser is lenient; this is a last resort
        doc.warn(0, f"HTML could not be parsed: {exc}")
        return
    base = soup.find("base", href=True)
    if isinstance(base, Tag):
        href = decode_entities(str(base.get("href", ""))).strip()
        if href:
            doc.base_url = urljoin(doc.base_url, href) if doc.base_url else href
    newline_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    # Whether an element is inside <pre>, <script>, ... is carried down the tree as it
    # is walked (parents come first), not found by walking up from each element:
    # that was quadratic in the nesting depth.
    raw_text: set[int] = set()
    for element in soup.find_all(True):
        doc.tick()
        parent = element.parent
        if parent is not None and (id(parent) in raw_text or parent.name in RAW_TEXT_TAGS):
            raw_text.add(id(element))
            continue
        if element.sourceline is None or element.sourcepos is None:
            continue
        offset = newline_starts[element.sourceline - 1] + element.sourcepos
        parsed = parse_tag(text, offset, len(text), doc.tick)
        if parsed is None or isinstance(parsed, int):
            doc.warn(offset, f"could not read the <{element.name}> tag")
            continue
        name, attrs, _ = parsed
        link_text = _link_text(element) if name == "a" else ""
        tag(doc, name, attrs, link_text, kind=None)


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


def parse_tag(
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
def close_tag(name: str) -> re.Pattern[str]:
    """The end tag ``</name>`` (any case, spaces before ``>``)."""
    return re.compile(rf"</{name}\s*>", re.IGNORECASE)
