"""``archiver check``: a verdict on every asset link without archiving anything.

A thin layer like ``crawl``: the same options, states, locking and exit codes, over
``crawl(..., mode="check")``, which probes the first bytes of each URL instead of
downloading it. Never writes to the store.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from .cli import _fail, _load, _Log, _Progress, _state_options, cli
from .errors import ArchiverError


@cli.command()
@click.argument("sources", nargs=-1)
@_state_options
@click.option("--concurrency", type=click.IntRange(min=1), help="Requests in flight in all.")
@click.option("--per-host", type=click.IntRange(min=1), help="Requests in flight to one host.")
@click.option("--timeout", type=click.FloatRange(min=0.001), help="Connect and read timeout, s.")
@click.option(
    "--fail-on",
    type=click.Choice(["new", "any", "none"]),
    default="new",
    show_default=True,
    help="Exit 1 when a link newly broke (new), when any link is broken (any), or never.",
)
@click.option(
    "--wait", type=click.FloatRange(min=0), default=0, help="Wait this long for the lock."
)
@click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors.")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default="plain")
def check(
    sources: tuple[str, ...],
    config_path: Path | None,
    db: Path | None,
    store: Path | None,
    concurrency: int | None,
    per_host: int | None,
    timeout: float | None,
    fail_on: str,
    wait: float,
    quiet: bool,
    log_format: str,
) -> None:
    """Check every asset link of SOURCES and record its state, without archiving.

    Each URL is asked for its first bytes only (a ranged GET), enough to tell a real
    PDF or image from a soft 404; every referenced URL is checked, once per run. A
    later 'archiver crawl' still downloads every URL that has no archived copy.

    Example: archiver check data/posts --fail-on any
    """
    from .crawl import crawl as run_crawl
    from .crawl import sources_from_args
    from .lock import run_lock

    log = _Log(log_format, quiet)
    try:
        cfg = _load(config_path, db, store)
        fcfg = cfg.fetch
        if concurrency:
            fcfg = replace(fcfg, concurrency=concurrency)
        if per_host:
            fcfg = replace(fcfg, per_host=per_host)
        if timeout:
            fcfg = replace(fcfg, connect_timeout=timeout, read_timeout=timeout)
        cfg = replace(cfg, fetch=fcfg)
        srcs = sources_from_args(sources, cfg)
        with run_lock(cfg.db, wait=wait), _Progress(log) as progress:
            summary = run_crawl(
                cfg,
                srcs,
                fail_on=fail_on,
                progress=progress.update,
                warn=lambda m: log.emit("warning", m),
                mode="check",
            )
    except ArchiverError as exc:
        if log_format == "json":
            log.emit("error", str(exc), exit_code=exc.exit_code)
            sys.exit(exc.exit_code)
        _fail(exc)
        return
    if log_format == "json":
        log.emit(
            "info",
            summary.line(),
            posts=summary.posts,
            urls=summary.urls,
            checked=summary.checked,
            counts=dict(summary.counts),
            bytes=summary.bytes,
            newly_broken=summary.newly_broken,
            exit_code=summary.exit_code,
        )
    else:
        log.emit("info", summary.line())
        for url in summary.newly_broken:
            log.emit("info", f"newly broken: {url}")
    sys.exit(summary.exit_code)
