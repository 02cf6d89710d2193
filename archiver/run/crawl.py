"""The crawl command's library entry point: one run, start to end, and how it stops.

Owns what surrounds a run: the store bound to its database, the ``runs`` row opened and
closed whatever happens, and a clean stop on SIGINT/SIGTERM (the checks already made are
recorded). The run itself is ``pipeline.Pipeline``: indexing in ``indexing``, the due
rule and what a run may change in ``states``, the queues in ``schedule``, recording in
``recorder``, the offline rule in ``reachability``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from archiver import eventloop
from archiver.clock import Clock, SystemClock, iso
from archiver.config import DEFAULT_EXTENSIONS, Config, Source
from archiver.db.leases import SharedRun
from archiver.db.sqlite import Database, as_database_error
from archiver.errors import ArchiverError, ConfigError, RunInterrupted, Stop
from archiver.run.indexing import source_roots
from archiver.run.lock import setup_lock
from archiver.run.pipeline import FAIL_ON, JudgedFn, Pipeline, ProgressFn
from archiver.run.summary import RunSummary
from archiver.run.worker import WorkerDatabase, WorkerPipeline, join_run
from archiver.sources import folders
from archiver.store import open_store
from archiver.store.identity import bind_store
from archiver.text import plural

if TYPE_CHECKING:
    import httpx  # only fetch.py and transport.py speak HTTP (tests/test_http_stack.py)

__all__ = ["FAIL_ON", "RunSummary", "crawl", "source_roots", "sources_from_args"]


def sources_from_args(
    args: Iterable[str],
    config: Config,
    extensions: tuple[str, ...] | None = None,
    *,
    stdin: Iterable[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Source]:
    """CLI arguments (paths, globs, URLs, ``-``) as sources; none means the config's sources.

    ``-`` reads post paths from ``stdin``, one a line (as ``git diff --name-only`` prints
    them): a listed file that no longer exists is a warning (a diff names deleted posts).
    A glob (``posts/**/*.md``) names the files it matches, sorted. Listed and matched
    files are kept only when they have one of their source's extensions; a file named
    as such is read whatever its extension. A path inside a configured ``[[sources]]``
    folder is read as part of that source (its settings, its label in the database).
    ``extensions`` (from ``--extensions``) replaces every path source's own.
    """
    out: list[Source] = []
    named: list[Path] = []  # read whatever their extension
    listed: list[Path] = []  # from stdin or a glob: filtered by extension
    lenient = False  # stdin may name no post at all: a pull request that changed none
    for arg in args:
        if arg.startswith(("http://", "https://")):
            out.append(Source(url=arg))
        elif arg == "-":
            lenient = True
            for line in stdin if stdin is not None else ():
                name = line.rstrip("\r\n")
                if not name.strip():
                    continue
                path = Path(name)
                if not path.exists():
                    if warn is not None:
                        warn(f"{name} (from stdin) does not exist: skipped")
                    continue
                (listed if path.is_file() else named).append(path)
        elif any(c in arg for c in "*?[") and not Path(arg).exists():
            matches = [Path(m) for m in sorted(glob.glob(arg, recursive=True))]
            if not matches:
                raise ConfigError(f"source {arg} matches no file")
            listed.extend(m for m in matches if m.is_file())
        else:
            path = Path(arg)
            if not path.exists():
                raise ConfigError(f"source {arg} does not exist (give a folder or file of posts)")
            named.append(path)
    out.extend(_path_sources(named, listed, config, extensions))
    if not out and not (args and lenient):
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


def _path_sources(
    named: list[Path],
    listed: list[Path],
    config: Config,
    extensions: tuple[str, ...] | None,
) -> list[Source]:
    """Paths as sources: one inside a configured folder source joins it (as its ``only``);
    any other is a source of its own, as before."""
    configured = [
        (s, s.path.resolve()) for s in config.sources if s.path is not None and s.path.is_dir()
    ]
    whole: set[int] = set()  # configured sources named whole
    parts: dict[int, list[Path]] = {}
    out: list[Source | int] = []  # an int: the configured source of that index, filled below
    for path, filtered in [*((p, False) for p in named), *((p, True) for p in listed)]:
        resolved = path.resolve()
        home = _home(resolved, configured)
        if filtered:
            wanted = extensions or (configured[home][0].extensions if home is not None else None)
            if not folders.has_extension(resolved.name, wanted or DEFAULT_EXTENSIONS):
                continue
        if home is None:
            source = Source(path=resolved)
            if source not in out:
                out.append(source)
            continue
        if home not in parts and home not in whole:
            out.append(home)
        root, root_resolved = configured[home]
        if resolved == root_resolved:
            whole.add(home)
        else:
            assert root.path is not None
            inside = root.path / resolved.relative_to(root_resolved)
            if inside not in parts.setdefault(home, []):
                parts[home].append(inside)
    return [
        item
        if isinstance(item, Source)
        else configured[item][0]
        if item in whole
        else replace(configured[item][0], only=tuple(parts[item]))
        for item in out
    ]


def _home(path: Path, configured: list[tuple[Source, Path]]) -> int | None:
    """The configured folder source ``path`` lies in (the deepest, if they nest)."""
    best: int | None = None
    for i, (_, root) in enumerate(configured):
        if path.is_relative_to(root) and (
            best is None or len(root.parts) > len(configured[best][1].parts)
        ):
            best = i
    return best


def crawl(
    config: Config,
    sources: list[Source],
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    all_: bool = False,
    fail_on: str = "new",
    progress: ProgressFn | None = None,
    judged: JudgedFn | None = None,
    warn: Callable[[str], None] | None = None,
    mode: str = "crawl",
    ignore_robots: bool = False,
    handle_signals: bool = False,
    worker: str | None = None,
) -> RunSummary:
    """Runs one crawl and returns its summary; raises ``NetworkDownError`` when offline.

    ``judged`` hears each URL, the state recorded for it and why (``-v``).

    ``ignore_robots=True`` fetches the pages of url sources whatever their robots.txt says.

    ``mode="check"`` probes every link (the first bytes are enough to tell a PDF or an
    image from a soft 404) and records states without archiving anything.

    ``handle_signals=True`` (the command line; main thread only) makes SIGINT and SIGTERM
    a clean stop: the checks already made are recorded, the run is recorded as
    interrupted, and ``RunInterrupted`` is raised. Without it a KeyboardInterrupt is
    recorded the same way, then re-raised.

    ``worker`` (a name) makes this process one worker of a run others share
    (``crawl --worker``, ``archiver.run.worker``): it joins the open shared run or opens
    one, and fetches only the hosts it leases.
    """
    if fail_on not in FAIL_ON:
        raise ConfigError(f"--fail-on must be one of {', '.join(FAIL_ON)}, got {fail_on!r}")
    clock = clock or SystemClock()
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    if worker is not None and mode != "crawl":
        raise ConfigError("only crawl runs as a worker (--worker)")
    store = open_store(config)  # made once it is known to be this db's
    setup = contextlib.ExitStack()
    if worker is not None:
        # One worker at a time creates the schema, binds the store and joins the run.
        setup.enter_context(setup_lock(config.db))
    try:
        db = Database(config.db) if worker is None else WorkerDatabase(config.db)
    except BaseException:
        setup.close()
        raise
    shared: SharedRun | None = None
    watch = handle_signals and threading.current_thread() is threading.main_thread()
    # The event loop's signal handling puts back the default ones when it ends (SIGTERM
    # would then kill the process outright): the caller's come back instead.
    handlers = {s: signal.getsignal(s) for s in _STOP_SIGNALS} if watch else {}
    try:
        for message in bind_store(db, store, shared=config.shared_store, write=True):
            _warn(message)
        store.create()
        started = clock.now()
        summary = RunSummary(warnings=warnings)
        kind: type[Pipeline] = Pipeline
        extra: dict[str, SharedRun] = {}
        if worker is None:
            store.clean_temp()  # not a worker's: its fellow workers may be writing theirs
            summary.run_id = db.start_run(mode, os.getpid(), iso(started))
        else:
            shared = join_run(db, worker, config.workers.lease_seconds, clock)
            setup.close()
            summary.run_id = shared.run_id
            kind, extra = WorkerPipeline, {"shared": shared}
        run = kind(
            config,
            sources,
            db,
            store,
            clock,
            summary,
            _warn,
            transport=transport,
            all_=all_,
            fail_on=fail_on,
            progress=progress,
            judged=judged,
            probe=mode == "check",
            ignore_robots=ignore_robots,
            **extra,
        ).run
        try:
            if watch:
                return eventloop.run(_until_signalled, run)
            return eventloop.run(run)
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
                if shared is not None:
                    db.end_worker(
                        shared,
                        iso(clock.now()),
                        code,
                        checked=summary.checked,
                        posts=summary.posts,
                        message=message[:500],
                    )
                else:
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
        setup.close()
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


def _unwrap(exc: BaseException) -> BaseException:
    """The operator's error inside a task group's ExceptionGroup, so the CLI can report it."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _unwrap(inner)
            if isinstance(found, ArchiverError | Stop | KeyboardInterrupt):
                return found
        # One failure in a task group is that failure (the message names it, not the group).
        return _unwrap(exc.exceptions[0]) if len(exc.exceptions) == 1 else exc
    return as_database_error(exc)
