"""The bounds on reading one post: no post may crash a run or hold it for long.

A body not read within ``post_budget`` seconds (or longer than MAX_POST_CHARS) skips
the whole post; the scanners' ``tick`` raises ``OverBudget`` once it is spent.
Front matter has bounds of its own (``frontmatter``).
"""

from __future__ import annotations

__all__ = ["MAX_POST_CHARS", "OverBudget", "post_budget"]

MAX_POST_CHARS = 32 * 1024 * 1024
"""Posts longer than this (in characters) are skipped unread."""
_BUDGET_BASE_SECONDS = 1.0
_BUDGET_SECONDS_PER_MB = 1.0


def post_budget(chars: int) -> float:
    """Seconds a post of ``chars`` characters may take to extract: 1 s plus 1 s per MB."""
    return _BUDGET_BASE_SECONDS + _BUDGET_SECONDS_PER_MB * chars / 1_000_000


class OverBudget(Exception):
    """Raised inside the extractor when a post's time budget is spent."""
