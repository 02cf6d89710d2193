"""The scheduler on its own: rows arriving while it runs, per-host shares, fairness.

Work functions block on events the test controls, so every assertion is about order,
never about time; ``fail_after`` only turns a hang (the bug) into a failure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from archiver.records import DueUrl, UrlState
from archiver.run.schedule import Scheduler

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def row(host: str, n: int) -> DueUrl:
    url = f"http://{host}/{n}.pdf"
    return DueUrl(n, url, url, host, "any", UrlState.PENDING)


async def run_alongside(s: Scheduler, *tasks: Callable[[], Awaitable[None]]) -> None:
    """Runs the scheduler with ``tasks`` beside it; ``fail_after`` turns a hang (the bug
    these tests look for) into a failure."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for task in tasks:
                tg.start_soon(task)
            await s.run()


async def test_a_row_added_while_running_is_worked_on_before_the_input_ends() -> None:
    started = anyio.Event()
    done: list[int] = []

    async def work(r: DueUrl) -> None:
        started.set()
        done.append(r.url_id)

    s = Scheduler(work, per_host=2, workers=4)

    async def produce() -> None:
        s.add([row("a", 1)])
        await started.wait()  # hangs if work waited for the whole input
        s.add([row("a", 2), row("b", 3)])
        s.close()

    await run_alongside(s, produce)
    assert sorted(done) == [1, 2, 3] and s.added == 3


async def test_a_busy_host_holds_up_neither_another_host_nor_more_than_its_share() -> None:
    gate = anyio.Event()
    running: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    finished: list[str] = []
    b_done = anyio.Event()

    async def work(r: DueUrl) -> None:
        host = r.url.split("/")[2]
        running[host] += 1
        peak[host] = max(peak[host], running[host])
        if host == "a":
            await gate.wait()
        running[host] -= 1
        finished.append(host)
        if host == "b":
            b_done.set()

    s = Scheduler(work, per_host=3, workers=8)
    s.add([row("a", i) for i in range(20)])
    s.add([row("b", 100)])
    s.close()

    async def release_after_b() -> None:
        await b_done.wait()  # b finishes while every a is still blocked
        assert running["a"] == 3 and "a" not in finished
        gate.set()

    await run_alongside(s, release_after_b)
    assert peak["a"] == 3 and finished.count("a") == 20


async def test_every_row_is_worked_on_once_across_many_hosts_and_batches() -> None:
    seen: Counter[int] = Counter()

    def counts_add_up() -> None:
        waiting = sum(len(q) for q in s._queues.values())
        assert s._queued == waiting
        assert s._runnable == sum(len(s._queues[h]) for h in s._ready)

    async def work(r: DueUrl) -> None:
        counts_add_up()
        await anyio.lowlevel.checkpoint()
        seen[r.url_id] += 1
        counts_add_up()

    s = Scheduler(work, per_host=2, workers=5, backlog=6, limit=40)
    rows = [row(f"h{i % 7}", i) for i in range(300)]

    async def produce() -> None:
        for start in range(0, 300, 13):
            await s.room()
            s.add(rows[start : start + 13])
            counts_add_up()
        s.close()

    await run_alongside(s, produce)
    assert seen == Counter(range(300))
    assert (s._runnable, s._queued) == (0, 0)  # the backlog's counts add up


async def test_closing_with_nothing_added_ends_the_run() -> None:
    async def work(r: DueUrl) -> None:
        raise AssertionError("no row was added")

    s = Scheduler(work, per_host=2, workers=3)
    s.close()
    with anyio.fail_after(10):
        await s.run()


async def test_a_failing_row_stops_the_run_with_its_error() -> None:
    async def work(r: DueUrl) -> None:
        if r.url_id == 3:
            raise RuntimeError("disk full")
        await anyio.lowlevel.checkpoint()

    s = Scheduler(work, per_host=2, workers=2)
    s.add([row("a", i) for i in range(10)])  # never closed: the error must end it anyway
    with anyio.fail_after(10), pytest.raises(BaseExceptionGroup) as caught:
        await s.run()
    assert caught.group_contains(RuntimeError, match="disk full")


async def test_a_producer_reads_ahead_only_as_far_as_the_backlog() -> None:
    gate = anyio.Event()

    async def work(r: DueUrl) -> None:
        await gate.wait()

    s = Scheduler(work, per_host=1, workers=1, backlog=3, limit=3)

    async def produce() -> None:
        for i in range(20):
            await s.room()
            s.add([row("a", i)])
        s.close()

    async def check_then_open() -> None:
        await wait_all_tasks_blocked()  # the worker on the gate, the producer on room()
        assert s.added == 4  # one taken by the worker, three waiting: the limit
        gate.set()

    await run_alongside(s, produce, check_then_open)
    assert s.added == 20


async def test_rows_waiting_for_a_host_at_its_limit_do_not_stop_the_reading() -> None:
    # The posts link a stuck host 30 times, then another host: the reader must get to
    # the other host's links while the stuck host holds every slot it has.
    stuck = anyio.Event()
    other_done = anyio.Event()

    async def work(r: DueUrl) -> None:
        if r.url.startswith("http://stuck/"):
            await stuck.wait()
        else:
            other_done.set()

    s = Scheduler(work, per_host=2, workers=4, backlog=4, limit=1000)

    async def produce() -> None:
        for i in range(30):
            await s.room()
            s.add([row("stuck", i)])
        await s.room()
        s.add([row("other", 99)])
        s.close()

    async def release() -> None:
        await other_done.wait()  # hangs if the stuck host's queue stopped the reader
        stuck.set()

    await run_alongside(s, produce, release)
    assert s.added == 31


def remapped(host: str, fetch_host: str, n: int) -> DueUrl:
    url = f"http://{host}/{n}.pdf"
    return DueUrl(n, url, f"http://{fetch_host}/{n}.pdf", fetch_host, "any", UrlState.PENDING)


async def test_shares_are_by_the_host_fetched_not_the_host_written() -> None:
    """Two written hosts [remap]ped onto one share its slots, and a link remapped away from
    a busy host does not wait for that host's slots."""
    gate = anyio.Event()
    running: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    moved_done = anyio.Event()

    async def work(r: DueUrl) -> None:
        running[r.fetch_host] += 1
        peak[r.fetch_host] = max(peak[r.fetch_host], running[r.fetch_host])
        if r.fetch_host == "one":
            await gate.wait()
        running[r.fetch_host] -= 1
        if r.fetch_host == "elsewhere":
            moved_done.set()

    s = Scheduler(work, per_host=2, workers=8)
    s.add([remapped("a", "one", i) for i in range(5)])
    s.add([remapped("b", "one", 10 + i) for i in range(5)])
    s.add([remapped("a", "elsewhere", 100)])  # written on a, fetched elsewhere
    s.close()

    async def release_after_moved() -> None:
        await moved_done.wait()  # done while both written hosts' links are held at "one"
        assert running["one"] == 2
        gate.set()

    await run_alongside(s, release_after_moved)
    assert peak["one"] == 2


async def test_a_released_row_gives_its_share_and_worker_to_other_rows_while_it_waits() -> None:
    """A row in a retry's backoff calls ``release``: with one worker and one slot per host,
    the next row of the same host runs while it waits, and the pool stays one worker."""
    b_done = anyio.Event()
    awake: list[int] = []  # rows holding a worker, at each step
    order: list[str] = []

    async def work(r: DueUrl) -> None:
        awake.append(r.url_id)
        assert len(awake) <= 1  # never more than the pool, released rows aside
        if r.url_id == 1:
            awake.remove(1)
            s.release()  # about to wait out a backoff
            s.release()  # once per row: a second call does nothing
            await b_done.wait()  # hangs if the row kept its worker or its share
            order.append("a after")
            return
        order.append(f"b{r.url_id}")
        awake.remove(r.url_id)
        b_done.set()

    s = Scheduler(work, per_host=1, workers=1)
    s.add([row("a", 1), row("a", 2), row("a", 3)])
    s.close()
    await run_alongside(s)
    assert order[0] == "b2" and sorted(order) == ["a after", "b2", "b3"]
    assert s._running["a"] == 0 and s._parked == 0 and (s._runnable, s._queued) == (0, 0)


async def test_release_outside_a_worker_or_past_the_parked_limit_keeps_the_worker() -> None:
    running: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    gate = anyio.Event()

    async def work(r: DueUrl) -> None:
        s.release()  # past ``parked_limit``: the row keeps its share
        running["a"] += 1
        peak["a"] = max(peak["a"], running["a"])
        await gate.wait()
        running["a"] -= 1

    s = Scheduler(work, per_host=2, workers=4, parked_limit=0)
    s.release()  # not in a worker: nothing happens
    s.add([row("a", i) for i in range(6)])
    s.close()

    async def open_gate() -> None:
        await wait_all_tasks_blocked()
        assert running["a"] == 2  # the share holds, as without release
        gate.set()

    await run_alongside(s, open_gate)
    assert peak["a"] == 2 and s._parked == 0


async def test_new_rows_wake_only_as_many_idle_workers_as_can_start() -> None:
    """A pool of 40 on one host with 2 slots keeps 38 workers idle: a row for the host at
    its limit wakes none, a row for a free host wakes one, and a release wakes none (its
    stand-in takes the freed slot); every row still starts as soon as its host has room."""
    gates = {host: anyio.Event() for host in "abc"}
    running: Counter[str] = Counter()
    woken: list[int] = []

    async def work(r: DueUrl) -> None:
        host = r.url.split("/")[2]
        running[host] += 1
        if r.url_id == 3:
            s.release()  # as a retry's backoff does
        await gates[host].wait()
        running[host] -= 1

    s = Scheduler(work, per_host=2, workers=40)

    async def produce() -> None:
        await wait_all_tasks_blocked()
        idle = len(s._idle)
        s.add([row("a", 1), row("a", 2)])
        await wait_all_tasks_blocked()
        assert running["a"] == 2 and len(s._idle) == idle - 2
        woken.append(idle - len(s._idle))
        s.add([row("a", 3), row("a", 4), row("a", 5)])  # a is at its limit: none woken
        assert len(s._idle) == idle - 2
        s.add([row("b", 6)])  # one row can start: one worker woken, for it
        assert len(s._idle) == idle - 3
        await wait_all_tasks_blocked()
        assert (running["a"], running["b"]) == (2, 1)
        gates["a"].set()  # 1, 2 end; 3 releases (4 takes its slot), 5 follows
        await wait_all_tasks_blocked()
        assert running["a"] == 0 and s._queued == 0 and s._parked == 0
        # 3 to 5 ran on the workers 1 and 2 freed and on 3's stand-in, which are idle
        # again: only b's row holds a worker, and the pool is still 40
        assert len(s._idle) == idle - 1
        s.add([row("c", 7), row("c", 8), row("c", 9)])  # two can start
        await wait_all_tasks_blocked()
        assert running["c"] == 2
        s.close()  # every idle worker ends
        gates["b"].set()
        gates["c"].set()

    await run_alongside(s, produce)
    assert woken == [2] and s._running == Counter({h: 0 for h in "abc"})
    assert (s._runnable, s._queued, s._parked) == (0, 0, 0)
