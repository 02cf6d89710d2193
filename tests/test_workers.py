"""Workers that share a run (``crawl --worker``): leases, takeover, one check per URL.

The lease queries run on a real SQLite file and a real PostgreSQL database through two
connections, as two worker processes would hold them; times are bound, so expiry is a
later "now", never a wait.
The end-to-end test starts three real worker processes against loopback servers that
count their requests in flight, holds every response until the victim has requests in
flight, kills it with SIGKILL, and lets the other two finish the run and take its hosts
over once its leases expire: on SQLite (three processes on one file) and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import media
import pytest
from pg_server import pg_dsn, postgres  # noqa: F401
from server import LoopbackServer, Reply, Request, Script

from archiver.db import Database
from archiver.db.leases import SharedRun
from archiver.errors import LockedError
from archiver.records import CheckRecord, Outcome, UrlState
from archiver.run.lock import run_lock
from archiver.run.worker import WorkerDatabase

PDF = media.deck("workers", 2_000)

T0 = "2026-01-01T00:00:00Z"


def at(seconds: int) -> str:
    """T0 plus ``seconds``, as the database stores times."""
    return f"2026-01-01T00:{seconds // 60:02d}:{seconds % 60:02d}Z"


# -- the lease queries, on one SQLite file -------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def dbs(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[WorkerDatabase, WorkerDatabase]]:
    """Two connections to one database: two workers' views of it, on either backend."""
    where = (
        request.getfixturevalue("pg_dsn") if request.param == "postgresql" else tmp_path / "a.db"
    )
    a = WorkerDatabase(where)
    b = WorkerDatabase(where)
    yield a, b
    a.close()
    b.close()


def queue(db: Database, run_id: int, hosts: dict[str, int]) -> dict[str, list[int]]:
    """Queues ``n`` new URLs on each host in the run; their ids by host."""
    ids: dict[str, list[int]] = {}
    with db.transaction():
        for host, n in hosts.items():
            for i in range(n):
                ids.setdefault(host, []).append(db.url_id(f"http://{host}/{i}.pdf", T0))
        added = db.add_run_urls(run_id, [(u, h) for h, us in ids.items() for u in us])
    assert added == sum(hosts.values())
    return ids


def join(db: Database, name: str, now: str = T0, lease: int = 30) -> SharedRun:
    return db.join_shared_run(
        "crawl", name=name, machine="m", pid=1, now=now, expires=at(_secs(now) + lease)
    )


def _secs(when: str) -> int:
    mm, ss = when[14:16], when[17:19]
    return int(mm) * 60 + int(ss)


def record(db: Database, run_id: int, url_id: int) -> None:
    outcome = Outcome(url="x", state=UrlState.DEAD, http_status=404)
    with db.transaction():
        db.record_check(
            CheckRecord(
                url_id=url_id,
                run_id=run_id,
                now=T0,
                state=UrlState.FAILING,
                outcome=outcome,
                archived=False,
                confirm_count=1,
                confirm_last=T0,
                became=None,
                held_sha256=None,
            )
        )


def test_workers_join_one_run_and_claim_different_hosts(
    dbs: tuple[WorkerDatabase, WorkerDatabase],
) -> None:
    a, b = dbs
    wa = join(a, "a")
    wb = join(b, "b", now=at(1))
    assert wa.opened and not wb.opened
    assert wb.run_id == wa.run_id and wb.started == wa.started == T0
    queue(a, wa.run_id, {"h1": 2, "h2": 2, "h3": 1})
    got_a = a.claim_hosts(wa.run_id, wa.worker_id, 2, at(2), at(32))
    got_b = b.claim_hosts(wb.run_id, wb.worker_id, 2, at(2), at(32))
    assert got_a == ["h1", "h2"] and got_b == ["h3"]
    # Nothing is left to lease while both are live.
    assert a.claim_hosts(wa.run_id, wa.worker_id, 5, at(3), at(33)) == []
    assert a.unchecked_elsewhere(wa.run_id, wa.worker_id) == 1  # b's host
    assert a.unchecked(wa.run_id) == 5


def test_renewal_keeps_a_lease_and_expiry_hands_it_over(
    dbs: tuple[WorkerDatabase, WorkerDatabase],
) -> None:
    a, b = dbs
    wa, wb = join(a, "a"), join(b, "b")
    queue(a, wa.run_id, {"h1": 1, "h2": 1})
    assert a.claim_hosts(wa.run_id, wa.worker_id, 2, T0, at(10)) == ["h1", "h2"]
    # a renews in time: at 12 its leases still hold.
    assert a.renew(wa.run_id, wa.worker_id, at(8), at(18)) == {"h1", "h2"}
    assert b.claim_hosts(wb.run_id, wb.worker_id, 2, at(12), at(22)) == []
    # a stops renewing (it died, or stalled): past 18 b takes both over.
    assert b.claim_hosts(wb.run_id, wb.worker_id, 2, at(19), at(29)) == ["h1", "h2"]
    # A stalled a that wakes up learns it lost them; it renews nothing of b's.
    assert a.renew(wa.run_id, wa.worker_id, at(20), at(30)) == set()
    assert b.renew(wb.run_id, wb.worker_id, at(20), at(30)) == {"h1", "h2"}
    leases = {(r.host, r.worker) for r in a.open_leases(at(20))}
    assert leases == {("h1", "b"), ("h2", "b")}
    # Each worker's own row lives by its heartbeat, not by its hosts.
    assert {w.name: (w.state, w.hosts) for w in a.workers_of([wa.run_id], at(20))} == {
        "a": ("running", 0),
        "b": ("running", 2),
    }


def test_the_fair_share_spreads_hosts_over_the_live_workers(
    dbs: tuple[WorkerDatabase, WorkerDatabase],
) -> None:
    a, b = dbs
    wa = join(a, "a", lease=10)
    ids = queue(a, wa.run_id, {"h1": 1, "h2": 1, "h3": 1})
    assert a.fair_share(wa.run_id, at(1)) == 3  # alone: every host
    wb = join(b, "b", now=at(2), lease=30)
    assert a.fair_share(wa.run_id, at(3)) == 2  # two live workers: 3 / 2, rounded up
    record(a, wa.run_id, ids["h1"][0])
    assert a.fair_share(wa.run_id, at(3)) == 1
    assert b.fair_share(wb.run_id, at(20)) == 2  # a expired at 10: b alone again


def test_a_host_is_leased_again_only_with_unchecked_urls(
    dbs: tuple[WorkerDatabase, WorkerDatabase],
) -> None:
    a, b = dbs
    wa, wb = join(a, "a"), join(b, "b")
    ids = queue(a, wa.run_id, {"h1": 2})
    assert a.claim_hosts(wa.run_id, wa.worker_id, 1, T0, at(10)) == ["h1"]
    for url_id in ids["h1"]:
        record(a, wa.run_id, url_id)
    a.release_host(wa.run_id, wa.worker_id, "h1")
    assert b.claim_hosts(wb.run_id, wb.worker_id, 1, at(1), at(11)) == []
    assert a.unchecked(wa.run_id) == 0
    assert a.open_leases(at(1)) == []


def test_a_url_gets_one_recorded_check_per_run_whoever_records_it(
    dbs: tuple[WorkerDatabase, WorkerDatabase],
) -> None:
    a, b = dbs
    wa, wb = join(a, "a"), join(b, "b")
    ids = queue(a, wa.run_id, {"h1": 1})
    url_id = ids["h1"][0]
    record(a, wa.run_id, url_id)  # a recorded it, then died before giving the host back
    record(b, wb.run_id, url_id)  # b took the host over and asked the URL again
    assert a.scalar("SELECT COUNT(*) FROM checks WHERE url_id = ?", (url_id,)) == 1
    assert sum(b.dropped.values()) == 1 and not a.dropped
    # Queueing it again (another worker's indexing) does not make it due in this run.
    with b.transaction():
        assert b.add_run_urls(wb.run_id, [(url_id, "h1")]) == 0
    assert b.unchecked(wb.run_id) == 0
    # A URL the run did not queue is not recorded in it.
    with a.transaction():
        other = a.url_id("http://h9/x.pdf", T0)
    record(a, wa.run_id, other)
    assert a.scalar("SELECT COUNT(*) FROM checks WHERE url_id = ?", (other,)) == 0


def test_the_last_worker_out_closes_the_run(dbs: tuple[WorkerDatabase, WorkerDatabase]) -> None:
    a, b = dbs
    wa, wb = join(a, "a"), join(b, "b")
    ids = queue(a, wa.run_id, {"h1": 1, "h2": 1})
    record(a, wa.run_id, ids["h1"][0])
    assert not a.end_worker(wa, at(5), 0, checked=1)  # b is live, h2 unchecked
    record(b, wb.run_id, ids["h2"][0])
    assert b.end_worker(wb, at(6), 1, checked=1, posts=3)
    run = a.rows("SELECT ended, exit_code, urls, counts, posts FROM runs WHERE id = ?", [wa.run_id])
    assert run == [
        {"ended": at(6), "exit_code": 1, "urls": 2, "counts": '{"failing": 2}', "posts": 3}
    ]
    # The queue is gone with the run; the workers stay, done.
    assert a.scalar("SELECT COUNT(*) FROM run_urls") == 0
    assert [w.state for w in a.workers_of([wa.run_id], at(7))] == ["done", "done"]


def test_a_run_whose_workers_all_expired_is_abandoned_not_joined(
    dbs: tuple[WorkerDatabase, WorkerDatabase],
) -> None:
    a, b = dbs
    wa = join(a, "a", lease=10)
    queue(a, wa.run_id, {"h1": 3})
    # a died: at 60 its expiry (10) is long past, so b opens a new run.
    wb = join(b, "b", now=at(60))
    assert wb.opened and wb.run_id != wa.run_id and wb.started == at(60)
    assert [w.state for w in b.workers_of([wa.run_id], at(60))] == ["abandoned"]
    # The old run stays open (status: abandoned); its queue is dropped (its URLs are due).
    assert b.scalar("SELECT ended FROM runs WHERE id = ?", (wa.run_id,)) is None
    assert b.unchecked(wa.run_id) == 0
    assert b.shared_runs([wa.run_id, wb.run_id]) == {wa.run_id, wb.run_id}


def test_workers_index_one_at_a_time_and_record_what_they_indexed(
    dbs: tuple[WorkerDatabase, WorkerDatabase],
) -> None:
    a, b = dbs
    wa, wb = join(a, "a"), join(b, "b")
    assert a.try_indexing_lock()
    assert not b.try_indexing_lock()  # b polls meanwhile (and heartbeats)
    assert b.indexed_sources(wb.run_id) == {}
    with a.transaction():
        a.mark_indexed(wa.run_id, "/posts", 12)
    a.release_indexing_lock()
    assert b.try_indexing_lock()
    assert b.indexed_sources(wb.run_id) == {"/posts": 12}  # b skips it
    with b.transaction():
        b.mark_indexed(wb.run_id, "/other", 3)
    b.release_indexing_lock()
    assert a.indexed_sources(wa.run_id) == {"/posts": 12, "/other": 3}
    assert a.try_indexing_lock()
    a.release_indexing_lock()


def test_workers_share_the_run_lock_and_exclude_every_other_run(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    with run_lock(db, shared=True), run_lock(db, shared=True), pytest.raises(LockedError):
        run_lock(db).__enter__()
    with run_lock(db), pytest.raises(LockedError), run_lock(db, shared=True):
        pass


# -- three worker processes, one killed mid-run ----------------------------------------

HOSTS = [f"127.0.0.{i}" for i in range(1, 7)]
PER_HOST_URLS = 6


#: How long a held response waits for the test at most (a broken test fails, not hangs):
#: longer than ``HOLD_TIMEOUT``, as three processes start on a busy machine meanwhile.
GATE_TIMEOUT = 60.0


def held_pdf(gate: threading.Event, body: bytes) -> Script:
    """A PDF answered once ``gate`` is set (the request counts as in flight meanwhile)."""

    def script(req: Request) -> Reply:
        gate.wait(GATE_TIMEOUT)
        return Reply(body=body, content_type="application/pdf")

    return script


def start_worker(
    cwd: Path, name: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "archiver",
            "crawl",
            "--worker-name",
            name,
            "--no-progress",
            "--fail-on",
            "none",
            *extra,
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archiver", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_db(request: pytest.FixtureRequest) -> str:
    """The database the workers share: SQLite, one file for the processes (its path from
    the test's folder); PostgreSQL, one server, as on several machines."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_dsn"))
    return "state/archive.db"


def state_of(tmp_path: Path, db: str) -> Path | str:
    """``shared_db`` as the test process opens it."""
    return db if db.startswith("postgresql") else tmp_path / db


def test_three_workers_one_killed_mid_run(tmp_path: Path, shared_db: str) -> None:
    db = shared_db
    release = threading.Event()  # every response waits on it until the victim is dead
    servers = [LoopbackServer(host).start() for host in HOSTS]
    try:
        links = [
            server.route(f"/f{i}.pdf", held_pdf(release, media.deck(f"{server.host}/{i}", 2_000)))
            for server in servers
            for i in range(PER_HOST_URLS)
        ]
        # Two hosts a worker: the three workers hold all six at once.
        write_site(tmp_path, db, links, concurrency=4, lease=3, hosts=2)
        procs = {name: start_worker(tmp_path, name) for name in ("w1", "w2", "w3")}
        try:
            # Every host has a request in flight, held: each worker holds its two hosts.
            for server in servers:
                if not server.wait_for_in_flight(1, timeout=GATE_TIMEOUT):
                    release.set()
                    logs = {n: p.communicate(timeout=60)[1] for n, p in procs.items()}
                    raise AssertionError(f"{server.host} never asked: {logs}")
            status = json.loads(cli(tmp_path, "status", "--format", "json").stdout)
            assert {w["name"]: w["state"] for w in status["workers"]} == {
                "w1": "running",
                "w2": "running",
                "w3": "running",
            }
            leases = {lease["host"]: lease["worker"] for lease in status["leases"]}
            assert sorted(leases) == HOSTS
            victim_hosts = sorted(h for h, w in leases.items() if w == "w2")
            assert len(victim_hosts) == 2
            procs["w2"].send_signal(signal.SIGKILL)
            procs["w2"].wait(timeout=30)
        finally:
            release.set()
        results = {}
        for name in ("w1", "w3"):
            _out, err = procs[name].communicate(timeout=90)
            results[name] = (procs[name].returncode, err)
        assert results["w1"][0] == 0, results["w1"][1]
        assert results["w3"][0] == 0, results["w3"][1]

        state = Database(state_of(tmp_path, db), readonly=True)
        try:
            run_id = state.scalar("SELECT id FROM runs WHERE shared = 1")
            per_url = {
                r["url"]: r["n"]
                for r in state.rows(
                    "SELECT u.url, COUNT(c.id) AS n FROM urls u"
                    " LEFT JOIN checks c ON c.url_id = u.id AND c.run_id = ?"
                    " GROUP BY u.url",
                    [run_id],
                )
            }
            ended = state.scalar("SELECT ended FROM runs WHERE id = ?", [run_id])
            states = {r["url"]: r["state"] for r in state.rows("SELECT url, state FROM urls")}
        finally:
            state.close()
        # One recorded check per URL, in the one shared run, which the last worker closed.
        assert per_url == {u: 1 for u in links}
        assert ended is not None
        assert set(states.values()) == {"ok"}
        # No URL asked more than twice (the victim's in-flight ones were asked again).
        hits = {
            server.url(f"/f{i}.pdf"): server.stats(f"/f{i}.pdf").hits
            for server in servers
            for i in range(PER_HOST_URLS)
        }
        assert max(hits.values()) <= 2
        assert any(n == 2 for n in hits.values())  # the takeover asked an in-flight one again
        # The per-host limit held across all the workers together.
        assert {s.host: s.max_in_flight for s in servers} == {h: 1 for h in HOSTS}
        # No blob lost: every archived copy is in the store and hashes right.
        verify = cli(tmp_path, "verify")
        assert verify.returncode == 0, verify.stderr
        status = json.loads(cli(tmp_path, "status", "--format", "json").stdout)
        assert {w["name"]: w["state"] for w in status["workers"]} == {
            "w1": "done",
            "w2": "abandoned",
            "w3": "done",
        }
        assert status["leases"] == []
        text = cli(tmp_path, "status").stdout
        assert "w2" in text and "abandoned" in text
    finally:
        release.set()
        for server in servers:
            server.close()


# -- indexing once a run -----------------------------------------------------------


def run_summary(output: str) -> dict[str, object]:
    """The summary record of a worker's ``--log-format json`` log."""
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return next(r for r in records if "posts" in r and "checked" in r)


def two_host_site(tmp_path: Path, db: str, gate: threading.Event, lease: int) -> list[str]:
    """A post linking one held PDF on each of two hosts, and a config of one host a
    worker: the first worker holds 127.0.0.1's request, the next takes 127.0.0.2."""
    links = []
    for server in SERVERS_OF[tmp_path]:
        links.append(server.route("/d.pdf", held_pdf(gate, media.deck(server.host, 2_000))))
    write_site(tmp_path, db, links, concurrency=2, lease=lease, hosts=1)
    return links


def write_site(
    tmp_path: Path, db: str, links: list[str], *, concurrency: int, lease: int, hosts: int
) -> None:
    """A post linking ``links`` and the workers' config: one request a host at a time."""
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "all.md").write_text("\n".join(f"[d]({u})" for u in links) + "\n")
    (tmp_path / "config.toml").write_text(
        f'db = "{db}"\nstore = "state/store"\n'
        '[[sources]]\npath = "posts"\n'
        f"[fetch]\nconcurrency = {concurrency}\nper_host = 1\n"
        f"[workers]\nlease_seconds = {lease}\nhosts = {hosts}\n",
        encoding="utf-8",
    )


#: The loopback servers of each test's site (``two_host_site``), by its tmp_path.
SERVERS_OF: dict[Path, list[LoopbackServer]] = {}


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[list[LoopbackServer]]:
    servers = [LoopbackServer(host).start() for host in ("127.0.0.1", "127.0.0.2")]
    SERVERS_OF[tmp_path] = servers
    yield servers
    del SERVERS_OF[tmp_path]
    for server in servers:
        server.close()


def checks_per_url(db: str | Path) -> tuple[dict[str, int], list[dict[str, object]]]:
    """Each URL's recorded checks in the (one) shared run, and the runs."""
    state = Database(db, readonly=True)
    try:
        runs = state.rows("SELECT id, indexed, posts, ended FROM runs ORDER BY id")
        per_url = {
            str(r["url"]): int(r["n"])
            for r in state.rows(
                "SELECT u.url, COUNT(c.id) AS n FROM urls u"
                " LEFT JOIN checks c ON c.url_id = u.id AND c.run_id = ? GROUP BY u.url",
                [runs[0]["id"]],
            )
        }
    finally:
        state.close()
    return per_url, runs


def test_a_worker_joining_an_indexed_run_reads_no_post(
    tmp_path: Path, shared_db: str, two_servers: list[LoopbackServer]
) -> None:
    db = shared_db
    gate = threading.Event()
    links = two_host_site(tmp_path, db, gate, lease=30)
    first, second = two_servers
    gone = first.url("/gone.pdf")  # a 404 on w1's host: a link of the run that is broken
    with (tmp_path / "posts" / "all.md").open("a") as post:
        post.write(f"[gone]({gone})\n")
    procs = []
    try:
        procs.append(start_worker(tmp_path, "w1", "--log-format", "json"))
        # w1 fetches only once its indexing is done and recorded.
        assert first.wait_for_in_flight(1, timeout=GATE_TIMEOUT), "w1 never asked"
        # w2 exits by --fail-on any: the broken link w1 checked counts, unread posts or not.
        procs.append(start_worker(tmp_path, "w2", "--log-format", "json", "--fail-on", "any"))
        # w2 joined the run (it takes the host w1 left) without indexing.
        assert second.wait_for_in_flight(1, timeout=GATE_TIMEOUT), "w2 never asked"
    finally:
        gate.set()
    outputs = [p.communicate(timeout=90) for p in procs]
    assert [p.returncode for p in procs] == [0, 1], outputs
    w1, w2 = (run_summary(out + err) for out, err in outputs)
    assert (w1["posts"], w1["urls"], w1["checked"]) == (1, 3, 2)
    assert (w2["posts"], w2["urls"], w2["checked"], w2["broken"]) == (0, 0, 1, 1)
    per_url, runs = checks_per_url(state_of(tmp_path, db))
    assert per_url == {**{u: 1 for u in links}, gone: 1}
    # One run, closed by the last worker out with the posts the run indexed.
    assert len(runs) == 1 and runs[0]["ended"] is not None
    indexed = {str(tmp_path.resolve() / "posts"): 1}
    assert (json.loads(str(runs[0]["indexed"])), runs[0]["posts"]) == (indexed, 1)


def test_a_worker_joining_after_the_opener_died_mid_index_indexes(
    tmp_path: Path, shared_db: str, two_servers: list[LoopbackServer]
) -> None:
    db = shared_db
    gate = threading.Event()
    gate.set()  # nothing is held here
    # A long lease: the dead opener still counts as live when w2 joins its run.
    links = two_host_site(tmp_path, db, gate, lease=600)
    # w1 opens the run and is killed (SIGKILL) once its first batch of posts is queued,
    # before the source is recorded as indexed; on PostgreSQL its indexing lock dies
    # with its connection.
    w1 = start_worker(tmp_path, "w1", env={"ARCHIVER_FAULT": "worker-indexed-batch"})
    _out, err = w1.communicate(timeout=90)
    assert w1.returncode == -signal.SIGKILL, err
    w2 = start_worker(tmp_path, "w2", "--log-format", "json")
    out, err = w2.communicate(timeout=90)
    assert w2.returncode == 0, err
    summary = run_summary(out + err)
    assert (summary["posts"], summary["checked"]) == (1, 2)
    per_url, runs = checks_per_url(state_of(tmp_path, db))
    # w2 joined w1's run (one run) and indexed what w1 left unrecorded.
    assert per_url == {u: 1 for u in links}
    indexed = {str(tmp_path.resolve() / "posts"): 1}
    assert len(runs) == 1 and json.loads(str(runs[0]["indexed"])) == indexed
    assert [s.stats("/d.pdf").hits for s in two_servers] == [1, 1]
