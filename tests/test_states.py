from __future__ import annotations

from datetime import UTC, datetime, timedelta

from archiver.states import Previous, transition

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
