"""What the command modules share: options, config loading, the log and read-only access.

Every name here is public so that each command module imports it from here, never from
another command module (the CLI's modules form a tree: ``app`` -> commands -> this).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from archiver.config import Config, db_option, load_config, parse_extensions
from archiver.redact import clean_text

if TYPE_CHECKING:
    from archiver.db.sqlite import Database
    from archiver.store.base import BlobStore as Store

__all__ = [
    "Log",
    "allow_option",
    "config_from_options",
    "extensions_from",
    "extensions_option",
    "read_only",
    "state_options",
    "warn",
    "with_allowed",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: Where in ``click.Context.meta`` a command puts the log its errors must go to.
LOG_KEY = "archiver.log"


class Log:
    """Where messages go: plain text or one JSON object per line on stderr."""

    def __init__(self, fmt: str = "plain", quiet: bool = False) -> None:
        self.fmt = fmt
        self.quiet = quiet

    def install(self) -> Log:
        """Makes this the log the error that stops the command is written to (so a JSON
        log stays JSON to its last line); see ``exits.failure``."""
        click.get_current_context().meta[LOG_KEY] = self
        return self

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


def warn(message: str) -> None:
    """One warning line on stderr; the command goes on."""
    click.echo(f"archiver: warning: {message}", err=True)


def state_options(fn: F) -> F:
    """--config, --db and --store: accepted by every command that touches state."""
    fn = click.option(
        "--store",
        metavar="PATH|URL",
        help="Blob store directory, or an s3://bucket/prefix URL (with the [s3] table).",
    )(fn)
    fn = click.option(
        "--db",
        metavar="PATH|URL",
        help="SQLite database file, or a postgresql:// URL.",
    )(fn)
    fn = click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        help="Config file (default: ./config.toml if present).",
    )(fn)
    return fn


def config_from_options(
    config_path: Path | None, db: str | None, store: str | Path | None
) -> Config:
    """The config ``state_options`` name: the file, then --db and --store over it."""
    from archiver.config import s3_url

    cfg = load_config(config_path)
    bucket = s3_url(str(store), "--store") if store else None
    cfg = cfg.with_overrides(
        db=db_option(db) if db else None,
        store=Path(store).resolve() if store and not bucket else None,
    )
    return cfg.with_bucket(bucket) if bucket else cfg


def allow_option(fn: F) -> F:
    """--allow-address: accepted by every command that fetches."""
    return click.option(
        "--allow-address",
        "allow_address",
        multiple=True,
        metavar="CIDR|HOST",
        help="Let the fetcher connect to this internal address range or host name"
        " (repeatable; merged with fetch.allow_addresses and ARCHIVER_ALLOW_ADDRESSES).",
    )(fn)


def with_allowed(cfg: Config, allow: tuple[str, ...]) -> Config:
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


def extensions_option(fn: F) -> F:
    """--extensions: accepted by every command that reads folders of posts."""
    return click.option(
        "--extensions",
        metavar="EXT,EXT",
        help="Comma list of the file extensions a folder's posts have"
        " (default: a source's 'extensions', else md,markdown,mdx,html,htm)."
        " A file named as a SOURCE is read whatever its extension.",
    )(fn)


def extensions_from(value: str | None) -> tuple[str, ...] | None:
    """``--extensions`` as a tuple (None: not given); a bad name is exit 2."""
    if value is None:
        return None
    return parse_extensions("--extensions", value.split(","))


def read_only(cfg: Config, read: Callable[[Database, Store], T]) -> T:
    """A read-only command's work: the database opened read-only, nothing created on disk."""
    from archiver.ops.access import read_archive

    return read_archive(cfg, read, warn)
