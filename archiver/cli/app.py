"""The ``archiver`` command line: a thin layer over the library.

Each command parses options, loads the config, calls one library function
and turns ``ArchiverError`` into a one-line message and its exit code::

    0    every link ok (or, with --fail-on new, nothing newly broken)
    1    some link is not ok / a report matched / a check found damage
    2    usage or configuration error
    3    the run could not be done (store or database unusable, network unreachable)
    70   a bug: an unexpected exception (one line; the traceback goes to a file)
    75   another run holds the lock
    130  interrupted by SIGINT (Ctrl-C); 143: by SIGTERM (what finished is recorded)
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from archiver import __version__
from archiver.config import Config, finite_option, load_config, override_fetch, parse_extensions
from archiver.errors import ArchiverError, ConfigError, Stop
from archiver.redact import clean_text, shown_url

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

if TYPE_CHECKING:
    from archiver.db.sqlite import Database
    from archiver.store.directory import Store


class _Log:
    """Where messages go: plain text or one JSON object per line on stderr."""

    def __init__(self, fmt: str = "plain", quiet: bool = False) -> None:
        self.fmt = fmt
        self.quiet = quiet

    def emit(self, level: str, message: str, *, always: bool = False, **fields: Any) -> None:
        """Writes one message; ``--quiet`` drops info lines, except in a JSON log the
        ``always`` ones (the summary), which a log reader needs whatever the verbosity."""
        if self.quiet and level == "info" and not (always and self.fmt == "json"):
            return
        if self.fmt == "json":
            click.echo(json.dumps({"level": level, "message": message, **fields}), err=True)
        else:
            prefix = "" if level == "info" else f"archiver: {level}: "
            # A terminal obeys control characters: a post's or a server's text loses them.
            click.echo(prefix + clean_text(message), err=True)


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


def _allow_option(fn: F) -> F:
    """--allow-address: accepted by every command that fetches."""
    return click.option(
        "--allow-address",
        "allow_address",
        multiple=True,
        metavar="CIDR|HOST",
        help="Let the fetcher connect to this internal address range or host name"
        " (repeatable; merged with fetch.allow_addresses and ARCHIVER_ALLOW_ADDRESSES).",
    )(fn)


def _extensions_option(fn: F) -> F:
    """--extensions: accepted by every command that reads folders of posts."""
    return click.option(
        "--extensions",
        metavar="EXT,EXT",
        help="Comma list of the file extensions a folder's posts have"
        " (default: a source's 'extensions', else md,markdown,mdx,html,htm)."
        " A file named as a SOURCE is read whatever its extension.",
    )(fn)


def _parse_extensions(value: str | None) -> tuple[str, ...] | None:
    """``--extensions`` as a tuple (None: not given); a bad name is exit 2."""
    if value is None:
        return None
    return parse_extensions("--extensions", value.split(","))


def _with_allowed(cfg: Config, allow: tuple[str, ...]) -> Config:
    """``cfg`` with the --allow-address entries merged into ``fetch.allow_addresses``.

    Those and the environment's are checked now: a typo is exit 2 before any fetch.
    """
    from dataclasses import replace

    from archiver.net.guard import AddressGuard, environment_entries

    AddressGuard.parse([*(("option --allow-address", a) for a in allow), *environment_entries()])
    if not allow:
        return cfg
    merged = cfg.fetch.allow_addresses + tuple(allow)
    return replace(cfg, fetch=replace(cfg.fetch, allow_addresses=merged))


def _read(cfg: Config, read: Callable[[Database, Store], T]) -> T:
    """A read-only command's work: the database opened read-only, nothing created on disk.

    ``read`` may run more than once (see ``db.read_snapshot``): it must only read, or
    write something it replaces whole.
    """
    from archiver.db.sqlite import read_snapshot
    from archiver.store.directory import Store
    from archiver.store.identity import bind_store

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


class _Group(click.Group):
    """The ``archiver`` group: turns what escapes a command into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Stop(signal.SIGINT) from None  # not click's "Aborted!" and exit 1
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ArchiverError as exc:
            _fail(exc)
        except Exception as exc:
            _internal_error(exc, debug=bool(ctx.params.get("debug")))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="archiver")
@click.option(
    "--debug",
    is_flag=True,
    help="On an unexpected error (exit 70), print the traceback instead of writing it to a file.",
)
def cli(debug: bool) -> None:
    """Keep the slides and pictures of event posts alive.

    Example: archiver crawl data/posts && archiver report
    """


def _run_options(fn: F) -> F:
    """The options ``crawl`` and ``check`` share: they run the same pipeline."""
    for option in reversed(
        [
            click.argument("sources", nargs=-1),
            _state_options,
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
            _allow_option,
            _extensions_option,
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
    allow_address: tuple[str, ...],
    extensions: str | None,
) -> None:
    """Runs the pipeline under the lock and turns its summary into output and an exit code."""
    from dataclasses import replace

    from archiver.run.crawl import crawl as run_crawl
    from archiver.run.crawl import sources_from_args
    from archiver.run.lock import run_lock

    log = _Log(log_format, quiet)
    try:
        cfg = _load(config_path, db, store)
        fetch = override_fetch(
            cfg.fetch, concurrency=concurrency, per_host=per_host, timeout=timeout
        )
        cfg = replace(cfg, fetch=fetch)
        wait = finite_option("--wait", wait)  # NaN would wait forever
        srcs = sources_from_args(sources, cfg, _parse_extensions(extensions))
        cfg = _with_allowed(cfg, allow_address)
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
                handle_signals=True,
            )
    except ArchiverError as exc:
        if log_format == "json":
            log.emit("error", str(exc), exit_code=exc.exit_code)
            sys.exit(exc.exit_code)
        _fail(exc)
        return
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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "tsv"]),
    default="json",
    show_default=True,
    help="json: an array of reference objects; tsv: path, line, kind and URL per line.",
)
@click.option("--base-url", help="Resolve relative references against this URL.")
@_extensions_option
def extract_cmd(
    sources: tuple[str, ...], fmt: str, base_url: str | None, extensions: str | None
) -> None:
    """Print every asset reference found in SOURCES; fetches nothing.

    Example: archiver extract data/posts --format json
    """
    from archiver.config import DEFAULT_EXTENSIONS
    from archiver.sources import folders as collect

    out: list[dict[str, Any]] = []
    skipped: list[Path] = []
    try:
        exts = _parse_extensions(extensions) or DEFAULT_EXTENSIONS
        for arg in sources:
            root = Path(arg)
            if not root.exists():
                raise ConfigError(f"source {arg} does not exist (give a folder or file of posts)")
            posts = collect.collect(
                root, source=arg, base_url=base_url, extensions=exts, on_skip=skipped.append
            )
            for post in posts:
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
    if skipped:
        from archiver.text import plural

        click.echo(
            f"archiver: warning: {plural(len(skipped), 'file')} skipped by extension"
            " (see --extensions)",
            err=True,
        )
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
    from archiver.ops.report import (
        ReportFilter,
        check_filter_names,
        parse_since,
        parse_states,
        render,
        table_width,
        url_rows,
    )
    from archiver.store.directory import Store

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

        def read(database: Database, _: Store) -> list[dict[str, Any]]:
            check_filter_names(database, flt)
            return url_rows(database, flt, held)

        rows = _read(cfg, read)
        tty = output is None and sys.stdout.isatty()
        fmt = fmt or ("table" if tty else "json")
        width = table_width(tty) if output is None else None
        text = render(rows, fmt, color=tty, store=held, output=output, width=width)
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


def _internal_error(exc: BaseException, *, debug: bool) -> None:
    """A bug: one line, the traceback in a file it names (or on stderr with --debug), exit 70."""
    from archiver.run.crawl import INTERNAL_ERROR, describe_bug

    text = "".join(traceback.format_exception(exc))
    what = describe_bug(exc)
    if debug:
        click.echo(text, err=True, nl=False)
        where = "traceback above"
    else:
        try:
            fd, name = tempfile.mkstemp(prefix="archiver-traceback-", suffix=".txt")
            with open(fd, "w", encoding="utf-8") as f:
                f.write(text)
            where = f"traceback in {name}"
        except OSError as write_error:
            where = f"traceback not saved ({write_error.strerror}); rerun with --debug"
    click.echo(
        f"archiver: internal error: {what} ({where}; please report it)",
        err=True,
    )
    sys.exit(INTERNAL_ERROR)


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C (transactions roll back, the lock is released)."""
    raise Stop(signum)


def _usage_line(exc: click.UsageError) -> str:
    """Click's three lines (Usage, Try, Error) as the one ``archiver: ...`` line used
    for every other error, naming the help to read."""
    message = " ".join(exc.format_message().split()).replace(". (", " (")
    message = message[:1].lower() + message[1:] if message[1:2].islower() else message
    command = exc.ctx.command_path if exc.ctx is not None else "archiver"
    return f"archiver: {message.rstrip('.')} (see '{command} --help')"


def main() -> None:
    if "httpx" not in sys.modules:
        # httpx imports its own command line client (rich, pygments: ~45 ms of start-up)
        # whenever those are installed; this process never runs it. A None entry makes
        # that optional import fail fast, and httpx.main then only says it cannot run.
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = cli.main(prog_name="archiver", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()  # plain ``archiver``: the help itself, as click prints it
        code = exc.exit_code
    except click.UsageError as exc:
        click.echo(_usage_line(exc), err=True)
        code = exc.exit_code
    except click.ClickException as exc:
        click.echo(f"archiver: {exc.format_message()}", err=True)
        code = exc.exit_code
    except click.Abort as exc:  # KeyboardInterrupt while click itself was parsing
        click.echo("archiver: interrupted by SIGINT", err=True)
        code = 128 + signal.SIGINT if exc.__cause__ is not None else 1
    except Stop as exc:
        click.echo(f"archiver: interrupted by {signal.Signals(exc.signum).name}", err=True)
        code = 128 + exc.signum
    except ArchiverError as exc:
        _fail(exc)
    except Exception as exc:
        _internal_error(exc, debug="--debug" in sys.argv[1:2])
    sys.exit(code if isinstance(code, int) else 0)


# Commands defined in their own modules register themselves on import.
from archiver.cli import ops as _ops  # noqa: E402, F401
from archiver.cli import store as _store  # noqa: E402, F401
