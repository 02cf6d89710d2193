"""One run of the pipeline: sources -> posts -> due URLs -> fetch -> store -> database.

Owns the order of a run: sites are crawled first (their crawler has its own fetcher,
which must not compete with the run's asset fetches for a host's slots), then folder
posts are indexed while their due links are already being fetched; results are
recorded as they come (``recorder``), except those no host answered, which wait for the
offline rule (``reachability``) at the end. Indexing lives in ``indexing``, the due rule
in ``states``, the queues in ``schedule``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from archiver.clock import Clock, iso
from archiver.config import Config, Source
from archiver.db.sqlite import Database
from archiver.errors import NetworkDownError
from archiver.net.fetch import Fetched, Fetcher
from archiver.net.rules import UrlRules
from archiver.records import DueUrl, IdSet
from archiver.run.canary import ask_canary
from archiver.run.indexing import index_folder, parse_version, ref_rows, source_roots
from archiver.run.reachability import Reachability
from archiver.run.recorder import Recorder
from archiver.run.schedule import Scheduler
from archiver.run.summary import RunSummary
from archiver.states import Due
from archiver.store.base import BlobStore as Store
from archiver.validate_deep import warm

if TYPE_CHECKING:
    import httpx  # only fetch.py and transport.py speak HTTP (tests/test_http_stack.py)

__all__ = ["FAIL_ON", "JudgedFn", "Pipeline", "ProgressFn"]

FAIL_ON = ("new", "any", "none")

ProgressFn = Callable[[str, int, int], None]
#: Hears each URL's verdict as its check ends (``-v``): the URL and the check's state.
JudgedFn = Callable[[str, str, str | None], None]


async def drive(
    scheduler: Scheduler, producer: Callable[[], Coroutine[Any, Any, None]], recorder: Recorder
) -> None:
    """Runs ``producer`` (it adds the due URLs, then closes the scheduler) beside the
    scheduler's workers; what finished is recorded, even when the run stops early."""
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            await scheduler.run()
    finally:
        recorder.flush()


@dataclass
class Pipeline:
    """Everything one run needs; ``run`` does it and fills ``summary``."""

    config: Config
    sources: list[Source]
    db: Database
    store: Store
    clock: Clock
    summary: RunSummary
    warn: Callable[[str], None]
    transport: httpx.AsyncBaseTransport | None = None
    all_: bool = False
    fail_on: str = "new"
    progress: ProgressFn | None = None
    judged: JudgedFn | None = None
    probe: bool = False  # a check: every link probed, nothing archived
    ignore_robots: bool = False

    async def run(self) -> RunSummary:
        config, db, summary = self.config, self.db, self.summary
        t0 = self.clock.now()
        now = iso(t0)
        rules = UrlRules.compile(config.exclude_urls, config.remap, config.include_urls)
        due = Due(t0, config.recheck_after, config.confirm_after, self.all_ or self.probe)
        seen = IdSet()  # every URL the run's posts link
        db.begin_run_posts()
        site_posts = await self._index_sites(rules, now)
        recorder = Recorder(
            db,
            config,
            self.clock,
            summary,
            probe=self.probe,
            store=self.store,
            judged=self.judged,
        )
        reach = Reachability()
        deferred: list[tuple[DueUrl, Fetched]] = []
        done = 0

        async def on_result(url: DueUrl, fetched: Fetched) -> None:
            nonlocal done
            done += 1
            await self._take(url, fetched, recorder, reach, deferred)
            if self.progress is not None:
                self.progress(url.url, done, scheduler.added)

        async with self._fetcher() as fetcher:

            async def work(url: DueUrl) -> None:
                # A URL waiting to be retried gives its worker and host share back meanwhile.
                fetched = await _fetch_one(fetcher, url, self.probe, scheduler.release)
                # The request that was waiting for this one's slot goes out first; recording
                # the result can wait, as the next response is a round trip away. (Recording
                # first put its CPU on every request's critical path.)
                await anyio.lowlevel.checkpoint()
                await on_result(url, fetched)

            settings = fetcher.settings
            scheduler = Scheduler(
                work, per_host=2 * settings.per_host, workers=2 * settings.concurrency
            )
            canary = config.canary  # asked once, before the first link, if set
            # The recorder deep-checks each new body (unless the test hook turns it off):
            # once a URL with no copy is due, a new body is likely, and the checker's
            # start-up overlaps the first fetches instead of delaying the first check.
            # A run whose every URL holds a copy (an unchanged re-run) never starts it.
            warm_up = not self.probe and os.environ.get("ARCHIVER_DEEP_CHECK", "") != "off"

            async def offer(post_ids: Iterable[int]) -> None:
                nonlocal canary, warm_up
                urls = db.due_urls(post_ids, due, seen, probe=self.probe)
                if warm_up and any(url.sha256 is None for url in urls):
                    warm_up = False
                    warm()
                if urls and canary:
                    url, canary = canary, None
                    await ask_canary(fetcher, url, summary)
                scheduler.add(urls)

            async def index() -> None:
                try:
                    await offer(site_posts)
                    for source in self.sources:
                        if source.url is not None:
                            continue
                        for post_ids in index_folder(db, source, now, summary, self.warn, rules):
                            await offer(post_ids)
                            # Responses that arrived meanwhile are handled between two
                            # posts, and the next post is read once the queue has room.
                            await anyio.lowlevel.checkpoint()
                            await scheduler.room()
                    with db.transaction():
                        db.update_referenced()
                finally:
                    scheduler.close()

            try:
                await drive(scheduler, index, recorder)
            finally:
                summary.urls = len(seen)

        # ``index`` set ``urls.referenced`` once the posts were read; recording checks
        # changes no post's links, so it holds still.
        await self._settle(deferred, reach, recorder)
        summary.settle(db.count_not_ok(), (self.clock.now() - t0).total_seconds(), self.fail_on)
        db.end_run(
            summary.run_id,
            iso(self.clock.now()),
            summary.exit_code,
            posts=summary.posts,
            urls=summary.urls,
            counts=dict(summary.counts),
            bytes=summary.bytes,
            new_blobs=summary.new_blobs,
        )
        return summary

    async def _take(
        self,
        url: DueUrl,
        fetched: Fetched,
        recorder: Recorder,
        reach: Reachability,
        deferred: list[tuple[DueUrl, Fetched]],
    ) -> bool:
        """One URL's result: counted, and recorded, or held (True) when its host did not
        answer, for the offline rule to decide at the end (maybe we are offline).

        Held only while the rule could still apply: once the run has a canary or a public
        host answered, it cannot, and what is held is recorded at once (a dead CDN with
        100,000 links would otherwise keep 100,000 results in memory to the end)."""
        self.summary.bytes += fetched.outcome.bytes_received
        reach.add(fetched.outcome)
        held = fetched.outcome.unreachable
        if held:
            deferred.append((url, fetched))
            if self.config.canary or (reach.answered and await reach.public_answered()):
                while deferred:
                    await recorder.record(*deferred.pop(0))
                held = False
        else:
            await recorder.record(url, fetched)
        return held

    def _fetcher(self) -> Fetcher:
        """The run's one client: the config's fetch settings, store, transport and clock,
        and the sources' folders as the only local files it may read."""
        return Fetcher(
            self.config.fetch,
            store=self.store,
            transport=self.transport,
            clock=self.clock,
            local_roots=source_roots(self.sources),
            warn=self.warn,
        )

    async def _index_sites(
        self, rules: UrlRules, now: str, sources: Iterable[Source] | None = None
    ) -> set[int]:
        """Crawls the url sources (of ``sources``, else of the run), one after another;
        the ids of their posts."""
        post_ids: set[int] = set()
        for source in self.sources if sources is None else sources:
            if source.url is None:
                continue
            from archiver.sources.sites import (
                index_site,  # bs4 and the site crawler only when a site is crawled
            )

            site = await index_site(
                self.db,
                source,
                settings=self.config.fetch,
                version=parse_version(rules),
                rows=lambda refs: ref_rows(refs, rules),
                now=now,
                warn=self.warn,
                transport=self.transport,
                clock=self.clock,
                ignore_robots=self.ignore_robots,
                rules=rules,
            )
            self.summary.posts += site.posts
            self.summary.posts_parsed += site.parsed
            post_ids |= site.post_ids
        return post_ids

    async def _settle(
        self, deferred: list[tuple[DueUrl, Fetched]], reach: Reachability, recorder: Recorder
    ) -> None:
        """Records the results no host answered, unless the run was offline (the offline
        rule: then no web link's state, or no public one's, changes)."""
        summary = self.summary
        canary_answered = bool(self.config.canary)
        if not canary_answered and reach.down:
            for _, fetched in deferred:
                _discard(fetched)
            summary.network_down = True
            raise NetworkDownError(
                "network unreachable: no host answered (name resolution or connection failed"
                " for every host); no web link's state was changed. Check the machine's network"
                " and run again"
            )
        if not canary_answered and deferred and not await reach.public_answered():
            # Offline but for the machine's own networks: the public links' failures say
            # nothing about them, while a local host's failure is still that host's.
            held = [await reach.protects(fetched.outcome) for _, fetched in deferred]
            if any(held):
                for (url, fetched), hold in zip(deferred, held, strict=True):
                    if hold:
                        _discard(fetched)
                    else:
                        await recorder.record(url, fetched)
                recorder.flush()
                summary.network_down = True
                raise NetworkDownError(
                    "network unreachable: no public host answered (only hosts on this"
                    " machine's own networks did); no public link's state was changed. Check"
                    " the machine's network and run again"
                )
        for url, fetched in deferred:
            await recorder.record(url, fetched)
        recorder.flush()


def _discard(fetched: Fetched) -> None:
    if fetched.blob is not None:
        fetched.blob.abort()


async def _fetch_one(
    fetcher: Fetcher, url: DueUrl, probe: bool, waiting: Callable[[], None]
) -> Fetched:
    if probe:
        result = await fetcher.fetch(url.fetch_url, expect=url.expect, probe=True, waiting=waiting)
        return Fetched(result)
    validators: dict[str, str] = {}
    # A copy verify found missing or damaged is fetched whole, never revalidated.
    held = url.sha256 if not url.recheck else None
    if held and fetcher.store is not None and fetcher.store.has(held):
        if url.etag:
            validators["If-None-Match"] = url.etag
        if url.last_modified:
            validators["If-Modified-Since"] = url.last_modified
    return await fetcher.archive(
        url.fetch_url, expect=url.expect, validators=validators or None, waiting=waiting
    )
