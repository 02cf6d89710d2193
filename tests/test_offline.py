"""Offline is decided per kind of host: an intranet or loopback server that answers does
not vouch for the internet, and a resolver that cannot answer never confirms a link dead.

Loopback servers stand for both kinds: 127.0.0.1 is local (loopback), and the test hook
``ARCHIVER_PUBLIC_ADDRESSES`` marks 127.0.0.2 (or 127.0.0.1) as a public host.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import media
import pytest
from server import LoopbackServer, Reply

from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source
from archiver.db import Database
from archiver.errors import NetworkDownError
from archiver.net.fetch import Fetched, Fetcher, FetchSettings
from archiver.net.guard import is_public, public_networks
from archiver.records import DueUrl, Outcome, UrlState
from archiver.run.crawl import crawl
from archiver.run.pipeline import Pipeline
from archiver.run.reachability import Reachability
from archiver.run.summary import RunSummary

PDF = media.deck("slides", 1400)
DAY = 86400


def make_config(tmp_path: Path, **kw: object) -> Config:
    cfg = Config(
        db=tmp_path / "state" / "archive.db",
        store=tmp_path / "state" / "store",
        fetch=FetchConfig(retries=1, connect_timeout=5, read_timeout=5),
        confirm_runs=1,
    )
    return replace(cfg, **kw)  # type: ignore[arg-type]


def write_post(root: Path, text: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "a.md").write_text(text, encoding="utf-8")


def table(cfg: Config) -> dict[str, tuple[str, str | None]]:
    db = Database(cfg.db)
    try:
        rows = db.rows("SELECT url, state, error_class FROM urls")
        return {r["url"]: (r["state"], r["error_class"]) for r in rows}
    finally:
        db.close()


def last_exit(cfg: Config) -> int:
    db = Database(cfg.db)
    try:
        return int(db.scalar("SELECT exit_code FROM runs ORDER BY id DESC LIMIT 1"))
    finally:
        db.close()


def unused_port(host: str) -> int:
    """A port nothing listens on (bound then closed: a connection there is refused)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def test_kinds_of_addresses() -> None:
    assert not is_public("127.0.0.1")
    assert not is_public("10.1.2.3")
    assert not is_public("192.168.1.1")
    assert not is_public("169.254.1.1")
    assert not is_public("fe80::1")
    assert not is_public("::ffff:127.0.0.1")
    assert is_public("93.184.216.34")
    assert is_public("2606:4700::1")
    marked = public_networks({"ARCHIVER_PUBLIC_ADDRESSES": "127.0.0.2/32, ::1/128"})
    assert is_public("127.0.0.2", marked)
    assert is_public("::1", marked)
    assert not is_public("127.0.0.1", marked)


def test_public_host_down_while_local_answers_changes_no_public_link(
    tmp_path: Path,
    server: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARCHIVER_PUBLIC_ADDRESSES", "127.0.0.2/32")
    local = server.route("/local.pdf", Reply(body=PDF))
    posts = tmp_path / "posts"
    cfg = make_config(tmp_path)
    clock = FakeClock()
    with LoopbackServer("127.0.0.2") as public_server:
        public = public_server.route("/public.pdf", Reply(body=PDF))
        write_post(posts, f"[l]({local})\n[p]({public})\n")
        assert crawl(cfg, [Source(path=posts)], clock=clock).exit_code == 0
    assert table(cfg) == {local: ("ok", None), public: ("ok", None)}

    # The public server is gone (nothing listens there); the local one now says 404, and
    # a second local link is refused: local failures are still those hosts' own.
    server.route("/local.pdf", Reply(status=404, body=b"gone"))
    refused = f"http://127.0.0.1:{unused_port('127.0.0.1')}/x.pdf"
    write_post(posts, f"[l]({local})\n[p]({public})\n[r]({refused})\n")
    clock.advance(2 * DAY)
    with pytest.raises(NetworkDownError, match="no public link's state was changed") as info:
        crawl(cfg, [Source(path=posts)], clock=clock, all_=True)
    assert info.value.exit_code == 3
    assert last_exit(cfg) == 3
    got = table(cfg)
    assert got[public] == ("ok", None)  # unchanged
    assert got[local] == ("dead", "http-404")
    assert got[refused] == ("error", "refused")


def test_name_that_does_not_resolve_is_public_and_never_dies_offline(
    tmp_path: Path, server: LoopbackServer
) -> None:
    # An offline machine whose resolver says "no such name" for everything, with an
    # intranet (here loopback) host answering: the run-level rule still protects it.
    local = server.route("/deck.pdf", Reply(body=PDF))
    gone = "http://slides.invalid/deck.pdf"
    posts = tmp_path / "posts"
    write_post(posts, f"[l]({local})\n[g]({gone})\n")
    cfg = make_config(tmp_path)
    clock = FakeClock()
    for _ in range(3):
        with pytest.raises(NetworkDownError):
            crawl(cfg, [Source(path=posts)], clock=clock, all_=True)
        clock.advance(2 * DAY)
    got = table(cfg)
    assert got[gone] == ("pending", None)
    assert got[local] == ("ok", None)


def test_name_that_does_not_resolve_dies_when_a_public_host_answers(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVER_PUBLIC_ADDRESSES", "127.0.0.1/32")
    local = server.route("/deck.pdf", Reply(body=PDF))
    gone = "http://slides.invalid/deck.pdf"
    posts = tmp_path / "posts"
    write_post(posts, f"[l]({local})\n[g]({gone})\n")
    cfg = make_config(tmp_path)
    summary = crawl(cfg, [Source(path=posts)], clock=FakeClock())
    assert table(cfg)[gone] == ("dead", "dns")
    assert summary.exit_code == 1


def test_a_canary_that_answers_counts_as_public(tmp_path: Path, server: LoopbackServer) -> None:
    canary = server.route("/canary", Reply(body=b"up"))
    local = server.route("/deck.pdf", Reply(body=PDF))
    gone = "http://slides.invalid/deck.pdf"
    posts = tmp_path / "posts"
    write_post(posts, f"[l]({local})\n[g]({gone})\n")
    cfg = make_config(tmp_path, canary=canary)
    summary = crawl(cfg, [Source(path=posts)], clock=FakeClock())
    assert table(cfg)[gone] == ("dead", "dns")
    assert summary.exit_code == 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("failure", ["EAI_AGAIN", "EAI_FAIL"])
async def test_resolver_failure_is_transient_dns_temporary(
    failure: str, monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock
) -> None:
    monkeypatch.setenv("ARCHIVER_TEST_HOSTS", f"flaky.test={failure}")
    settings = FetchSettings(retries=1, connect_timeout=5, read_timeout=5)
    async with Fetcher(settings, clock=fake_clock) as fetcher:
        r = await fetcher.fetch("http://flaky.test/deck.pdf")
    assert (r.state, r.error_class) == ("error", "dns-temporary")
    assert (r.transient, r.unreachable, r.http_status) == (True, True, None)


@pytest.mark.anyio
async def test_no_such_name_is_dead_dns(
    monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock
) -> None:
    monkeypatch.setenv("ARCHIVER_TEST_HOSTS", "gone.test=EAI_NONAME")
    async with Fetcher(FetchSettings(retries=1), clock=fake_clock) as fetcher:
        r = await fetcher.fetch("http://gone.test/deck.pdf")
    assert (r.state, r.error_class, r.transient) == ("dead", "dns", False)


def test_resolver_failure_never_confirms_a_link_dead(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVER_PUBLIC_ADDRESSES", "127.0.0.1/32")  # a public host answers
    monkeypatch.setenv("ARCHIVER_TEST_HOSTS", "flaky.test=EAI_AGAIN")
    local = server.route("/deck.pdf", Reply(body=PDF))
    flaky = "http://flaky.test/deck.pdf"
    posts = tmp_path / "posts"
    write_post(posts, f"[l]({local})\n[f]({flaky})\n")
    cfg = make_config(tmp_path, confirm_runs=2)
    clock = FakeClock()
    for _ in range(4):
        summary = crawl(cfg, [Source(path=posts)], clock=clock, all_=True)
        assert summary.newly_broken == []
        assert table(cfg)[flaky] == ("error", "dns-temporary")
        clock.advance(2 * DAY)


def test_command_line_exits_3_when_only_a_local_host_answers(
    tmp_path: Path, server: LoopbackServer
) -> None:
    local = server.route("/deck.pdf", Reply(body=PDF))
    public = f"http://127.0.0.2:{unused_port('127.0.0.2')}/deck.pdf"  # nothing listens
    write_post(tmp_path / "posts", f"[l]({local})\n[p]({public})\n")
    (tmp_path / "config.toml").write_text(
        'db = "state/archive.db"\nstore = "state/store"\nconfirm_runs = 1\n'
        '[[sources]]\npath = "posts"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "ARCHIVER_PUBLIC_ADDRESSES": "127.0.0.2/32"}
    proc = subprocess.run(
        [sys.executable, "-m", "archiver", "crawl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 3, proc.stderr
    assert "no public host answered" in proc.stderr
    cfg = make_config(tmp_path, db=tmp_path / "state" / "archive.db")
    assert table(cfg) == {local: ("ok", None), public: ("pending", None)}


async def _take_all(outcomes: list[Outcome], cfg: Config) -> tuple[list[str], list[bool]]:
    """``Pipeline._take`` over ``outcomes`` in order: what it recorded, what it held."""
    recorded: list[str] = []

    class Recorded:
        async def record(self, url: DueUrl, fetched: Fetched) -> None:
            recorded.append(fetched.outcome.url)

    host = SimpleNamespace(summary=RunSummary(), config=cfg)
    reach, deferred = Reachability(), []
    held = []
    for outcome in outcomes:
        due = DueUrl(0, outcome.url, outcome.url, "h", "any", UrlState.PENDING)
        took = Pipeline._take(host, due, Fetched(outcome), Recorded(), reach, deferred)  # type: ignore[arg-type]
        held.append(await took)
    return recorded, held


@pytest.mark.anyio
async def test_results_are_held_only_while_the_offline_rule_could_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host that does not answer has its results held for the end (maybe we are
    offline) only until a public host answered: then the rule cannot apply, and they are
    recorded at once instead of filling memory (a dead CDN with 100,000 links)."""
    monkeypatch.setenv("ARCHIVER_PUBLIC_ADDRESSES", "127.0.0.2/32")
    down = [
        Outcome(f"http://127.0.0.3:9/{i}.pdf", UrlState.ERROR, unreachable=True) for i in range(3)
    ]
    local = Outcome("http://127.0.0.1:9/l.pdf", UrlState.OK, http_status=200)
    public = Outcome("http://127.0.0.2:9/p.pdf", UrlState.OK, http_status=200)
    cfg = make_config(tmp_path)
    recorded, held = await _take_all([down[0], local, down[1], public, down[2]], cfg)
    # A local host's answer does not vouch for the internet: down[1] is still held; the
    # public answer lets the first two go, and down[2] is recorded as it comes.
    assert held == [True, False, True, False, False]
    assert recorded == [local.url, public.url, down[0].url, down[1].url, down[2].url]
    recorded, held = await _take_all(down, replace(cfg, canary="http://127.0.0.2:9/"))
    assert held == [False] * 3 and recorded == [d.url for d in down]
