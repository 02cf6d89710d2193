"""Group commit (issue 13 item 5): small duplicate bodies cost no file, and a row names a
blob only once the blob and its directory entry are durable, whatever kills the run."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import media
import pytest
from server import LoopbackServer, Reply
from test_cli import check_store_consistent, run, start

import archiver.run.recorder as recorder
from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source
from archiver.db import Database
from archiver.run.crawl import crawl
from archiver.store.directory import Store

PDF = media.deck("slides", 3_600)


def test_a_small_body_the_store_holds_is_never_written(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = store.put_bytes(PDF)
    w = store.writer()
    w.write(PDF[:100])
    w.write(PDF[100:])
    assert w.finish() == first.sha256
    assert w.held and list(store.tmp_dir.iterdir()) == []  # no temp file, ever
    again = w.commit(deferred=True)
    assert (again.sha256, again.path, again.new) == (first.sha256, first.path, False)
    assert list(store.tmp_dir.iterdir()) == []


def test_a_damaged_copy_is_replaced_by_the_same_small_body(tmp_path: Path) -> None:
    store = Store(tmp_path)
    blob = store.put_bytes(PDF)
    assert blob.path is not None
    blob.path.chmod(0o644)
    blob.path.write_bytes(PDF[:-1] + b"?")  # same size, other bytes: verify's "damaged"
    w = store.writer()
    w.write(PDF)
    w.finish()
    assert not w.held
    again = w.commit(deferred=True)
    assert again.new and store.hash_file(blob.sha256) == blob.sha256
    assert list(store.tmp_dir.iterdir()) == []


def test_a_deep_check_of_a_held_body_reads_a_temp_copy(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put_bytes(PDF)
    w = store.writer()
    w.write(PDF)
    w.finish()
    assert w.held and w.tmp_path.read_bytes() == PDF  # written only when asked for
    w.commit()
    assert list(store.tmp_dir.iterdir()) == []


def small_assets(server: LoopbackServer, posts: Path, distinct: int, same: int) -> None:
    """Posts linking ``distinct`` small PDFs of their own and ``same`` URLs of one body."""
    urls = [
        server.route(
            f"/d{i}.pdf", Reply(body=media.deck(f"d{i}", 3_600), content_type="application/pdf")
        )
        for i in range(distinct)
    ]
    urls += [
        server.route(f"/s{i}.pdf", Reply(body=PDF, content_type="application/pdf"))
        for i in range(same)
    ]
    posts.mkdir(parents=True, exist_ok=True)
    for start_ in range(0, len(urls), 10):
        links = "\n".join(f"[d]({u})" for u in urls[start_ : start_ + 10])
        (posts / f"p{start_}.md").write_text(links + "\n", encoding="utf-8")


def test_rows_commit_only_after_their_blobs_and_directories_are_durable(
    tmp_path: Path, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order on disk, logged as it happens: every blob a committed row names was
    renamed into place and then had its fan-out directory fsynced, before that commit."""
    small_assets(server, tmp_path / "posts", distinct=60, same=60)
    cfg = Config(
        db=tmp_path / "state" / "archive.db",
        store=tmp_path / "state" / "store",
        fetch=FetchConfig(retries=0),
    )
    events: list[tuple[str, str]] = []
    real_replace, real_sync, real_transaction = os.replace, recorder.fsync_dir, Database.transaction
    real_link = os.link

    def replace(src: str | Path, dst: str | Path) -> None:
        real_replace(src, dst)
        events.append(("rename", str(dst)))

    def link(src: str | Path, dst: str | Path) -> None:  # how a new blob gets its name
        real_link(src, dst)
        events.append(("rename", str(dst)))

    def sync(path: Path) -> None:
        events.append(("sync", str(path)))
        real_sync(path)

    @contextlib.contextmanager
    def transaction(self: Database) -> Iterator[None]:
        with real_transaction(self):
            yield
        named = self.conn.execute(
            "SELECT sha256 FROM versions UNION SELECT sha256 FROM urls WHERE sha256 IS NOT NULL"
        )
        for (sha,) in named:
            events.append(("named", sha))

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(recorder, "fsync_dir", sync)
    monkeypatch.setattr(Database, "transaction", transaction)
    summary = crawl(cfg, [Source(path=tmp_path / "posts")], clock=FakeClock())
    assert summary.counts == {"ok": 120} and summary.new_blobs == 61
    store = cfg.store
    checked = set()
    for i, (kind, sha) in enumerate(events):
        if kind != "named" or sha in checked:
            continue
        checked.add(sha)
        final, fanout = str(store / sha[:2] / sha), str(store / sha[:2])
        renamed = [j for j, e in enumerate(events[:i]) if e == ("rename", final)]
        assert renamed, f"{sha} named before its rename"
        assert ("sync", fanout) in events[renamed[-1] : i], f"{sha} named before its fsync"
    assert len(checked) == 61


KILL_POINTS = [
    "after-temp-write:20",
    "after-rename:33",
    "before-dir-sync:1",
    "before-dir-sync:2",
    "before-commit:1",
    "before-commit:2",
]


@pytest.fixture
def assets_site(tmp_path: Path, server: LoopbackServer) -> Path:
    small_assets(server, tmp_path / "posts", distinct=80, same=150)
    (tmp_path / "config.toml").write_text(
        'db = "state/archive.db"\nstore = "state/store"\n[fetch]\nretries = 0\n'
        '[[sources]]\npath = "posts"\n',
        encoding="utf-8",
    )
    return tmp_path


def assert_named_blobs_intact(site: Path) -> None:
    check_store_consistent(site, after_kill=True)
    conn = sqlite3.connect(site / "state" / "archive.db")
    try:
        ok = conn.execute("SELECT COUNT(*) FROM urls WHERE state='ok' AND sha256 IS NULL")
        assert ok.fetchone()[0] == 0  # an ok URL that names no blob was never archived
    finally:
        conn.close()


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_9_during_group_commit_leaves_every_named_blob_intact(
    assets_site: Path, point: str
) -> None:
    proc = run("crawl", "--all", cwd=assets_site, env={"ARCHIVER_FAULT": point})
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr
    assert_named_blobs_intact(assets_site)
    again = run("crawl", "--all", cwd=assets_site)
    assert again.returncode == 0, again.stderr
    check_store_consistent(assets_site)
    verify = run("verify", cwd=assets_site)
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.parametrize("held_at", [5, 60, 200])
def test_kill_9_from_outside_mid_run_leaves_every_named_blob_intact(
    assets_site: Path, server: LoopbackServer, held_at: int
) -> None:
    """A real SIGKILL from another process while the run is mid-flight (one URL's
    answer held, others being stored and recorded meanwhile)."""
    gate = server.gate()
    index = held_at if held_at < 80 else held_at - 80
    path = f"/d{index}.pdf" if held_at < 80 else f"/s{index}.pdf"
    body = media.deck(f"d{index}", 3_600) if held_at < 80 else PDF
    server.route(path, Reply(body=body, content_type="application/pdf", hold=gate))
    proc = start("crawl", cwd=assets_site)
    try:
        assert server.wait_for_in_flight(1)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        gate.set()
        proc.kill()
        proc.communicate()
    assert_named_blobs_intact(assets_site)
    again = run("crawl", cwd=assets_site)
    assert again.returncode == 0, again.stderr
    check_store_consistent(assets_site)
    for blob in (assets_site / "state" / "store").glob("??/*"):
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
