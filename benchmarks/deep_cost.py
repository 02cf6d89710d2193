"""What one bounded deep check or thumbnail costs, per file, as a crawl pays it.

    .venv/bin/python benchmarks/deep_cost.py            # 200 of each
    .venv/bin/python benchmarks/deep_cost.py -n 50

Times ``deep_check`` (isolated, the crawl's default) of a small real PDF, PNG and SVG
and ``make_thumbnail`` of the PNG, each file checked ``-n`` times in a row from one
thread, and prints milliseconds per file next to the same check in-process
(``isolate=False``, no process at all): the difference is what the isolation costs.
Only public functions are used, so the same script measures an older checkout
(``PYTHONPATH=/path/to/checkout``).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from archiver.thumbs import make_thumbnail
from archiver.validate_deep import deep_check


def small_files(root: Path) -> dict[str, tuple[str, Path]]:
    """A 3-page PDF, a 300x200 PNG of noise and an SVG, each a few KB."""
    import random

    from PIL import Image
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(3):
        writer.add_blank_page(612, 792)
    writer.add_metadata({"/Title": "Keynote"})
    pdf = root / "deck.pdf"
    with pdf.open("wb") as f:
        writer.write(f)
    rng = random.Random(1)
    im = Image.frombytes("RGB", (300, 200), bytes(rng.randrange(256) for _ in range(180_000)))
    out = io.BytesIO()
    im.save(out, "PNG")
    png = root / "photo.png"
    png.write_bytes(out.getvalue())
    svg = root / "drawing.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"/>')
    return {"PDF": ("pdf", pdf), "PNG": ("image", png), "SVG": ("svg", svg)}


def per_file(n: int, call: Callable[[int], object]) -> float:
    """Milliseconds per call, over ``n`` calls (the first included: start-up is a cost)."""
    started = time.perf_counter()
    for i in range(n):
        call(i)
    return (time.perf_counter() - started) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="files of each kind (default 200)")
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = small_files(root)
        print(f"{'per file, ' + str(n) + ' in a row':<34}{'isolated':>12}{'in-process':>12}")
        for name, (kind, path) in files.items():
            isolated = per_file(n, lambda _i, p=path, k=kind: deep_check(p, k))
            inline = per_file(n, lambda _i, p=path, k=kind: deep_check(p, k, isolate=False))
            print(f"{'deep_check ' + name:<34}{isolated:>9.1f} ms{inline:>9.1f} ms")
        png = files["PNG"][1]

        def thumb(i: int, isolate: bool) -> object:
            sha = f"{i:064x}"  # a new name each time: nothing is found made already
            return make_thumbnail(png, "image", root / str(isolate), sha, isolate=isolate)

        isolated = per_file(n, lambda i: thumb(i, True))
        inline = per_file(n, lambda i: thumb(i, False))
        print(f"{'make_thumbnail PNG':<34}{isolated:>9.1f} ms{inline:>9.1f} ms")


if __name__ == "__main__":
    main()
