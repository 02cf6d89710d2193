"""Waiting holds no capacity: a URL waiting out its backoff or a Retry-After gives its
worker and its host share back, so its host's other URLs, and other hosts, go on.

The clock's sleep (every wait between attempts goes through it) blocks until the server
has been asked for the URL that must not wait: it hangs, and fails after ``HOLD_TIMEOUT``,
when the waiting URL kept what it held. No real sleep: the clock then jumps ahead.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import anyio.to_thread
import media
from server import HOLD_TIMEOUT, LoopbackServer, Reply, Request

from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source
from archiver.run.crawl import crawl

PDF = media.deck("slides", 3500)
OK = Reply(body=PDF, content_type="application/pdf")


class GatedClock(FakeClock):
    """A fake clock whose waits last until ``gate`` is set (by the server's thread)."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__()
        self.gate = gate
        self.opened: list[bool] = []  # per wait: whether the gate opened in time

    async def sleep(self, seconds: float) -> None:
        self.opened.append(await anyio.to_thread.run_sync(self.gate.wait, HOLD_TIMEOUT))
        await super().sleep(seconds)


def config(tmp_path: Path, **fetch: int) -> Config:
    settings = FetchConfig(retries=2, connect_timeout=5, read_timeout=5, **fetch)  # type: ignore[arg-type]
    cfg = Config(db=tmp_path / "state" / "a.db", store=tmp_path / "state" / "store")
    return replace(cfg, fetch=settings)


def post(tmp_path: Path, *urls: str) -> Path:
    root = tmp_path / "posts"
    (root / "p").mkdir(parents=True)
    (root / "p" / "index.md").write_text("\n\n".join(f"[x]({u})" for u in urls), "utf-8")
    return root


def asked(gate: threading.Event) -> object:
    def script(req: Request) -> Reply:
        gate.set()
        return OK

    return script


def test_a_url_in_backoff_does_not_stop_its_hosts_next_url(
    tmp_path: Path, server: LoopbackServer
) -> None:
    # One request at a time to the host: both flaky URLs fill the scheduler's share of
    # it (twice the limit), then wait out their backoff while the third is fetched.
    gate = threading.Event()
    flaky = [server.route(f"/{i}.pdf", Reply(503), OK) for i in (1, 2)]
    other = server.route("/3.pdf", asked(gate))  # type: ignore[arg-type]
    clock = GatedClock(gate)
    summary = crawl(
        config(tmp_path, per_host=1), [Source(path=post(tmp_path, *flaky, other))], clock=clock
    )
    assert summary.counts == {"ok": 3}
    assert clock.opened and all(clock.opened)  # every wait ended because /3 was asked
    assert [server.stats(f"/{i}.pdf").hits for i in (1, 2, 3)] == [2, 2, 1]
    assert server.max_in_flight == 1  # the host's limit held throughout
    assert min(clock.sleeps) >= 0.25 and max(clock.sleeps) <= 0.5  # the backoff, unchanged


def test_a_retry_after_on_one_host_does_not_delay_another(
    tmp_path: Path, server: LoopbackServer, server2: LoopbackServer
) -> None:
    # Two workers in all (concurrency 1): the limited host's URLs take both, then wait
    # out their Retry-After while the other host's URL, read later, is fetched.
    gate = threading.Event()
    limited = [
        server.route(f"/{i}.pdf", Reply(429, headers=[("Retry-After", "7")]), OK) for i in range(4)
    ]
    other = server2.route("/x.pdf", asked(gate))  # type: ignore[arg-type]
    clock = GatedClock(gate)
    root = post(tmp_path, *limited)
    (root / "q").mkdir()
    (root / "q" / "index.md").write_text(f"[x]({other})", "utf-8")
    summary = crawl(config(tmp_path, concurrency=1, per_host=4), [Source(path=root)], clock=clock)
    assert summary.counts == {"ok": 5}
    assert clock.opened and all(clock.opened)
    assert clock.sleeps == [7.0] * 4  # each limited URL still waited as the server said
    assert [server.stats(f"/{i}.pdf").hits for i in range(4)] == [2] * 4
