"""Is what we fetched what the link promised? Decided from the first bytes.

Owns magic-byte sniffing and the verdict on a body's head. Servers lie about
``Content-Type`` and often answer a dead asset with ``200`` and an HTML page (a
"soft 404"), so the bytes decide, never the headers. Pure functions over bytes
and URLs: this module must never touch the network or the disk.
"""

from __future__ import annotations

import re
from posixpath import splitext
from typing import Literal, NamedTuple
from urllib.parse import unquote, urlsplit

__all__ = [
    "HEAD_SIZE",
    "Expected",
    "Verdict",
    "describe",
    "expected_kind",
    "looks_like_html",
    "sniff",
    "verdict",
]

Expected = Literal["pdf", "image", "any"]

# Enough for an SVG behind an XML declaration, a generator comment and a DOCTYPE.
HEAD_SIZE = 8192

PDF = "application/pdf"

_IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".gif", ".webp", ".svg", ".avif", ".bmp", ".ico"}
)
_BOMS = (b"\xef\xbb\xbf",)
_XML_WS = b" \t\r\n\x0c"
# WHATWG MIME sniffing: a tag that makes bytes "text/html" when it opens the body.
_HTML_TAG = re.compile(
    rb"<(?:html|head|body|script|iframe|h1|div|font|table|a|style|title|b|br|p"
    rb"|meta|link|noscript|center)[\s/>]",
    re.IGNORECASE,
)
_HTML_ANYWHERE = re.compile(rb"<!doctype\s+html|<html[\s>]", re.IGNORECASE)
_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


class Verdict(NamedTuple):
    """Whether a head fits the expectation; ``reason`` is an error-class slug when not."""

    ok: bool
    content_type: str | None
    reason: Literal["soft-404", "wrong-type"] | None


def _skip_prolog(text: bytes) -> bytes | None:
    """Strips BOM, whitespace, ``<?...?>``, comments and a DOCTYPE; None if the head ends first."""
    for bom in _BOMS:
        if text.startswith(bom):
            text = text[len(bom) :]
    while True:
        text = text.lstrip(_XML_WS)
        if text.startswith(b"<?"):
            end = text.find(b"?>")
            if end < 0:
                return None
            text = text[end + 2 :]
        elif text.startswith(b"<!--"):
            end = text.find(b"-->", 4)
            if end < 0:
                return None
            text = text[end + 3 :]
        elif text[:9].lower() == b"<!doctype":
            # A DOCTYPE may carry an internal subset "[ ... ]" that contains '>'.
            bracket, close = text.find(b"["), text.find(b">")
            if 0 <= bracket < close:
                close = text.find(b">", text.find(b"]", bracket) + 1)
            if close < 0:
                return None
            text = text[close + 1 :]
        else:
            return text


def _is_svg(head: bytes) -> bool:
    rest = _skip_prolog(head)
    return rest is not None and re.match(rb"<(?:svg:)?svg[\s>/]", rest) is not None


def _is_avif(head: bytes) -> bool:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return False
    box_end = min(int.from_bytes(head[0:4], "big"), len(head))
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, box_end - 3, 4)]
    return any(b in (b"avif", b"avis") for b in brands)


def _is_bmp(head: bytes) -> bool:
    return (
        len(head) >= 18
        and head[:2] == b"BM"
        and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES
    )


def _is_ico(head: bytes) -> bool:
    return len(head) >= 6 and head[:4] == b"\x00\x00\x01\x00" and head[4:6] != b"\x00\x00"


def sniff(head: bytes) -> str | None:
    """The MIME type of a PDF or image from its first bytes; None for anything else."""
    # Acrobat accepts "%PDF-" anywhere in the first KiB, and so do real-world PDFs.
    if b"%PDF-" in head[:1024] and not looks_like_html(head):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if _is_avif(head):
        return "image/avif"
    if _is_bmp(head):
        return "image/bmp"
    if _is_ico(head):
        return "image/x-icon"
    if _is_svg(head):
        return "image/svg+xml"
    return None


def looks_like_html(head: bytes) -> bool:
    """True when the bytes open like an HTML page (an error page served in place of an asset)."""
    if _HTML_ANYWHERE.search(head[:1024]):
        return True
    # XHTML opens with "<?xml" then "<html xmlns=...>", which the prolog skip has removed.
    rest = _skip_prolog(head[:HEAD_SIZE])
    return rest is not None and _HTML_TAG.match(rest) is not None


def expected_kind(url: str, position_is_image: bool) -> Expected:
    """What the link promises: the URL's extension decides, then the link's position."""
    path = unquote(urlsplit(url).path).lower()
    ext = splitext(path)[1]
    if ext == ".pdf":
        return "pdf"
    if ext in _IMAGE_EXTENSIONS or position_is_image:
        return "image"
    return "any"


def verdict(expected: Expected, head: bytes) -> Verdict:
    """Judges a body by its head: HTML is a soft 404, any other mismatch is the wrong type."""
    mime = sniff(head)
    if mime is None:
        return Verdict(False, None, "soft-404" if looks_like_html(head) else "wrong-type")
    is_pdf = mime == PDF
    if (expected == "pdf" and not is_pdf) or (expected == "image" and is_pdf):
        return Verdict(False, mime, "wrong-type")
    return Verdict(True, mime, None)


_WANTED = {"pdf": "a PDF", "image": "an image", "any": "a PDF or an image"}


def describe(expected: Expected, result: Verdict, head: bytes) -> str:
    """One human line for a failed verdict, e.g. "got an HTML page where a PDF was expected"."""
    wanted = _WANTED[expected]
    if result.reason == "soft-404":
        return f"got an HTML page where {wanted} was expected (soft 404)"
    if not head:
        return f"got an empty body where {wanted} was expected"
    got = result.content_type or "unrecognised bytes"
    return f"got {got} where {wanted} was expected"
