"""The records that pass between pipeline stages: frozen, typed, holding no open resource.

A stage takes and returns these, never a database row or a mapping of column names,
so a column can change without every stage knowing.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RecheckReason", "UrlState"]


class UrlState(StrEnum):
    """Every state a URL can be in (a ``str``: it compares, prints and serialises as one)."""

    OK = "ok"
    FAILING = "failing"
    DEAD = "dead"
    INVALID = "invalid"
    ERROR = "error"
    BLOCKED = "blocked"
    PENDING = "pending"


class RecheckReason(StrEnum):
    """Why a URL must be fetched in full at the next run, whatever its last check said."""

    COPY_MISSING = "copy-missing"  # verify found its blob gone from the store
    COPY_DAMAGED = "copy-damaged"  # verify found its blob's bytes changed
    UNDONE = "undone"  # restore --undo put the original link back in a post
