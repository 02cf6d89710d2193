"""Read-only commands are read-only: report, status, extract, restore URL -o, export.

They open the database read-only and never migrate it, work on a read-only file in
a read-only directory (what a full disk looks like to SQLite: it cannot write
either way), and create nothing: no schema, no store directory, no ``-wal``/``-shm``.
The test process runs as root here, and root ignores file modes: the commands then
run without the capabilities that override them (CAP_DAC_OVERRIDE, _READ_SEARCH).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from server import LoopbackServer
from test_report import PDF, World, make_world

from archiver.db import MIGRATIONS, Database, read_snapshot

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _drop_file_mode_override() -> None:
    """In the child before exec: root loses what lets it ignore ``chmod``."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def archiver(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Runs the CLI in a child process that file modes do bind."""
    return subprocess.run(
        [sys.executable, "-m", "archiver", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        preexec_fn=_drop_file_mode_override if os.geteuid() == 0 else None,
        check=False,
    )


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and directory under root: its bytes' hash (files) and its mtime."""
    out: dict[str, tuple[str, int]] = {}
    for p in sorted(root.rglob("*")):
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        out[p.relative_to(root).as_posix()] = (digest, p.stat().st_mtime_ns)
    return out


def make_read_only(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)


def make_writable(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


@pytest.fixture
def world(tmp_path: Path, server: LoopbackServer) -> Iterator[World]:
    w = make_world(tmp_path, server)
    yield w
    make_writable(w.cfg.db.parent)


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    """An empty working directory: a command that falls back to ./data shows there."""
    d = tmp_path / "cwd"
    d.mkdir()
    return d


def state_args(world: World) -> list[str]:
    return ["--db", str(world.cfg.db), "--store", str(world.cfg.store)]


def test_every_read_only_command_works_on_a_read_only_file_and_directory(
    world: World, cwd: Path, tmp_path: Path
) -> None:
    state = world.cfg.db.parent
    make_read_only(state)
    before = snapshot(state)
    out = tmp_path / "out"
    out.mkdir()
    a = state_args(world)

    status = archiver("status", *a, "--format", "json", cwd=cwd)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["urls"] == 4
    report = archiver("report", *a, "--format", "json", cwd=cwd)
    assert (report.returncode, report.stderr) == (1, "")  # broken links: exit 1, as ever
    assert [r["url"] for r in json.loads(report.stdout)] == [world.deck, world.photo, world.gone]
    html = archiver("report", *a, "--format", "html", "-o", str(out / "r.html"), cwd=cwd)
    assert html.returncode == 1 and (out / "r.html").stat().st_size > 0
    restored = archiver("restore", world.deck, *a, "-o", str(out / "deck.pdf"), cwd=cwd)
    assert restored.returncode == 0, restored.stderr
    assert (out / "deck.pdf").read_bytes() == PDF
    streamed = subprocess.run(
        [sys.executable, "-m", "archiver", "restore", world.deck, *a],
        capture_output=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        preexec_fn=_drop_file_mode_override if os.geteuid() == 0 else None,
        check=False,
    )
    assert (streamed.returncode, streamed.stdout) == (0, PDF)
    exported = archiver("export", *a, "--warc", str(out / "a.warc.gz"), cwd=cwd)
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr == "export: 3 records written, 0 versions skipped\n"
    extracted = archiver("extract", str(world.posts), cwd=cwd)
    assert extracted.returncode == 0, extracted.stderr

    assert snapshot(state) == before  # same bytes, same mtimes, no new file
    assert list(cwd.iterdir()) == []  # no ./data/store/tmp either


def test_a_writable_database_is_not_written_either(world: World, cwd: Path) -> None:
    """No -wal/-shm left behind (a read-only connection could never remove them)."""
    state = world.cfg.db.parent
    before = snapshot(state)
    for args in (["status"], ["report", "--format", "csv"]):
        proc = archiver(*args, *state_args(world), cwd=cwd)
        assert proc.returncode in (0, 1), proc.stderr
        assert "error" not in proc.stderr
    assert snapshot(state) == before
    assert list(cwd.iterdir()) == []


def test_a_live_writer_s_commits_are_read_through_its_wal(world: World, cwd: Path) -> None:
    writer = Database(world.cfg.db)
    try:
        writer.start_run("crawl", 1, "2026-02-01T00:00:00Z")  # committed, in the -wal only
        assert Path(f"{world.cfg.db}-wal").stat().st_size > 0
        world.cfg.db.chmod(0o444)
        proc = archiver("status", *state_args(world), "--format", "json", cwd=cwd)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["runs"][0]["started"] == "2026-02-01T00:00:00Z"
    finally:
        world.cfg.db.chmod(0o644)
        writer.close()


def test_status_on_an_empty_file_writes_no_schema(cwd: Path) -> None:
    empty = cwd / "empty.db"
    empty.touch()
    proc = archiver("status", "--db", "empty.db", cwd=cwd)
    assert proc.returncode == 3
    assert proc.stderr == (
        f"archiver: database {empty.resolve()} is empty:"
        " run 'archiver crawl' to create its schema\n"
    )
    assert empty.read_bytes() == b""
    assert [p.name for p in cwd.iterdir()] == ["empty.db"]  # no data/store/tmp, no -wal


def test_an_old_schema_is_not_migrated_by_a_read_only_command(cwd: Path) -> None:
    old = cwd / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
    name, migrate = MIGRATIONS[0]
    migrate(conn)
    conn.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", (name,))
    conn.close()
    before = snapshot(cwd)
    behind = len(MIGRATIONS) - 1
    for command in (["status"], ["report"], ["export", "--warc", "x.warc"]):
        proc = archiver(*command, "--db", "old.db", cwd=cwd)
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr == (
            f"archiver: database {old.resolve()} has an older schema ({behind} migrations"
            " behind): run 'archiver crawl' to upgrade it\n"
        )
    assert snapshot(cwd) == before
    Database(old).close()  # what crawl does first: migrate
    assert archiver("status", "--db", "old.db", cwd=cwd).returncode == 0


def test_a_missing_database_keeps_its_message_and_creates_nothing(cwd: Path) -> None:
    for command in (["status"], ["report"], ["export", "--warc", "x.warc"]):
        proc = archiver(*command, cwd=cwd)
        assert proc.returncode == 2
        assert proc.stderr == (
            f"archiver: no database at {cwd.resolve() / 'data' / 'archive.db'}:"
            " run 'archiver crawl' first or pass --db\n"
        )
    assert list(cwd.iterdir()) == []


def test_a_read_that_raced_a_checkpoint_is_done_again(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    Database(path).close()
    calls: list[int] = []

    def read(db: Database) -> int:
        n = int(db.scalar("SELECT COUNT(*) FROM runs"))
        calls.append(n)
        if len(calls) == 1:
            # A crawl commits and, closing last, checkpoints into the file being read.
            writer = Database(path)
            writer.start_run("crawl", 1, "2026-01-01T00:00:00Z")
            writer.close()
        return n

    assert read_snapshot(path, read) == 1
    assert calls == [0, 1]
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
