"""Real PDFs and PNGs of an exact size, standard library only (the light servers run
without archiver's dependencies): pypdf and Pillow open them, so a benchmark body is
what a viewer would open, not a magic number and filler."""

from __future__ import annotations

import random
import struct
import zlib

__all__ = ["pdf_deck", "pdf_exact", "png_exact", "png_gradient"]


def pdf_exact(size: int, tag: str = "Slides") -> bytes:
    """A one-page PDF of exactly ``size`` bytes (at least ~400): the page's content
    stream is comment lines (a viewer draws nothing from them) and ``tag`` its title."""
    line = b"%" + b"x" * 78 + b"\n"

    def build(length: int) -> bytes:
        filler = (line * (length // len(line) + 1))[:length]
        if filler:
            filler = filler[:-1] + b"\n"
        objects = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            b"<< /Length %d >>\nstream\n" % len(filler) + filler + b"\nendstream",
            b"<< /Title (%s) >>" % tag.encode("latin-1"),
        ]
        return _pdf(objects)

    length = 0
    for _ in range(4):  # the /Length and startxref digits settle in a step or two
        data = build(length)
        if len(data) == size:
            return data
        length = max(0, length + size - len(data))
    raise ValueError(f"no PDF of exactly {size} bytes (the smallest is {len(build(0))})")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_exact(size: int, seed: int = 1) -> bytes:
    """An RGB PNG of noise of exactly ``size`` bytes (at least ~100): as many pixels as
    fit, the rest a ``tEXt`` comment chunk, as image editors write them."""
    rng = random.Random(seed)

    def image(side: int) -> bytes:
        raw = b"".join(b"\x00" + rng.randbytes(side * 3) for _ in range(side))
        header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw))

    end = _chunk(b"IEND", b"")
    side = max(1, int(((size - 100) / 3.1) ** 0.5))  # noise barely compresses
    body = image(side)
    while side > 1 and len(body) + len(end) + 12 + len(b"Comment\0") > size:
        side -= 1
        body = image(side)
    pad = size - len(body) - len(end) - 12 - len(b"Comment\0")
    if pad < 0:
        raise ValueError(f"no PNG of exactly {size} bytes")
    return body + _chunk(b"tEXt", b"Comment\0" + b"x" * pad) + end


def pdf_deck(pages: int, title: str) -> bytes:
    """A PDF of ``pages`` pages titled ``title``, each page a line of text in Helvetica
    naming the deck and the slide: a deck as a viewer shows it, and distinct titles are
    distinct files."""
    kids = b" ".join(b"%d 0 R" % (4 + 2 * k) for k in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, pages),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    name = title.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(")
    name = name.replace(b")", b"\\)")
    for k in range(pages):
        text = b"BT /F1 24 Tf 72 720 Td (%s, slide %d) Tj ET" % (name, k + 1)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            b" /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * k)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text))
    objects.append(b"<< /Title (%s) >>" % name)
    return _pdf(objects)


def _pdf(objects: list[bytes]) -> bytes:
    """The file of ``objects`` (1 the catalog, the last the document info): numbered,
    with the cross-reference table and trailer a parser checks."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        len(objects),
        xref,
    )
    return bytes(out)


def png_gradient(width: int, height: int, seed: int = 1, tag: str = "") -> bytes:
    """An RGB PNG of ``width`` x ``height``: a two-way colour gradient from ``seed``, as
    PNG's own filters draw it (the first row Sub, the others Up), so a large picture is
    a few KB and made in microseconds; ``tag`` goes into a ``tEXt`` comment chunk."""
    rng = random.Random(seed)
    across = bytes(rng.randrange(1, 4) for _ in range(3))
    down = bytes(rng.randrange(0, 3) for _ in range(3))
    first = bytes(rng.randrange(256) for _ in range(3)) + across * (width - 1)
    rows = b"\x01" + first + (b"\x02" + down * width) * (height - 1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    text = _chunk(b"tEXt", b"Comment\0" + tag.encode("latin-1")) if tag else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + text
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )
