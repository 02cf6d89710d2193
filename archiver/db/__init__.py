"""State: every table, migration and query; no module outside this package has SQL."""

from archiver.db.sqlite import MIGRATIONS, STATES, Database, PostRow, read_snapshot

__all__ = ["MIGRATIONS", "STATES", "Database", "PostRow", "read_snapshot"]
