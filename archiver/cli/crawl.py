"""The commands that run the pipeline: ``crawl`` and ``check``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from archiver.cli.options import (
    Log,
    allow_option,
    config_from_options,
    extensions_from,
    extensions_option,
    read_only,
    state_options,
    with_allowed,
)
from archiver.config import Config, finite_option, override_fetch, parse_accept, with_url_options
from archiver.errors import ConfigError
from archiver.redact import clean_text, mask_url, shown_url

__all__ = ["check", "crawl"]

F = TypeVar("F", bound=Callable[..., Any])


def _accept_codes(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> tuple[tuple[int, int], ...]:
    """``--accept`` parsed now: a typo is a usage error (exit 2), not a run that accepts nothing."""
    try:
        return parse_accept("--accept", list(value))
    except ConfigError as exc:
        raise click.BadParameter(str(exc).removeprefix("option --accept "), ctx, param) from None


def _run_options(fn: F) -> F:
    """The options ``crawl`` and ``check`` share: they run the same pipeline."""
    for option in reversed(
        [
            click.argument("sources", nargs=-1),
            state_options,
            # Bounded as their config keys are (config.override_fetch), with the same errors.
            click.option("--concurrency", type=int, help="Requests in flight in all."),
            click.option("--per-host", type=int, help="Requests in flight to one host."),
            click.option("--timeout", type=float, help="Connect and read timeout, seconds."),
            click.option(
                "--fail-on",
                type=click.Choice(["new", "any", "none"]),
                default="new",
                show_default=True,
                help="Exit 1 when a link newly broke (new), when any link is broken (any),"
                " or never.",
            ),
            click.option(
                "--wait",
                type=click.FloatRange(min=0),
                default=0,
                help="Wait this many seconds for another run's lock instead of exiting 75.",
            ),
            click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors."),
            click.option(
                "--log-format",
                type=click.Choice(["plain", "json"]),
                default="plain",
                show_default=True,
                help="json: one JSON object per line on stderr (warnings and the summary"
                " even with --quiet).",
            ),
            click.option(
                "--ignore-robots",
                is_flag=True,
                help="Fetch the pages of sites (SOURCES given as URLs) whatever robots.txt says.",
            ),
            allow_option,
            extensions_option,
            click.option(
                "--accept",
                multiple=True,
                metavar="CODES",
                callback=_accept_codes,
                help="Status codes or ranges a link may answer and be ok, without a copy:"
                " 403, 200..=299, 500..600 (end excluded), 500.. (comma list; repeatable)."
                " A 2xx body is still validated and archived.",
            ),
            click.option(
                "--exclude",
                multiple=True,
                metavar="REGEX",
                help="Leave out asset URLs matching REGEX (repeatable; added to exclude_urls).",
            ),
            click.option(
                "--include",
                multiple=True,
                metavar="REGEX",
                help="Keep only the asset URLs matching one REGEX (repeatable).",
            ),
            click.option(
                "--no-progress",
                is_flag=True,
                help="No progress bar, even on a terminal.",
            ),
            click.option(
                "--verbose",
                "-v",
                is_flag=True,
                help="Print each URL as its check ends: its state and the URL, on stderr.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


@click.command()
@_run_options
@click.option("--all", "all_", is_flag=True, help="Re-check every URL, due or not.")
@click.option(
    "--worker",
    is_flag=True,
    help="Share the run with other 'crawl --worker' processes (this machine's or others',"
    " on one database): each leases hosts and fetches only those.",
)
@click.option(
    "--worker-name",
    metavar="NAME",
    help="This worker's name in status (default: hostname:pid). Implies --worker.",
)
def crawl(all_: bool, worker: bool, worker_name: str | None, **options: Any) -> None:
    """Extract asset links from SOURCES, fetch them, archive them, record their state.

    SOURCES are folders or files of posts, globs ('posts/**/*.md'), - (post paths on
    stdin, as git diff --name-only prints them), or URLs of a site to crawl (a listing
    page, a sitemap or an RSS/Atom feed); without any, the config's [[sources]].

    Example: archiver crawl data/posts
    """
    name = None
    if worker or worker_name is not None:
        from archiver.run.worker import default_worker_name

        name = worker_name.strip() if worker_name is not None else default_worker_name()
        if not name:
            raise click.BadParameter("must not be empty", param_hint="--worker-name")
    _run("crawl", all_=all_, worker=name, **options)


@click.command()
@_run_options
@click.option(
    "--format",
    "report_format",
    type=click.Choice(["junit", "github", "sarif"]),
    help="After the run, print what it judged in the posts of SOURCES for CI (stdout);"
    " the exit code is still --fail-on's.",
)
def check(**options: Any) -> None:
    """Check every asset link of SOURCES and record its state, without archiving.

    Each URL is asked for its first bytes only (a ranged GET), enough to tell a real
    PDF or image from a soft 404; every referenced URL is checked, once per run. A
    later 'archiver crawl' still downloads every URL that has no archived copy.

    SOURCES are as for 'archiver crawl' (folders, files, globs, - for stdin, URLs).

    Example: git diff --name-only origin/main... | archiver check --fail-on any -
    """
    _run("check", all_=True, **options)


def _run(
    mode: str,
    *,
    sources: tuple[str, ...],
    config_path: Path | None,
    db: str | None,
    store: Path | None,
    concurrency: int | None,
    per_host: int | None,
    timeout: float | None,
    all_: bool,
    fail_on: str,
    wait: float,
    quiet: bool,
    log_format: str,
    ignore_robots: bool,
    allow_address: tuple[str, ...],
    extensions: str | None,
    accept: tuple[tuple[int, int], ...],
    exclude: tuple[str, ...],
    include: tuple[str, ...],
    no_progress: bool,
    verbose: bool,
    report_format: str | None = None,
    worker: str | None = None,
) -> None:
    """Runs the pipeline under the lock and turns its summary into output and an exit code."""
    from dataclasses import replace

    from archiver.run.crawl import crawl as run_crawl
    from archiver.run.crawl import sources_from_args
    from archiver.run.lock import run_lock

    log = Log(log_format, quiet).install()  # an error that stops the run: in the log too
    cfg = config_from_options(config_path, db, store)
    fetch = override_fetch(cfg.fetch, concurrency=concurrency, per_host=per_host, timeout=timeout)
    cfg = replace(cfg, fetch=fetch)
    wait = finite_option("--wait", wait)  # NaN would wait forever
    cfg = with_url_options(cfg, exclude=exclude, include=include, accept=accept)
    srcs = sources_from_args(
        sources,
        cfg,
        extensions_from(extensions),
        stdin=sys.stdin if "-" in sources else None,
        warn=lambda m: log.emit("warning", m),
    )
    cfg = with_allowed(cfg, allow_address)

    def judged(url: str, state: str, why: str | None) -> None:
        reason = f" ({clean_text(why)})" if why else ""
        if log_format == "json":
            extra: dict[str, Any] = {"error": clean_text(why)} if why else {}
            log.emit(
                "info", f"{state} {mask_url(url)}{reason}", url=mask_url(url), state=state, **extra
            )
        else:
            log.emit("info", f"{state} {shown_url(url)}{reason}")

    # The per-URL lines say how far the run is: a bar would only write over them.
    bar = not (no_progress or verbose)
    # Workers share the lock (they run together); every other run holds it alone.
    lock = run_lock(cfg.db, wait=wait, shared=worker is not None)
    with lock, _Progress(log, enabled=bar) as progress:
        summary = run_crawl(
            cfg,
            srcs,
            fail_on=fail_on,
            all_=all_,
            progress=progress.update,
            judged=judged if verbose else None,
            warn=lambda m: log.emit("warning", m),
            ignore_robots=ignore_robots,
            mode=mode,
            handle_signals=True,
            worker=worker,
        )
    if log_format == "json":
        for url in summary.newly_broken:
            log.emit("warning", f"newly broken: {url}", url=url)
        for url, why in summary.newly_blocked:
            log.emit("warning", f"blocked: {url}: {why}", url=url)
        log.emit(
            "info",
            summary.line(),
            always=True,
            posts=summary.posts,
            urls=summary.urls,
            checked=summary.checked,
            counts=dict(summary.counts),
            bytes=summary.bytes,
            new_blobs=summary.new_blobs,
            newly_broken=summary.newly_broken,
            broken=summary.not_ok,
            transient=summary.transient,
            skipped_by_extension=summary.skipped_by_extension,
            exit_code=summary.exit_code,
        )
    else:
        log.emit("info", summary.line())
        for url in summary.newly_broken:
            log.emit("warning", f"newly broken: {shown_url(url)}")
        for url, why in summary.newly_blocked:
            log.emit("warning", f"blocked: {shown_url(url)}: {clean_text(why)}")
    if report_format is not None:
        _print_report(cfg, [s.label for s in srcs], report_format)
    sys.exit(summary.exit_code)


def _print_report(cfg: Config, labels: list[str], fmt: str) -> None:
    """``check --format``: what the run judged in the posts of its sources, on stdout."""
    from archiver.ops.ci_report import run_report

    copy = read_only(cfg, lambda database, _: run_report(database, labels, fmt))
    copy(sys.stdout)
    sys.stdout.flush()


class _Progress:
    """A progress bar on a terminal; nothing otherwise (the summary line says it all)."""

    def __init__(self, log: Log, *, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty() and not log.quiet and log.fmt == "plain"
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress

            self._progress = Progress(console=Console(stderr=True), transient=True)
            self._progress.start()
        return self

    def update(self, url: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        if self._task is None:
            self._task = self._progress.add_task("fetching", total=total)
        self._progress.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
