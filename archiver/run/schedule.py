"""Which due URL is fetched next: per-host queues served by a fixed pool of workers.

URLs arrive while posts are still being indexed (the first fetches go out while later
posts are parsed), wait in one queue per host, and are taken round-robin across hosts.
A host is offered to the workers only while it has fewer than its share running, so a
host with 90,000 URLs never holds up one with ten (no head-of-line blocking), and memory
holds one row per queued URL, never a task. The fetcher's limiters still enforce the
real limits (redirects to other hosts included). The slack here, twice those limits,
keeps the next request of a host ready at its limiter, so it goes out the moment a slot
frees (measured: without it, a check is ~6% slower).

A row waiting out a retry's backoff or a Retry-After holds nothing: its work calls
``release``, which gives the row's host share back and puts a stand-in worker in the
pool, so the host and every other host go on at full speed while it waits; the row
comes back when due (its task sleeps on, outside the pool) and then only queues for the
fetcher's real limits. Before, a waiting row kept its worker: 80 flaky links took 7x
their bound, and a few hosts sending Retry-After could hold every worker.

An idle worker waits on an event of its own, and new rows wake only as many idle workers
as rows could start: the pool is twice the run's concurrency, so on one busy host over a
hundred workers sit idle, and one shared event woke them all at each new post and each
release (about 22,000 wake-ups, ~0.14 s of CPU, in the 1,000-link mix of issue 13) for
none of them to find work.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar

import anyio
from anyio.abc import TaskGroup

from archiver.records import DueUrl

__all__ = ["Scheduler"]


class _Turn:
    """One row being worked on: its host, and whether it still holds its share and worker."""

    __slots__ = ("held", "host", "owner")

    def __init__(self, owner: Scheduler, host: str) -> None:
        self.owner = owner
        self.host = host
        self.held = True


#: The row the current worker task is on (each task has its own context).
_TURN: ContextVar[_Turn | None] = ContextVar("archiver_schedule_turn", default=None)


class Scheduler:
    """Hands rows to ``work`` from ``workers`` tasks, at most ``per_host`` per host at once
    (the host fetched: ``DueUrl.fetch_host``, not the host of the URL as written).

    ``add`` rows at any time, ``close`` when no more will come; ``run`` returns when every
    row added has been worked on. A producer awaits ``room`` before reading more input:
    it returns while fewer than ``backlog`` rows wait for a host that could take them
    now, so a folder of 100,000 links is read as fast as it is fetched, not into memory,
    and parsing runs in small steps between responses instead of in one burst that holds
    them all up. Rows waiting for a host at its limit do not count towards ``backlog``:
    a slow or stuck host must not keep the links of other hosts, further on in the
    posts, from being read. Only ``limit`` rows in all (10,000, ~10 MB) bound memory then.

    A row that must wait (a retry's backoff) calls ``release`` from its work: at most
    ``parked_limit`` rows wait that way at once, each a sleeping task; past that, a
    waiting row keeps its worker and share as before, which bounds memory.
    """

    def __init__(
        self,
        work: Callable[[DueUrl], Awaitable[None]],
        *,
        per_host: int,
        workers: int,
        backlog: int | None = None,
        limit: int = 10_000,
        parked_limit: int = 5_000,
    ) -> None:
        self._work = work
        self._backlog = backlog if backlog is not None else 2 * workers
        self._runnable = 0  # rows queued for the hosts in ``_ready``
        self._limit = limit
        self._queued = 0  # rows queued for any host
        self._room = anyio.Event()
        self._per_host = per_host
        self._workers = workers
        self._queues: dict[str, deque[DueUrl]] = {}
        # Hosts with a queued row and room for another request, each listed once.
        self._ready: deque[str] = deque()
        self._running: Counter[str] = Counter()
        self._closed = False
        self._idle: deque[anyio.Event] = deque()  # one per worker waiting for a row
        self._parked = 0  # released rows whose work has not ended yet
        self._parked_limit = parked_limit
        self._tg: TaskGroup | None = None
        #: Rows added so far (the progress bar's total while posts are still being read).
        self.added = 0

    def add(self, rows: Iterable[DueUrl]) -> None:
        for row in rows:
            host = row.fetch_host  # the host asked, which [remap] may have changed
            queue = self._queues.get(host)
            if queue is None:
                queue = self._queues[host] = deque()
            if self._running[host] < self._per_host:
                if not queue:
                    self._ready.append(host)
                self._runnable += 1
            queue.append(row)
            self.added += 1
            self._queued += 1
        if self._ready:
            self._notify(self._runnable)

    def close(self) -> None:
        """No more rows: idle workers end, busy ones finish the queues."""
        self._closed = True
        self._notify(len(self._idle))

    async def room(self) -> None:
        """Returns once fewer than ``backlog`` rows wait for a host with a free slot
        (and fewer than ``limit`` in all)."""
        while self._runnable >= self._backlog or self._queued >= self._limit:
            self._room = anyio.Event()
            await self._room.wait()

    def release(self) -> None:
        """Called by the work of a row that is about to wait (a retry's backoff or a
        Retry-After): the row gives its host share back and its worker's place in the pool
        to a stand-in, so other rows, of its host too, go on meanwhile; its work then goes
        on outside the pool. Once per row (later calls, or calls from outside a worker of
        this scheduler, do nothing)."""
        turn = _TURN.get()
        if turn is None or turn.owner is not self or not turn.held:
            return
        if self._parked >= self._parked_limit or self._tg is None:
            return  # memory: this one keeps its worker and share while it waits
        turn.held = False
        self._parked += 1
        self._give_back(turn.host)  # at most one more row of its host can start now,
        self._tg.start_soon(self._worker)  # which the stand-in takes: no one to wake

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for _ in range(self._workers):
                tg.start_soon(self._worker)
        self._tg = None

    def _notify(self, rows: int) -> None:
        """Wakes as many idle workers as ``rows`` (rows that could start now): each takes
        one, and goes on taking rows while any is ready, so waking fewer never strands one;
        waking more only sends the extra ones back to wait."""
        idle = self._idle
        for _ in range(min(rows, len(idle))):
            idle.popleft().set()

    async def _worker(self) -> None:
        ready, running = self._ready, self._running
        while True:
            if not ready:
                if self._closed:
                    return  # the rows still queued belong to hosts at their limit, whose
                    # busy workers take them one by one
                wake = anyio.Event()
                self._idle.append(wake)
                await wake.wait()
                continue
            host = ready.popleft()
            queue = self._queues[host]
            row = queue.popleft()
            self._queued -= 1
            running[host] += 1
            if queue and running[host] < self._per_host:
                ready.append(host)  # round robin: the next host goes first
                self._runnable -= 1
            else:
                self._runnable -= 1 + len(queue)  # at its limit: its rows wait, uncounted
            if self._runnable < self._backlog and self._queued < self._limit:
                self._room.set()
            turn = _Turn(self, host)
            _TURN.set(turn)
            try:
                await self._work(row)
            finally:
                _TURN.set(None)
                if turn.held:
                    self._give_back(host)
                else:
                    self._parked -= 1
            if not turn.held:
                return  # released: its stand-in has its place in the pool

    def _give_back(self, host: str) -> None:
        """One row of ``host`` no longer runs: the host takes another if it was full."""
        running, queue = self._running, self._queues[host]
        running[host] -= 1
        if queue and running[host] == self._per_host - 1:
            self._ready.append(host)  # it was full, so it was not waiting in ``ready``
            self._runnable += len(queue)
