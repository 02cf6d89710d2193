"""``crawl --worker``: one of several processes that share a run, host by host.

Owns a worker's side of a shared run (the queries are ``archiver.db.leases``):

1. Join the open shared run that still has a live worker, or open one (``crawl``
   does, before this runs). Its start time is every worker's due rule "now".
2. Index the posts, as a crawl does, and queue their due URLs in the run
   (``run_urls``); a URL another worker queued, or already checked, stays as it is.
   The run records each source once it is indexed and queued (``runs.indexed``), and a
   worker indexes only the sources it is given that the run has not recorded: the
   first worker indexes, the ones that join later read no post (a site's pages are
   fetched once a run). Indexing takes the indexing lock, which a worker polls for
   from its event loop, heartbeating; a worker that died halfway through a source
   left it unrecorded, so the next one to take the lock indexes it.
3. Lease up to ``[workers] hosts`` hosts with unchecked URLs that no live lease holds
   (and no more than a fair share: the run's hosts with work over its live workers),
   fetch their URLs a page at a time with the usual per-host limit, give each host back
   once its URLs are recorded (or, past the fair share, at the end of a page), and lease
   more, until no URL of the run is unchecked outside this worker's own hosts.
   Meanwhile a heartbeat renews the worker's and its leases' expiry every third of
   ``[workers] lease_seconds``; a host whose lease another worker took over (this one
   stalled past its expiry) is not fetched any further.
4. Record each check only if no other worker recorded that URL in this run
   (``WorkerDatabase``): a URL in flight on a worker that died is asked twice at most,
   recorded once. The last worker out closes the run.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel

from archiver.clock import Clock, iso, parse_iso
from archiver.config import Source
from archiver.db.leases import SharedRun
from archiver.db.sqlite import Database
from archiver.net.fetch import Fetched
from archiver.net.rules import UrlRules
from archiver.records import CheckRecord, DueUrl, IdSet
from archiver.run.canary import ask_canary
from archiver.run.indexing import index_folder
from archiver.run.pipeline import Pipeline, _fetch_one, drive
from archiver.run.reachability import Reachability
from archiver.run.recorder import Recorder, fault
from archiver.run.schedule import Scheduler
from archiver.run.summary import RunSummary
from archiver.states import Due

__all__ = [
    "INDEX_LOCK_POLL",
    "PAGE",
    "WorkerDatabase",
    "WorkerPipeline",
    "default_worker_name",
    "join_run",
    "source_key",
]

#: URLs of a leased host read from the run's queue at a time.
PAGE = 1000
#: Seconds between a waiting worker's tries for the indexing lock (at most: a sixth of
#: ``lease_seconds`` when that is shorter).
INDEX_LOCK_POLL = 0.25


def source_key(source: Source) -> str:
    """A source as a shared run records it indexed: its label, and the files of a partial
    one (``crawl posts/a.md`` reads less than ``crawl posts`` and does not stand for it)."""
    if not source.only:
        return source.label
    return source.label + "\0" + "\0".join(sorted(str(p) for p in source.only))


def default_worker_name() -> str:
    """``hostname:pid``: unique among live workers, and says where to look for one."""
    return f"{socket.gethostname()}:{os.getpid()}"


class WorkerDatabase(Database):
    """The database as a worker records through it: a check is written only by the first
    worker to record that URL in the run (``mark_checked``, in the same transaction);
    another's result for it is dropped and counted in ``dropped``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dropped: Counter[str] = Counter()

    def record_check(self, check: CheckRecord) -> int:
        if not self.mark_checked(check.run_id or 0, check.url_id):
            self.dropped[str(check.state)] += 1
            return 0
        return super().record_check(check)


def join_run(db: Database, name: str, lease_seconds: float, clock: Clock) -> SharedRun:
    """Registers this process as worker ``name`` of the open shared crawl, or of a new one."""
    now = clock.now()
    return db.join_shared_run(
        "crawl",
        name=name,
        machine=socket.gethostname(),
        pid=os.getpid(),
        now=iso(now),
        expires=iso(now + timedelta(seconds=lease_seconds)),
    )


@dataclass
class WorkerPipeline(Pipeline):
    """A ``Pipeline`` whose URLs come from the shared run's queue, host lease by host lease."""

    shared: SharedRun | None = None
    #: Hosts this worker holds a lease on, and those it lost to another worker.
    held: set[str] = field(default_factory=set)
    lost: set[str] = field(default_factory=set)

    async def run(self) -> RunSummary:
        assert self.shared is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat)
            try:
                await self._work()
            finally:
                tg.cancel_scope.cancel()
        return self.summary

    # -- the heartbeat -----------------------------------------------------------

    async def _heartbeat(self) -> None:
        assert self.shared is not None
        lease = self.config.workers.lease_seconds
        while True:
            await anyio.sleep(lease / 3)
            now = self.clock.now()
            still = self.db.renew(
                self.shared.run_id,
                self.shared.worker_id,
                iso(now),
                iso(now + timedelta(seconds=lease)),
            )
            for host in sorted(self.held - still):
                self.lost.add(host)
                self.warn(
                    f"the lease on host {host} expired and another worker took it over:"
                    " its URLs are left to that worker"
                )
            self.held &= still

    def _times(self) -> tuple[str, str]:
        now = self.clock.now()
        return iso(now), iso(now + timedelta(seconds=self.config.workers.lease_seconds))

    # -- the run -----------------------------------------------------------------

    async def _work(self) -> None:
        shared, config, db, summary = self.shared, self.config, self.db, self.summary
        assert shared is not None
        t0 = self.clock.now()
        now = iso(t0)
        rules = UrlRules.compile(config.exclude_urls, config.remap, config.include_urls)
        # One due rule for every worker of the run: the run's start is its "now".
        started = parse_iso(shared.started) or t0
        due = Due(started, config.recheck_after, config.confirm_after, self.all_)
        seen = IdSet()  # every URL the run's posts link
        db.begin_run_posts()

        def queue(post_ids: Iterable[int]) -> None:
            urls = db.due_urls(post_ids, due, seen)
            if urls:
                with db.transaction():
                    db.add_run_urls(shared.run_id, [(u.url_id, u.fetch_host) for u in urls])

        await self._index(rules, now, queue)
        summary.urls = len(seen)

        recorder = Recorder(
            db, config, self.clock, summary, probe=False, store=self.store, judged=self.judged
        )
        reach = Reachability()
        deferred: list[tuple[DueUrl, Fetched]] = []
        await self._fetch(recorder, reach, deferred)
        await self._settle(deferred, reach, recorder)
        dropped = db.dropped if isinstance(db, WorkerDatabase) else Counter[str]()
        summary.counts.subtract(dropped)
        summary.counts = Counter({k: n for k, n in summary.counts.items() if n > 0})
        summary.checked -= sum(dropped.values())
        summary.settle(db.count_not_ok(), (self.clock.now() - t0).total_seconds(), self.fail_on)
        db.end_worker(
            shared,
            iso(self.clock.now()),
            summary.exit_code,
            checked=summary.checked,
            posts=sum(db.indexed_sources(shared.run_id).values()),
        )

    async def _index(
        self, rules: UrlRules, now: str, queue: Callable[[Iterable[int]], None]
    ) -> None:
        """Indexes the sources no worker of the run has indexed yet, queueing their due
        URLs, under the indexing lock; each is recorded as indexed once it is complete.
        A worker that joins after the run's sources were indexed reads no post (its
        summary says 0 posts); one that joins while another indexes waits for the lock,
        heartbeating, and then finds them indexed, or, if that worker died halfway,
        indexes them itself."""
        shared, db, summary = self.shared, self.db, self.summary
        assert shared is not None
        poll = min(INDEX_LOCK_POLL, self.config.workers.lease_seconds / 6)
        while not db.try_indexing_lock():
            await anyio.sleep(poll)  # the heartbeat renews this worker's lease meanwhile
        try:
            done = db.indexed_sources(shared.run_id)
            # A partial source (a few files named) is cheap to read, and its posts are
            # not all of its label's: it is always indexed.
            todo = [s for s in self.sources if s.only or source_key(s) not in done]
            for source in self.sources:
                if source not in todo:
                    db.adopt_posts(source.label)
            for source in todo:
                before = summary.posts
                if source.url is not None:
                    queue(await self._index_sites(rules, now, [source]))
                else:
                    for post_ids in index_folder(db, source, now, summary, self.warn, rules):
                        queue(post_ids)
                        fault("worker-indexed-batch")
                        await anyio.lowlevel.checkpoint()  # the heartbeat goes on meanwhile
                with db.transaction():
                    db.mark_indexed(shared.run_id, source_key(source), summary.posts - before)
            if todo:
                # Only indexing changes which URLs posts link: a worker that indexed
                # nothing has nothing to update, and the fetches after it change none.
                with db.transaction():
                    db.update_referenced()
        finally:
            db.release_indexing_lock()

    async def _fetch(
        self, recorder: Recorder, reach: Reachability, deferred: list[tuple[DueUrl, Fetched]]
    ) -> None:
        shared, config, db, summary = self.shared, self.config, self.db, self.summary
        assert shared is not None
        run_id, worker_id = shared.run_id, shared.worker_id
        left: dict[str, int] = {}  # the leased hosts being fetched: their rows not yet worked
        after: dict[str, int] = {}  # the last URL id read of each such host
        host_of: dict[int, str] = {}  # url id -> the leased host it was queued under
        finished: list[str] = []  # hosts whose rows read so far are all worked
        waiting: set[str] = set()  # hosts with a result held for the offline rule
        wake = anyio.Event()
        done = 0
        poll = config.workers.lease_seconds / 3

        async with self._fetcher() as fetcher:
            settings = fetcher.settings
            limit = config.workers.hosts or settings.concurrency
            canary = config.canary

            async def on_result(url: DueUrl, fetched: Fetched, host: str) -> None:
                nonlocal done
                done += 1
                if await self._take(url, fetched, recorder, reach, deferred):
                    waiting.add(host)  # held for the offline rule: the host stays leased
                if self.progress is not None:
                    self.progress(url.url, done, scheduler.added)

            async def work(url: DueUrl) -> None:
                nonlocal wake
                host = host_of.pop(url.url_id, url.fetch_host)
                try:
                    if host in self.lost:
                        return  # another worker holds the host now
                    fetched = await _fetch_one(fetcher, url, False, scheduler.release)
                    await anyio.lowlevel.checkpoint()
                    await on_result(url, fetched, host)
                finally:
                    left[host] -= 1
                    if not left[host]:
                        finished.append(host)
                        wake.set()

            scheduler = Scheduler(
                work, per_host=2 * settings.per_host, workers=2 * settings.concurrency
            )

            def load(host: str) -> bool:
                """Offers the host's next page of unchecked URLs; False when none is left."""
                rows = db.host_urls(run_id, host, after=after.get(host, 0), limit=PAGE)
                if not rows:
                    return False
                after[host] = rows[-1].url_id
                left[host] = len(rows)
                for row in rows:
                    host_of[row.url_id] = host
                scheduler.add(rows)
                return True

            def give_back(host: str) -> None:
                left.pop(host, None)
                after.pop(host, None)
                if host in self.lost:
                    self.held.discard(host)
                    return
                if host in waiting:
                    return  # its held results are recorded at the end, under its lease
                recorder.flush()  # its checks committed before another worker may take it
                db.release_host(run_id, worker_id, host)
                self.held.discard(host)

            async def feed() -> None:
                nonlocal canary, wake
                try:
                    while True:
                        share = min(limit, db.fair_share(run_id, self._times()[0]))
                        while finished:
                            host = finished.pop()
                            # Past its fair share, a worker gives a host back between
                            # pages, for a worker that holds fewer (one that joined late).
                            over = len(left) > share
                            if over or host in self.lost or not load(host):
                                give_back(host)
                        free = share - len(left)
                        claimed = db.claim_hosts(run_id, worker_id, free, *self._times())
                        for host in claimed:
                            self.held.add(host)
                            self.lost.discard(host)
                            if canary:
                                url, canary = canary, None
                                await ask_canary(fetcher, url, summary)
                            if not load(host):
                                give_back(host)
                        # Otherwise, what is left is leased by other workers: wait for them
                        # to finish, or for their leases to expire (their worker died).
                        if not (left or claimed or db.unchecked_elsewhere(run_id, worker_id)):
                            return  # the run's URLs are all checked, or held by this worker
                        if claimed and len(left) < limit:
                            continue
                        wake = anyio.Event()
                        if finished:
                            continue
                        with anyio.move_on_after(poll):
                            await wake.wait()
                finally:
                    scheduler.close()

            await drive(scheduler, feed, recorder)
