"""State: every table, migration and query; no module outside this package has SQL.

The state is a SQLite file or a PostgreSQL database (``location``); callers hold a
``Location`` and never ask which. The names below are imported on first use, so that
``archiver.config`` can name a location without loading the queries (start-up time).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archiver.db.location import Location, PostgresUrl, exists, parse_location
    from archiver.db.sqlite import (
        MIGRATIONS,
        STATES,
        Database,
        PostRow,
        as_database_error,
        read_snapshot,
    )

_WHERE = {
    "Location": "location",
    "PostgresUrl": "location",
    "exists": "location",
    "parse_location": "location",
    "MIGRATIONS": "sqlite",
    "STATES": "sqlite",
    "Database": "sqlite",
    "PostRow": "sqlite",
    "as_database_error": "sqlite",
    "read_snapshot": "sqlite",
}

__all__ = [
    "MIGRATIONS",
    "STATES",
    "Database",
    "Location",
    "PostRow",
    "PostgresUrl",
    "as_database_error",
    "exists",
    "parse_location",
    "read_snapshot",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"archiver.db.{module}"), name)
    globals()[name] = value
    return value
