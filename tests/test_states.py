from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archiver.clock import iso
from archiver.db import Database
from archiver.records import DueUrl, IdSet, RecheckReason, RefRow, UrlState
from archiver.states import Due, Previous, is_due, transition

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES = {"confirm_runs": 2, "confirm_after": 3600.0}


def test_first_permanent_failure_is_only_failing() -> None:
    t = transition(Previous("ok"), "dead", T0, **RULES)
    assert (t.state, t.confirm_count, t.newly_broken) == ("failing", 1, False)


def test_second_failure_an_hour_later_confirms_dead_once() -> None:
    first = transition(Previous("ok"), "dead", T0, **RULES)
    prev = Previous(first.state, first.confirm_count, first.confirm_last)
    second = transition(prev, "dead", T0 + timedelta(hours=1), **RULES)
    assert (second.state, second.newly_broken) == ("dead", True)
    third = transition(
        Previous("dead", second.confirm_count, second.confirm_last),
        "dead",
        T0 + timedelta(hours=5),
        **RULES,
    )
    assert (third.state, third.newly_broken) == ("dead", False)


def test_failures_closer_than_confirm_after_count_once() -> None:
    first = transition(Previous("ok"), "dead", T0, **RULES)
    prev = Previous(first.state, first.confirm_count, first.confirm_last)
    again = transition(prev, "dead", T0 + timedelta(minutes=10), **RULES)
    assert (again.state, again.confirm_count) == ("failing", 1)


def test_transient_errors_never_confirm() -> None:
    prev = Previous("ok")
    for hour in range(5):
        t = transition(prev, "error", T0 + timedelta(hours=hour), **RULES)
        assert t.state == "error" and not t.newly_broken
        prev = Previous(t.state, t.confirm_count, t.confirm_last)


def test_invalid_needs_no_confirmation_and_ok_resets() -> None:
    t = transition(Previous("ok"), "invalid", T0, **RULES)
    assert (t.state, t.newly_broken) == ("invalid", True)
    assert transition(Previous("invalid"), "invalid", T0, **RULES).newly_broken is False
    ok = transition(Previous("failing", 1, T0), "ok", T0, **RULES)
    assert (ok.state, ok.confirm_count) == ("ok", 0)


def test_confirm_runs_one_means_dead_at_once() -> None:
    t = transition(Previous("ok"), "dead", T0, confirm_runs=1, confirm_after=3600)
    assert (t.state, t.newly_broken) == ("dead", True)


def test_blocked_neither_confirms_nor_clears_a_pending_confirmation() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    prev = Previous("failing", 1, when)
    t = transition(prev, "blocked", when, confirm_runs=2, confirm_after=0)
    assert (t.state, t.confirm_count, t.confirm_last, t.newly_broken) == (
        "blocked",
        1,
        when,
        False,
    )


# -- the due rule: states.is_due, and the database's due query that implements it ----------

NOW = datetime(2026, 1, 1, 12, 0, 0, 500_000, tzinfo=UTC)  # not on a second: iso() truncates
RECHECK, CONFIRM = 86400.0, 3600.5


def _around(threshold: float) -> list[datetime]:
    edge = NOW - timedelta(seconds=threshold)
    return [edge - timedelta(seconds=1), edge, edge + timedelta(seconds=1)]


def _crafted() -> list[dict[str, Any]]:
    """Every state x archived or not x each recheck reason or none x last checked never,
    long ago, just now, or a second either side of each threshold."""
    times: list[datetime | None] = [None, NOW - timedelta(days=30), NOW]
    times += _around(RECHECK) + _around(CONFIRM)
    rows = []
    for state, sha, recheck, last in itertools.product(
        UrlState, (None, "ab" * 32), (None, *RecheckReason), times
    ):
        rows.append(
            {
                "state": state.value,
                "sha256": sha,
                "recheck": None if recheck is None else recheck.value,
                "last_checked": None if last is None else iso(last),
            }
        )
    return rows


@pytest.mark.parametrize("everything", [False, True])
def test_the_due_query_selects_exactly_what_is_due_says(tmp_path: Path, everything: bool) -> None:
    crafted = _crafted()
    db = Database(tmp_path / "archive.db")
    try:
        refs = [
            RefRow(
                url=f"http://h{i % 7}.test/{i}.pdf",
                line=i + 1,
                kind="link",
                as_written="x",
                start=0,
                end=1,
            )
            for i in range(len(crafted))
        ]
        with db.transaction():
            post_id = db.save_post(
                source="s",
                path="a.md",
                content_sha256="0",
                extractor_version="v",
                refs=refs,
                now=iso(NOW),
            )
            ids = {}
            for ref, row in zip(refs, crafted, strict=True):
                url_id = db.url_id(ref.url, iso(NOW))
                ids[url_id] = row
                db.execute(
                    "UPDATE urls SET state=?, sha256=?, recheck=?, last_checked=? WHERE id=?",
                    (row["state"], row["sha256"], row["recheck"], row["last_checked"], url_id),
                )
        due = Due(NOW, RECHECK, CONFIRM, everything)
        expected = {
            url_id
            for url_id, row in ids.items()
            if is_due(
                DueUrl(
                    url_id,
                    "u",
                    "u",
                    "h",
                    "any",
                    UrlState(row["state"]),
                    sha256=row["sha256"],
                    last_checked=row["last_checked"],
                    recheck=RecheckReason(row["recheck"]) if row["recheck"] else None,
                ),
                due,
            )
        }
        db.begin_run_posts()
        seen = IdSet()
        got = db.due_urls([post_id], due, seen)
        assert {u.url_id for u in got} == expected
        # every linked URL is considered, due or not
        assert len(seen) == len(ids) and all(i in seen for i in ids)
        assert db.due_urls([post_id], due, seen) == []  # ... once a run
        if everything:
            assert expected == set(ids)
        else:  # the rows fall on both sides of the rule
            assert 0 < len(expected) < len(ids)
    finally:
        db.close()


def test_is_due_by_rule() -> None:
    due = Due(NOW, RECHECK, CONFIRM)

    def url(state: UrlState, last: datetime | None, **kw: Any) -> DueUrl:
        return DueUrl(
            1, "u", "u", "h", "any", state, last_checked=None if last is None else iso(last), **kw
        )

    recent = NOW - timedelta(minutes=5)
    assert is_due(url(UrlState.PENDING, recent), due)  # new
    assert is_due(url(UrlState.DEAD, None), due)  # never checked
    assert is_due(url(UrlState.OK, recent), due)  # never archived (a check left it ok)
    assert not is_due(url(UrlState.OK, recent, sha256="ab"), due)
    assert is_due(url(UrlState.OK, recent, sha256="ab", recheck=RecheckReason.COPY_MISSING), due)
    assert is_due(url(UrlState.OK, recent, sha256="ab", recheck=RecheckReason.UNDONE), due)
    an_hour = NOW - timedelta(seconds=CONFIRM)
    assert is_due(url(UrlState.FAILING, an_hour), due)
    assert not is_due(url(UrlState.FAILING, an_hour + timedelta(seconds=1)), due)
    assert not is_due(url(UrlState.DEAD, an_hour), due)  # dead waits for recheck_after
    assert is_due(url(UrlState.DEAD, NOW - timedelta(seconds=RECHECK)), due)
    assert is_due(url(UrlState.OK, recent, sha256="ab"), Due(NOW, RECHECK, CONFIRM, True))


def test_an_id_set_claims_each_id_once_whatever_its_size() -> None:
    """The run's memory of considered URLs: one bit per id, grown as ids grow."""
    seen = IdSet()
    assert seen.claim([5, 3, 5]) == {3, 5}
    assert seen.claim([3, 4, 1_000_003]) == {4, 1_000_003}
    assert seen.claim(range(1_000_000, 1_000_010)) == set(range(1_000_000, 1_000_010)) - {1_000_003}
    assert len(seen) == 13
    assert 1_000_003 in seen and 0 not in seen and 2_000_000 not in seen
