"""Exit codes a cron job relies on: signals, dead processes and bugs, with real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from server import LoopbackServer, Reply
from test_cli import PDF, run, site, start

__all__ = ["site"]  # the fixture, imported so pytest finds it here


def _runs(root: Path) -> list[dict[str, object]]:
    conn = sqlite3.connect(root / "state" / "archive.db")
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM runs ORDER BY id")]
    conn.close()
    return rows


def _checks(root: Path, run_id: object) -> dict[str, str]:
    conn = sqlite3.connect(root / "state" / "archive.db")
    rows = conn.execute(
        "SELECT u.url, c.state FROM checks c JOIN urls u ON u.id = c.url_id WHERE c.run_id = ?",
        (run_id,),
    ).fetchall()
    conn.close()
    return dict(rows)


def _has_open(pid: int, path: Path, timeout: float = 30) -> bool:
    """Waits until process ``pid`` has ``path`` open (so it got past start-up); False on timeout.

    There is no event to wait on in another process: this polls /proc, bounded.
    """
    deadline = time.monotonic() + timeout
    fds = Path(f"/proc/{pid}/fd")
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == str(path) for fd in fds.iterdir()):
                return True
        time.sleep(0.01)
    return False


def _status(root: Path) -> dict[str, object]:
    proc = run("status", "--format", "json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _held_crawl(site: Path, server: LoopbackServer) -> tuple[str, str]:
    """The cover image answers 404 at once; the deck waits on a gate the test never opens.

    With one request at a time the image's check is made (and waits in memory for the
    next batch commit) before the deck's request goes out.
    """
    img = server.route("/afts/img/A*abc", Reply(status=404))
    deck = server.route("/deck.pdf", Reply(body=PDF, hold=server.gate()))
    return img, deck


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_records_the_run_as_interrupted_keeps_its_checks_and_frees_the_lock(
    site: Path, server: LoopbackServer, signum: int, code: int
) -> None:
    img, deck = _held_crawl(site, server)
    proc = start("crawl", "--concurrency", "1", cwd=site)
    try:
        assert server.wait_for_in_flight(1)  # the deck is being asked for
        assert _status(site)["runs"][0]["state"] == "running"  # type: ignore[index]
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == code, stderr
    name = signal.Signals(signum).name
    assert (
        stderr
        == f"archiver: interrupted by {name}: 1 check recorded; the next run checks the rest\n"
    )
    (row,) = _runs(site)
    assert row["exit_code"] == code and row["ended"] is not None
    assert str(row["message"]).startswith(f"interrupted by {name}")
    assert _checks(site, row["id"]) == {img: "failing"}  # made before the signal: kept
    status = _status(site)
    assert status["runs"][0]["state"] == "interrupted"  # type: ignore[index]
    text = run("status", cwd=site).stdout
    assert f"interrupted (exit {code})" in text
    # The lock is free: the next run does not exit 75, and checks what was left.
    server.route("/deck.pdf", Reply(body=PDF))
    again = run("crawl", cwd=site)
    assert again.returncode == 0, again.stderr
    assert _checks(site, _runs(site)[1]["id"]) == {deck: "ok"}


def test_sigint_in_json_log_format_is_an_error_line_with_its_exit_code(
    site: Path, server: LoopbackServer
) -> None:
    _held_crawl(site, server)
    proc = start("crawl", "--concurrency", "1", "--quiet", "--log-format", "json", cwd=site)
    try:
        assert server.wait_for_in_flight(1)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    (line,) = stderr.splitlines()
    event = json.loads(line)
    assert event["level"] == "error" and event["exit_code"] == 130
    assert event["message"].startswith("interrupted by SIGINT")


def test_a_killed_run_shows_as_abandoned(site: Path, server: LoopbackServer) -> None:
    _held_crawl(site, server)
    proc = start("crawl", cwd=site)
    try:
        assert server.wait_for_in_flight(1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    (row,) = _runs(site)
    assert row["ended"] is None  # nothing could write it
    status = _status(site)
    assert status["runs"][0]["state"] == "abandoned"  # type: ignore[index]
    assert f"#{row['id']} crawl " in run("status", cwd=site).stdout
    assert " abandoned " in run("status", cwd=site).stdout


def test_a_run_still_open_while_another_holds_the_lock_is_abandoned(
    site: Path, server: LoopbackServer
) -> None:
    """The lock says which process holds it: only that process's run is running."""
    _held_crawl(site, server)
    killed = start("crawl", cwd=site)
    assert server.wait_for_in_flight(1)
    killed.kill()
    killed.wait(30)
    live = start("crawl", cwd=site)
    try:
        # The killed run's request is still held by the server: the live run's is the 2nd.
        assert server.wait_for_in_flight(2)
        states = [r["state"] for r in _status(site)["runs"]]  # type: ignore[attr-defined]
        assert states == ["running", "abandoned"]  # newest first
    finally:
        live.kill()
        live.wait(30)


def test_an_unexpected_exception_exits_70_with_one_line_naming_the_traceback(
    site: Path,
) -> None:
    proc = run("crawl", cwd=site, env={"ARCHIVER_FAULT": "after-rename:1:raise"})
    assert proc.returncode == 70
    (line,) = proc.stderr.splitlines()
    prefix = "archiver: internal error: RuntimeError: fault injected at after-rename"
    assert line.startswith(prefix + " (ARCHIVER_FAULT) (traceback in "), line
    path = Path(line.split("(traceback in ", 1)[1].split(";", 1)[0])
    try:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("Traceback (most recent call last):")
        assert "RuntimeError: fault injected at after-rename" in text
    finally:
        path.unlink()
    (row,) = _runs(site)
    assert row["exit_code"] == 70
    assert row["message"] == (
        "internal error: RuntimeError: fault injected at after-rename (ARCHIVER_FAULT)"
    )
    assert _status(site)["runs"][0]["state"] == "failed"  # type: ignore[index]


def test_debug_prints_the_traceback_instead(site: Path) -> None:
    proc = run("--debug", "crawl", cwd=site, env={"ARCHIVER_FAULT": "after-rename:1:raise"})
    assert proc.returncode == 70
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert proc.stderr.splitlines()[-1].startswith(
        "archiver: internal error: RuntimeError: fault injected at after-rename"
    )
    assert "(traceback above; please report it)" in proc.stderr


def test_sigterm_outside_a_crawl_exits_143_in_one_line(site: Path, server: LoopbackServer) -> None:
    """Every command, not only crawl: SIGTERM is no kill -9 (``--wait`` is waiting here)."""
    _held_crawl(site, server)
    first = start("crawl", cwd=site)
    try:
        assert server.wait_for_in_flight(1)
        waiting = start("crawl", "--wait", "60", cwd=site)
        assert _has_open(waiting.pid, site / "state" / "archive.db.lock")  # in the lock's loop
        waiting.send_signal(signal.SIGTERM)
        _, stderr = waiting.communicate(timeout=30)
        assert waiting.returncode == 143
        assert stderr == "archiver: interrupted by SIGTERM\n"
    finally:
        first.kill()
        first.wait(30)
