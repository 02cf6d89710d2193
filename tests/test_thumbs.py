"""Thumbnails: a few KB per archived image, named by the blob, bounded like deep_check."""

from __future__ import annotations

import base64
import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import media
import pytest
from PIL import Image

from archiver.thumbs import find_thumbnail, make_thumbnail, thumbnail_path
from archiver.validate_deep import DeepLimits


def _blob(tmp_path: Path, data: bytes, name: str = "blob") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _open(path: Path) -> Image.Image:
    im = Image.open(io.BytesIO(path.read_bytes()))
    im.load()
    return im


def test_a_photo_gets_a_small_webp_named_by_its_sha256(tmp_path: Path) -> None:
    path, sha = _blob(tmp_path, media.encode(media.noise(1200, 800), "JPEG", quality=90))
    out = tmp_path / "thumbs"
    thumb = make_thumbnail(path, "image", out, sha)
    assert thumb == out / sha[:2] / f"{sha}.webp" == thumbnail_path(out, sha)
    im = _open(thumb)
    assert (im.format, im.size) == ("WEBP", (160, 107))
    assert thumb.stat().st_size < 8 * 1024
    assert find_thumbnail(out, sha) == thumb
    assert sorted(p.name for p in thumb.parent.iterdir()) == [thumb.name]  # no temp left


def test_making_it_again_finds_the_existing_one(tmp_path: Path) -> None:
    path, sha = _blob(tmp_path, media.encode(media.photo(300, 200), "PNG"))
    out = tmp_path / "thumbs"
    first = make_thumbnail(path, "image", out, sha, isolate=False)
    assert first is not None
    stamp = first.stat().st_mtime_ns
    path.unlink()  # not even read again
    assert make_thumbnail(path, "image", out, sha) == first
    assert first.stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("kind", "data"),
    [("pdf", media.pdf(2)), ("svg", media.SVG_OK)],
    ids=["pdf", "svg"],
)
def test_pdfs_and_svgs_get_none(tmp_path: Path, kind, data: bytes) -> None:
    path, sha = _blob(tmp_path, data)
    assert make_thumbnail(path, kind, tmp_path / "thumbs", sha) is None
    assert not (tmp_path / "thumbs").exists()


@pytest.mark.parametrize("isolate", [True, False])
def test_an_image_that_does_not_decode_gets_none(tmp_path: Path, isolate: bool) -> None:
    good = media.encode(media.noise(200, 150), "PNG")
    for data in (media.png_broken_idat(good), good[: len(good) // 2], b"not an image"):
        path, sha = _blob(tmp_path, data)
        assert make_thumbnail(path, "image", tmp_path / "t", sha, isolate=isolate) is None
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("isolate", [True, False])
def test_a_pixel_bomb_gets_none(tmp_path: Path, isolate: bool) -> None:
    for width in (6000, 100_000):
        path, sha = _blob(tmp_path, media.png_declaring(width, width))
        assert make_thumbnail(path, "image", tmp_path / "t", sha, isolate=isolate) is None


def test_a_large_jpeg_decodes_at_reduced_size(tmp_path: Path) -> None:
    """Over the pixel limit at full size, but draft() decodes it at 1/8: a thumbnail."""
    path, sha = _blob(tmp_path, media.encode(media.photo(1600, 1200), "JPEG"))
    thumb = make_thumbnail(
        path, "image", tmp_path / "t", sha, limits=DeepLimits(max_pixels=200 * 150)
    )
    assert thumb is not None
    assert _open(thumb).size == (160, 120)


def test_an_animation_shows_its_first_frame(tmp_path: Path) -> None:
    for fmt in ("GIF", "WEBP"):
        frames = [Image.new("RGB", (200, 100), c) for c in ("red", "lime", "blue")]
        out = io.BytesIO()
        frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=50)
        path, sha = _blob(tmp_path, out.getvalue(), f"a.{fmt}")
        thumb = make_thumbnail(path, "image", tmp_path / "t", sha)
        assert thumb is not None
        im = _open(thumb).convert("RGB")
        assert im.size == (160, 80)
        r, g, b = im.getpixel((80, 40))
        assert r > 200 and g < 60 and b < 60, (fmt, (r, g, b))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = media.encode(media.photo(1200, 800), "JPEG", exif=exif.tobytes())
    path, sha = _blob(tmp_path, data)
    thumb = make_thumbnail(path, "image", tmp_path / "t", sha)
    assert thumb is not None
    assert _open(thumb).size == (107, 160)


def test_transparency_is_kept(tmp_path: Path) -> None:
    image = Image.new("RGBA", (320, 320), (255, 0, 0, 0))
    path, sha = _blob(tmp_path, media.encode(image, "PNG"))
    thumb = make_thumbnail(path, "image", tmp_path / "t", sha, size=64)
    assert thumb is not None
    im = _open(thumb)
    assert (im.size, im.mode) == ((64, 64), "RGBA")
    assert im.getpixel((10, 10))[3] == 0


def test_a_small_image_is_not_enlarged(tmp_path: Path) -> None:
    path, sha = _blob(tmp_path, media.encode(media.noise(40, 30), "PNG"))
    thumb = make_thumbnail(path, "image", tmp_path / "t", sha)
    assert thumb is not None and _open(thumb).size == (40, 30)


def test_the_name_must_be_a_sha256(tmp_path: Path) -> None:
    for bad in ("../" + "a" * 61, "A" * 64, "a" * 63):
        with pytest.raises(ValueError, match="sha256"):
            thumbnail_path(tmp_path, bad)


def test_400_thumbnails_of_noise_photos_embed_well_under_5_mb(tmp_path: Path) -> None:
    """Random-noise 1200 x 800 JPEGs are the worst case for a compressor; 400 of their
    thumbnails in base64 (what the report embeds) must stay well under 5 MB."""
    out = tmp_path / "thumbs"
    grain = media.noise(1200, 1200)  # 400 distinct windows of it: cheaper than 400 draws

    def one(seed: int) -> int:
        data = media.encode(grain.crop((0, seed, 1200, seed + 800)), "JPEG", quality=85)
        path, sha = _blob(tmp_path, data, f"{seed}.jpg")
        thumb = make_thumbnail(path, "image", out, sha, isolate=False)
        assert thumb is not None
        return len(base64.b64encode(thumb.read_bytes()))

    with ThreadPoolExecutor(4) as pool:  # Pillow encodes and decodes without the GIL
        embedded = list(pool.map(one, range(400)))
    sizes = [p.stat().st_size for p in out.glob("*/*.webp")]
    print(
        f"400 thumbnails: {sum(sizes) / 400:.0f} B average, {max(sizes)} B max,"
        f" {sum(embedded) / 1e6:.2f} MB in base64"
    )
    assert len(sizes) == 400
    assert sum(sizes) / 400 < 4 * 1024
    assert sum(embedded) < 2_000_000


def test_the_worst_case_stays_under_8_kb(tmp_path: Path) -> None:
    """Noise at thumbnail size survives no downscale: lower qualities keep it bounded,
    so even 400 of those would embed in under 4 MB."""
    path, sha = _blob(tmp_path, media.encode(media.noise(160, 107), "PNG"))
    thumb = make_thumbnail(path, "image", tmp_path / "t", sha)
    assert thumb is not None
    assert thumb.stat().st_size < 8 * 1024
    assert 400 * len(base64.b64encode(thumb.read_bytes())) < 4_500_000
