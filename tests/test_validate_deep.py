"""Deep validation: real files, really damaged, judged by the parsers a viewer uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import media
import pytest

from archiver.validate import sniff
from archiver.validate_deep import (
    DeepCheck,
    DeepLimits,
    MiB,
    _check_entry,
    deep_check,
    run_bounded,
)

LINUX = sys.platform.startswith("linux")


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _both(path: Path, kind, limits: DeepLimits | None = None) -> DeepCheck:
    """The child's verdict, after checking the in-process one is the same."""
    isolated = deep_check(path, kind, limits)
    assert deep_check(path, kind, limits, isolate=False) == isolated
    assert "\n" not in isolated.reason
    return isolated


GOOD = {
    "deck.pdf": ("pdf", lambda: media.pdf(3)),
    "photo.png": ("image", lambda: media.encode(media.noise(300, 200), "PNG")),
    "photo.jpg": ("image", lambda: media.encode(media.photo(300, 200), "JPEG")),
    "photo.gif": ("image", lambda: media.encode(media.noise(150, 100), "GIF")),
    "photo.webp": ("image", lambda: media.encode(media.noise(300, 200), "WEBP")),
    "drawing.svg": ("svg", lambda: media.SVG_OK),
}


@pytest.mark.parametrize("name", GOOD)
def test_a_valid_file_is_ok(tmp_path: Path, name: str) -> None:
    kind, make = GOOD[name]
    check = _both(_write(tmp_path, name, make()), kind)
    assert check.verdict == "ok", check
    assert check.reason == ""


def test_a_pdf_records_pages_and_title(tmp_path: Path) -> None:
    check = _both(_write(tmp_path, "d.pdf", media.pdf(7, title="  Keynote:\n the slides ")), "pdf")
    assert check == DeepCheck("ok", pages=7, title="Keynote: the slides", format="PDF")


def test_a_pdf_without_title_has_none(tmp_path: Path) -> None:
    check = _both(_write(tmp_path, "d.pdf", media.pdf(1, title=None)), "pdf")
    assert (check.verdict, check.pages, check.title) == ("ok", 1, None)


def test_an_image_records_width_height_format(tmp_path: Path) -> None:
    check = _both(_write(tmp_path, "p.jpg", media.encode(media.photo(320, 240), "JPEG")), "image")
    assert check == DeepCheck("ok", width=320, height=240, format="JPEG")


def test_a_pdf_with_wrong_xref_offsets_is_repaired_and_ok(tmp_path: Path) -> None:
    """Lenient mode: a PDF a viewer opens is not corrupt; the reason says it was repaired."""
    check = _both(_write(tmp_path, "d.pdf", media.pdf_wrong_xref(4)), "pdf")
    assert (check.verdict, check.pages, check.format) == ("ok", 4, "PDF")
    assert check.reason.startswith("repaired: ")


def test_a_pdf_cut_short_with_the_right_magic_is_corrupt(tmp_path: Path) -> None:
    data = media.pdf(5)
    cut = data[: len(data) // 2]
    assert sniff(cut[:8192]) == "application/pdf"  # the magic-byte check passes it
    check = _both(_write(tmp_path, "d.pdf", cut), "pdf")
    assert check.verdict == "corrupt"
    assert check.reason.startswith("PDF does not parse: ")


def test_bytes_that_only_start_like_a_pdf_are_corrupt(tmp_path: Path) -> None:
    check = _both(_write(tmp_path, "d.pdf", b"%PDF-1.7\n" + b"\0" * 4000), "pdf")
    assert check.verdict == "corrupt"


def test_a_png_with_a_broken_idat_is_corrupt(tmp_path: Path) -> None:
    good = media.encode(media.noise(200, 150), "PNG")
    bad = media.png_broken_idat(good)
    # Only the IDAT's data changed: same chunks, same lengths, same stored CRCs.
    before, after = media.png_chunks(good), media.png_chunks(bad)
    assert [(k, len(b), c) for k, b, c in before] == [(k, len(b), c) for k, b, c in after]
    assert [b for k, b, _ in before if k != b"IDAT"] == [b for k, b, _ in after if k != b"IDAT"]
    check = _both(_write(tmp_path, "p.png", bad), "image")
    assert check.verdict == "corrupt"
    assert check.reason.startswith("PNG does not decode: ")
    assert (check.width, check.height, check.format) == (200, 150, "PNG")


def test_a_jpeg_cut_mid_scan_is_corrupt(tmp_path: Path) -> None:
    data = media.jpeg_cut_mid_scan(media.encode(media.photo(400, 300), "JPEG", quality=90))
    assert sniff(data) == "image/jpeg"
    check = _both(_write(tmp_path, "p.jpg", data), "image")
    assert check.verdict == "corrupt"
    assert check.reason.startswith("JPEG does not decode: ")


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_an_image_cut_in_half_is_corrupt(tmp_path: Path, fmt: str) -> None:
    data = media.encode(media.noise(300, 200), fmt)
    check = _both(_write(tmp_path, "p", data[: len(data) // 2]), "image")
    assert check.verdict == "corrupt"
    assert check.reason.startswith(f"{fmt} does not decode: ")


def test_an_animation_is_checked_frame_by_frame(tmp_path: Path) -> None:
    data = media.animated_gif([(255, 0, 0), (0, 255, 0), (0, 0, 255)], noisy=True)
    assert _both(_write(tmp_path, "a.gif", data), "image") == DeepCheck(
        "ok", "3 frames", width=64, height=64, format="GIF"
    )
    cut = _both(_write(tmp_path, "b.gif", data[: int(len(data) * 0.85)]), "image")
    assert cut.verdict == "corrupt"  # the first frame decodes; the last one is cut


def test_bytes_no_decoder_identifies_are_corrupt(tmp_path: Path) -> None:
    check = _both(_write(tmp_path, "p.png", b"this is not an image at all" * 10), "image")
    assert check == DeepCheck("corrupt", "not an image Pillow can identify")


@pytest.mark.parametrize(
    ("data", "width", "height"),
    [(media.SVG_OK, 320, 200), (media.SVG_NO_NAMESPACE, None, None), (media.SVG_PREFIXED, 16, 16)],
    ids=["namespaced", "no-namespace", "prefixed"],
)
def test_an_svg_root_namespaced_or_not_is_ok(tmp_path: Path, data, width, height) -> None:
    check = _both(_write(tmp_path, "d.svg", data), "svg")
    assert check == DeepCheck("ok", width=width, height=height, format="SVG")


def test_an_svg_that_is_not_well_formed_is_corrupt(tmp_path: Path) -> None:
    check = _both(_write(tmp_path, "d.svg", media.SVG_NOT_WELL_FORMED), "svg")
    assert check.verdict == "corrupt"
    assert check.reason.startswith("SVG is not well-formed XML: mismatched tag")


def test_xml_whose_root_is_not_svg_is_corrupt(tmp_path: Path) -> None:
    check = _both(_write(tmp_path, "d.svg", media.XML_NOT_SVG), "svg")
    assert check == DeepCheck("corrupt", "XML root is <html>, not <svg>")


def test_an_entity_bomb_is_skipped_never_expanded(tmp_path: Path) -> None:
    """10^9 'lol's if expanded; defusedxml refuses the first declaration instead."""
    path = _write(tmp_path, "bomb.svg", media.SVG_BILLION_LAUGHS)
    assert path.stat().st_size < 2000
    check = _both(path, "svg")
    assert check.verdict == "skipped"
    assert "not expanded" in check.reason
    run = run_bounded(_check_entry, path, "svg", DeepLimits())
    assert run.result is not None and run.result["verdict"] == "skipped"
    assert 0 < run.peak_rss < 150 * MiB


def test_a_pixel_bomb_is_skipped_before_decoding(tmp_path: Path) -> None:
    """6000 x 6000 px (36 M, over our 20 M) in a file of a few hundred bytes."""
    path = _write(tmp_path, "bomb.png", media.png_declaring(6000, 6000))
    assert path.stat().st_size < 1000
    check = _both(path, "image")
    assert check.verdict == "skipped"
    assert check.reason == "6,000×6,000 px, over the 20,000,000-pixel limit"
    assert (check.width, check.height, check.format) == (6000, 6000, "PNG")
    run = run_bounded(_check_entry, path, "image", DeepLimits())
    assert 0 < run.peak_rss < 150 * MiB


@pytest.mark.parametrize("max_pixels", [DeepLimits().max_pixels, 10**12])
def test_a_bomb_over_pillows_own_limit_is_skipped(tmp_path: Path, max_pixels: int) -> None:
    """100,000 x 100,000 px (10 GB decoded): Pillow refuses it at open, even with our
    limit lifted, and that is skipped too."""
    path = _write(tmp_path, "bomb.png", media.png_declaring(100_000, 100_000))
    assert path.stat().st_size < 1000
    check = _both(path, "image", DeepLimits(max_pixels=max_pixels))
    assert check.verdict == "skipped"
    assert check.reason.startswith("over the pixel limit: Image size (10000000000 pixels)")
    run = run_bounded(_check_entry, path, "image", DeepLimits(max_pixels=max_pixels))
    assert 0 < run.peak_rss < 150 * MiB


def test_a_large_jpeg_is_checked_at_a_reduced_scale(tmp_path: Path) -> None:
    """A JPEG over the pixel limit decodes at 1/2, 1/4 or 1/8 (all its scan data read)."""
    limits = DeepLimits(max_pixels=400 * 300 // 16)
    good = media.encode(media.photo(400, 300), "JPEG")
    assert _both(_write(tmp_path, "p.jpg", good), "image", limits) == DeepCheck(
        "ok", width=400, height=300, format="JPEG"
    )
    cut = _both(_write(tmp_path, "c.jpg", media.jpeg_cut_mid_scan(good)), "image", limits)
    assert cut.verdict == "corrupt"
    png = _both(
        _write(tmp_path, "p.png", media.encode(media.photo(400, 300), "PNG")), "image", limits
    )
    assert png.verdict == "skipped"


def test_a_pdf_over_max_pages_is_skipped_with_its_page_count(tmp_path: Path) -> None:
    """Decision: skipped (the copy keeps its ok), with the declared page count recorded:
    the page tree past the limit was not walked, so it is not vouched for."""
    check = _both(_write(tmp_path, "d.pdf", media.pdf(5)), "pdf", DeepLimits(max_pages=3))
    assert check.verdict == "skipped"
    assert check.reason == "5 pages, over the 3-page limit: page tree not walked"
    assert (check.pages, check.title, check.format) == (5, "Keynote: the slides", "PDF")


def test_an_animation_over_max_pages_is_skipped(tmp_path: Path) -> None:
    data = media.animated_gif([(255, 0, 0), (0, 255, 0), (0, 0, 255)])
    check = _both(_write(tmp_path, "a.gif", data), "image", DeepLimits(max_pages=2))
    assert (check.verdict, check.reason) == ("skipped", "3 frames, over the 2-frame limit")


def test_an_encrypted_pdf_is_skipped(tmp_path: Path) -> None:
    check = _both(_write(tmp_path, "d.pdf", media.pdf_encrypted()), "pdf")
    assert (check.verdict, check.reason) == ("skipped", "encrypted PDF with a user password")


def test_a_file_over_max_bytes_is_skipped(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.pdf", media.pdf(2))
    check = _both(path, "pdf", DeepLimits(max_bytes=100))
    assert check.verdict == "skipped"
    assert check.reason == f"{path.stat().st_size:,} bytes, over the 100-byte limit"


def test_an_empty_file_is_corrupt(tmp_path: Path) -> None:
    for kind in ("pdf", "image", "svg"):
        assert _both(_write(tmp_path, "e", b""), kind) == DeepCheck("corrupt", "empty file")


@pytest.mark.skipif(not LINUX, reason="RLIMIT_AS is enforced on Linux")
def test_the_child_memory_limit_turns_an_allocation_into_skipped(tmp_path: Path) -> None:
    """With the pixel limit lifted, a 9000 x 9000 RGBA decode needs 324 MB: the child's
    address-space limit refuses it, and the verdict is skipped, not corrupt."""
    path = _write(tmp_path, "big.png", media.png_declaring(9000, 9000, color_type=6))
    limits = DeepLimits(max_pixels=10**9)
    check = deep_check(path, "image", limits)
    assert check == DeepCheck("skipped", "needs more than 150 MB to decode")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_the_child_is_killed_at_the_time_budget(tmp_path: Path) -> None:
    """A FIFO nobody writes blocks the child's open() forever: the wall clock ends it."""
    fifo = tmp_path / "stuck.pdf"
    os.mkfifo(fifo)
    check = deep_check(fifo, "pdf", DeepLimits(seconds=1.0))
    assert check == DeepCheck("skipped", "over the time budget of 1 s")


def test_a_child_that_cannot_run_is_skipped(tmp_path: Path) -> None:
    check = deep_check(tmp_path / "missing.pdf", "pdf")
    assert check.verdict == "skipped"
    assert check.reason.startswith("deep check failed: FileNotFoundError")


def test_importing_the_modules_does_not_import_the_parsers() -> None:
    """A no-change crawl must not pay for pypdf, Pillow or defusedxml."""
    code = (
        "import sys, archiver.validate_deep, archiver.thumbs; "
        "print(sorted(m for m in ('PIL', 'pypdf', 'defusedxml') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "[]", out.stderr
