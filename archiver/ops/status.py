"""``archiver status``: how the last runs went, how big the archive is, and the workers
and host leases of shared runs (``crawl --worker``).

Reads the database and sizes the store; never writes.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from archiver.clock import iso
from archiver.db.sqlite import Database
from archiver.redact import clean_text, shown_url
from archiver.run.lock import lock_holder
from archiver.store.base import BlobStore as Store

#: Exit codes of a run a signal stopped (128 + SIGINT, 128 + SIGTERM).
INTERRUPTED = (130, 143)

__all__ = ["render_status", "status"]


def status(db: Database, store: Store, *, runs: int = 5) -> dict[str, Any]:
    """The figures an operator looks at first, as one JSON-ready dict."""
    f = db.status_figures(runs)
    last_runs = [dict(vars(r)) for r in f.runs]
    now = iso(datetime.now(UTC))
    shared = db.shared_runs([r["id"] for r in last_runs])
    workers = db.workers_of(sorted(shared), now)
    _run_states(db, last_runs)
    for r in last_runs:
        r["shared"] = r["id"] in shared
        if r["shared"] and r["ended"] is None:
            # A shared run runs while one of its workers does: it holds no lock of its own.
            live = any(w.run_id == r["id"] and w.state == "running" for w in workers)
            r["state"] = "running" if live else "abandoned"
    return {
        "posts": f.posts,
        "urls": f.urls,
        "unreferenced_urls": f.unreferenced_urls,
        "states": f.states,
        "blobs": f.blobs,
        "blob_bytes": f.blob_bytes,
        "store_bytes": store.total_size(),
        "oldest_check": dict(vars(f.oldest_check)) if f.oldest_check else None,
        "runs": last_runs,
        "workers": [dataclasses.asdict(w) for w in workers],
        "leases": [dataclasses.asdict(lease) for lease in db.open_leases(now)],
    }


def _run_states(db: Database, runs: list[dict[str, Any]]) -> None:
    """Sets each run's ``state``: running, abandoned, interrupted, done or failed (a shared
    run's, while it is open, is then set from its workers').

    A run that never recorded its end is ``running`` only while its process holds the
    run lock; the kernel releases the lock of a process that died (SIGKILL, power cut),
    so such a run is ``abandoned``: derived here, as no dying process can write it.
    """
    open_runs = [r for r in runs if r["ended"] is None]
    holder = lock_holder(db.path) if open_runs else None
    for r in runs:
        if r["ended"] is None:
            r["state"] = "running" if holder is not None and holder == r["pid"] else "abandoned"
        elif r["exit_code"] in INTERRUPTED:
            r["state"] = "interrupted"
        elif r["exit_code"] in (0, 1):
            r["state"] = "done"  # 1: it ran to the end and found a link broken
        else:
            r["state"] = "failed"


def render_status(s: dict[str, Any]) -> str:
    """The text form: a URL's password masked, no control characters (JSON keeps them)."""
    lines = [
        f"posts: {s['posts']}   URLs: {s['urls']} (+{s['unreferenced_urls']} unreferenced)",
        "states: " + (", ".join(f"{k} {v}" for k, v in sorted(s["states"].items())) or "none"),
        f"store: {s['blobs']} blobs, {s['store_bytes']:,} bytes on disk",
    ]
    oldest = s["oldest_check"]
    if oldest:
        when = oldest["last_checked"] or "never checked"
        lines.append(f"oldest check: {when}  {shown_url(oldest['url'])}")
    lines.append("last runs:")
    if not s["runs"]:
        lines.append("  (none)")
    for r in s["runs"]:
        counts = " ".join(f"{k}={v}" for k, v in sorted(r["counts"].items()))
        code = r["state"] if r["ended"] is None else f"exit {r['exit_code']}"
        if r["state"] in ("interrupted", "failed"):
            code = f"{r['state']} ({code})"
        lines.append(
            f"  #{r['id']} {r['command']} {r['started']} {code}  posts={r['posts'] or 0}"
            f" urls={r['urls'] or 0} {counts} bytes={r['bytes'] or 0}"
            + (f"  ({clean_text(r['message'])})" if r["message"] else "")
        )
    if s.get("workers"):
        lines.append("workers:")
        for w in s["workers"]:
            lines.append(
                f"  run #{w['run_id']} {clean_text(w['name'])} {w['state']}"
                f"  heartbeat {w['heartbeat']}  hosts={w['hosts']} checked={w['checked']}"
                + (f" exit {w['exit_code']}" if w["ended"] is not None else "")
            )
    if s.get("leases"):
        lines.append("leases:")
        for lease in s["leases"]:
            holder = clean_text(lease["worker"]) if lease["worker"] else "(free)"
            until = f" until {lease['expires']}" if lease["expires"] else ""
            lapsed = " (expired)" if lease["expired"] else ""
            lines.append(
                f"  run #{lease['run_id']} {clean_text(lease['host'])} {holder}{until}{lapsed}"
                f"  urls left={lease['urls_left']}"
            )
    return "\n".join(lines) + "\n"
