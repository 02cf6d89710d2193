"""The web archive, when nothing else is left: suggest a snapshot, restore from one.

Owns the conversation with a Wayback-style availability API (``[archive] endpoint``,
the Internet Archive's by default): ``?url=U&timestamp=YYYYMMDDhhmmss`` answers
``{"archived_snapshots": {"closest": {"available": true, "url": ..., "timestamp": ...,
"status": "200"}}}``. Every request goes through archiver's one ``Fetcher``, so the
address guard, the timeouts, the retries and the page cap hold for the API and for
the snapshot alike. Nothing here runs unless a command asks for it
(``report --suggest``, ``restore --from-archive``): a plain report never asks.

A snapshot is the capture closest to the link's last good check (or to now, if it
never worked); only a capture the archive says answered 2xx is offered. Its raw bytes
are the ``id_`` form of its address (``/web/<timestamp>id_/<original url>``: the bytes
as captured, without the archive's banner), fetched and validated like any asset.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any, cast
from urllib.parse import quote

import anyio

from archiver import eventloop
from archiver.clock import Clock, SystemClock, parse_iso, utcnow_iso
from archiver.config import Config
from archiver.db.sqlite import Database
from archiver.errors import RestoreError
from archiver.extract import normalize_url
from archiver.net.fetch import Fetcher
from archiver.redact import clean_text, shown_url
from archiver.store import BlobStore
from archiver.validate import Expected

__all__ = [
    "SUGGEST_STATES",
    "ArchivedCopy",
    "Snapshot",
    "WaybackError",
    "add_snapshots",
    "availability_url",
    "closest",
    "raw_url",
    "restore_from_archive",
    "show_snapshots",
    "wayback_timestamp",
]

#: The states ``report --suggest`` looks a snapshot up for (when no copy is held).
SUGGEST_STATES = ("dead", "invalid")

#: How many availability requests are in flight at once (the fetcher's limits hold too).
LOOKUPS_IN_FLIGHT = 4

#: ``http(s)://host/web/<timestamp>[flags_]/<original>``: a Wayback capture's address.
_CAPTURE = re.compile(r"^(https?://[^/?#]+(?:/[^?#]*?)?/web/)([0-9]{1,14})(?:[a-z]{2}_)?/(.+)$")
_TIMESTAMP = re.compile(r"[0-9]{4,14}")


class WaybackError(RestoreError):
    """The web archive could not be asked, or had no usable snapshot (exit 1)."""


@dataclass(frozen=True)
class Snapshot:
    """A capture the web archive holds of a URL."""

    #: The capture's page in the archive (with the archive's banner).
    url: str
    #: When it was captured, ``YYYYMMDDhhmmss`` (UTC).
    timestamp: str
    #: The HTTP status the archive recorded for it, as it gives it ("200"), or None.
    status: str | None

    def as_json(self) -> dict[str, Any]:
        """The JSON report's ``snapshot`` object."""
        return {"url": self.url, "timestamp": self.timestamp, "status": self.status}


def wayback_timestamp(when: datetime) -> str:
    """``YYYYMMDDhhmmss`` in UTC, as the availability API takes it."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y%m%d%H%M%S")


def availability_url(endpoint: str, url: str, timestamp: str) -> str:
    """The API request asking for the capture of ``url`` closest to ``timestamp``."""
    joiner = "&" if "?" in endpoint else "?"
    return f"{endpoint}{joiner}url={quote(url, safe='')}&timestamp={timestamp}"


def raw_url(snapshot: Snapshot) -> str:
    """The capture's bytes as they were served: its ``id_`` address."""
    match = _CAPTURE.match(snapshot.url)
    if match is None:
        raise WaybackError(
            f"the web archive's snapshot {shown_url(snapshot.url)} is not a /web/<timestamp>/"
            " address: cannot fetch its raw bytes"
        )
    prefix, timestamp, original = match.groups()
    return f"{prefix}{timestamp}id_/{original}"


def _parse(body: bytes) -> Snapshot | None:
    """The closest capture in an availability answer; None when there is none to offer.

    The answer comes from outside: anything but the documented shape is an error, and a
    capture that did not answer 2xx is no copy of an asset.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WaybackError("the web archive's availability API answered with no JSON") from None
    snapshots = data.get("archived_snapshots") if isinstance(data, dict) else None
    if not isinstance(snapshots, dict):
        raise WaybackError("the web archive's availability API answered without archived_snapshots")
    found = snapshots.get("closest")
    if not isinstance(found, dict) or found.get("available") is not True:
        return None
    url, timestamp, status = found.get("url"), found.get("timestamp"), found.get("status")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise WaybackError("the web archive's availability API gave a snapshot without an http URL")
    if not isinstance(timestamp, str) or not _TIMESTAMP.fullmatch(timestamp):
        raise WaybackError("the web archive's availability API gave a snapshot without a timestamp")
    if status is not None and not (isinstance(status, str) and status.startswith("2")):
        return None  # a capture of an error page
    return Snapshot(url=url, timestamp=timestamp, status=status)


async def closest(fetcher: Fetcher, endpoint: str, url: str, when: datetime) -> Snapshot | None:
    """The capture of ``url`` closest to ``when``; None when the archive holds none.

    Raises ``WaybackError`` when the API cannot be asked or answers nonsense.
    """
    page = await fetcher.fetch_page(availability_url(endpoint, url, wayback_timestamp(when)))
    r = page.result
    if r.state != "ok":
        why = clean_text(r.error or r.state)
        raise WaybackError(f"cannot ask the web archive ({shown_url(endpoint)}): {why}")
    return _parse(page.body)


def _when(last_ok: str | None, now: datetime) -> datetime:
    """The last good check, else now: the capture wanted is of the link that worked."""
    return parse_iso(last_ok) or now


def add_snapshots(
    cfg: Config,
    rows: list[dict[str, Any]],
    *,
    clock: Clock | None = None,
    warn: Callable[[str], None] | None = None,
) -> None:
    """Sets each report row's ``snapshot``: for a dead or invalid link with no copy, the
    closest capture (``Snapshot.as_json``) or None; None for every other row.

    A lookup that fails is a warning and a None, never the end of the report.
    """
    now = (clock or SystemClock()).now()
    wanted = [r for r in rows if r["state"] in SUGGEST_STATES and not r["restorable"]]
    for r in rows:
        r["snapshot"] = None
    if not wanted:
        return

    async def lookup(fetcher: Fetcher, row: dict[str, Any], slots: anyio.Semaphore) -> None:
        async with slots:
            try:
                found = await closest(
                    fetcher, cfg.archive_endpoint, row["url"], _when(row["last_ok"], now)
                )
            except WaybackError as exc:
                if warn is not None:
                    warn(f"{shown_url(row['url'])}: {exc}")
                return
        row["snapshot"] = found.as_json() if found is not None else None

    async def main() -> None:
        slots = anyio.Semaphore(LOOKUPS_IN_FLIGHT)
        async with Fetcher(cfg.fetch) as fetcher, anyio.create_task_group() as tg:
            for row in wanted:
                tg.start_soon(lookup, fetcher, row, slots)

    eventloop.run(main)


# -- restore --from-archive ----------------------------------------------------------


@dataclass(frozen=True)
class ArchivedCopy:
    """What ``restore --from-archive`` stored."""

    url: str
    snapshot: Snapshot
    sha256: str
    size: int
    content_type: str | None
    #: The version's ``source``: ``web-archive:<snapshot url>``.
    source: str


def restore_from_archive(
    db: Database, store: BlobStore, cfg: Config, url: str, *, clock: Clock | None = None
) -> ArchivedCopy:
    """Asks the web archive for ``url``'s closest capture, fetches its raw bytes,
    validates them as the URL's links expect, and stores them as a version of ``url``
    (its copy from now on; its state stays as it is). Call under the run lock.
    """
    clock = clock or SystemClock()
    url_id = db.find_url_id(url)
    if url_id is None:
        with contextlib.suppress(ValueError):
            url_id = db.find_url_id(normalize_url(url))
    if url_id is None:
        raise RestoreError(f"unknown URL {url}: it is in no crawled post (check the spelling)")
    target = db.archive_target(url_id)
    return eventloop.run(
        _fetch_snapshot,
        db,
        store,
        cfg,
        target.id,
        target.url,
        target.expect,
        _when(target.last_ok, clock.now()),
        utcnow_iso(clock),
    )


async def _fetch_snapshot(
    db: Database,
    store: BlobStore,
    cfg: Config,
    url_id: int,
    url: str,
    expect: str,
    when: datetime,
    now: str,
) -> ArchivedCopy:
    async with Fetcher(cfg.fetch, store=store) as fetcher:
        snapshot = await closest(fetcher, cfg.archive_endpoint, url, when)
        if snapshot is None:
            raise WaybackError(f"the web archive holds no snapshot of {shown_url(url)}")
        raw = raw_url(snapshot)
        result, blob = await fetcher.archive(raw, expect=cast(Expected, expect))
    try:
        if result.state != "ok" or blob is None or result.sha256 is None:
            why = clean_text(result.error or result.state)
            raise WaybackError(
                f"the web archive's snapshot {shown_url(raw)} of {shown_url(url)} is not"
                f" usable ({result.state}: {why}); nothing stored"
            )
        await anyio.to_thread.run_sync(blob.commit)
        blob = None
    finally:
        if blob is not None:
            blob.abort()
    source = f"web-archive:{snapshot.url}"
    size = result.size if result.size is not None else store.size(result.sha256) or 0
    with db.transaction():
        db.add_outside_version(
            url_id,
            sha256=result.sha256,
            size=size,
            content_type=result.content_type,
            source=source,
            now=now,
        )
    return ArchivedCopy(url, snapshot, result.sha256, size, result.content_type, source)


# -- showing suggestions --------------------------------------------------------------


def _suggested(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("snapshot")]


def show_snapshots(text: str, rows: list[dict[str, Any]], fmt: str) -> str:
    """The rendered report with its web-archive suggestions added (table, markdown, html).

    JSON carries them in each row's ``snapshot``; CSV is left as it is.
    """
    found = _suggested(rows)
    asked = sum(1 for r in rows if r["state"] in SUGGEST_STATES and not r["restorable"])
    if fmt == "table":
        lines = [f"web archive: {len(found)} of {asked} links with no copy have a snapshot"]
        for r in found:
            s = r["snapshot"]
            lines.append(f"  {shown_url(r['url'])}")
            lines.append(f"    snapshot {_taken(s['timestamp'])}: {shown_url(s['url'])}")
        if found:
            lines.append("  store one: archiver restore --from-archive URL")
        return text + "\n".join(lines) + "\n"
    if fmt == "markdown":
        lines = ["### Web archive\n"]
        if not found:
            lines.append(f"No snapshot found for the {asked} links with no copy.\n")
        else:
            lines.append("| URL | snapshot | taken |")
            lines.append("|---|---|---|")
            for r in found:
                s = r["snapshot"]
                lines.append(
                    f"| <{shown_url(r['url'])}> | <{shown_url(s['url'])}> |"
                    f" {_taken(s['timestamp'])} |"
                )
            lines.append("\nStore one as the link's copy: `archiver restore --from-archive URL`.\n")
        return text + ("\n" if not text.endswith("\n\n") else "") + "\n".join(lines)
    if fmt == "html":
        items = "".join(
            f'<li><a href="{escape(shown_url(r["url"]))}">{escape(shown_url(r["url"]))}</a>:'
            f' <a href="{escape(shown_url(r["snapshot"]["url"]))}">snapshot of'
            f" {escape(_taken(r['snapshot']['timestamp']))}</a></li>"
            for r in found
        )
        body = (
            f"<ul>{items}</ul>"
            if found
            else f"<p>No snapshot found for the {asked} links with no copy.</p>"
        )
        section = (
            '<section id="web-archive"><h2>Web archive</h2>'
            f"{body}<p>Store one as the link's copy:"
            " <code>archiver restore --from-archive URL</code>.</p></section>\n"
        )
        at = text.rfind("</body>")
        return text + section if at < 0 else text[:at] + section + text[at:]
    return text


def _taken(timestamp: str) -> str:
    """``20200101123000`` as ``2020-01-01 12:30:00``."""
    t = timestamp.ljust(14, "0")
    return f"{t[:4]}-{t[4:6]}-{t[6:8]} {t[8:10]}:{t[10:12]}:{t[12:14]}"
