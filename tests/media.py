"""Real PDFs, images and SVGs for the deep-validation and thumbnail tests.

Every file is made by the library that reads such files (pypdf's PdfWriter, Pillow),
then damaged the way a cut download or a flipped bit damages it, and nothing else.
"""

from __future__ import annotations

import functools
import io
import random
import re
import struct
import zlib

from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject


def pdf(pages: int = 3, title: str | None = "Keynote: the slides") -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(612, 792)
    if title is not None:
        writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@functools.cache
def deck(tag: str = "slides", size: int = 0) -> bytes:
    """A real one-page PDF titled ``tag``, exactly ``size`` bytes when that is more than
    its smallest (~550): the page's content stream holds comment lines naming ``tag`` (a
    viewer draws nothing from them), so distinct tags are distinct files and the size is
    met without junk after ``%%EOF``."""
    line = b"% " + tag.encode() + b"\n"
    length = 0
    for _ in range(4):  # the stream's /Length and the xref offsets settle in a step or two
        writer = PdfWriter()
        page = writer.add_blank_page(612, 792)
        writer.add_metadata({"/Title": tag})
        stream = DecodedStreamObject()
        stream.set_data((line * (length // len(line) + 1))[:length])
        page.replace_contents(stream)
        out = io.BytesIO()
        writer.write(out)
        data = out.getvalue()
        if len(data) >= size if length == 0 else len(data) == size:
            return data
        length += size - len(data)
    raise AssertionError(f"no PDF of exactly {size} bytes")


@functools.cache
def picture(fmt: str = "PNG", seed: int = 0, side: int = 8) -> bytes:
    """A real ``side`` x ``side`` image in ``fmt`` (PNG, JPEG, GIF, WEBP) of random pixels
    from ``seed``: distinct seeds are distinct files; random pixels keep the file about
    ``side * side * 3`` bytes for PNG, so ``side`` sets its size too."""
    options: dict[str, object] = {"lossless": True} if fmt == "WEBP" else {}
    return encode(noise(side, side, seed), fmt, **options)


@functools.cache
def svg(tag: str = "icon") -> bytes:
    """A real SVG (a rectangle) whose title is ``tag``: distinct tags are distinct files."""
    return (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16">'
        b"<title>" + tag.encode() + b'</title><rect width="16" height="16"/></svg>\n'
    )


def pdf_wrong_xref(pages: int = 3) -> bytes:
    """Every cross-reference offset 7 bytes off: pypdf (and viewers) find the objects."""
    data = pdf(pages)
    start = data.rindex(b"\nxref") + 1
    table = re.sub(
        rb"(\d{10}) 00000 n",
        lambda m: b"%010d 00000 n" % (int(m.group(1)) + 7),
        data[start:],
    )
    assert table != data[start:]
    return data[:start] + table


def pdf_encrypted() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def noise(width: int, height: int, seed: int = 1, mode: str = "RGB") -> Image.Image:
    """Random pixels: the worst case for every compressor (a photo compresses better)."""
    bands = len(mode)
    return Image.frombytes(
        mode, (width, height), random.Random(seed).randbytes(width * height * bands)
    )


def photo(width: int, height: int, seed: int = 1) -> Image.Image:
    """Something like a photograph: smooth gradients with sensor-like noise."""
    rnd = random.Random(seed)
    base = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    tint = Image.new("RGB", (width, height), tuple(rnd.randrange(256) for _ in range(3)))
    grain = noise(width, height, seed)
    return Image.blend(Image.blend(base, tint, 0.5), grain, 0.15)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def animated_gif(colors: list[tuple[int, int, int]], size: int = 64, noisy: bool = False) -> bytes:
    frames = [
        noise(size, size, seed=i) if noisy else Image.new("RGB", (size, size), color)
        for i, color in enumerate(colors)
    ]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def png_chunks(data: bytes) -> list[tuple[bytes, bytes, int]]:
    """(type, data, crc) of every chunk, to prove a damage touched only what it says."""
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        chunks.append((kind, body, crc))
        pos += 12 + length
    return chunks


def png_broken_idat(data: bytes) -> bytes:
    """Flips 8 bytes inside the first IDAT's data; lengths and CRCs stay as they were."""
    start = data.index(b"IDAT") + 4
    (length,) = struct.unpack(">I", data[start - 8 : start - 4])
    assert length > 64
    damaged = bytearray(data)
    for i in range(start + length // 2, start + length // 2 + 8):
        damaged[i] ^= 0xFF
    return bytes(damaged)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int, color_type: int = 0) -> bytes:
    """A PNG header for ``width`` x ``height`` and a first few rows of zeros: a pixel bomb
    (huge dimensions, tiny file). color_type 0 is greyscale, 6 RGBA."""
    bands = {0: 1, 2: 3, 6: 4}[color_type]
    rows = b"".join(b"\0" + b"\0" * (width * bands) for _ in range(4))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(rows, 9))
        + _chunk(b"IEND", b"")
    )


def jpeg_cut_mid_scan(data: bytes) -> bytes:
    """Cuts a JPEG halfway through the entropy-coded data after its start-of-scan."""
    scan = data.index(b"\xff\xda")
    cut = scan + (len(data) - scan) // 2
    assert scan < cut < len(data) - 2
    return data[:cut]


SVG_OK = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<!-- Generator: a drawing program -->\n"
    b'<svg xmlns="http://www.w3.org/2000/svg" width="320" height="200px" viewBox="0 0 320 200">'
    b'<rect width="320" height="200" fill="teal"/></svg>\n'
)
SVG_NO_NAMESPACE = b'<svg width="10%" height="2em"><circle r="4"/></svg>'
SVG_PREFIXED = (
    b'<svg:svg xmlns:svg="http://www.w3.org/2000/svg" width="16" height="16">'
    b"<svg:rect width='16' height='16'/></svg:svg>"
)
SVG_NOT_WELL_FORMED = b'<svg xmlns="http://www.w3.org/2000/svg"><g><rect></g></svg>'
XML_NOT_SVG = b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body/></html>'
SVG_BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE svg [\n<!ENTITY lol "lol">\n'
    + b"".join(
        b'<!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b']>\n<svg xmlns="http://www.w3.org/2000/svg"><text>&lol9;</text></svg>\n'
)
