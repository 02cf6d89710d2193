"""The ``archiver`` command line: a thin layer over the library.

Each command parses options, loads the config, calls one library function
and turns ``ArchiverError`` into a one-line message and its exit code::

    0   every link ok (or, with --fail-on new, nothing newly broken)
    1   some link is not ok / a report matched / a check found damage
    2   usage or configuration error
    3   the run could not be done (store or database unusable, network unreachable)
    75  another run holds the lock
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from . import __version__
from .config import Config, load_config
from .errors import ArchiverError, ConfigError

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

if TYPE_CHECKING:
    from .db import Database
    from .store import Store


class _Log:
    """Where messages go: plain text or one JSON object per line on stderr."""

    def __init__(self, fmt: str = "plain", quiet: bool = False) -> None:
        self.fmt = fmt
        self.quiet = quiet

    def emit(self, level: str, message: str, **fields: Any) -> None:
        if self.quiet and level == "info":
            return
        if self.fmt == "json":
            click.echo(json.dumps({"level": level, "message": message, **fields}), err=True)
        else:
            prefix = "" if level == "info" else f"archiver: {level}: "
            click.echo(prefix + message, err=True)


def _state_options(fn: F) -> F:
    """--config, --db and --store: accepted by every command that touches state."""
    fn = click.option("--store", type=click.Path(path_type=Path), help="Blob store directory.")(fn)
    fn = click.option("--db", type=click.Path(path_type=Path), help="SQLite database file.")(fn)
    fn = click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        help="Config file (default: ./config.toml if present).",
    )(fn)
    return fn


def _load(config_path: Path | None, db: Path | None, store: Path | None) -> Config:
    cfg = load_config(config_path)
    return cfg.with_overrides(
        db=db.resolve() if db else None, store=store.resolve() if store else None
    )


def _read(cfg: Config, read: Callable[[Database, Store], T]) -> T:
    """A read-only command's work: the database opened read-only, nothing created on disk.

    ``read`` may run more than once (see ``db.read_snapshot``): it must only read, or
    write something it replaces whole.
    """
    from .db import read_snapshot
    from .identity import bind_store
    from .store import Store

    if not cfg.db.exists():
        raise ConfigError(f"no database at {cfg.db}: run 'archiver crawl' first or pass --db")
    store = Store(cfg.store, create=False)

    def checked(database: Database) -> T:
        for message in bind_store(database, store, shared=cfg.shared_store, write=False):
            click.echo(f"archiver: warning: {message}", err=True)
        return read(database, store)

    return read_snapshot(cfg.db, checked)


def _fail(exc: ArchiverError) -> None:
    click.echo(f"archiver: {exc}", err=True)
    sys.exit(exc.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="archiver")
def cli() -> None:
    """Keep the slides and pictures of event posts alive.

    Example: archiver crawl data/posts && archiver report
    """


def _run_options(fn: F) -> F:
    """The options ``crawl`` and ``check`` share: they run the same pipeline."""
    for option in reversed(
        [
            click.argument("sources", nargs=-1),
            _state_options,
            click.option(
                "--concurrency", type=click.IntRange(min=1), help="Requests in flight in all."
            ),
            click.option(
                "--per-host", type=click.IntRange(min=1), help="Requests in flight to one host."
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(min=0.001),
                help="Connect and read timeout, seconds.",
            ),
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
            click.option("--log-format", type=click.Choice(["plain", "json"]), default="plain"),
            click.option(
                "--ignore-robots",
                is_flag=True,
                help="Fetch the pages of sites (SOURCES given as URLs) whatever robots.txt says.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


@cli.command()
@_run_options
@click.option("--all", "all_", is_flag=True, help="Re-check every URL, due or not.")
def crawl(all_: bool, **options: Any) -> None:
    """Extract asset links from SOURCES, fetch them, archive them, record their state.

    SOURCES are folders or files of posts, or URLs of a site to crawl (a listing page,
    a sitemap or an RSS/Atom feed); without any, the config's [[sources]].

    Example: archiver crawl data/posts
    """
    _run("crawl", all_=all_, **options)


@cli.command()
@_run_options
def check(**options: Any) -> None:
    """Check every asset link of SOURCES and record its state, without archiving.

    Each URL is asked for its first bytes only (a ranged GET), enough to tell a real
    PDF or image from a soft 404; every referenced URL is checked, once per run. A
    later 'archiver crawl' still downloads every URL that has no archived copy.

    Example: archiver check data/posts --fail-on any
    """
    _run("check", all_=True, **options)


def _run(
    mode: str,
    *,
    sources: tuple[str, ...],
    config_path: Path | None,
    db: Path | None,
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
) -> None:
    """Runs the pipeline under the lock and turns its summary into output and an exit code."""
    from dataclasses import replace

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
                all_=all_,
                progress=progress.update,
                warn=lambda m: log.emit("warning", m),
                ignore_robots=ignore_robots,
                mode=mode,
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
            new_blobs=summary.new_blobs,
            newly_broken=summary.newly_broken,
            transient=summary.transient,
            exit_code=summary.exit_code,
        )
    else:
        log.emit("info", summary.line())
        for url in summary.newly_broken:
            log.emit("warning", f"newly broken: {url}")
    sys.exit(summary.exit_code)


class _Progress:
    """A progress bar on a terminal; nothing otherwise (the summary line says it all)."""

    def __init__(self, log: _Log) -> None:
        self.enabled = sys.stderr.isatty() and not log.quiet and log.fmt == "plain"
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


@cli.command("extract")
@click.argument("sources", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["json", "tsv"]), default="json")
@click.option("--base-url", help="Resolve relative references against this URL.")
def extract_cmd(sources: tuple[str, ...], fmt: str, base_url: str | None) -> None:
    """Print every asset reference found in SOURCES; fetches nothing.

    Example: archiver extract data/posts --format json
    """
    from . import collect

    out: list[dict[str, Any]] = []
    try:
        for arg in sources:
            root = Path(arg)
            if not root.exists():
                raise ConfigError(f"source {arg} does not exist (give a folder or file of posts)")
            for post in collect.collect(root, source=arg, base_url=base_url):
                for w in post.warnings:
                    where = f"{post.abs_path}:{w.line}" if w.line else str(post.abs_path)
                    click.echo(f"archiver: warning: {where}: {w.message}", err=True)
                for r in post.references:
                    out.append(
                        {
                            "source": arg,
                            "path": post.path,
                            "line": r.line,
                            "kind": r.kind,
                            "url": r.url,
                            "as_written": r.as_written,
                            "text": r.text,
                        }
                    )
    except ArchiverError as exc:
        _fail(exc)
    if fmt == "json":
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        for o in out:
            click.echo(f"{o['path']}\t{o['line']}\t{o['kind']}\t{o['url']}")


@cli.command()
@_state_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "json", "csv", "html"]),
    help="Output format (default: table on a terminal, json otherwise).",
)
@click.option("--state", "state", help="Comma list of states, or all (default: all but ok).")
@click.option("--post", help="Only links used in posts whose path matches this glob.")
@click.option(
    "--host",
    help="Only links on this host (every port), or on HOST:PORT / [IPv6]:PORT only.",
)
@click.option("--since", help="Only links failing since this date (YYYY-MM-DD) or later.")
@click.option(
    "--changed",
    is_flag=True,
    help="Only URLs whose bytes changed (more than one version); --state defaults to all.",
)
@click.option(
    "--unreferenced",
    is_flag=True,
    help="Also links no crawled post uses any more (kept in the archive, no longer checked).",
)
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write to FILE.")
def report(
    config_path: Path | None,
    db: Path | None,
    store: Path | None,
    fmt: str | None,
    state: str | None,
    post: str | None,
    host: str | None,
    since: str | None,
    changed: bool,
    unreferenced: bool,
    output: Path | None,
) -> None:
    """Report links by state; exit 1 when any link matches, 0 when none does.

    Example: archiver report --format html --state all -o report.html
    """
    from .report import ReportFilter, parse_since, parse_states, render, url_rows
    from .store import Store

    try:
        cfg = _load(config_path, db, store)
        if changed and state is None:
            state = "all"
        flt = ReportFilter(
            states=parse_states(state),
            post=post,
            host=host,
            since=parse_since(since),
            changed=changed,
            unreferenced=unreferenced,
        )
        blobs = Store(cfg.store, create=False)
        held = blobs if blobs.root.is_dir() else None
        rows = _read(cfg, lambda database, _: url_rows(database, flt, held))
        tty = output is None and sys.stdout.isatty()
        fmt = fmt or ("table" if tty else "json")
        text = render(rows, fmt, color=tty, store=held, output=output)
        if output:
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot write {output}: {exc.strerror}") from exc
    except ArchiverError as exc:
        _fail(exc)
        return
    if not output:
        click.echo(text, nl=False)
    sys.exit(1 if rows else 0)


def main() -> None:
    if "httpx" not in sys.modules:
        # httpx imports its own command line client (rich, pygments: ~45 ms of start-up)
        # whenever those are installed; this process never runs it. A None entry makes
        # that optional import fail fast, and httpx.main then only says it cannot run.
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    cli(prog_name="archiver")


# Commands defined in their own modules register themselves on import.
from . import cli_ops, cli_store  # noqa: E402, F401
