"""Small wording helpers for the lines a person reads; no I/O, no state."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, noun: str) -> str:
    """``1 post``, ``2 posts``, ``0 posts``: a count with its noun in the right number."""
    return f"{count} {noun}{'s' * (count != 1)}"
