"""Operator commands: ``archiver status``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from archiver.cli.app import _fail, _load, _read, _state_options, cli
from archiver.errors import ArchiverError


@cli.command()
@_state_options
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
    config_path: Path | None, db: Path | None, store: Path | None, fmt: str, runs: int
) -> None:
    """Show the last runs, totals, store size and the URL checked longest ago (or never).

    Example: archiver status --runs 10
    """
    from archiver.ops.status import render_status
    from archiver.ops.status import status as get_status

    try:
        cfg = _load(config_path, db, store)
        s = _read(cfg, lambda database, blobs: get_status(database, blobs, runs=runs))
    except ArchiverError as exc:
        _fail(exc)
        return
    click.echo(json.dumps(s, indent=2) if fmt == "json" else render_status(s), nl=fmt == "json")
