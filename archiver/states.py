"""The state machine of a URL: what one more check result means.

Owns the rule that a link is *confirmed* dead only after failing on
``confirm_runs`` consecutive runs at least ``confirm_after`` apart, while
``invalid`` needs no confirmation and transient errors never confirm anything.
Pure: no database, no clock of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["Previous", "Transition", "transition"]


@dataclass(frozen=True)
class Previous:
    """What the database knew about the URL before this check."""

    state: str = "pending"
    confirm_count: int = 0
    confirm_last: datetime | None = None


@dataclass(frozen=True)
class Transition:
    state: str
    confirm_count: int
    confirm_last: datetime | None
    #: True when this check newly made the link confirmed dead or invalid.
    newly_broken: bool


def transition(
    prev: Previous,
    outcome: str,
    now: datetime,
    *,
    confirm_runs: int,
    confirm_after: float,
) -> Transition:
    """The state after a check whose fetch outcome is ok/dead/invalid/error/blocked."""
    if outcome == "ok":
        return Transition("ok", 0, None, newly_broken=False)
    if outcome == "invalid":
        return Transition("invalid", 0, None, newly_broken=prev.state != "invalid")
    if outcome == "error":
        # Transient failures neither confirm nor clear a pending confirmation.
        return Transition("error", prev.confirm_count, prev.confirm_last, newly_broken=False)
    if outcome == "blocked":
        # A guard refused the URL: nothing was asked, so nothing is confirmed or cleared.
        return Transition("blocked", prev.confirm_count, prev.confirm_last, newly_broken=False)
    if outcome != "dead":
        raise ValueError(f"unknown outcome {outcome!r}")
    if prev.state == "dead":
        return Transition("dead", prev.confirm_count, prev.confirm_last, newly_broken=False)
    count, last = prev.confirm_count, prev.confirm_last
    if last is None or (now - last).total_seconds() >= confirm_after:
        count, last = count + 1, now
    if count >= confirm_runs:
        return Transition("dead", count, last, newly_broken=True)
    return Transition("failing", count, last, newly_broken=False)
