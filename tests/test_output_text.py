"""What a person reads: one-line usage errors, help for every option, honest summaries."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from server import LoopbackServer, Reply
from test_cli import run, site

from archiver.cli import cli

__all__ = ["site"]  # the fixture, imported so pytest finds it here


def _options(command: click.Command, path: str) -> list[tuple[str, click.Option]]:
    out = [(path, p) for p in command.params if isinstance(p, click.Option)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            out += _options(sub, f"{path} {name}")
    return out


def test_every_option_of_every_command_has_help_text() -> None:
    options = _options(cli, "archiver")
    assert len(options) > 40  # the walk reached the commands
    missing = [f"{path} {'/'.join(o.opts)}" for path, o in options if not (o.help or "").strip()]
    assert missing == []


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("crawl", "--fial-on", "any"),
            "archiver: no such option '--fial-on'. Did you mean '--fail-on'?"
            " (see 'archiver crawl --help')",
        ),
        (
            ("crawl", "--fail-on", "sometimes"),
            "archiver: invalid value for '--fail-on': 'sometimes' is not one of 'new', 'any',"
            " 'none' (see 'archiver crawl --help')",
        ),
        (
            ("reprot",),
            "archiver: no such command 'reprot' (Did you mean one of: 'export', 'report'?)"
            " (see 'archiver --help')",
        ),
        (
            ("status", "--runs", "0"),
            "archiver: invalid value for '--runs': 0 is not in the range x>=1"
            " (see 'archiver status --help')",
        ),
        (
            ("extract",),
            "archiver: missing argument 'SOURCES...' (see 'archiver extract --help')",
        ),
    ],
)
def test_a_usage_error_is_one_archiver_line_and_exit_2(
    site: object, args: tuple[str, ...], line: str
) -> None:
    proc = run(*args, cwd=site)  # type: ignore[arg-type]
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", line + "\n")


def test_a_run_that_checked_nothing_still_says_what_is_broken(
    site: object, server: LoopbackServer
) -> None:
    server.route("/deck.pdf", Reply(status=404))
    first = run("crawl", cwd=site)  # type: ignore[arg-type]
    assert first.returncode == 0, first.stderr  # failing, not yet confirmed dead
    again = run("crawl", cwd=site)  # type: ignore[arg-type]
    assert again.returncode == 0
    (line,) = again.stderr.splitlines()
    assert line.startswith(
        "1 post, 2 URLs, checked 0: none due; 1 link still broken (list them: archiver report);"
    ), line


def test_a_run_that_checked_nothing_with_nothing_broken_says_so(site: object) -> None:
    assert run("crawl", cwd=site).returncode == 0  # type: ignore[arg-type]
    again = run("crawl", cwd=site)  # type: ignore[arg-type]
    assert again.stderr.startswith("1 post, 2 URLs, checked 0: none due; no link broken;")


def test_a_quiet_json_log_keeps_every_warning_and_the_summary(site: Path) -> None:
    post = site / "posts" / "meetup" / "index.md"
    post.write_text(post.read_text(encoding="utf-8") + "![x](../../../outside.png)\n")
    proc = run("crawl", "--quiet", "--log-format", "json", cwd=site)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [e["level"] for e in events] == ["warning", "info"]
    assert events[0]["message"].startswith("blocked: file://"), events[0]
    assert "outside" in events[0]["message"] and events[0]["url"].endswith("/outside.png")
    assert events[1]["counts"] == {"ok": 2, "blocked": 1} and events[1]["exit_code"] == 0
    plain = run("crawl", "--quiet", "--all", cwd=site)
    assert plain.stderr == ""  # still blocked: warned once, when it became blocked
