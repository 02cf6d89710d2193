"""The library's entry points: what the command line does, callable from Python.

Each takes a ``Config`` (``load_config("config.toml")``) and does what its command does,
with the same locks and checks: ``crawl`` and ``check`` hold the run lock, ``restore``
and ``verify`` refuse a store that belongs to another database, ``report_rows`` reads
without writing anything. Errors are ``ArchiverError`` subclasses, as on the command line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from archiver.config import Config
from archiver.run.summary import RunSummary

if TYPE_CHECKING:
    from archiver.db.views import Copy
    from archiver.ops.report import ReportFilter
    from archiver.ops.verify import VerifyResult

__all__ = ["check", "crawl", "report_rows", "restore", "verify"]

Warn = Callable[[str], None]


def _run(
    mode: str,
    config: Config,
    sources: Iterable[str] | None,
    *,
    all_: bool,
    fail_on: str,
    wait: float,
    warn: Warn | None,
) -> RunSummary:
    from archiver.run.crawl import crawl as run_crawl
    from archiver.run.crawl import sources_from_args
    from archiver.run.lock import run_lock

    chosen = sources_from_args(tuple(sources or ()), config)
    with run_lock(config.db, wait=wait):
        return run_crawl(config, chosen, all_=all_, fail_on=fail_on, warn=warn, mode=mode)


def crawl(
    config: Config,
    sources: Iterable[str] | None = None,
    *,
    all_: bool = False,
    fail_on: str = "new",
    wait: float = 0.0,
    warn: Warn | None = None,
) -> RunSummary:
    """``archiver crawl``: fetch and archive the due links of ``sources`` (paths or URLs;
    none: the config's), and return what the run did (``summary.exit_code`` included)."""
    return _run("crawl", config, sources, all_=all_, fail_on=fail_on, wait=wait, warn=warn)


def check(
    config: Config,
    sources: Iterable[str] | None = None,
    *,
    fail_on: str = "new",
    wait: float = 0.0,
    warn: Warn | None = None,
) -> RunSummary:
    """``archiver check``: probe every link of ``sources`` (its first bytes), archive nothing."""
    return _run("check", config, sources, all_=True, fail_on=fail_on, wait=wait, warn=warn)


def report_rows(config: Config, flt: ReportFilter | None = None) -> list[dict[str, Any]]:
    """``archiver report``'s rows (one per URL, with the posts that use it), read-only."""
    from archiver.ops.access import read_archive
    from archiver.ops.report import ReportFilter, row_dict, url_rows

    chosen = flt or ReportFilter()
    rows = read_archive(config, lambda db, store: url_rows(db, chosen, store))
    return [row_dict(r) for r in rows]  # the JSON report's objects, as documented


def restore(
    config: Config,
    url: str,
    dest: Path | None = None,
    *,
    out: IO[bytes] | None = None,
    sha256: str | None = None,
) -> Copy:
    """``archiver restore URL -o FILE``: the newest good copy of ``url`` (or version
    ``sha256``) written to ``dest`` or ``out``, its hash checked on the way."""
    from archiver.clock import SystemClock, utcnow_iso
    from archiver.ops.access import read_archive
    from archiver.ops.restore import restore_url

    if (dest is None) == (out is None):
        raise ValueError("give exactly one of dest and out")
    now = utcnow_iso(SystemClock())
    return read_archive(
        config,
        lambda db, store: restore_url(db, store, url, now=now, dest=dest, out=out, sha256=sha256),
    )


def verify(
    config: Config,
    *,
    repair: bool = False,
    max_duration: float | None = None,
    limit: int | None = None,
    grace: float | None = None,
    deep: bool = False,
    warn: Warn | None = None,
) -> VerifyResult:
    """``archiver verify``: re-hash the store's blobs and check rows and files; with
    ``deep``, also parse each PDF and image again; with ``repair``, fetch damaged copies
    again. Store files no row names are reported once ``grace`` seconds old (default an
    hour)."""
    from archiver.clock import SystemClock, utcnow_iso
    from archiver.net.rules import UrlRules
    from archiver.ops.access import open_archive
    from archiver.ops.verify import YOUNG
    from archiver.ops.verify import verify as run_verify
    from archiver.run.crawl import source_roots
    from archiver.run.lock import run_lock

    # A repair records versions as a crawl does, so it waits its turn like one; a plain
    # verify only marks copies damaged, which a running crawl's transactions tolerate.
    lock = run_lock(config.db) if repair else contextlib.nullcontext()
    with lock, open_archive(config, warn or (lambda _: None)) as (database, blobs):
        return run_verify(
            database,
            blobs,
            now=utcnow_iso(SystemClock()),
            max_duration=max_duration,
            limit=limit,
            repair=repair,
            settings=config.fetch,
            rules=UrlRules.compile(config.exclude_urls, config.remap),
            local_roots=source_roots(config.sources),
            grace=YOUNG if grace is None else grace,
            deep=deep,
        )
