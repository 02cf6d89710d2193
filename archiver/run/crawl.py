"""The crawl pipeline: sources -> posts -> references -> fetch -> store -> database.

Owns the order of a run and the promises that come with it: blobs are in
the store before any row names them; a run where no host answered changes no
URL's state (offline is not dead); unchanged posts are not re-parsed; only
URLs that are due are re-checked. Parsing lives in ``collect``/``extract``,
the network in ``fetch``, state rules in ``states``: this module wires them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
import os
import signal
import sqlite3
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus

from archiver import extract, validate
from archiver.clock import Clock, SystemClock, iso, parse_iso
from archiver.config import Config, Source
from archiver.db.sqlite import Database
from archiver.errors import (
    ArchiverError,
    ConfigError,
    DatabaseError,
    NetworkDownError,
    RunInterrupted,
    Stop,
)
from archiver.extract import Reference
from archiver.net.fetch import Fetcher, FetchResult, FetchSettings, host_answered, is_network
from archiver.net.guard import is_public, public_networks
from archiver.net.localfiles import LocalRoots
from archiver.net.rules import UrlRules
from archiver.net.transport import system_resolver
from archiver.run.schedule import Scheduler
from archiver.sources import folders as collect
from archiver.states import Previous, transition
from archiver.store.directory import Store
from archiver.store.identity import bind_store
from archiver.text import plural

if TYPE_CHECKING:
    import httpx  # only fetch.py and transport.py speak HTTP (tests/test_http_stack.py)

__all__ = ["FAIL_ON", "RunSummary", "crawl", "fetch_settings", "sources_from_args"]

FAIL_ON = ("new", "any", "none")

#: Reference kinds that put a URL in an image position (so no extension is needed).
IMAGE_POSITIONS = (
    "markdown-image",
    "html-img",
    "html-srcset",
    "html-source",
    "css-url",
    "html-meta",
    "front-matter:",
)

ProgressFn = Callable[[str, int, int], None]


@dataclass
class RunSummary:
    """What a run did, for the summary line, the ``runs`` table and the exit code."""

    run_id: int = 0
    posts: int = 0
    posts_parsed: int = 0
    urls: int = 0
    checked: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    new_blobs: int = 0
    newly_broken: list[str] = field(default_factory=list)
    #: URLs a guard refused this run that were not blocked before, with the reason.
    newly_blocked: list[tuple[str, str]] = field(default_factory=list)
    not_ok: int = 0
    transient: int = 0
    warnings: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    exit_code: int = 0
    network_down: bool = False
    #: Files in source folders not read as posts: their extension is not the source's.
    skipped_by_extension: int = 0

    def line(self) -> str:
        states = " ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        if not self.checked:
            # Nothing was due: still say what is broken, or an hourly log reads "all good".
            states = (
                f"none due; {plural(self.not_ok, 'link')} still broken (list them: archiver report)"
                if self.not_ok
                else "none due; no link broken"
            )
        if self.transient:
            states += f" ({self.transient} transient)"
        line = (
            f"{plural(self.posts, 'post')}, {plural(self.urls, 'URL')},"
            f" checked {self.checked}: {states}; {_human_bytes(self.bytes)} downloaded,"
            f" {plural(self.new_blobs, 'new blob')}, {self.elapsed:.1f}s"
        )
        if self.skipped_by_extension:
            # A folder of .txt posts would otherwise read "0 posts" with no hint why.
            skipped = plural(self.skipped_by_extension, "file")
            line += f"; {skipped} skipped by extension (see --extensions)"
        return line


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def sources_from_args(
    args: Iterable[str], config: Config, extensions: tuple[str, ...] | None = None
) -> list[Source]:
    """CLI arguments (paths or URLs) as sources; none means the config's sources.

    ``extensions`` (from ``--extensions``) replaces every path source's own.
    """
    out: list[Source] = []
    for arg in args:
        if arg.startswith(("http://", "https://")):
            out.append(Source(url=arg))
        else:
            path = Path(arg)
            if not path.exists():
                raise ConfigError(f"source {arg} does not exist (give a folder or file of posts)")
            out.append(Source(path=path.resolve()))
    if not out:
        out = list(config.sources)
        for i, source in enumerate(out):
            # A mistyped folder would otherwise make every cron run "succeed" checking nothing.
            if source.path is not None and not source.path.exists():
                where = f" in {config.config_path}" if config.config_path else ""
                raise ConfigError(
                    f"config key 'sources[{i}].path'{where}: {source.path} does not exist"
                    " (give a folder or file of posts)"
                )
    if not out:
        raise ConfigError(
            "no sources: pass a folder of posts (archiver crawl data/posts)"
            " or add a [[sources]] table to config.toml"
        )
    if extensions is not None:
        out = [replace(s, extensions=extensions) if s.path is not None else s for s in out]
    return out


def fetch_settings(config: Config) -> FetchSettings:
    f = config.fetch
    kwargs: dict[str, Any] = {
        "concurrency": f.concurrency,
        "per_host": f.per_host,
        "connect_timeout": f.connect_timeout,
        "read_timeout": f.read_timeout,
        "total_timeout": f.total_timeout,
        "min_rate": f.min_rate,
        "max_redirects": f.max_redirects,
        "retries": f.retries,
        "retry_after_cap": f.retry_after_cap,
        "max_size": f.max_size,
        "max_page_size": f.max_page_size,
        "transport": f.transport,
        "http2": f.http2,
        "allow_addresses": f.allow_addresses,
        "exclude_urls": config.exclude_urls,
    }
    if f.user_agent:
        kwargs["user_agent"] = f.user_agent
    return FetchSettings(**kwargs)


def _is_image_position(kind: str) -> bool:
    return kind.startswith(IMAGE_POSITIONS)


def _parse_version(rules: UrlRules) -> str:
    """What posts are saved under: the extractor's version, plus the URL rules' fingerprint,
    so that editing ``exclude_urls`` or ``[remap]`` re-reads every post once."""
    version = extract.EXTRACTOR_VERSION
    return f"{version}+rules.{rules.fingerprint}" if rules else version


def _ref_rows(references: Iterable[Reference], rules: UrlRules) -> list[dict[str, Any]]:
    """The rows saved for a post's references: excluded URLs left out, remapped ones marked."""
    return [
        {
            "url": r.url,
            "fetch_url": rules.fetch_url(r.url),
            "expect": validate.expected_kind(r.url, _is_image_position(r.kind)),
            "line": r.line,
            "kind": r.kind,
            "text": r.text,
            "as_written": r.as_written,
            "start": r.start,
            "end": r.end,
        }
        for r in references
        if not rules.excluded(r.url)
    ]


def source_roots(sources: Iterable[Source]) -> LocalRoots:
    """The folders ``file:`` URLs may be read from: each path source and its static roots."""
    roots = LocalRoots()
    for source in sources:
        if source.path is not None:
            roots += collect.source_roots(source.path, _static_roots(source))
    return roots


def _static_roots(source: Source) -> list[Path]:
    assert source.path is not None
    return list(source.static_roots) or collect.default_static_roots(source.path)


def _index_posts(
    db: Database,
    source: Source,
    now: str,
    summary: RunSummary,
    warn: Callable[[str], None],
    rules: UrlRules | None = None,
) -> Iterator[int]:
    """Parses the source's new or changed posts into the database, yielding each post's id
    as soon as it is saved (so its links can be fetched while the next post is read)."""
    assert source.path is not None, "URL sources are indexed by archiver.sources.sites"
    root = source.path
    label = source.label
    static_roots = _static_roots(source)
    rules = rules or UrlRules()
    version = _parse_version(rules)
    seen: set[int] = set()

    def skipped(_: Path) -> None:
        summary.skipped_by_extension += 1

    for file in collect.iter_post_files(root, source.extensions, skipped):
        rel = file.relative_to(root).as_posix() if root.is_dir() else file.name
        try:
            data = file.read_bytes()
        except OSError as exc:
            warn(f"{file}: cannot read: {exc.strerror}")
            continue
        digest = hashlib.sha256(data).hexdigest()
        summary.posts += 1
        known = db.post(label, rel)
        if (
            known is not None
            and known.content_sha256 == digest
            and known.extractor_version == version
        ):
            with db.transaction():
                db.touch_post(known.id, now)
            seen.add(known.id)
            yield known.id
            continue
        post = collect.read_post(
            root, file, source=label, base_url=source.base_url, static_roots=static_roots
        )
        for w in post.warnings:
            warn(f"{file}{f':{w.line}' if w.line else ''}: {w.message}")
        if post.skipped:
            # Not read within its budget: its row and earlier links stay as they were
            # (nor is its hash saved, so the next run tries it again).
            if known is not None:
                with db.transaction():
                    db.touch_post(known.id, now)
                seen.add(known.id)
                yield known.id
            continue
        refs = _ref_rows(post.references, rules)
        with db.transaction():
            post_id = db.save_post(
                source=label,
                path=rel,
                content_sha256=post.content_sha256,
                extractor_version=version,
                refs=refs,
                now=now,
            )
        summary.posts_parsed += 1
        seen.add(post_id)
        yield post_id
    # Posts that vanished from the source keep their row (reports say so) but lose their links.
    with db.transaction():
        for row in db.rows("SELECT id FROM posts WHERE source=? AND gone_since IS NULL", (label,)):
            if row["id"] not in seen:
                db.conn.execute("DELETE FROM refs WHERE post_id=?", (row["id"],))
                db.conn.execute("UPDATE posts SET gone_since=? WHERE id=?", (now, row["id"]))


class _Due:
    """Which URLs of a run's posts are due, decided post by post as posts are indexed.

    Each URL is considered once per run, however many posts link it.
    """

    def __init__(self, db: Database, config: Config, now: datetime, all_: bool) -> None:
        self._db, self._now, self._all = db, now, all_
        self._recheck = timedelta(seconds=config.recheck_after)
        self._confirm = timedelta(seconds=config.confirm_after)
        self.seen: set[int] = set()  # every URL the run's posts link
        db.conn.execute("CREATE TEMP TABLE IF NOT EXISTS run_posts (id INTEGER PRIMARY KEY)")
        db.conn.execute("DELETE FROM run_posts")

    def rows(self, post_ids: Iterable[int]) -> list[dict[str, Any]]:
        """The due URLs these posts link that no earlier post of the run linked."""
        ids = list(post_ids)
        if not ids:
            return []
        self._db.conn.executemany("INSERT OR IGNORE INTO run_posts VALUES (?)", [(i,) for i in ids])
        marks = ",".join("?" * len(ids)) if len(ids) < 500 else "SELECT id FROM run_posts"
        rows = self._db.rows(
            "SELECT u.id, u.url, u.fetch_url, u.expect, u.state, u.sha256, u.etag,"
            " u.last_modified, u.last_checked, u.confirm_count, u.confirm_last, u.recheck"
            " FROM urls u"
            f" WHERE u.id IN (SELECT url_id FROM refs WHERE post_id IN ({marks})) ORDER BY u.id",
            ids if len(ids) < 500 else (),
        )
        due = []
        for row in rows:
            if row["id"] in self.seen:
                continue
            self.seen.add(row["id"])
            if self._is_due(row):
                due.append(row)
        return due

    def _is_due(self, row: dict[str, Any]) -> bool:
        last = parse_iso(row["last_checked"])
        if self._all or last is None or row["state"] == "pending" or row["recheck"]:
            return True  # new, or verify / restore --undo asked for it
        if row["state"] == "ok" and row["sha256"] is None:
            return True  # checked but never archived (e.g. by `check`)
        if row["state"] in ("failing", "error"):
            return self._now - last >= self._confirm
        return self._now - last >= self._recheck


def _mark_referenced(db: Database) -> None:
    with db.transaction():
        db.conn.execute(
            "UPDATE urls SET referenced = EXISTS (SELECT 1 FROM refs WHERE refs.url_id = urls.id)"
        )


def crawl(
    config: Config,
    sources: list[Source],
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    all_: bool = False,
    fail_on: str = "new",
    progress: ProgressFn | None = None,
    warn: Callable[[str], None] | None = None,
    mode: str = "crawl",
    ignore_robots: bool = False,
    handle_signals: bool = False,
) -> RunSummary:
    """Runs one crawl and returns its summary; raises ``NetworkDownError`` when offline.

    ``ignore_robots=True`` fetches the pages of url sources whatever their robots.txt says.

    ``mode="check"`` probes every link (the first bytes are enough to tell a PDF or an
    image from a soft 404) and records states without archiving anything.

    ``handle_signals=True`` (the command line; main thread only) makes SIGINT and SIGTERM
    a clean stop: the checks already made are recorded, the run is recorded as
    interrupted, and ``RunInterrupted`` is raised. Without it a KeyboardInterrupt is
    recorded the same way, then re-raised.
    """
    if fail_on not in FAIL_ON:
        raise ConfigError(f"--fail-on must be one of {', '.join(FAIL_ON)}, got {fail_on!r}")
    clock = clock or SystemClock()
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    store = Store(config.store, create=False)  # made once it is known to be this db's
    db = Database(config.db)
    watch = handle_signals and threading.current_thread() is threading.main_thread()
    # The event loop's signal handling puts back the default ones when it ends (SIGTERM
    # would then kill the process outright): the caller's come back instead.
    handlers = {s: signal.getsignal(s) for s in _STOP_SIGNALS} if watch else {}
    try:
        for message in bind_store(db, store, shared=config.shared_store, write=True):
            _warn(message)
        store.create()
        store.clean_temp()
        started = clock.now()
        summary = RunSummary(warnings=warnings)
        summary.run_id = db.start_run(mode, os.getpid(), iso(started))
        run = functools.partial(
            _crawl_async,
            config,
            sources,
            db,
            store,
            clock,
            transport,
            all_,
            fail_on,
            summary,
            progress,
            _warn,
            mode == "check",
            ignore_robots,
        )
        try:
            if watch:
                return anyio.run(_until_signalled, run)
            return anyio.run(run)
        except BaseException as raised:
            exc = _unwrap(raised)
            signum = _stop_signal(exc)
            if signum is not None:
                code = 128 + signum
                message = (
                    f"interrupted by {signal.Signals(signum).name}:"
                    f" {plural(summary.checked, 'check')} recorded; the next run checks the rest"
                )
            elif isinstance(exc, ArchiverError):
                code, message = exc.exit_code, str(exc)
            else:
                code, message = INTERNAL_ERROR, f"internal error: {describe_bug(exc)}"
            with contextlib.suppress(Exception):  # the database may be what failed
                db.end_run(
                    summary.run_id,
                    iso(clock.now()),
                    code,
                    message=message[:500],
                    posts=summary.posts,
                    urls=summary.urls,
                    counts=dict(summary.counts),
                    bytes=summary.bytes,
                    new_blobs=summary.new_blobs,
                )
            if signum is not None and handle_signals:
                raise RunInterrupted(message, signum) from None
            if exc is not raised:
                raise exc from None
            raise
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        db.close()


#: What a run records (and the command line exits with) when a bug stopped it.
INTERNAL_ERROR = 70

#: The signals that stop a run cleanly.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def _until_signalled(run: Callable[[], Awaitable[RunSummary]]) -> RunSummary:
    """Runs ``run`` until it returns or SIGINT/SIGTERM arrives, then raises ``Stop``.

    The signal cancels the run, so its ``finally`` blocks record what finished; the
    handler only wakes the event loop, so no row or file is left half-written.
    """
    received: list[int] = []
    result: RunSummary | None = None
    async with anyio.create_task_group() as tg:

        async def watch(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            with anyio.open_signal_receiver(*_STOP_SIGNALS) as signals:
                task_status.started()
                async for signum in signals:
                    received.append(signum)
                    tg.cancel_scope.cancel()
                    return

        await tg.start(watch)  # listening before the first request goes out
        result = await run()
        tg.cancel_scope.cancel()
    if received:
        raise Stop(received[0])
    assert result is not None
    return result


def describe_bug(exc: BaseException) -> str:
    """``Type: message`` of an unexpected exception, on one line; for a task group's
    exceptions, the first of them (the traceback has them all)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _stop_signal(exc: BaseException) -> int | None:
    """The signal that stopped the run, if one did (Python raises KeyboardInterrupt on SIGINT)."""
    if isinstance(exc, Stop):
        return exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    return None


async def _crawl_async(
    config: Config,
    sources: list[Source],
    db: Database,
    store: Store,
    clock: Clock,
    transport: httpx.AsyncBaseTransport | None,
    all_: bool,
    fail_on: str,
    summary: RunSummary,
    progress: ProgressFn | None,
    warn: Callable[[str], None],
    probe: bool,
    ignore_robots: bool = False,
) -> RunSummary:
    t0 = clock.now()
    now_s = iso(t0)
    rules = UrlRules.compile(config.exclude_urls, config.remap)
    due = _Due(db, config, t0, all_ or probe)
    site_posts: set[int] = set()
    # Sites first, one after another: their crawler has its own fetcher, which must not
    # compete with this run's asset fetches for a host's slots.
    for source in sources:
        if source.url is None:
            continue
        from archiver.sources.sites import (
            index_site,  # bs4 and the site crawler only when a site is crawled
        )

        site = await index_site(
            db,
            source,
            settings=fetch_settings(config),
            max_page_size=config.fetch.max_page_size,
            version=_parse_version(rules),
            rows=lambda refs: _ref_rows(refs, rules),
            now=now_s,
            warn=warn,
            transport=transport,
            clock=clock,
            ignore_robots=ignore_robots,
            rules=rules,
        )
        summary.posts += site.posts
        summary.posts_parsed += site.parsed
        site_posts |= site.post_ids
    deferred: list[tuple[dict[str, Any], FetchResult]] = []
    reach = _Reachability()
    done = 0
    # Results wait here, blobs already committed, until one transaction records a batch:
    # a commit per result would cost a disk sync per URL and stall the event loop.
    pending: list[tuple[dict[str, Any], FetchResult, datetime]] = []
    oldest = 0.0

    def flush() -> None:
        if not pending:
            return
        with db.transaction():
            for row, result, when in pending:
                # Each URL is checked once per run, so what the due query read is current.
                prev = Previous(row["state"], row["confirm_count"], parse_iso(row["confirm_last"]))
                t = transition(
                    prev,
                    result.state,
                    when,
                    confirm_runs=config.confirm_runs,
                    confirm_after=config.confirm_after,
                )
                db.record_check(
                    url_id=row["id"],
                    run_id=summary.run_id,
                    now=iso(when),
                    state=t.state,
                    outcome=result,
                    confirm_count=t.confirm_count,
                    confirm_last=iso(t.confirm_last) if t.confirm_last else None,
                    became=iso(when) if t.newly_broken else None,
                )
                summary.counts[t.state] += 1
                summary.checked += 1
                if t.newly_broken:
                    summary.newly_broken.append(row["url"])
                if t.state == "blocked" and prev.state != "blocked":
                    summary.newly_blocked.append((row["url"], result.error or "blocked"))
                if result.transient and result.state != "ok":
                    summary.transient += 1
            _fault("before-commit")
        pending.clear()

    async def record(row: dict[str, Any], result: FetchResult) -> None:
        nonlocal oldest
        when = clock.now()
        if result.state == "ok" and result.blob is not None:
            _fault("after-temp-write")
            # The blob is in place before any row names it; the rename and directory
            # fsync run off the event loop, which other transfers need meanwhile.
            stored = await anyio.to_thread.run_sync(result.blob.commit)
            _fault("after-rename")
            if stored.new:
                summary.new_blobs += 1
        if not pending:
            oldest = anyio.current_time()
        pending.append((row, result, when))
        if len(pending) >= _BATCH_ROWS or anyio.current_time() - oldest >= _BATCH_SECONDS:
            flush()

    async def on_result(row: dict[str, Any], result: FetchResult) -> None:
        nonlocal done
        done += 1
        summary.bytes += result.bytes_received
        reach.add(result)
        if result.unreachable:
            deferred.append((row, result))  # maybe we are offline: decide at the end
        else:
            await record(row, result)
        if progress is not None:
            progress(row["url"], done, scheduler.added)

    local_roots = source_roots(sources)
    async with Fetcher(
        fetch_settings(config),
        store=store,
        transport=transport,
        clock=clock,
        local_roots=local_roots,
        warn=warn,
    ) as fetcher:

        async def work(row: dict[str, Any]) -> None:
            await _fetch_one(fetcher, row, on_result, probe)

        settings = fetcher.settings
        scheduler = Scheduler(
            work, per_host=2 * settings.per_host, workers=2 * settings.concurrency
        )
        canary = config.canary  # asked once, before the first link, if set

        async def offer(post_ids: Iterable[int]) -> None:
            nonlocal canary
            rows = due.rows(post_ids)
            if rows and canary:
                url, canary = canary, None
                await _canary(fetcher, url, summary)
            scheduler.add(rows)

        async def index() -> None:
            try:
                await offer(site_posts)
                for source in sources:
                    if source.url is not None:
                        continue
                    for post_id in _index_posts(db, source, now_s, summary, warn, rules):
                        await offer((post_id,))
                        # Responses that arrived meanwhile are handled between two posts,
                        # and the next post is read once the queue has room for it.
                        await anyio.lowlevel.checkpoint()
                        await scheduler.room()
                _mark_referenced(db)
            finally:
                scheduler.close()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(index)
                await scheduler.run()
        finally:
            flush()  # what finished is recorded, even when the run stops early
            summary.urls = len(due.seen)

    canary_answered = bool(config.canary)
    if not canary_answered and reach.down:
        for _, r in deferred:
            _discard(r)
        summary.network_down = True
        raise NetworkDownError(
            "network unreachable: no host answered (name resolution or connection failed"
            " for every host); no web link's state was changed. Check the machine's network"
            " and run again"
        )
    if not canary_answered and deferred and not await reach.public_answered():
        # Offline but for the machine's own networks: the public links' failures say
        # nothing about them, while a local host's failure is still that host's.
        held = [await reach.protects(r) for _, r in deferred]
        if any(held):
            for (row, result), hold in zip(deferred, held, strict=True):
                if hold:
                    _discard(result)
                else:
                    await record(row, result)
            flush()
            summary.network_down = True
            raise NetworkDownError(
                "network unreachable: no public host answered (only hosts on this machine's"
                " own networks did); no public link's state was changed. Check the machine's"
                " network and run again"
            )
    for row, result in deferred:
        await record(row, result)
    flush()
    _mark_referenced(db)
    summary.not_ok = int(
        db.scalar(
            "SELECT COUNT(*) FROM urls WHERE referenced=1 AND state NOT IN ('ok', 'blocked')"
            " AND id IN (SELECT url_id FROM refs WHERE post_id IN (SELECT id FROM run_posts))"
        )
        or 0
    )
    summary.elapsed = (clock.now() - t0).total_seconds()
    if fail_on == "new":
        summary.exit_code = 1 if summary.newly_broken else 0
    elif fail_on == "any":
        summary.exit_code = 1 if summary.not_ok else 0
    else:
        summary.exit_code = 0
    db.end_run(
        summary.run_id,
        iso(clock.now()),
        summary.exit_code,
        posts=summary.posts,
        urls=summary.urls,
        counts=dict(summary.counts),
        bytes=summary.bytes,
        new_blobs=summary.new_blobs,
    )
    return summary


def _unwrap(exc: BaseException) -> BaseException:
    """The operator's error inside a task group's ExceptionGroup, so the CLI can report it."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _unwrap(inner)
            if isinstance(found, ArchiverError | Stop | KeyboardInterrupt):
                return found
        # One failure in a task group is that failure (the message names it, not the group).
        return _unwrap(exc.exceptions[0]) if len(exc.exceptions) == 1 else exc
    if isinstance(exc, sqlite3.Error):
        return DatabaseError(f"cannot write the database: {exc}")
    return exc


_fault_hits: Counter[str] = Counter()


def _fault(point: str) -> None:
    """Crash-test hook: ``ARCHIVER_FAULT=point[:n]`` kills the process at the n-th ``point``;
    ``point[:n]:raise`` raises an unexpected exception there instead (a stand-in for a bug).

    Points: ``after-temp-write`` (body fsynced in the temp file), ``after-rename`` (blob
    under its final name, no row yet), ``before-commit`` (rows written, not committed).
    Used by the kill -9 and exit-70 tests; unset in normal runs (one dict lookup).
    """
    spec = os.environ.get("ARCHIVER_FAULT")
    if not spec:
        return
    name, _, rest = spec.partition(":")
    if name != point:
        return
    nth, _, action = rest.partition(":")
    _fault_hits[point] += 1
    if action == "raise":
        if _fault_hits[point] == int(nth or 1):  # once: one bug, one exception
            raise RuntimeError(f"fault injected at {point} (ARCHIVER_FAULT)")
    elif _fault_hits[point] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


#: A batch of results is recorded in one transaction once it has this many rows...
_BATCH_ROWS = 500
#: ...or once its oldest result has waited this long (a kill loses at most this much work).
_BATCH_SECONDS = 0.5


class _Reachability:
    """Whether any host answered, and which: offline is decided per kind of host (public,
    or on this machine's own networks), so an intranet server cannot vouch for the internet."""

    def __init__(self) -> None:
        self.tried = False  # some network URL was tried
        self.answered = False  # some host answered (or a redirect proved it did)
        self.answering: set[str] = set()  # the hosts that answered
        self._marked = public_networks()  # the ARCHIVER_PUBLIC_ADDRESSES test hook
        self._kinds: dict[str, frozenset[bool]] = {}

    def add(self, result: FetchResult) -> None:
        # A blocked URL was never asked: it proves neither an answer nor a failure.
        if is_network(result) and result.state != "blocked":
            self.tried = True
            if host_answered(result):
                self.answered = True
                self.answering.add(_host(result.url))

    @property
    def down(self) -> bool:
        return self.tried and not self.answered

    async def public_answered(self) -> bool:
        """Whether some public host answered: one whose every address is public."""
        for host in self.answering:
            if all(await self._public(host)):
                return True
        return False

    async def protects(self, result: FetchResult) -> bool:
        """Whether an unanswered ``result`` is a public link's, held back when offline: a
        name that did not resolve counts as public, as does a host with a public address."""
        if not is_network(result) or result.state == "blocked":
            return False
        if result.error_class in ("dns", "dns-temporary"):
            return True
        return any(await self._public(_host(result.url)))

    async def _public(self, host: str) -> frozenset[bool]:
        """For each address of ``host``, whether it is public; a lookup per host and run."""
        known = self._kinds.get(host)
        if known is None:
            known = self._kinds[host] = await self._lookup(host)
        return known

    async def _lookup(self, host: str) -> frozenset[bool]:
        try:
            return frozenset({is_public(ipaddress.ip_address(host), self._marked)})
        except ValueError:
            pass
        try:
            answer = await system_resolver(host, 443)
        except OSError:  # a name that does not resolve counts as public
            return frozenset({True})
        return frozenset(
            is_public(str(addr[0]).split("%", 1)[0], self._marked) for _, addr in answer
        ) or frozenset({True})


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def _discard(result: FetchResult) -> None:
    if result.blob is not None:
        result.blob.abort()


async def _canary(fetcher: Fetcher, url: str, summary: RunSummary) -> None:
    """Asked before the first link: no answer means this machine is offline, not the links."""
    canary = await fetcher.fetch(url, expect="any")
    summary.bytes += canary.bytes_received
    if canary.state == "blocked":  # refused, not unanswered: says nothing about the network
        _discard(canary)
        raise ConfigError(f"config key 'canary': {url} is not fetched: {canary.error}")
    if canary.http_status is None:
        _discard(canary)
        raise NetworkDownError(
            f"network unreachable: the canary {url} did not answer"
            f" ({canary.error}); no link state was changed"
        )


async def _fetch_one(
    fetcher: Fetcher,
    row: dict[str, Any],
    on_result: Callable[[dict[str, Any], FetchResult], Any],
    probe: bool,
) -> None:
    url = row.get("fetch_url") or row["url"]  # a [remap] rule sends the fetch elsewhere
    validators: dict[str, str] = {}
    if probe:
        result = await fetcher.fetch(url, expect=row["expect"], probe=True)
    else:
        # A copy verify found missing or damaged is fetched whole, never revalidated.
        held = row["sha256"] and not row["recheck"]
        if held and fetcher.store is not None and fetcher.store.has(row["sha256"]):
            if row["etag"]:
                validators["If-None-Match"] = row["etag"]
            if row["last_modified"]:
                validators["If-Modified-Since"] = row["last_modified"]
        result = await fetcher.fetch(url, expect=row["expect"], validators=validators or None)
    # The request that was waiting for this one's slot goes out first; recording the
    # result can wait, as the next response is a round trip away. (Recording first put
    # its CPU on every request's critical path.)
    await anyio.lowlevel.checkpoint()
    await on_result(row, result)
