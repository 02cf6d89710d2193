"""State: every table, migration and query; no module outside this package has SQL."""

from archiver.db.sqlite import (
    MIGRATIONS,
    STATES,
    Database,
    PostRow,
    as_database_error,
    read_snapshot,
)

__all__ = ["MIGRATIONS", "STATES", "Database", "PostRow", "as_database_error", "read_snapshot"]
