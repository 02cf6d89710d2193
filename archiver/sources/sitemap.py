"""Sitemaps and RSS/Atom feeds: documents that list a site's pages.

Owns telling such a document from an HTML page by its content, unpacking a
gzipped one within a size cap, and reading the page URLs (and, for a sitemap
index, the child sitemaps) out of it. Pure functions over bytes: this module
never touches the network, and a document it cannot read is an empty
``Listing`` with a ``problem``, not an exception.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin
from xml.etree import ElementTree as ET

__all__ = ["Listing", "document_kind", "gunzip", "is_gzip", "parse_feed", "parse_sitemap"]

DocumentKind = Literal["sitemap", "feed", "html"]

_SITEMAP_ROOTS = frozenset({"urlset", "sitemapindex"})
_FEED_ROOTS = frozenset({"rss", "feed", "rdf"})
# The first element of a document, after an XML declaration, comments and a DOCTYPE.
_FIRST_ELEMENT = re.compile(
    rb"\A(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*<([A-Za-z_][\w.:-]*)",
    re.DOTALL | re.IGNORECASE,
)


@dataclass
class Listing:
    """What a sitemap or feed lists: pages, child sitemaps, and why it could not be read."""

    pages: list[str] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)
    problem: str | None = None


def is_gzip(body: bytes) -> bool:
    return body[:2] == b"\x1f\x8b"


def gunzip(body: bytes, limit: int) -> bytes | None:
    """The unpacked body, or None when it is damaged or would unpack past ``limit`` bytes."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        return None
    return None if len(out) > limit else out


def _local(tag: str) -> str:
    """An element name without its namespace or prefix, lower-cased."""
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def document_kind(body: bytes, content_type: str | None = None) -> DocumentKind | None:
    """Whether a body is a sitemap, a feed or an HTML page, by its first element.

    ``content_type`` only breaks ties: a body that opens with no element is HTML
    when the server says so, and unknown otherwise.
    """
    m = _FIRST_ELEMENT.match(body[:4096])
    if m is not None:
        name = _local(m.group(1).decode("ascii", "replace"))
        if name in _SITEMAP_ROOTS:
            return "sitemap"
        if name in _FEED_ROOTS:
            return "feed"
        if name in ("html", "head", "body", "meta", "title", "link", "div", "p", "script"):
            return "html"
    if content_type in ("text/html", "application/xhtml+xml"):
        return "html"
    return None


def _parse(body: bytes) -> ET.Element | str:
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        return f"not well-formed XML ({exc})"


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def parse_sitemap(body: bytes, base_url: str) -> Listing:
    """Page URLs of a ``<urlset>``, child sitemaps of a ``<sitemapindex>``.

    A plain-text sitemap (one URL a line) is read too.
    """
    if _FIRST_ELEMENT.match(body[:4096]) is None:
        text = body.decode("utf-8", "replace")
        pages = [line.strip() for line in text.splitlines() if line.strip()]
        if pages and all(p.startswith(("http://", "https://")) for p in pages):
            return Listing(pages=pages)
        return Listing(problem="neither an XML sitemap nor a list of URLs")
    root = _parse(body)
    if isinstance(root, str):
        return Listing(problem=root)
    kind = _local(root.tag)
    if kind not in _SITEMAP_ROOTS:
        return Listing(problem=f"a <{kind}> document, not a sitemap")
    entry = "url" if kind == "urlset" else "sitemap"
    locs = []
    for item in _children(root, entry):
        loc = next((_text(c) for c in item if _local(c.tag) == "loc"), "")
        if loc:
            locs.append(urljoin(base_url, loc))
    return Listing(pages=locs) if kind == "urlset" else Listing(sitemaps=locs)


_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"


def _xml_base(element: ET.Element, base: str) -> str:
    """``base`` as an element's ``xml:base`` attribute changes it (itself relative)."""
    value = element.get(_XML_BASE, "").strip()
    return urljoin(base, value) if value else base


def parse_feed(body: bytes, base_url: str) -> Listing:
    """Entry links of an RSS 2.0, RSS 1.0 (RDF) or Atom feed, in document order."""
    root = _parse(body)
    if isinstance(root, str):
        return Listing(problem=root)
    kind = _local(root.tag)
    pages: list[str] = []
    if kind == "feed":  # Atom: <entry><link rel="alternate" href="..."/>
        feed_base = _xml_base(root, base_url)
        for entry in _children(root, "entry"):
            # The entry's page is its "alternate" link (the default rel); "edit",
            # "enclosure" and the like point at other things.
            links = [
                x for x in _children(entry, "link") if x.get("rel", "alternate") == "alternate"
            ]
            href = links[0].get("href", "").strip() if links else ""
            if href:
                # Relative hrefs resolve against xml:base, which each of feed, entry and
                # link may set, each relative to the one above (RFC 4287 section 2).
                pages.append(urljoin(_xml_base(links[0], _xml_base(entry, feed_base)), href))
    elif kind in ("rss", "rdf"):
        channel = _children(root, "channel")
        items = _children(root, "item") + [i for c in channel for i in _children(c, "item")]
        for item in items:
            link = next((_text(c) for c in item if _local(c.tag) == "link"), "")
            if not link:  # an RSS item may carry its address only as a permalink guid
                guid = next((c for c in item if _local(c.tag) == "guid"), None)
                if guid is not None and guid.get("isPermaLink", "true") != "false":
                    link = _text(guid)
            if link:
                pages.append(urljoin(base_url, link))
    else:
        return Listing(problem=f"a <{kind}> document, not an RSS or Atom feed")
    return Listing(pages=pages)
