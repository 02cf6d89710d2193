"""The commands on PostgreSQL (``db = "postgresql://..."``), through the real command line,
give what they give on SQLite: the same exit codes, reports, status, restored bytes,
mirror and verify/gc findings, modulo ids, times and the posts' directory.

Each test runs its scenario once per backend (``state_db``); the comparison test runs
both in one test and compares them. Without PostgreSQL the PostgreSQL runs skip
(``pg_server``), saying what to install.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import media
import pytest
from cli_process import run_cli
from pg_server import PgServer
from server import LoopbackServer, Reply

PDF = media.deck("slides", 3_000)
PNG = media.picture("PNG", 1)
HTML = b"<!doctype html><html><body>Sorry, this file is gone</body></html>"

#: What differs between two runs however the state is kept: times and the run's place.
_TIMES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_ELAPSED = re.compile(r"\b\d+(\.\d+)?s\b")


class Scenario:
    """One archive (posts, config, store) whose state is ``db``, and its CLI runs."""

    def __init__(self, root: Path, db: str, server: LoopbackServer) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.urls = {
            "pdf": server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf")),
            "png": server.route("/pic", Reply(body=PNG, content_type="image/png")),
            "gone": server.route("/gone.pdf", Reply(status=404)),
            "soft": server.route("/soft.pdf", Reply(body=HTML, content_type="text/html")),
        }
        posts = root / "posts"
        posts.mkdir(exist_ok=True)
        (posts / "talk.md").write_text(
            f"# Talk\n\n[slides]({self.urls['pdf']})\n\n![pic]({self.urls['png']})\n",
            encoding="utf-8",
        )
        (posts / "old.md").write_text(
            f"[gone]({self.urls['gone']}) and [soft]({self.urls['soft']})\n", encoding="utf-8"
        )
        (root / "config.toml").write_text(
            f'db = "{db}"\nstore = "store"\nconfirm_runs = 1\n\n[[sources]]\npath = "posts"\n',
            encoding="utf-8",
        )

    def run(self, *args: str) -> tuple[int, str, str]:
        """Exit code, stdout and stderr; stderr's lines sorted (warnings come in the order
        the checks ended)."""
        proc = run_cli(*args, cwd=self.root)
        err = "".join(sorted(self.normal(proc.stderr).splitlines(keepends=True)))
        return proc.returncode, self.normal(proc.stdout), err

    def normal(self, text: str) -> str:
        """Times and this archive's directory made the same in every run."""
        text = text.replace(str(self.root.resolve()), "ROOT").replace(str(self.root), "ROOT")
        return _ELAPSED.sub("Ns", _TIMES.sub("TIME", text))

    def journey(self) -> dict[str, Any]:
        """crawl -> check -> report -> status -> gc -> verify -> restore -> export, each
        command's exit code and what it printed, normalised."""
        out: dict[str, Any] = {}
        out["crawl"] = self.run("crawl", "--no-progress")
        out["check"] = self.run("check", "--no-progress")
        code, report, _ = self.run("report", "--format", "json", "--state", "all")
        out["report"] = (code, _without_ids(json.loads(report)))
        out["report broken"] = self.run("report", "--format", "csv")
        code, status, _ = self.run("status", "--format", "json")
        out["status"] = (code, _status_figures(json.loads(status)))
        stray = self.root / "store" / "ab" / ("ab" + "0" * 62)
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_bytes(b"left by a run that died")
        out["gc"] = self.run("gc", "--grace", "0s", "--yes")
        out["verify after gc"] = self.run("verify")
        code, _, err = self.run("restore", self.urls["pdf"], "-o", "deck.pdf")
        out["restore"] = (code, err, (self.root / "deck.pdf").read_bytes() == PDF)
        code, _, err = self.run("restore", "--mirror", "mirror", "--state", "all")
        manifest = json.loads((self.root / "mirror" / "manifest.json").read_text("utf-8"))
        out["mirror"] = (code, err, manifest)
        code, _, err = self.run("export", "--warc", "out.warc.gz")
        out["export"] = (code, err, (self.root / "out.warc.gz").stat().st_size > 0)
        return out


def _without_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if not k.startswith("copy_verified")} for r in rows]


def _status_figures(status: dict[str, Any]) -> dict[str, Any]:
    runs = [
        {k: r[k] for k in ("command", "exit_code", "posts", "urls", "counts", "state")}
        for r in status["runs"]
    ]
    return {**{k: v for k, v in status.items() if k not in ("runs", "db", "store")}, "runs": runs}


def test_every_command_gives_the_same_results_on_both_backends(
    tmp_path: Path, server: LoopbackServer, postgres: PgServer
) -> None:
    name = postgres.create_database(icu_locale="en-US")
    try:
        on_sqlite = Scenario(tmp_path / "a", "state/archive.db", server).journey()
        on_postgres = Scenario(tmp_path / "b", postgres.dsn(name), server).journey()
    finally:
        postgres.drop_database(name)
    assert on_postgres.keys() == on_sqlite.keys()
    for step, result in on_sqlite.items():
        assert on_postgres[step] == result, step
    # and the journey did what it says, so that the comparison means something
    assert on_sqlite["crawl"][0] == 1  # a link became dead, another invalid
    report = {r["url"].rpartition("/")[2]: r for r in on_sqlite["report"][1]}
    assert {k: r["state"] for k, r in report.items()} == {
        "deck.pdf": "ok",
        "pic": "ok",
        "gone.pdf": "dead",
        "soft.pdf": "invalid",
    }
    assert report["deck.pdf"]["restorable"] is True
    assert on_sqlite["gc"][0] == 0 and "ab" + "0" * 62 in on_sqlite["gc"][1]
    assert on_sqlite["verify after gc"][0] == 0
    assert on_sqlite["restore"][0] == 0 and on_sqlite["restore"][2] is True
    assert on_sqlite["mirror"][0] == 0 and len(on_sqlite["mirror"][2]) == 2
    assert on_sqlite["export"][0] == 0


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_is_one_line_and_exit_3_without_the_password(
    tmp_path: Path,
) -> None:
    dsn = f"postgresql://archiver:s3cret-pw@127.0.0.1:{_closed_port()}/archive"
    (tmp_path / "posts").mkdir()
    (tmp_path / "posts" / "a.md").write_text("[x](http://127.0.0.1:9/x.pdf)\n")
    crawl = ["crawl", "--no-progress", "posts"]
    for command in (crawl, ["report"], ["status"], ["verify"]):
        proc = run_cli(*command, "--db", dsn, cwd=tmp_path)
        assert proc.returncode == 3, (command, proc.stderr)
        assert "s3cret-pw" not in proc.stderr + proc.stdout
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("archiver: cannot open database postgresql://archiver:***@")


def test_a_bad_url_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('db = "postgresql://u:pw@127.0.0.1:5432/"\n')
    proc = run_cli("status", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        "archiver: config key 'db': the PostgreSQL URL postgresql://u:***@127.0.0.1:5432/"
        " names no database (postgresql://user@host:port/NAME)\n"
    )
    (tmp_path / "config.toml").unlink()
    proc = run_cli("status", "--db", "postgresql://u@127.0.0.1:port/x", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("archiver: config key 'db': bad PostgreSQL URL")


def test_a_read_only_command_on_an_empty_database_asks_for_a_crawl(
    tmp_path: Path, pg_dsn: str
) -> None:
    for command in (["status"], ["report"]):
        proc = run_cli(*command, "--db", pg_dsn, cwd=tmp_path)
        assert proc.returncode == 3
        assert proc.stderr == (
            f"archiver: database {pg_dsn} is empty: run 'archiver crawl' to create its schema\n"
        )


def test_the_run_lock_is_the_database_s_and_names_its_holder(
    tmp_path: Path, pg_dsn: str, server: LoopbackServer
) -> None:
    from archiver.db import PostgresUrl
    from archiver.run.lock import lock_holder, run_lock

    url = PostgresUrl(pg_dsn)
    scenario = Scenario(tmp_path, pg_dsn, server)
    assert scenario.run("crawl", "--no-progress")[0] == 1
    assert lock_holder(url) is None
    with run_lock(url):
        assert lock_holder(url) == os.getpid()
        code, _, err = scenario.run("crawl", "--no-progress")
        assert code == 75
        assert err.startswith(f"archiver: another run (pid {os.getpid()}, started at TIME)")
        assert f"holds the lock of {pg_dsn};" in err
        assert scenario.run("gc", "--grace", "0s", "--yes")[0] == 75
        with pytest.raises(Exception, match="holds the lock"), run_lock(url):
            pass  # a second holder in the same process is refused too
    # released with its connection: the next run goes ahead
    assert scenario.run("crawl", "--no-progress")[0] == 0
    assert lock_holder(url) is None


def test_a_run_that_died_shows_as_abandoned(tmp_path: Path, pg_dsn: str) -> None:
    from archiver.db import Database

    db = Database(pg_dsn)
    try:
        db.start_run("crawl", 999_999, "2026-01-01T00:00:00Z")
    finally:
        db.close()
    proc = run_cli("status", "--format", "json", "--db", pg_dsn, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [r["state"] for r in json.loads(proc.stdout)["runs"]] == ["abandoned"]
