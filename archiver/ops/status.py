"""``archiver status``: how the last runs went and how big the archive is.

Reads the database and sizes the store; never writes.
"""

from __future__ import annotations

from typing import Any

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
    _run_states(db, last_runs)
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
    }


def _run_states(db: Database, runs: list[dict[str, Any]]) -> None:
    """Sets each run's ``state``: running, abandoned, interrupted, done or failed.

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
    return "\n".join(lines) + "\n"
