"""Export for archive tools: every archived version as a WARC 1.1 response record.

Owns the translation of our versions, responses and blobs into WARC records
(via ``warcio``), so pywb and other replay tools can serve what we hold. The
HTTP headers are those recorded when the version was fetched; a blob that no
longer hashes to its name is left out and reported, never exported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from archiver import __version__
from archiver.db.sqlite import Database
from archiver.db.views import ExportVersion
from archiver.errors import ArchiverError
from archiver.store import BlobStore
from archiver.text import plural

__all__ = ["FETCHED_URI_HEADER", "ExportResult", "export_warc"]

#: The WARC header naming the address a body was fetched from, when that is not the
#: record's target (a ``[remap]`` rule sent the fetch elsewhere, or it redirected).
FETCHED_URI_HEADER = "X-Archiver-Fetched-URI"

#: Headers that describe the bytes on the wire rather than the stored body.
_WIRE_HEADERS = {"transfer-encoding", "content-encoding", "content-length"}


@dataclass
class ExportResult:
    records: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"export: {plural(self.records, 'record')} written,"
            f" {plural(len(self.skipped), 'version')} skipped"
        )


def _http_headers(
    status_line: str, headers: Iterable[tuple[str, str]], size: int
) -> StatusAndHeaders:
    """The recorded status and headers, made to describe the stored (decoded) body."""
    protocol, _, status = status_line.partition(" ")
    if not protocol.upper().startswith("HTTP/"):
        protocol, status = "HTTP/1.1", status_line
    if protocol.upper() == "HTTP/2":
        protocol = "HTTP/1.1"  # WARC replays HTTP/1.x messages
    out: list[tuple[str, str]] = []
    for name, value in headers:
        if name.lower() in _WIRE_HEADERS:
            if name.lower() != "content-length" or value.strip() != str(size):
                out.append((f"X-Archive-Orig-{name}", value))
            continue
        out.append((name, value))
    out.append(("Content-Length", str(size)))
    return StatusAndHeaders(status, out, protocol=protocol)


def export_warc(db: Database, store: BlobStore, dest: Path) -> ExportResult:
    """Writes ``dest`` with one record per version (each gzipped when the name ends in .gz)."""
    result = ExportResult()
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        with tmp.open("wb") as out:
            writer = WARCWriter(out, gzip=dest.name.endswith(".gz"), warc_version="1.1")
            writer.write_record(
                writer.create_warcinfo_record(
                    dest.name,
                    {"software": f"archiver/{__version__}", "format": "WARC File Format 1.1"},
                )
            )
            for v in db.export_versions():
                if store.hash_file(v.sha256) != v.sha256:
                    result.skipped.append((v.url, f"blob {v.sha256} is missing or corrupt"))
                    continue
                _write_version(writer, store, v)
                result.records += 1
        tmp.replace(dest)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ArchiverError(f"cannot write {dest}: {exc.strerror}") from exc
    return result


def _write_version(writer: WARCWriter, store: BlobStore, v: ExportVersion) -> None:
    date = v.checked_at or v.first_seen
    size = int(v.size)
    with store.open(v.sha256) as body:
        if v.status_line:
            # The target is the URL the post links, so a replay of the post finds the copy;
            # where the bytes really came from is kept beside it.
            headers = {"WARC-Date": date}
            fetched = v.final_url or v.response_url or v.url
            if fetched != v.url:
                headers[FETCHED_URI_HEADER] = fetched
            record = writer.create_warc_record(
                v.url,
                "response",
                payload=body,
                length=size,
                http_headers=_http_headers(v.status_line, v.headers, size),
                warc_headers_dict=headers,
            )
        else:
            # Fetched without a recorded HTTP response (e.g. a local file): a resource record.
            record = writer.create_warc_record(
                v.url,
                "resource",
                payload=body,
                length=size,
                warc_content_type=v.content_type or "application/octet-stream",
                warc_headers_dict={"WARC-Date": date},
            )
        writer.write_record(record)
