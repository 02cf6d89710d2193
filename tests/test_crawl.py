"""End to end: real posts on disk, a real HTTP server on loopback, a real SQLite file and store."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import httpx
import media
import pytest
from server import LoopbackServer, Reply, conditional

from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source
from archiver.db import Database
from archiver.errors import NetworkDownError
from archiver.net.fetch import HostMapTransport
from archiver.ops.report import ReportFilter, row_dict, url_rows
from archiver.run.crawl import crawl

PDF = media.deck("slides", 3500)
PNG = media.picture("PNG", 1)
HTML = b"<!doctype html><html><body>Sorry, this file is gone</body></html>"


class Offline(httpx.AsyncBaseTransport):
    """A machine without network: every lookup fails, exactly like a dead host."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request)


def make_config(tmp_path: Path, **kw: object) -> Config:
    cfg = Config(
        db=tmp_path / "state" / "archive.db",
        store=tmp_path / "state" / "store",
        fetch=FetchConfig(retries=2, connect_timeout=5, read_timeout=5),
    )
    return replace(cfg, **kw)  # type: ignore[arg-type]


def write_post(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def states(cfg: Config) -> dict[str, str]:
    db = Database(cfg.db)
    try:
        return {r["url"]: r["state"] for r in db.rows("SELECT url, state FROM urls")}
    finally:
        db.close()


def test_crawl_archives_pdf_and_extensionless_image(tmp_path: Path, server: LoopbackServer) -> None:
    pdf = server.route("/os/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    img = server.route("/afts/img/A*XB9E", Reply(body=PNG, content_type="image/png"))
    posts = tmp_path / "posts"
    write_post(
        posts,
        "meetup/index.md",
        f'---\ntitle: x\ncover: "{img}"\n---\n\n[slides]({pdf})\n\n```\n{pdf}?in-code\n```\n',
    )
    cfg = make_config(tmp_path)
    summary = crawl(cfg, [Source(path=posts)], clock=FakeClock())
    assert summary.exit_code == 0
    assert summary.counts == {"ok": 2}
    assert summary.new_blobs == 2
    assert summary.bytes == len(PDF) + len(PNG)
    for body in (PDF, PNG):
        digest = hashlib.sha256(body).hexdigest()
        assert (cfg.store / digest[:2] / digest).read_bytes() == body
    db = Database(cfg.db)
    rows = [row_dict(r) for r in url_rows(db, ReportFilter(states=("ok",)))]
    by_url = {r["url"]: r for r in rows}
    assert by_url[pdf]["content_type"] == "application/pdf"
    assert by_url[pdf]["posts"][0]["path"] == "meetup/index.md"
    assert by_url[pdf]["posts"][0]["line"] == 6
    assert by_url[img]["sha256"] == hashlib.sha256(PNG).hexdigest()
    headers = json.loads(db.scalar("SELECT headers FROM responses LIMIT 1"))
    assert any(name.lower() == "content-type" for name, _ in headers)
    db.close()


def test_every_state(tmp_path: Path, server: LoopbackServer) -> None:
    ok = server.route("/ok.pdf", Reply(body=PDF, content_type="application/pdf"))
    gone = server.route("/gone.pdf", Reply(status=410))
    soft = server.route("/soft.pdf", Reply(body=HTML, content_type="text/html"))
    broken = server.route("/busy.png", Reply(status=503))
    trunc = server.route("/trunc.pdf", Reply(body=PDF[:100], length=len(PDF)))
    never = "http://127.0.0.1:1/never-checked.png"
    posts = tmp_path / "posts"
    write_post(
        posts,
        "a.md",
        f"![a]({ok})\n![b]({gone})\n![c]({soft})\n![d]({broken})\n[e]({trunc})\n"
        f"\n```\n![shown, not linked]({never})\n```\n",  # in a code block: not a link
    )
    cfg = make_config(tmp_path, confirm_runs=1)
    summary = crawl(cfg, [Source(path=posts)], clock=FakeClock(), fail_on="any")
    assert summary.exit_code == 1
    got = states(cfg)
    assert got[ok] == "ok"
    assert got[gone] == "dead"
    assert got[soft] == "invalid"
    assert got[broken] == "error"
    assert got[trunc] == "error"
    assert never in (posts / "a.md").read_text(encoding="utf-8")
    assert never not in got  # in the post, but not a link: never saved, never checked
    # nothing but the good PDF reached the store, and no temp file is left behind
    assert [p.name for p in cfg.store.glob("??/*")] == [hashlib.sha256(PDF).hexdigest()]
    assert list((cfg.store / "tmp").iterdir()) == []


def test_pending_until_checked(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    write_post(posts, "a.md", "![x](https://cdn.example.org/x.png)\n")
    cfg = make_config(tmp_path)
    db = Database(cfg.db)
    db.close()
    # Extraction alone records the URL as pending; the offline run then changes nothing.
    with pytest.raises(NetworkDownError):
        crawl(cfg, [Source(path=posts)], clock=FakeClock(), transport=HostMapTransport({}))
    assert states(cfg) == {"https://cdn.example.org/x.png": "pending"}


def test_network_down_changes_no_state_and_says_so(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVER_PUBLIC_ADDRESSES", "127.0.0.1/32")  # a public host answers
    url = server.route("/deck.pdf", Reply(body=PDF))
    posts = tmp_path / "posts"
    write_post(posts, "a.md", f"[d]({url})\n![i](http://cdn.example.org/i.png)\n")
    cfg = make_config(tmp_path)
    clock = FakeClock()
    # IP literals pass through; cdn.example.org is an unknown name (tests never resolve names).
    first = crawl(
        cfg, [Source(path=posts)], clock=clock, fail_on="any", transport=HostMapTransport({})
    )
    assert states(cfg)[url] == "ok"
    assert first.exit_code == 1  # cdn.example.org is unknown
    before = states(cfg)
    clock.advance(86400 * 2)
    with pytest.raises(NetworkDownError, match="network unreachable"):
        crawl(cfg, [Source(path=posts)], clock=clock, transport=Offline(), all_=True)
    assert states(cfg) == before


def test_dead_host_is_dead_when_another_host_answers(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVER_PUBLIC_ADDRESSES", "127.0.0.1/32")  # a public host answers
    url = server.route("/deck.pdf", Reply(body=PDF))
    posts = tmp_path / "posts"
    write_post(posts, "a.md", f"[d]({url})\n![i](http://gone.example.org/i.png)\n")
    cfg = make_config(tmp_path, confirm_runs=1)
    transport = HostMapTransport({})
    summary = crawl(cfg, [Source(path=posts)], clock=FakeClock(), transport=transport)
    got = states(cfg)
    assert got[url] == "ok"
    assert got["http://gone.example.org/i.png"] == "dead"
    assert summary.newly_broken == ["http://gone.example.org/i.png"]
    assert summary.exit_code == 1


def test_rerun_is_incremental_and_conditional(tmp_path: Path, server: LoopbackServer) -> None:
    lm = "Wed, 01 Jan 2025 00:00:00 GMT"
    url = server.route("/deck.pdf", conditional(PDF, etag='"v1"', last_modified=lm))
    posts = tmp_path / "posts"
    write_post(posts, "a.md", f"[d]({url})\n")
    cfg = make_config(tmp_path)
    clock = FakeClock()
    first = crawl(cfg, [Source(path=posts)], clock=clock)
    assert (first.checked, first.posts_parsed, first.bytes) == (1, 1, len(PDF))
    clock.advance(60)
    second = crawl(cfg, [Source(path=posts)], clock=clock)
    assert (second.checked, second.posts_parsed, second.bytes) == (0, 0, 0)
    sent = server.stats("/deck.pdf").bytes_sent
    third = crawl(cfg, [Source(path=posts)], clock=clock, all_=True)
    assert third.checked == 1 and third.bytes == 0
    assert server.stats("/deck.pdf").bytes_sent == sent  # a 304: no body crossed the wire
    last = server.stats("/deck.pdf").requests[-1]
    assert last.headers["if-none-match"] == '"v1"'
    assert states(cfg)[url] == "ok"
    clock.advance(86400 + 1)
    fourth = crawl(cfg, [Source(path=posts)], clock=clock)
    assert fourth.checked == 1  # recheck_after passed


def test_changed_bytes_make_a_new_version_and_keep_the_old(
    tmp_path: Path, server: LoopbackServer
) -> None:
    v2 = PDF + b"% revised\n"
    url = server.route(
        "/deck.pdf",
        Reply(body=PDF, content_type="application/pdf"),
        Reply(body=v2, content_type="application/pdf"),
    )
    posts = tmp_path / "posts"
    write_post(posts, "a.md", f"[d]({url})\n")
    cfg = make_config(tmp_path)
    clock = FakeClock()
    crawl(cfg, [Source(path=posts)], clock=clock)
    clock.advance(3600)
    crawl(cfg, [Source(path=posts)], clock=clock, all_=True)
    clock.advance(3600)
    crawl(cfg, [Source(path=posts)], clock=clock, all_=True)  # same v2 again: stored once
    db = Database(cfg.db)
    versions = db.rows("SELECT sha256, first_seen, last_seen FROM versions ORDER BY first_seen")
    db.close()
    assert [v["sha256"] for v in versions] == [
        hashlib.sha256(PDF).hexdigest(),
        hashlib.sha256(v2).hexdigest(),
    ]
    assert versions[1]["first_seen"] < versions[1]["last_seen"]
    assert len(list(cfg.store.glob("??/*"))) == 2


def test_confirmation_across_runs(tmp_path: Path, server: LoopbackServer) -> None:
    url = server.route("/deck.pdf", Reply(status=404))
    posts = tmp_path / "posts"
    write_post(posts, "a.md", f"[d]({url})\n")
    cfg = make_config(tmp_path)
    clock = FakeClock()
    first = crawl(cfg, [Source(path=posts)], clock=clock)
    assert states(cfg)[url] == "failing" and first.exit_code == 0
    clock.advance(600)  # too soon: not re-checked
    assert crawl(cfg, [Source(path=posts)], clock=clock).checked == 0
    clock.advance(3600)
    second = crawl(cfg, [Source(path=posts)], clock=clock)
    assert states(cfg)[url] == "dead"
    assert second.exit_code == 1 and second.newly_broken == [url]
    clock.advance(86400 * 2)
    third = crawl(cfg, [Source(path=posts)], clock=clock)
    assert third.exit_code == 0  # still dead, but not newly: cron stays quiet
    assert crawl(cfg, [Source(path=posts)], clock=clock, fail_on="any", all_=True).exit_code == 1


def test_local_files_resolve_and_missing_ones_are_dead(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    write_post(posts, "talk/index.md", "---\ncover: /cover.png\n---\n![a](missing.png)\n")
    (posts / "talk" / "cover.png").write_bytes(PNG)
    cfg = make_config(tmp_path, confirm_runs=1)
    summary = crawl(cfg, [Source(path=posts)], clock=FakeClock())
    got = states(cfg)
    cover = (posts / "talk" / "cover.png").as_uri()
    missing = (posts / "talk" / "missing.png").as_uri()
    assert got == {cover: "ok", missing: "dead"}
    assert summary.exit_code == 1
    digest = hashlib.sha256(PNG).hexdigest()
    assert (cfg.store / digest[:2] / digest).exists()


def test_removed_links_are_marked_unreferenced(tmp_path: Path, server: LoopbackServer) -> None:
    a = server.route("/a.pdf", Reply(body=PDF))
    b = server.route("/b.png", Reply(body=PNG))
    posts = tmp_path / "posts"
    post = write_post(posts, "a.md", f"[a]({a})\n![b]({b})\n")
    cfg = make_config(tmp_path)
    clock = FakeClock()
    crawl(cfg, [Source(path=posts)], clock=clock)
    post.write_text(f"[a]({a})\n", encoding="utf-8")
    summary = crawl(cfg, [Source(path=posts)], clock=clock)
    assert summary.posts_parsed == 1
    db = Database(cfg.db)
    ref = {r["url"]: r["referenced"] for r in db.rows("SELECT url, referenced FROM urls")}
    db.close()
    assert ref == {a: 1, b: 0}
    # Linked again: the flag, written only where it changes, comes back.
    post.write_text(f"[a]({a})\n![b]({b})\n", encoding="utf-8")
    crawl(cfg, [Source(path=posts)], clock=clock)
    db = Database(cfg.db)
    ref = {r["url"]: r["referenced"] for r in db.rows("SELECT url, referenced FROM urls")}
    db.close()
    assert ref == {a: 1, b: 1}


def test_disk_full_stops_the_run_with_exit_3_and_keeps_the_archive(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from archiver.errors import StoreError
    from archiver.store import BlobWriter

    first = server.route("/first.pdf", Reply(body=PDF))
    posts = tmp_path / "posts"
    write_post(posts, "a.md", f"[a]({first})\n")
    cfg = make_config(tmp_path)
    clock = FakeClock()
    crawl(cfg, [Source(path=posts)], clock=clock)
    before = states(cfg)
    second = server.route("/second.pdf", Reply(body=PDF + b"2"))
    write_post(posts, "b.md", f"[b]({second})\n")

    def full(self: BlobWriter, chunk: bytes) -> None:
        self.abort()
        raise StoreError("cannot write to the store: the disk is full")

    monkeypatch.setattr(BlobWriter, "write", full)
    with pytest.raises(StoreError, match="the disk is full") as info:
        crawl(cfg, [Source(path=posts)], clock=clock, all_=True)
    assert info.value.exit_code == 3
    monkeypatch.undo()
    after = states(cfg)
    assert after[first] == before[first] == "ok"
    assert after[second] == "pending"  # not checked: the run stopped, nothing was recorded
    digest = hashlib.sha256(PDF).hexdigest()
    assert (cfg.store / digest[:2] / digest).read_bytes() == PDF
    assert list((cfg.store / "tmp").iterdir()) == []
    db = Database(cfg.db)
    run = db.rows("SELECT exit_code, message FROM runs ORDER BY id DESC LIMIT 1")[0]
    db.close()
    assert run["exit_code"] == 3 and "disk is full" in run["message"]
    del errno, os


def test_canary_down_means_offline(tmp_path: Path, server: LoopbackServer) -> None:
    url = server.route("/deck.pdf", Reply(status=404))
    posts = tmp_path / "posts"
    write_post(posts, "a.md", f"[d]({url})\n")
    cfg = make_config(tmp_path, canary="http://canary.example.org/", confirm_runs=1)
    with pytest.raises(NetworkDownError, match=r"the canary http://canary\.example\.org/"):
        crawl(cfg, [Source(path=posts)], clock=FakeClock(), transport=HostMapTransport({}))
    assert states(cfg) == {url: "pending"}
    assert server.stats("/deck.pdf").hits == 0


def test_canary_up_means_failures_are_real(tmp_path: Path, server: LoopbackServer) -> None:
    server.route("/", Reply(body=b"hello", content_type="text/plain"))
    posts = tmp_path / "posts"
    write_post(posts, "a.md", "![i](http://gone.example.org/i.png)\n")
    cfg = make_config(tmp_path, canary=server.url("/"), confirm_runs=1)
    summary = crawl(cfg, [Source(path=posts)], clock=FakeClock(), transport=HostMapTransport({}))
    assert states(cfg) == {"http://gone.example.org/i.png": "dead"}
    assert summary.exit_code == 1


def test_report_changed_lists_urls_with_new_versions(
    tmp_path: Path, server: LoopbackServer
) -> None:
    from archiver.ops.report import ReportFilter, row_dict, url_rows

    same = server.route("/same.pdf", Reply(body=PDF))
    moving = server.route("/moving.pdf", Reply(body=PDF), Reply(body=PDF + b"% v2\n"))
    posts = tmp_path / "posts"
    write_post(posts, "a.md", f"[s]({same})\n[m]({moving})\n")
    cfg = make_config(tmp_path)
    clock = FakeClock()
    crawl(cfg, [Source(path=posts)], clock=clock)
    clock.advance(60)
    crawl(cfg, [Source(path=posts)], clock=clock, all_=True)
    db = Database(cfg.db)
    rows = [row_dict(r) for r in url_rows(db, ReportFilter(states=("ok",), changed=True))]
    db.close()
    assert [r["url"] for r in rows] == [moving]


def test_a_host_at_its_limit_never_slows_another(
    tmp_path: Path, server: LoopbackServer, server2: LoopbackServer
) -> None:
    import threading

    from server import Request

    gate = server.gate()
    slow = [server.route(f"/s{i}.pdf", Reply(body=PDF, hold=gate)) for i in range(8)]
    served = threading.Semaphore(0)

    def fast_reply(req: Request) -> Reply:
        served.release()
        return Reply(body=PNG, content_type="image/png")

    fast = [server2.route(f"/f{i}.png", fast_reply) for i in range(6)]
    posts = tmp_path / "posts"
    lines = [f"[s]({u})" for u in slow] + [f"![f]({u})" for u in fast]
    write_post(posts, "a.md", "\n".join(lines) + "\n")
    cfg = make_config(tmp_path, fetch=FetchConfig(concurrency=4, per_host=2, retries=0))
    result: list[object] = []
    runner = threading.Thread(
        target=lambda: result.append(crawl(cfg, [Source(path=posts)], clock=FakeClock()))
    )
    runner.start()
    try:
        assert server.wait_for_in_flight(2)  # host 1 is at its limit, its answers held
        for _ in fast:  # ... and every asset of host 2 is still served meanwhile
            assert served.acquire(timeout=10)
        assert server.in_flight == 2
    finally:
        gate.set()
        runner.join(60)
    assert server.max_in_flight == 2
    assert server2.max_in_flight <= 2
    assert set(states(cfg).values()) == {"ok"}


def test_a_host_at_its_limit_never_keeps_later_posts_from_being_read(
    tmp_path: Path, server: LoopbackServer, server2: LoopbackServer
) -> None:
    """Posts are read only as fast as their links are fetched, but links waiting for a
    host at its limit do not count: the second host's links, in the last post, are
    fetched while the first host holds every answer."""
    import threading

    from server import Request

    gate = server.gate()
    posts = tmp_path / "posts"
    for p in range(20):
        slow = [server.route(f"/s{p}-{i}.pdf", Reply(body=PDF, hold=gate)) for i in range(3)]
        write_post(posts, f"{p:02d}.md", "".join(f"[s]({u})\n" for u in slow))
    served = threading.Semaphore(0)

    def fast_reply(req: Request) -> Reply:
        served.release()
        return Reply(body=PNG, content_type="image/png")

    fast = [server2.route(f"/f{i}.png", fast_reply) for i in range(4)]
    write_post(posts, "99.md", "".join(f"![f]({u})\n" for u in fast))
    cfg = make_config(tmp_path, fetch=FetchConfig(concurrency=4, per_host=2, retries=0))
    runner = threading.Thread(target=lambda: crawl(cfg, [Source(path=posts)], clock=FakeClock()))
    runner.start()
    try:
        assert server.wait_for_in_flight(2)
        for _ in fast:
            assert served.acquire(timeout=10)
    finally:
        gate.set()
        runner.join(60)
    assert set(states(cfg).values()) == {"ok"} and len(states(cfg)) == 64


def test_links_no_post_uses_leave_the_default_report(
    tmp_path: Path, server: LoopbackServer
) -> None:
    from archiver.ops.report import ReportFilter, row_dict, url_rows

    gone = server.route("/gone.pdf", Reply(status=404))
    posts = tmp_path / "posts"
    post = write_post(posts, "a.md", f"[g]({gone})\n")
    cfg = make_config(tmp_path, confirm_runs=1)
    clock = FakeClock()
    crawl(cfg, [Source(path=posts)], clock=clock)
    post.unlink()
    crawl(cfg, [Source(path=posts)], clock=clock)
    db = Database(cfg.db)
    try:
        assert url_rows(db, ReportFilter()) == []
        kept = [row_dict(r) for r in url_rows(db, ReportFilter(unreferenced=True))]
    finally:
        db.close()
    assert [(r["url"], r["state"], r["referenced"]) for r in kept] == [(gone, "dead", False)]


def test_readme_shows_the_offline_message_word_for_word(tmp_path: Path) -> None:
    posts = tmp_path / "posts"
    write_post(posts, "a.md", "![x](https://cdn.example.org/x.png)\n")
    with pytest.raises(NetworkDownError) as info:
        crawl(make_config(tmp_path), [Source(path=posts)], clock=FakeClock(), transport=Offline())
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"archiver: {info.value}\n" in readme


def test_two_hosts_remapped_onto_one_share_its_per_host_limit(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """Fairness is by the host fetched: two source hosts [remap]ped onto one server never
    have more requests in flight there than its per-host limit."""
    import threading

    gate = server.gate()
    for i in range(6):
        server.route(f"/a{i}.pdf", Reply(body=PDF, hold=gate))
        server.route(f"/b{i}.pdf", Reply(body=PDF, hold=gate))
    posts = tmp_path / "posts"
    lines = [f"[a](http://a.test/a{i}.pdf)\n[b](http://b.test/b{i}.pdf)\n" for i in range(6)]
    write_post(posts, "a.md", "".join(lines))
    cfg = make_config(
        tmp_path,
        fetch=FetchConfig(concurrency=8, per_host=2, retries=0),
        remap=((r"^http://[ab]\.test/", f"http://one.test:{server.port}/"),),
    )
    transport = HostMapTransport({"one.test": server.host})
    runner = threading.Thread(
        target=lambda: crawl(cfg, [Source(path=posts)], clock=FakeClock(), transport=transport)
    )
    runner.start()
    try:
        assert server.wait_for_in_flight(2)  # the shared host is at its limit
    finally:
        gate.set()
        runner.join(60)
    assert server.max_in_flight == 2
    assert set(states(cfg).values()) == {"ok"} and len(states(cfg)) == 12


def test_a_url_remapped_away_from_a_host_does_not_wait_for_its_slots(
    tmp_path: Path, server: LoopbackServer, server2: LoopbackServer
) -> None:
    """Links written on a host at its limit but [remap]ped to another host are fetched
    while the first host holds every answer: they never took its slots."""
    import threading

    from server import Request

    gate = server.gate()
    slow = [server.route(f"/s{i}.pdf", Reply(body=PDF, hold=gate)) for i in range(8)]
    served = threading.Semaphore(0)

    def fast_reply(req: Request) -> Reply:
        served.release()
        return Reply(body=PNG, content_type="image/png")

    for i in range(6):
        server2.route(f"/f{i}.png", fast_reply)
    slow_host = f"http://slow.test:{server.port}"
    posts = tmp_path / "posts"
    lines = [f"[s]({u.replace(server.url(''), slow_host + '/')})" for u in slow]
    lines += [f"![f]({slow_host}/moved/f{i}.png)" for i in range(6)]
    write_post(posts, "a.md", "\n".join(lines) + "\n")
    cfg = make_config(
        tmp_path,
        fetch=FetchConfig(concurrency=8, per_host=2, retries=0),
        remap=((r"^http://slow\.test:\d+/moved/", f"http://fast.test:{server2.port}/"),),
    )
    transport = HostMapTransport({"slow.test": server.host, "fast.test": server2.host})
    runner = threading.Thread(
        target=lambda: crawl(cfg, [Source(path=posts)], clock=FakeClock(), transport=transport)
    )
    runner.start()
    try:
        assert server.wait_for_in_flight(2)  # the written host is at its limit...
        for _ in range(6):  # ... and every link remapped away from it is still fetched
            assert served.acquire(timeout=10)
        assert server.in_flight == 2
    finally:
        gate.set()
        runner.join(60)
    assert server.max_in_flight == 2
    assert set(states(cfg).values()) == {"ok"} and len(states(cfg)) == 14


def url_row(cfg: Config, url: str) -> dict[str, object]:
    db = Database(cfg.db)
    try:
        return db.rows("SELECT state, sha256, last_checked FROM urls WHERE url=?", (url,))[0]
    finally:
        db.close()


def test_a_check_never_clears_a_failed_full_fetch_of_a_url_without_a_copy(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """The crawl's full fetch failed and we hold no copy: a check that finds the link
    answering records that check, but the URL stays broken (the report keeps showing it)
    until a crawl archives it."""
    url = server.route("/deck.pdf", Reply(status=404), Reply(body=PDF))
    posts = tmp_path / "posts"
    write_post(posts, "a.md", f"[d]({url})\n")
    cfg = make_config(tmp_path, confirm_runs=1)
    clock = FakeClock()
    crawl(cfg, [Source(path=posts)], clock=clock)
    failed = url_row(cfg, url)
    assert (failed["state"], failed["sha256"]) == ("dead", None)

    clock.advance(60)
    summary = crawl(cfg, [Source(path=posts)], clock=clock, mode="check", fail_on="any")
    assert url_row(cfg, url) == failed  # still dead, no copy, not even re-timed
    assert summary.exit_code == 1 and summary.not_ok == 1
    db = Database(cfg.db, readonly=True)
    try:
        checks = db.rows("SELECT state, http_status FROM checks ORDER BY id")
        shown = [r.url for r in url_rows(db, ReportFilter())]
    finally:
        db.close()
    assert [c["state"] for c in checks] == ["dead", "ok"]  # the check is recorded
    assert checks[1]["http_status"] in (200, 206)
    assert shown == [url]  # the default report (what is not ok) still lists it

    clock.advance(60)
    crawl(cfg, [Source(path=posts)], clock=clock, all_=True)  # a full fetch: now archived
    fixed = url_row(cfg, url)
    assert (fixed["state"], fixed["sha256"]) == ("ok", hashlib.sha256(PDF).hexdigest())


def test_a_check_clears_what_only_a_check_found(tmp_path: Path, server: LoopbackServer) -> None:
    """A failure no full fetch saw (only checks ran) is cleared by a check that finds the
    link answering, as before: the URL is ok and, never archived, due for the next crawl."""
    url = server.route("/deck.pdf", Reply(status=404), Reply(body=PDF))
    posts = tmp_path / "posts"
    write_post(posts, "a.md", f"[d]({url})\n")
    cfg = make_config(tmp_path, confirm_runs=1)
    clock = FakeClock()
    crawl(cfg, [Source(path=posts)], clock=clock, mode="check")
    assert url_row(cfg, url)["state"] == "dead"
    clock.advance(60)
    crawl(cfg, [Source(path=posts)], clock=clock, mode="check")
    assert (url_row(cfg, url)["state"], url_row(cfg, url)["sha256"]) == ("ok", None)
    clock.advance(60)
    assert crawl(cfg, [Source(path=posts)], clock=clock).checked == 1  # never archived: due


def test_the_run_and_its_stages_leave_sql_to_the_database() -> None:
    """run/, net/, sources/, states.py and config.py call the database's methods: no SQL
    of their own, no connection, no raw rows."""
    import re

    import archiver

    root = Path(archiver.__file__).parent
    files = [*root.glob("run/*.py"), *root.glob("net/*.py"), *root.glob("sources/*.py")]
    files += [root / "states.py", root / "config.py"]
    sql = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE TABLE)\b")
    raw = re.compile(r"\.(conn|rows|scalar)\b")
    offending = [
        f"{path.relative_to(root)}:{n}"
        for path in files
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if sql.search(line) or raw.search(line)
    ]
    assert offending == []


def test_each_post_is_read_once_when_it_changed(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Indexing reads and hashes a post once: the bytes that told it changed are parsed."""
    from collections import Counter

    url = server.route("/deck.pdf", Reply(body=PDF))
    posts = tmp_path / "posts"
    write_post(posts, "a.md", f"[d]({url})\n")
    write_post(posts, "b.md", f"[d]({url})\n")
    reads: Counter[str] = Counter()
    real = Path.read_bytes

    def counted(self: Path) -> bytes:
        if self.parent == posts:
            reads[self.name] += 1
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", counted)
    summary = crawl(make_config(tmp_path), [Source(path=posts)], clock=FakeClock())
    assert summary.posts_parsed == 2
    assert reads == {"a.md": 1, "b.md": 1}
