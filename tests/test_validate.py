"""Magic-byte sniffing and verdicts: the bytes decide, never the headers."""

from __future__ import annotations

import pytest

from archiver.validate import (
    HEAD_SIZE,
    Verdict,
    describe,
    expected_kind,
    looks_like_html,
    sniff,
    verdict,
)

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 "
AVIF = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf"
AVIF_COMPAT = b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif"
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
BMP = b"BM" + b"\x36\x00\x0c\x00" + b"\x00" * 4 + b"\x36\x00\x00\x00" + b"\x28\x00\x00\x00"
ICO = b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00"
SVG_PLAIN = b'<svg xmlns="http://www.w3.org/2000/svg" width="10"/>'
SVG_PROLOG = (
    b"\xef\xbb\xbf  \n<?xml version='1.0' encoding='UTF-8'?>\n"
    b"<!-- Generator: Adobe Illustrator 27.0 -->\n"
    b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"\n'
    b'  "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" ['
    b'\n  <!ENTITY ns_flows "http://ns.adobe.com/Flows/1.0/">\n]>\n'
    b'<svg version="1.1" xmlns="http://www.w3.org/2000/svg">'
)
HTML = b"\n\n<!DOCTYPE html>\n<html lang='en'><head><title>Page not found</title>"


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (PDF, "application/pdf"),
        (b"\r\n%PDF-1.4 junk before the header", "application/pdf"),
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (b"GIF87a\x01\x00", "image/gif"),
        (WEBP, "image/webp"),
        (AVIF, "image/avif"),
        (AVIF_COMPAT, "image/avif"),
        (BMP, "image/bmp"),
        (ICO, "image/x-icon"),
        (SVG_PLAIN, "image/svg+xml"),
        (SVG_PROLOG, "image/svg+xml"),
        (b"<!-- a comment --><svg>", "image/svg+xml"),
        (HTML, None),
        (HEIC, None),
        (b"PK\x03\x04 a zip, or a pptx", None),
        (b"", None),
        (b"<svgfoo>", None),
        (b"<!-- a comment that never ends", None),
        (b"BM too short", None),
        (b"\x00\x00\x01\x00\x00\x00", None),  # ICO with zero images
    ],
)
def test_sniff(head: bytes, mime: str | None) -> None:
    assert sniff(head) == mime


@pytest.mark.parametrize(
    "head",
    [
        HTML,
        b"<html><body>Not Found</body></html>",
        b"<HTML>",
        b"  <head><meta charset=utf-8>",
        b"<!-- served by nginx -->\n<div class=error>",
        b"<?xml version='1.0'?>\n<html xmlns='http://www.w3.org/1999/xhtml'>",
        b"\xef\xbb\xbf<!doctype HTML>",
        b"<p>Sorry</p>",
    ],
)
def test_looks_like_html(head: bytes) -> None:
    assert looks_like_html(head)


@pytest.mark.parametrize(
    "head", [PDF, PNG, SVG_PROLOG, b"", b'{"error": "not found"}', b"<svg><a href='x'/></svg>"]
)
def test_not_html(head: bytes) -> None:
    assert not looks_like_html(head)


@pytest.mark.parametrize(
    ("url", "image_position", "kind"),
    [
        ("https://example.org/slides/deck.pdf", False, "pdf"),
        ("https://example.org/slides/DECK.PDF?dl=1#page=2", False, "pdf"),
        ("https://example.org/talk%20notes.pdf", True, "pdf"),  # the URL is more specific
        ("https://example.org/a/photo.JPG", False, "image"),
        ("https://example.org/a/diagram.svg", False, "image"),
        ("https://example.org/a/pic.avif", False, "image"),
        ("https://cdn.example.org/afts/img/A*XB9E", True, "image"),
        ("https://cdn.example.org/afts/img/A*XB9E", False, "any"),
        ("https://example.org/download?id=3", False, "any"),
        ("https://example.org/pdf/", False, "any"),
        ("file:///home/me/slides/deck.pdf", False, "pdf"),
    ],
)
def test_expected_kind(url: str, image_position: bool, kind: str) -> None:
    assert expected_kind(url, image_position) == kind


@pytest.mark.parametrize(
    ("expected", "head", "result"),
    [
        ("pdf", PDF, Verdict(True, "application/pdf", None)),
        ("pdf", HTML, Verdict(False, None, "soft-404")),
        ("pdf", PNG, Verdict(False, "image/png", "wrong-type")),
        ("pdf", b"", Verdict(False, None, "wrong-type")),
        ("image", PNG, Verdict(True, "image/png", None)),
        ("image", SVG_PROLOG, Verdict(True, "image/svg+xml", None)),
        ("image", PDF, Verdict(False, "application/pdf", "wrong-type")),
        ("image", HTML, Verdict(False, None, "soft-404")),
        ("image", b"PK\x03\x04", Verdict(False, None, "wrong-type")),
        ("any", PDF, Verdict(True, "application/pdf", None)),
        ("any", GIF, Verdict(True, "image/gif", None)),
        ("any", HTML, Verdict(False, None, "soft-404")),
        ("any", b"PK\x03\x04", Verdict(False, None, "wrong-type")),
    ],
)
def test_verdict(expected: str, head: bytes, result: Verdict) -> None:
    assert verdict(expected, head) == result  # type: ignore[arg-type]


def test_verdict_is_a_plain_triple() -> None:
    ok, content_type, reason = verdict("pdf", HTML)
    assert (ok, content_type, reason) == (False, None, "soft-404")


def test_describe_says_what_was_expected_and_what_came() -> None:
    assert describe("pdf", verdict("pdf", HTML), HTML) == (
        "got an HTML page where a PDF was expected (soft 404)"
    )
    assert describe("pdf", verdict("pdf", PNG), PNG) == "got image/png where a PDF was expected"
    assert describe("image", verdict("image", b"PK"), b"PK") == (
        "got unrecognised bytes where an image was expected"
    )
    assert describe("any", verdict("any", b""), b"") == (
        "got an empty body where a PDF or an image was expected"
    )


def test_head_size_holds_a_long_svg_prolog() -> None:
    prolog = b"<?xml version='1.0'?>" + b"<!--" + b"x" * 6000 + b"-->" + b"<svg>"
    assert len(prolog) < HEAD_SIZE
    assert sniff(prolog) == "image/svg+xml"
