#!/usr/bin/env bash
# Show once that pywb replays what `archiver export --warc` writes. Not run in CI.
#
# Builds the demo archive of scripts/screenshot_report.py (real crawl, loopback
# origin), exports it as WARC 1.1, checks it with `warcio check`, loads it into a
# pywb collection in a throw-away venv, and fetches one archived PDF back through
# pywb's replay URL, comparing the bytes with the store.
#
#   bash scripts/pywb_demo.sh            # needs PyPI for `pip install pywb` the first time
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d)
PYWB_VENV=${PYWB_VENV:-/tmp/archiver-pywb-venv}
PORT=${PORT:-8089}
trap 'kill "${WAYBACK_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

if [ ! -x "$PYWB_VENV/bin/wayback" ]; then
    python3 -m venv "$PYWB_VENV"
    "$PYWB_VENV/bin/pip" install -q pywb
fi

# The demo archive, exported; prints the URL and sha256 of one archived PDF.
read -r URL SHA < <(.venv/bin/python - "$WORK" <<'EOF'
import sys
from pathlib import Path

sys.path.insert(0, "scripts")
sys.path.insert(0, "tests")
from screenshot_report import build
from server import LoopbackServer

from archiver.db import Database
from archiver.export import export_warc
from archiver.store import Store

work = Path(sys.argv[1])
with LoopbackServer("127.0.0.1") as srv:
    build(work, srv)  # the origin is closed after this: pywb serves only what we archived
db, store = Database(work / "archive.db"), Store(work / "store")
result = export_warc(db, store, work / "archive.warc.gz")
print(result.line(), file=sys.stderr)
row = db.rows("SELECT url, sha256 FROM urls WHERE url LIKE '%keynote.pdf'")[0]
print(row["url"], row["sha256"])
EOF
)
.venv/bin/python -m warcio.cli check -v "$WORK/archive.warc.gz" | tail -n 3

cd "$WORK"
"$PYWB_VENV/bin/wb-manager" init demo >/dev/null
"$PYWB_VENV/bin/wb-manager" add demo archive.warc.gz >/dev/null
"$PYWB_VENV/bin/wayback" -p "$PORT" >wayback.log 2>&1 &
WAYBACK_PID=$!
for _ in $(seq 50); do
    curl -fs "http://localhost:$PORT/" >/dev/null && break
    sleep 0.2
done
# id_ asks pywb for the original bytes, without its replay rewriting.
curl -fs "http://localhost:$PORT/demo/2026id_/$URL" -o replayed.pdf
GOT=$(sha256sum replayed.pdf | cut -d' ' -f1)
if [ "$GOT" = "$SHA" ]; then
    echo "pywb replayed $URL: sha256 $GOT matches the store"
else
    echo "FAIL: pywb replayed other bytes ($GOT, expected $SHA)" >&2
    exit 1
fi
cd "$ROOT"
