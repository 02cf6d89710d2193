"""Where the state lives: a SQLite file (a ``Path``) or a PostgreSQL database (``PostgresUrl``).

The config's ``db`` and ``--db`` give either; only this package tells them apart.
A ``PostgresUrl`` never shows its password: ``str()`` and ``repr()`` mask it (in the
authority and in a ``password=`` query parameter), so a message, a log line or a
report that names the database cannot leak it. Nothing here imports a driver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from archiver.errors import ConfigError
from archiver.redact import mask_url

__all__ = [
    "SCHEMES",
    "Location",
    "PostgresUrl",
    "as_location",
    "directory_beside",
    "exists",
    "parse_location",
    "shown_dsn",
]

#: The URL schemes that name a PostgreSQL database (libpq accepts both).
SCHEMES = ("postgresql://", "postgres://")

_PASSWORD_PARAM = re.compile(r"(?i)([?&]password=)[^&#]*")


def shown_dsn(dsn: str) -> str:
    """The DSN with every password masked: ``postgresql://u:***@h/db?password=***``."""
    return _PASSWORD_PARAM.sub(r"\1***", mask_url(dsn))


@dataclass(frozen=True)
class PostgresUrl:
    """A ``postgresql://`` DSN; its text form hides the password."""

    dsn: str = field(repr=False)

    def __str__(self) -> str:
        return shown_dsn(self.dsn)

    def __repr__(self) -> str:
        return f"PostgresUrl({str(self)!r})"

    @property
    def password(self) -> str | None:
        """The password the DSN carries (to scrub it from a driver's message), if any."""
        parts = urlsplit(self.dsn)
        if parts.password:
            return parts.password
        m = re.search(r"(?i)[?&]password=([^&#]*)", self.dsn)
        return m.group(1) if m else None


#: What ``Database`` opens.
Location = Path | PostgresUrl


def parse_location(text: str, base: Path, *, resolve: bool = False) -> Location:
    """The config's or ``--db``'s value: a PostgreSQL URL, else a path (relative to ``base``;
    ``resolve``: symbolic links resolved, as ``--db`` has always been).

    A URL is checked as far as can be without a server: a port that is a number and a
    database name; a bad one is a ``ConfigError`` that shows no password.
    """
    if text.lower().startswith(SCHEMES):
        url = PostgresUrl(text)
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 (raises for a port that is no number)
        except ValueError as exc:
            raise ConfigError(f"config key 'db': bad PostgreSQL URL {url}: {exc}") from None
        if not parts.path.strip("/"):
            raise ConfigError(
                f"config key 'db': the PostgreSQL URL {url} names no database"
                " (postgresql://user@host:port/NAME)"
            )
        return url
    p = Path(text).expanduser()
    p = p if p.is_absolute() else base / p
    return p.resolve() if resolve else p


def directory_beside(location: Location, base: Path) -> Path:
    """Where files kept "beside the database" go: the file's directory, or for a database
    on a server ``base/data`` (``base``: the config file's directory)."""
    return location.parent if isinstance(location, Path) else base / "data"


def as_location(value: Location | str) -> Location:
    """A location from what a caller holds (a string is parsed against the working directory)."""
    if isinstance(value, str):
        return parse_location(value, Path.cwd())
    return value


def exists(location: Location) -> bool:
    """Whether there is a database to open: a file that exists; a server is asked on opening."""
    return location.exists() if isinstance(location, Path) else True
