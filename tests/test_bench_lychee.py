"""benchmarks/lychee.py: the chaos server's fates and the ideal bound it is judged against.

The benchmark is not a test, but its ground truth must be right, or an accuracy figure
means nothing: each fate answers as its description says, and the bound reproduces the
figures issue 13 derived by hand. No server is started: ``World.answer`` is pure apart
from its counters and one clock, which the test moves by hand.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from archiver.validate import verdict

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "lychee.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_lychee", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_lychee"] = module
    spec.loader.exec_module(module)
    return module


def status(reply: bytes | None) -> int:
    assert reply is not None
    return int(reply.split(b" ", 2)[1])


def body(reply: bytes | None) -> bytes:
    assert reply is not None
    return reply.split(b"\r\n\r\n", 1)[1]


def test_assets_are_real_pdf_and_png(bench: ModuleType) -> None:
    assert verdict("pdf", bench.pdf_bytes()[:8192]).ok
    assert verdict("image", bench.png_bytes()[:8192]).ok
    assert bench.pdf_bytes().rstrip().endswith(b"%%EOF")


def test_each_fate_answers_as_described(bench: ModuleType) -> None:
    fates = {"1.png": "gone", "2.pdf": "flaky", "3.png": "ratelimit", "4.pdf": "reset"}
    fates |= {"5.png": "slow", "6.pdf": "redirect", "8.pdf": "soft404"}
    world = bench.World(fates, 0.02)

    def ask(name: str, **headers: str) -> tuple[float, bytes | None]:
        result: tuple[float, bytes | None] = world.answer("GET", f"/a/{name}", headers)
        return result

    delay, reply = ask("0.pdf", range="bytes=0-99")
    assert (delay, status(reply), len(body(reply))) == (0.02, 206, 100)
    assert status(ask("1.png")[1]) == 404
    assert [status(ask("2.pdf")[1]) for _ in range(3)] == [503, 503, 200]
    first = ask("3.png")[1]
    assert status(first) == 429 and b"Retry-After: 1\r\n" in (first or b"")
    assert status(ask("3.png")[1]) == 429  # asked again too early
    world.limited["3.png"] -= bench.RETRY_AFTER  # as if a second had passed
    assert status(ask("3.png")[1]) == 200
    assert ask("4.pdf") == (0.02, None)  # None: the connection is reset
    assert ask("4.pdf") == (0.02, None)  # every time
    delay, reply = ask("5.png")
    assert delay == pytest.approx(0.02 + bench.SLOW) and status(reply) == 200
    moved = ask("6.pdf")[1]
    assert status(moved) == 301 and b"Location: /r/6.pdf\r\n" in (moved or b"")
    assert verdict("pdf", body(world.answer("GET", "/r/6.pdf", {})[1])).ok
    soft = ask("8.pdf")[1]
    assert status(soft) == 200 and verdict("pdf", body(soft)).reason == "soft-404"
    # The redirect's target (/r/6.pdf) is counted as ok, the link itself as redirect.
    assert world.requests == {"ok": 2, "gone": 1, "flaky": 3, "ratelimit": 3, "reset": 2} | {
        "slow": 1,
        "redirect": 1,
        "soft404": 1,
    }


def test_truth_and_mix(bench: ModuleType) -> None:
    fates = bench.assign(1000, bench.MIX)
    counts = {fate: fates.count(fate) for fate in set(fates)}
    assert counts == {
        "ok": 800,
        "gone": 80,
        "flaky": 30,
        "ratelimit": 20,
        "reset": 10,
        "slow": 10,
        "redirect": 30,
        "soft404": 20,
    }
    assert fates == bench.assign(1000, bench.MIX)  # seeded: every run has the same fates
    broken = {fate for fate, (_, ok) in bench.FATES.items() if not ok}
    assert broken == {"gone", "reset", "soft404"}


def test_bound_reproduces_issue_13(bench: ModuleType) -> None:
    sched = bench.Schedule(retries=3, base=0.5, factor=2.0, cap=30.0)
    assert [sched.delay(n) for n in (1, 2, 3)] == [0.375, 0.75, 1.5]
    # One URL with mean waits: the issue's "about" figures for 80 links, 8 per host, 20 ms.
    assert bench.chain("ratelimit", 0.02, sched) == pytest.approx(1.04)
    assert bench.chain("flaky", 0.02, sched) == pytest.approx(1.185)
    assert bench.chain("reset", 0.02, sched) == pytest.approx(2.705)
    assert bench.bound(["ratelimit"] * 80, 0.02, 8, sched) == pytest.approx(1.04)
    assert bench.bound(["slow"] * 80, 0.02, 8, sched) == pytest.approx(80 * 3.02 / 8)
    # Each of 80 URLs draws its own jitter, so the slowest waits near the top of its
    # range: the bound's chain lies between the mean and the worst case.
    flaky = bench.bound(["flaky"] * 80, 0.02, 8, sched)
    assert 1.185 < flaky < 0.06 + 0.5 + 1.0 and flaky == pytest.approx(1.51, abs=0.01)
    reset = bench.bound(["reset"] * 80, 0.02, 8, sched)
    assert 2.705 < reset < 0.08 + 0.5 + 1 + 2 and reset == pytest.approx(3.39, abs=0.02)
    mix = bench.assign(1000, bench.MIX)
    # At 32 per host the ten reset URLs' longest chain beats the slow answer's 3.02 s.
    assert 3.02 < bench.bound(mix, 0.02, 32, sched) == pytest.approx(3.2, abs=0.02)
    assert bench.bound(mix, 0.02, 8, sched) == pytest.approx(52.8 / 8)


def test_fifo_ideal_is_a_schedule_without_foresight(bench: ModuleType) -> None:
    sched = bench.Schedule(retries=3, base=0.5, factor=2.0, cap=30.0)
    # 16 quick URLs, 8 at once: two rounds of the latency.
    assert bench.fifo_ideal(["ok"] * 16, 0.02, 8, sched) == pytest.approx(0.04)
    # 80 slow answers fill the slots for ten rounds: the slot bound exactly.
    assert bench.fifo_ideal(["slow"] * 80, 0.02, 8, sched) == pytest.approx(30.2)
    # 80 rate-limited URLs: the last first request goes out in the tenth round, and its
    # retry a second after its 429.
    assert bench.fifo_ideal(["ratelimit"] * 80, 0.02, 8, sched) == pytest.approx(1.22)
    # A slow URL last in the list starts after the others: the bound cannot see that.
    late = ["ok"] * 79 + ["slow"]
    assert bench.fifo_ideal(late, 0.02, 8, sched) == pytest.approx(0.18 + 3.02)
    assert bench.bound(late, 0.02, 8, sched) == pytest.approx(3.02)


def test_schedule_is_archivers(bench: ModuleType) -> None:
    from archiver.net.fetch import FetchSettings

    s = FetchSettings()
    assert bench.Schedule.archivers() == bench.Schedule(s.retries, s.backoff_base, 2.0, 30.0)


def test_a_wall_splits_at_the_servers_first_request_and_last_answer(bench: ModuleType) -> None:
    world = bench.World({}, 0.02)
    assert world.first_request is None
    world.answer("GET", "/a/0.pdf", {})
    first = world.first_request
    world.answer("GET", "/a/1.pdf", {})
    assert first is not None and world.first_request == first  # the first one stays
    run = bench.Run(2.5, 1.0, 40.0, 0, "")
    server = {"first_request": 10.75, "last_answer": 12.0}
    outcome = bench.Outcome(run, {}, server, span=(10.0, 12.5))
    assert outcome.phases() == "start-up 0.75 s, requests 1.25 s, exit 0.50 s"
    assert bench.Outcome(run, {}, {}).phases() == "phases unknown"
