"""State: every table, migration and query; no module outside this package has SQL.

The state is a SQLite file or a PostgreSQL database (``location``); callers hold a
``Location`` and never ask which.
"""

from archiver.db.location import Location, PostgresUrl, exists, parse_location
from archiver.db.sqlite import (
    MIGRATIONS,
    STATES,
    Database,
    PostRow,
    as_database_error,
    read_snapshot,
)

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
