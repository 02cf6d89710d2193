"""Small previews of archived images, so a report embeds kilobytes, not the originals.

A report that embedded every archived image in base64 grew to 37 MB for 400 URLs. A
160 px WebP (JPEG where Pillow has no WebP encoder) of a photo is a few KB. Thumbnails
are named after the blob's sha256 (``<thumbs>/ab/<sha256>.webp``): made once per blob,
shared by every URL that holds it, and found again without a database. PDFs and SVGs
get none (rendering either means running a renderer on untrusted input).

Decoding is bounded exactly like ``validate_deep.deep_check`` (a worker forked by the
same zygote, under the same memory limit, pixel limit and time budget, in the same
``CHILDREN`` slots); a JPEG decodes at reduced size through Pillow's ``draft()``.
The file is written atomically (temp file, fsync, rename, fsync the dir).
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archiver.validate_deep import DeepLimits, Kind, decode_scale, open_bounded, run_bounded

if TYPE_CHECKING:
    from archiver.store.base import BlobStore as Store

__all__ = ["THUMB_SIZE", "find_thumbnail", "make_thumbnail", "thumbnail_blob", "thumbnail_path"]

THUMB_SIZE = 160
#: Qualities tried in turn: 60 keeps slides legible; lower only for what would not fit
#: (noise at thumbnail size), so 400 embedded in base64 stay under 4 MB, worst case.
_QUALITIES = (60, 40, 20)
_MAX_BYTES = 6 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SUFFIXES = (".webp", ".jpg")


def thumbnail_path(out_dir: Path, sha256: str, suffix: str = ".webp") -> Path:
    """Where the thumbnail of blob ``sha256`` lives (``suffix`` ``.webp`` or ``.jpg``)."""
    if not _SHA256.fullmatch(sha256):
        raise ValueError(f"not a lowercase sha256: {sha256!r}")
    return out_dir / sha256[:2] / f"{sha256}{suffix}"


def find_thumbnail(out_dir: Path, sha256: str) -> Path | None:
    """The existing thumbnail of a blob, if one was made (``report`` only reads)."""
    for suffix in _SUFFIXES:
        path = thumbnail_path(out_dir, sha256, suffix)
        if path.is_file():
            return path
    return None


def thumbnail_blob(store: Store, sha256: str, *, limits: DeepLimits | None = None) -> Path | None:
    """The thumbnail of a stored blob, made if missing: what the crawl calls after a blob
    is committed and ``verify`` after it re-hashed one. Cheap when there is one already
    (two stats) or the blob is no raster image (its first bytes say so); None then."""
    from archiver.validate import sniff

    existing = find_thumbnail(store.thumbs_dir, sha256)
    if existing is not None:
        return existing
    try:
        with store.open(sha256) as f:
            head = f.read(1024)
    except OSError:
        return None
    kind = sniff(head) or ""
    if not kind.startswith("image/") or kind == "image/svg+xml":
        return None
    try:
        with store.local_file(sha256) as path:
            return make_thumbnail(path, "image", store.thumbs_dir, sha256, limits=limits)
    except FileNotFoundError:
        return None


def make_thumbnail(
    path: Path,
    kind: Kind,
    out_dir: Path,
    sha256: str,
    size: int = THUMB_SIZE,
    *,
    limits: DeepLimits | None = None,
    isolate: bool = True,
) -> Path | None:
    """Writes (or finds) the thumbnail of the image at ``path``; None for a PDF, an SVG,
    or an image that does not decode within ``limits``."""
    if kind != "image":
        return None
    existing = find_thumbnail(out_dir, sha256)
    if existing is not None:
        return existing
    limits = limits or DeepLimits()
    if isolate:
        run = run_bounded(_render_entry, path, kind, limits, size=size)
        if run.result is None or run.result.get("data") is None:
            return None
        data, suffix = base64.b64decode(run.result["data"]), run.result["suffix"]
    else:
        rendered = render(path, limits, size)
        if rendered is None:
            return None
        data, suffix = rendered
    target = thumbnail_path(out_dir, sha256, suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    from archiver.store.directory import write_atomic

    write_atomic(target, data)
    return target


def _render_entry(path: Path, kind: Kind, limits: DeepLimits, size: int) -> dict[str, Any]:
    rendered = render(path, limits, size)
    if rendered is None:
        return {"data": None}
    return {"data": base64.b64encode(rendered[0]).decode("ascii"), "suffix": rendered[1]}


def render(path: Path, limits: DeepLimits, size: int = THUMB_SIZE) -> tuple[bytes, str] | None:
    """The encoded thumbnail and its suffix, or None when the image cannot be decoded
    within ``limits`` (the deep check says why; a preview only needs to exist or not)."""
    import warnings

    from PIL import Image, ImageOps, features

    try:
        with (
            open_bounded(path, limits) as f,
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(f) as im:
                width, height = im.size
                decode_scale(im.format, width, height, limits.max_pixels)  # or _Skip
                if im.format == "JPEG":
                    # Decode at the smallest DCT scale still >= the thumbnail: 1/8 for
                    # a photo, so a 24 MP JPEG costs ~1.5 MB instead of ~96 MB.
                    im.draft("RGB", (size, size))
                orientation = im.getexif().get(0x0112)
                im.seek(0)  # the first frame of an animation
                im.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
                small = _plain_mode(im)
    except Exception:  # _Skip, corrupt bytes, MemoryError: no preview, never an error
        return None
    if orientation and orientation != 1:
        small.getexif()[0x0112] = orientation
        small = ImageOps.exif_transpose(small)
    if features.check("webp"):
        return _encode(small, "WEBP", method=4), ".webp"
    return _encode(small if small.mode == "RGB" else _on_white(small), "JPEG"), ".jpg"


def _encode(im: Any, fmt: str, **options: Any) -> bytes:
    """The first quality whose result fits ``_MAX_BYTES``, else the last: a photo takes
    ~1 KB at 60, and pure noise at thumbnail size, the worst case, ~7 KB."""
    for quality in _QUALITIES:
        out = io.BytesIO()
        im.save(out, fmt, quality=quality, **options)
        if out.tell() <= _MAX_BYTES:
            break
    return out.getvalue()


def _plain_mode(im: Any) -> Any:
    """RGB, or RGBA when the image has transparency: what WebP and JPEG encode."""
    from PIL import Image

    transparent = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    mode = "RGBA" if transparent else "RGB"
    result: Image.Image = im.convert(mode) if im.mode != mode else im.copy()
    return result


def _on_white(im: Any) -> Any:
    from PIL import Image

    background = Image.new("RGB", im.size, "white")
    background.paste(im, mask=im.getchannel("A") if "A" in im.getbands() else None)
    return background
