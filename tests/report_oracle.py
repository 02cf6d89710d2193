"""The report cases of ``test_report_stream.py``, and the script that wrote their oracle.

``fixtures/report_oracle.json`` holds the SHA-256 of every format's output for every
case, as the code before the report streamed (commit 05ca821, the parent of 8fb0a7b
"Reports stream") wrote it. That code has ``url_rows`` and ``render`` but not
``ArchiveRows`` or ``write_report``, so this file uses only names both have; run it
with the old checkout's archiver first on the path, over an archive that today's
``benchmarks/report_db.py`` built::

    git worktree add --detach /tmp/old 05ca821
    mkdir /tmp/arch && python benchmarks/report_db.py --build /tmp/arch 2000
    PYTHONPATH=/tmp/old python tests/report_oracle.py /tmp/arch > tests/fixtures/report_oracle.json

An embedded thumbnail is hashed as the name of the blob it shows, not as its bytes:
those are the WebP (or JPEG) encoder's, and another Pillow or libwebp writes others.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STATES = ("ok", "failing", "dead", "invalid", "error", "blocked", "pending")
NOW = "2026-12-01T12:00:00Z"
CWD = Path("/oracle")
WIDTHS = (None, 120, 80)
FORMATS = ("json", "csv", "markdown", "html", "table", "junit", "github", "sarif")
CI_FORMATS = ("junit", "github", "sarif")
#: The archive's size: 2,000 URLs, 125 blobs (every kind of damage among them).
URLS = 2000
CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "all": {"states": STATES},
    **{s: {"states": (s,)} for s in STATES},
    "dead,invalid": {"states": ("dead", "invalid")},
    "post": {"states": STATES, "post": "2021/*"},
    "post-site": {"states": STATES, "post": "https://site.example.test/1/*"},
    "host": {"states": STATES, "host": "files.example.test"},
    "host-port": {"states": STATES, "host": "127.0.0.1:8080"},
    "host-ipv6": {"states": STATES, "host": "[::1]:9443"},
    "since": {"since": "2026-11-07"},
    "changed": {"states": STATES, "changed": True},
    "unreferenced": {"states": STATES, "unreferenced": True},
    "unreferenced-post": {"unreferenced": True, "post": "2022/*"},
}


_DATA_URI = re.compile(r"data:image/(?:webp|jpeg);base64,([A-Za-z0-9+/=]*)")


def thumbnails(thumbs_dir: Path) -> dict[str, str]:
    """The base64 of every thumbnail file in the store, and the blob it shows."""
    return {
        base64.b64encode(path.read_bytes()).decode("ascii"): path.name.split(".")[0]
        for path in thumbs_dir.glob("*/*")
    }


def digest(text: str, thumbs: dict[str, str]) -> str:
    """The output's SHA-256, each embedded thumbnail named by its blob (``thumbs``); a
    data URI that is no thumbnail of the store raises KeyError."""
    text = _DATA_URI.sub(lambda m: f"thumbnail:{thumbs[m.group(1)]}", text)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def old_outputs(root: Path) -> Iterator[tuple[str, str]]:
    """(oracle key, output) of every case and format, by the pre-streaming API: the
    rows of a case as one list (``url_rows``) given to ``render``."""
    from archiver.db import Database
    from archiver.ops.ci_report import findings, write_findings
    from archiver.ops.report import Confirmation, ReportFilter, render, url_rows
    from archiver.store import Store

    db = Database(root / "a.db", readonly=True)
    store = Store(root / "store", create=False)
    try:
        for case, kw in CASES.items():
            flt = ReportFilter(**kw)
            rows = url_rows(db, flt, store)
            for fmt in FORMATS:
                if fmt in CI_FORMATS:
                    buf = io.StringIO()
                    write_findings(fmt, lambda flt=flt: findings(db, flt), buf, cwd=CWD)
                    yield f"{fmt} {case}", buf.getvalue()
                    continue
                for width in WIDTHS if fmt == "table" else (None,):
                    text = render(
                        rows,
                        fmt,
                        store=store,
                        output=root / "report.html",
                        width=width,
                        confirm=Confirmation(3, 3600.0),
                        generated=NOW,
                    )
                    yield f"{fmt}{'' if width is None else width} {case}", text
    finally:
        db.close()


def main(argv: list[str]) -> int:
    from archiver.store import Store

    root = Path(argv[1])
    thumbs = thumbnails(Store(root / "store", create=False).thumbs_dir)
    oracle = {key: digest(text, thumbs) for key, text in old_outputs(root)}
    json.dump(oracle, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
