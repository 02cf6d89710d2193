"""``report`` and ``check`` in CI formats, end to end: real posts, a real database, a
loopback server with an ok, a dead and a failing link, each format read back the way
its consumer reads it (ElementTree, the workflow-command lines, the SARIF schema)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import media
import pytest
from cli_process import run_cli
from server import LoopbackServer, Reply

SCHEMA = Path(__file__).parent / "fixtures" / "sarif" / "sarif-schema-2.1.0.json"
PDF = media.deck("slides", 2100)


def config(root: Path, confirm_runs: int) -> None:
    (root / "config.toml").write_text(
        f'db = "state/archive.db"\nstore = "state/store"\nconfirm_runs = {confirm_runs}\n',
        encoding="utf-8",
    )


@pytest.fixture
def docs(tmp_path: Path, server: LoopbackServer) -> dict[str, str]:
    """posts/a.md: an ok and a dead link (confirmed by a first run with confirm_runs = 1);
    posts/talks/b.md: a link that 404s for the first time (failing)."""
    urls = {
        "ok": server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf")),
        "dead": server.route("/gone.pdf", Reply(status=404, body=b"no")),
        "failing": server.route("/moved.pdf", Reply(status=404, body=b"no")),
    }
    posts = tmp_path / "posts"
    (posts / "talks").mkdir(parents=True)
    (posts / "a.md").write_text(
        f"# Talk\n\n[The deck]({urls['ok']})\n\n[Old slides]({urls['dead']})\n",
        encoding="utf-8",
    )
    config(tmp_path, confirm_runs=1)
    first = run_cli("crawl", "posts", cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    (posts / "talks" / "b.md").write_text(
        f"Intro\n\n![cover]({urls['failing']})\n", encoding="utf-8"
    )
    config(tmp_path, confirm_runs=2)
    return urls


def test_check_junit_has_one_testcase_per_use_with_file_and_line(
    tmp_path: Path, docs: dict[str, str]
) -> None:
    done = run_cli("check", "posts", "--format", "junit", "--fail-on", "none", cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # --fail-on decides, not the report
    assert done.stderr.startswith("2 posts, 3 URLs, checked 3")  # the log stays on stderr
    suite = ET.fromstring(done.stdout).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "2", "0")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert {n: (c.get("file"), c.get("line")) for n, c in cases.items()} == {
        docs["ok"]: ("posts/a.md", "3"),
        docs["dead"]: ("posts/a.md", "5"),
        docs["failing"]: ("posts/talks/b.md", "3"),
    }
    assert cases[docs["ok"]].find("failure") is None
    failure = cases[docs["dead"]].find("failure")
    assert failure is not None and failure.get("type") == "dead"
    assert "link text: Old slides" in (failure.text or "")
    failing = cases[docs["failing"]].find("failure")
    assert failing is not None and failing.get("type") == "failing"

    again = run_cli("check", "posts", "--format", "junit", "--fail-on", "any", cwd=tmp_path)
    assert again.returncode == 1, again.stderr


def test_check_github_lines_are_relative_to_the_cwd(tmp_path: Path, docs: dict[str, str]) -> None:
    done = run_cli("check", "posts", "--format", "github", cwd=tmp_path)
    assert done.returncode == 0, done.stderr  # --fail-on new: the failing link is not dead
    assert done.stdout.splitlines() == [
        f"::error file=posts/a.md,line=5,title=archiver%3A dead link::{docs['dead']} is dead:"
        ' HTTP 404 Not Found (link text "Old slides")',
        f"::error file=posts/talks/b.md,line=3,title=archiver%3A failing link::{docs['failing']}"
        ' is failing: HTTP 404 Not Found (link text "cover")',
    ]
    # From a directory the posts are not under, a file is named by its absolute path.
    (tmp_path / "sub").mkdir()
    other = run_cli(
        "report", "--format", "github", "--config", "../config.toml", cwd=tmp_path / "sub"
    )
    assert other.returncode == 1, other.stderr
    where = (tmp_path / "posts" / "a.md").resolve().as_posix().replace(":", "%3A")
    assert other.stdout.splitlines()[0].startswith(f"::error file={where},line=5,")


def test_report_sarif_is_valid_and_names_each_broken_use(
    tmp_path: Path, docs: dict[str, str]
) -> None:
    checked = run_cli("check", "posts", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    done = run_cli("report", "--format", "sarif", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    log = json.loads(done.stdout)
    jsonschema.validate(log, json.loads(SCHEMA.read_text(encoding="utf-8")))
    results = log["runs"][0]["results"]
    assert [
        (
            r["ruleId"],
            r["level"],
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
            r["properties"]["url"],
        )
        for r in results
    ] == [
        ("archiver/dead", "error", "posts/a.md", 5, docs["dead"]),
        ("archiver/failing", "error", "posts/talks/b.md", 3, docs["failing"]),
    ]
    # The report's filters apply: --state ok leaves only the ok use, a passed testcase.
    ok = run_cli("report", "--format", "junit", "--state", "ok", "-o", "ok.xml", cwd=tmp_path)
    assert ok.returncode == 1 and ok.stdout == "", ok.stderr
    suite = ET.parse(tmp_path / "ok.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "1" and suite.get("failures") == "0"
    none = run_cli("report", "--format", "github", "--state", "pending", cwd=tmp_path)
    assert (none.returncode, none.stdout) == (0, "")


def test_check_of_one_file_reports_that_file(tmp_path: Path, docs: dict[str, str]) -> None:
    done = run_cli("check", "posts/talks/b.md", "--format", "github", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"::error file=posts/talks/b.md,line=3,title=archiver%3A failing link::{docs['failing']}"
        ' is failing: HTTP 404 Not Found (link text "cover")',
    ]
