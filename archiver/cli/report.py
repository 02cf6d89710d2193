"""The commands that read the state and change nothing: ``report`` and ``status``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from archiver.cli.options import config_from_options, read_only, state_options
from archiver.errors import ConfigError

if TYPE_CHECKING:
    from archiver.config import Config
    from archiver.db.sqlite import Database
    from archiver.ops.report import Confirmation, ReportFilter
    from archiver.store.base import BlobStore as Store

#: The formats a CI reads (``archiver.ops.ci_report``): one entry per use of a link.
CI_FORMATS = ("junit", "github", "sarif")

__all__ = ["report", "status"]


@click.command()
@state_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "json", "csv", "html", "junit", "github", "sarif"]),
    help="Output format (default: table on a terminal, json otherwise); junit, github"
    " and sarif: one entry per use of a link, for CI.",
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
@click.option(
    "--suggest",
    is_flag=True,
    help="Ask the web archive ([archive] endpoint) for a snapshot of each dead or invalid"
    " link with no copy.",
)
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write to FILE.")
def report(
    config_path: Path | None,
    db: str | None,
    store: Path | None,
    fmt: str | None,
    state: str | None,
    post: str | None,
    host: str | None,
    since: str | None,
    changed: bool,
    unreferenced: bool,
    suggest: bool,
    output: Path | None,
) -> None:
    """Report links by state; exit 1 when any link matches, 0 when none does.

    Example: archiver report --format html --state all -o report.html
    """
    from archiver.ops.report import (
        ArchiveRows,
        Confirmation,
        ReportFilter,
        check_filter_names,
        parse_since,
        parse_states,
        table_width,
    )

    cfg = config_from_options(config_path, db, store)
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
    if suggest and fmt in (*CI_FORMATS, "csv"):
        raise ConfigError(
            f"--suggest applies to the table, markdown, json and html reports, not --format {fmt}"
        )
    if fmt in CI_FORMATS:
        _ci_report(cfg, flt, fmt, output)
        return
    from archiver.store import open_store

    blobs = open_store(cfg)
    held = blobs if blobs.exists() else None
    tty = output is None and sys.stdout.isatty()
    fmt = fmt or ("table" if tty else "json")
    width = table_width(tty) if output is None else None
    confirm = Confirmation(cfg.confirm_runs, cfg.confirm_after)
    if suggest:
        _suggest(cfg, flt, fmt, held, output, tty=tty, width=width, confirm=confirm)
        return

    def read(database: Database, _: Store) -> Callable[[TextIO], int]:
        from archiver.ops.ci_report import spool_text
        from archiver.ops.report import write_report

        check_filter_names(database, flt)
        rows = ArchiveRows(database, flt, held)
        return spool_text(
            lambda out: write_report(
                rows, fmt, out, color=tty, store=held, output=output, width=width, confirm=confirm
            )
        )

    _emit(read_only(cfg, read), output)


def _suggest(
    cfg: Config,
    flt: ReportFilter,
    fmt: str,
    held: Store | None,
    output: Path | None,
    *,
    tty: bool,
    width: int | None,
    confirm: Confirmation,
) -> None:
    """``report --suggest``: the rows in hand, since each may gain a web-archive snapshot."""
    from archiver.cli.options import warn
    from archiver.ops.report import check_filter_names, json_array, render, url_rows
    from archiver.ops.report_rows import ReportRow, row_dict
    from archiver.ops.wayback import add_snapshots, show_snapshots

    def read(database: Database, _: Store) -> list[ReportRow]:
        check_filter_names(database, flt)
        return url_rows(database, flt, held)

    rows = read_only(cfg, read)
    suggested = [row_dict(r) for r in rows]  # the JSON objects, which gain ``snapshot``
    add_snapshots(cfg, suggested, warn=warn)
    text = render(rows, fmt, color=tty, store=held, output=output, width=width, confirm=confirm)
    text = json_array(suggested) if fmt == "json" else show_snapshots(text, suggested, fmt)
    if output:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror}") from exc
    else:
        click.echo(text, nl=False)
    sys.exit(1 if rows else 0)


def _ci_report(cfg: Config, flt: ReportFilter, fmt: str, output: Path | None) -> None:
    """``report --format junit|github|sarif``: exit 1 when any use matches, as ever."""
    from archiver.ops.ci_report import findings, spool
    from archiver.ops.report import check_filter_names

    def read(database: Database, _: Store) -> Callable[[TextIO], int]:
        check_filter_names(database, flt)
        return spool(fmt, lambda: findings(database, flt))

    _emit(read_only(cfg, read), output)


def _emit(copy: Callable[[TextIO], int], output: Path | None) -> None:
    """Copies a spooled report to ``output`` or stdout; exit 1 when it has any link."""
    if output is None:
        count = copy(sys.stdout)
        sys.stdout.flush()
    else:
        try:
            with output.open("w", encoding="utf-8", newline="") as out:
                count = copy(out)
        except OSError as exc:
            raise ConfigError(f"cannot write {output}: {exc.strerror}") from exc
    sys.exit(1 if count else 0)


@click.command()
@state_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for a person, json for a script.",
)
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Show this many of the last runs.",
)
def status(
    config_path: Path | None, db: str | None, store: Path | None, fmt: str, runs: int
) -> None:
    """Show the last runs, totals, store size and the URL checked longest ago (or never).

    Example: archiver status --runs 10
    """
    from archiver.ops.status import render_status
    from archiver.ops.status import status as get_status

    cfg = config_from_options(config_path, db, store)
    s = read_only(cfg, lambda database, blobs: get_status(database, blobs, runs=runs))
    click.echo(json.dumps(s, indent=2) if fmt == "json" else render_status(s), nl=fmt == "json")
