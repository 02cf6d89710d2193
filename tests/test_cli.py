"""The command line as users and cron run it: real processes, real files, loopback server."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import media
import pytest
from server import LoopbackServer, Reply

PDF = media.deck("x", 2000)
PNG = media.picture("PNG", 1)


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archiver", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "archiver", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def site(tmp_path: Path, server: LoopbackServer) -> Path:
    """A working folder with posts linking a PDF and an image on the loopback server."""
    pdf = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    img = server.route("/afts/img/A*abc", Reply(body=PNG, content_type="image/png"))
    post = tmp_path / "posts" / "meetup" / "index.md"
    post.parent.mkdir(parents=True)
    post.write_text(f"---\ncover: {img}\n---\n[deck]({pdf})\n", encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        'db = "state/archive.db"\nstore = "state/store"\n[[sources]]\npath = "posts"\n',
        encoding="utf-8",
    )
    return tmp_path


def check_store_consistent(root: Path, *, after_kill: bool = False) -> None:
    """What `verify` promises: every row's blob exists with the right bytes; no temp left."""
    conn = sqlite3.connect(root / "state" / "archive.db")
    shas = {r[0] for r in conn.execute("SELECT sha256 FROM versions")}
    shas |= {r[0] for r in conn.execute("SELECT sha256 FROM urls WHERE sha256 IS NOT NULL")}
    conn.close()
    store = root / "state" / "store"
    for sha in shas:
        blob = store / sha[:2] / sha
        assert blob.exists(), f"row points at missing blob {sha}"
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha
    for blob in store.glob("??/*"):
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    if not after_kill:  # the next run removes what a killed one left in tmp/
        assert list((store / "tmp").glob("*")) == []


def test_crawl_from_config_prints_one_summary_line(site: Path) -> None:
    proc = run("crawl", cwd=site)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("1 post, 2 URLs, checked 2: ok=2;")
    assert "2 new blobs" in lines[0]
    report = run("report", "--format", "json", "--state", "all", cwd=site)
    assert report.returncode == 1  # something matched
    rows = json.loads(report.stdout)
    assert {r["state"] for r in rows} == {"ok"}
    assert set(rows[0]) >= {
        "url",
        "state",
        "http_status",
        "error",
        "sha256",
        "size",
        "content_type",
        "last_checked",
        "posts",
    }
    assert rows[0]["posts"][0]["path"] == "meetup/index.md"
    # nothing is broken, so the default report (everything not ok) matches nothing: exit 0
    assert run("report", "--format", "json", cwd=site).returncode == 0


def test_an_hourly_run_with_nothing_new_imports_only_what_it_uses(site: Path) -> None:
    # Start-up is most of a no-change run's wall time: these libraries load only for the
    # work that needs them (parsing a changed post, retrying, migrating, a progress bar).
    assert run("crawl", cwd=site).returncode == 0
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "archiver", "crawl", "--all"],
        cwd=site,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "httpx" in imported and "click" in imported  # the parse saw the real imports
    unused = {"sqlite_utils", "yaml", "tenacity", "bs4", "markdown_it", "rich", "h2", "pygments"}
    assert imported & unused == set()


def test_python_dash_m_and_console_script_agree(site: Path) -> None:
    proc = run("--version", cwd=site)
    assert proc.returncode == 0 and proc.stdout.startswith("archiver, version ")


def test_bad_config_exits_2_naming_the_key(site: Path) -> None:
    (site / "config.toml").write_text("[fetch]\nper_hots = 2\n", encoding="utf-8")
    proc = run("crawl", cwd=site)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("archiver: unknown config key 'fetch.per_hots'")


def test_missing_source_exits_2(site: Path) -> None:
    proc = run("crawl", "nope/", cwd=site)
    assert proc.returncode == 2
    assert "source nope/ does not exist" in proc.stderr


def test_unusable_database_exits_3(site: Path) -> None:
    (site / "state").mkdir()
    (site / "state" / "archive.db").write_bytes(b"this is not sqlite" * 100)
    proc = run("crawl", cwd=site)
    assert proc.returncode == 3
    assert "cannot open database" in proc.stderr


def test_fail_on_any_reports_old_breakage(site: Path, server: LoopbackServer) -> None:
    server.route("/deck.pdf", Reply(status=404))
    args = ("crawl", "--fail-on", "any")
    (site / "config.toml").write_text(
        'db = "state/archive.db"\nstore = "state/store"\nconfirm_runs = 1\n'
        '[[sources]]\npath = "posts"\n',
        encoding="utf-8",
    )
    assert run(*args, cwd=site).returncode == 1
    assert run("crawl", cwd=site).returncode == 0  # --fail-on new: nothing newly broken
    assert run(*args, cwd=site).returncode == 1
    assert run("crawl", "--fail-on", "none", "--all", cwd=site).returncode == 0


def test_extract_prints_references_and_fetches_nothing(site: Path, server: LoopbackServer) -> None:
    proc = run("extract", "posts", "--format", "json", cwd=site)
    assert proc.returncode == 0, proc.stderr
    refs = json.loads(proc.stdout)
    assert [(r["path"], r["line"], r["kind"]) for r in refs] == [
        ("meetup/index.md", 2, "front-matter:cover"),
        ("meetup/index.md", 4, "markdown-link"),
    ]
    assert set(refs[0]) == {"source", "path", "line", "kind", "url", "as_written", "text"}
    assert server.stats("/deck.pdf").hits == 0


def test_json_logs(site: Path) -> None:
    proc = run("crawl", "--log-format", "json", cwd=site)
    assert proc.returncode == 0
    event = json.loads(proc.stderr.strip().splitlines()[-1])
    assert event["counts"] == {"ok": 2} and event["exit_code"] == 0


def test_status_shows_runs(site: Path) -> None:
    run("crawl", cwd=site)
    proc = run("status", "--format", "json", cwd=site)
    assert proc.returncode == 0
    s = json.loads(proc.stdout)
    assert s["urls"] == 2 and s["blobs"] == 2
    assert s["runs"][0]["exit_code"] == 0 and s["runs"][0]["counts"] == {"ok": 2}


def test_second_run_waits_or_exits_75_while_the_first_holds_the_lock(
    site: Path, server: LoopbackServer
) -> None:
    gate = server.gate()
    server.route("/deck.pdf", Reply(body=PDF, hold=gate))
    first = start("crawl", cwd=site)
    try:
        assert server.wait_for_in_flight(1)  # the first run is mid-fetch, holding the lock
        second = run("crawl", cwd=site)
        assert second.returncode == 75
        assert "another run (pid " in second.stderr
        assert f"pid {first.pid}," in second.stderr
        waiting = start("crawl", "--wait", "60", cwd=site)
        gate.set()
        assert first.wait(60) == 0
        assert waiting.wait(60) == 0
    finally:
        first.kill()


def test_verify_repair_takes_the_lock_and_plain_verify_does_not(
    site: Path, server: LoopbackServer
) -> None:
    assert run("crawl", cwd=site).returncode == 0  # something to verify
    gate = server.gate()
    server.route("/deck.pdf", Reply(status=503, body=b"busy", hold=gate))
    first = start("crawl", "--all", cwd=site)
    try:
        assert server.wait_for_in_flight(1)  # the crawl is mid-fetch, holding the lock
        repair = run("verify", "--repair", cwd=site)
        assert repair.returncode == 75, repair.stderr
        assert "another run (pid " in repair.stderr
        assert run("verify", cwd=site).returncode == 0
        gate.set()
        first.wait(60)
    finally:
        first.kill()


@pytest.mark.parametrize("point", ["after-temp-write", "after-rename", "before-commit"])
def test_kill_9_at_each_point_then_rerun_completes(site: Path, point: str) -> None:
    killed = run("crawl", cwd=site, env={"ARCHIVER_FAULT": point})
    assert killed.returncode == -signal.SIGKILL
    again = run("crawl", cwd=site)
    assert again.returncode == 0, again.stderr
    check_store_consistent(site)
    verify = run("verify", cwd=site)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    conn = sqlite3.connect(site / "state" / "archive.db")
    assert {r[0] for r in conn.execute("SELECT state FROM urls")} == {"ok"}
    conn.close()


def test_kill_9_at_random_points(site: Path, server: LoopbackServer) -> None:
    posts = site / "posts" / "many.md"
    lines = []
    for i in range(12):
        body = PDF + str(i).encode()
        lines.append(f"[d{i}]({server.route(f'/d{i}.pdf', Reply(body=body))})")
    posts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rng = random.Random(20261129)
    points = ["after-temp-write", "after-rename", "before-commit"]
    for _ in range(4):
        fault = f"{rng.choice(points)}:{rng.randint(1, 6)}"
        proc = run("crawl", "--all", cwd=site, env={"ARCHIVER_FAULT": fault})
        assert proc.returncode in (0, -signal.SIGKILL), (fault, proc.stderr)
        check_store_consistent(site, after_kill=True)
    assert run("crawl", "--all", cwd=site).returncode == 0
    check_store_consistent(site)
    verify = run("verify", cwd=site)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_kill_9_mid_body_leaves_no_partial_blob(site: Path, server: LoopbackServer) -> None:
    gate = server.gate()
    big = PDF * 50
    server.route("/deck.pdf", Reply(body=big, cut_at=len(big) // 2, cut="stall", hold=gate))
    proc = start("crawl", cwd=site)
    try:
        assert server.wait_for_in_flight(1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        gate.set()
    server.route("/deck.pdf", Reply(body=PDF))
    assert run("crawl", cwd=site).returncode == 0
    check_store_consistent(site)


def test_a_missing_source_folder_in_the_config_exits_2(site: Path) -> None:
    (site / "config.toml").write_text('[[sources]]\npath = "postz"\n', encoding="utf-8")
    proc = run("crawl", cwd=site)
    assert proc.returncode == 2
    assert proc.stderr.startswith("archiver: config key 'sources[0].path' in ")
    assert "postz does not exist" in proc.stderr
