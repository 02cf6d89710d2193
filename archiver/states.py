"""The state rules of a URL, in one place: what is due, what a run may change, and what
one more check result means.

* **Due** (``is_due``): a URL is fetched again when it is new (``pending``, or never
  checked), never archived (``ok`` with no copy, as a ``check`` leaves it), marked by
  ``urls.recheck`` (its copy is missing or damaged, or ``restore --undo`` put its link
  back), failing or in error for at least ``confirm_after``, or otherwise last checked
  at least ``recheck_after`` ago; ``--all`` (and every ``check``) takes every URL. The
  database's due query (``db.run_queries``) implements exactly this predicate
  (``tests/test_states.py`` holds it to that).
* **What a run may change** (``may_clear``): a ``crawl`` records what it finds; a
  ``check`` probes, so its "ok" never clears a failed full fetch of a URL we hold no copy
  of (the report keeps showing it broken until a crawl archives it), nor an ``invalid``
  verdict of a full fetch at all (a probe reads the first bytes; the crawl read the whole
  body and found it does not open, whatever copy we still hold).
* **Confirmation** (``transition``): a link is *confirmed* dead only after failing on
  ``confirm_runs`` consecutive runs at least ``confirm_after`` apart, while ``invalid``
  needs no confirmation and transient errors never confirm anything.

Pure: no database, no clock of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from archiver.clock import parse_iso
from archiver.records import DueUrl, Outcome, UrlState

__all__ = [
    "FAILED",
    "Due",
    "Previous",
    "Transition",
    "is_due",
    "may_clear",
    "transition",
]

#: The states that say a fetch of the URL failed.
FAILED = frozenset({UrlState.FAILING, UrlState.DEAD, UrlState.INVALID, UrlState.ERROR})


@dataclass(frozen=True)
class Due:
    """The due rule's settings for one run: the thresholds and ``--all``."""

    now: datetime
    recheck_after: float
    confirm_after: float
    everything: bool = False  # --all, or a check: every URL of the run's posts

    @property
    def recheck_before(self) -> datetime:
        """A URL last checked at or before this is due (unless failing or in error)."""
        return self.now - timedelta(seconds=self.recheck_after)

    @property
    def confirm_before(self) -> datetime:
        """A failing or erring URL last checked at or before this is due."""
        return self.now - timedelta(seconds=self.confirm_after)


def is_due(url: DueUrl, due: Due) -> bool:
    """Whether ``url`` is fetched this run (see the module's docstring)."""
    last = parse_iso(url.last_checked)
    if due.everything or last is None or url.state == UrlState.PENDING or url.recheck:
        return True  # new, or verify / restore --undo asked for it
    if url.state == UrlState.OK and url.sha256 is None:
        return True  # checked but never archived (e.g. by `check`)
    if url.state in (UrlState.FAILING, UrlState.ERROR):
        return last <= due.confirm_before
    return last <= due.recheck_before


def may_clear(url: DueUrl, outcome: Outcome, *, probe: bool) -> bool:
    """Whether this outcome may replace what the URL's row says.

    A probe's "ok" says the link answers, not that we hold its asset: when the URL's
    last full fetch failed and we hold no copy, the failure stands (the check itself is
    still recorded). A probe's magic-byte test cannot overrule a full fetch's
    ``invalid`` (a body cut short or one that does not open) either, copy or none.
    """
    return not (
        probe
        and outcome.state == UrlState.OK
        and (url.sha256 is None or url.state == UrlState.INVALID)
        and url.state in FAILED
        and url.full_fetch_failed
    )


@dataclass(frozen=True)
class Previous:
    """What the database knew about the URL before this check."""

    state: str = UrlState.PENDING
    confirm_count: int = 0
    confirm_last: datetime | None = None


@dataclass(frozen=True)
class Transition:
    state: UrlState
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
    if outcome == UrlState.OK:
        return Transition(UrlState.OK, 0, None, newly_broken=False)
    if outcome == UrlState.INVALID:
        return Transition(UrlState.INVALID, 0, None, newly_broken=prev.state != "invalid")
    if outcome == UrlState.ERROR:
        # Transient failures neither confirm nor clear a pending confirmation.
        return Transition(UrlState.ERROR, prev.confirm_count, prev.confirm_last, False)
    if outcome == UrlState.BLOCKED:
        # A guard refused the URL: nothing was asked, so nothing is confirmed or cleared.
        return Transition(UrlState.BLOCKED, prev.confirm_count, prev.confirm_last, False)
    if outcome != UrlState.DEAD:
        raise ValueError(f"unknown outcome {outcome!r}")
    if prev.state == UrlState.DEAD:
        return Transition(UrlState.DEAD, prev.confirm_count, prev.confirm_last, False)
    count, last = prev.confirm_count, prev.confirm_last
    if last is None or (now - last).total_seconds() >= confirm_after:
        count, last = count + 1, now
    if count >= confirm_runs:
        return Transition(UrlState.DEAD, count, last, newly_broken=True)
    return Transition(UrlState.FAILING, count, last, newly_broken=False)
