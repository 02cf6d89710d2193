"""Whatever command a library error stops, it ends the same way: one line, its exit code.

The wording and the codes live in ``archiver.cli.exits`` alone; these tests raise each
error type from inside every command (through the library call each makes first) and
expect the code ``archiver.errors`` documents for it, by the group (what a test runner
calls) and by ``main`` (what the console script calls) alike.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import archiver.errors
from archiver.cli import cli, main
from archiver.errors import (
    ArchiverError,
    ConfigError,
    DatabaseError,
    LockedError,
    NetworkDownError,
    RestoreError,
    RunInterrupted,
    StoreError,
)

#: Arguments that get each command past click's own parsing to its first library call.
COMMAND_ARGS: dict[str, list[str]] = {
    "crawl": [],
    "check": [],
    "extract": ["."],
    "report": [],
    "status": [],
    "restore": ["--undo"],
    "verify": [],
    "gc": [],
    "export": ["--warc", "out.warc"],
}

#: Each library error and the exit code documented for it (archiver.errors, exits).
ERRORS: list[tuple[ArchiverError, int]] = [
    (ArchiverError("the run could not be done"), 3),
    (ConfigError("bad option"), 2),
    (StoreError("store unusable"), 3),
    (DatabaseError("database unusable"), 3),
    (NetworkDownError("no host answered"), 3),
    (RestoreError("no copy held"), 1),
    (LockedError("another run holds the lock"), 75),
    (RunInterrupted("interrupted by SIGINT", signal.SIGINT), 130),
    (RunInterrupted("interrupted by SIGTERM", signal.SIGTERM), 143),
]


def _raising(exc: BaseException) -> Callable[..., object]:
    def raise_it(*args: object, **kwargs: object) -> object:
        raise exc

    return raise_it


@pytest.fixture
def raise_in_library(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[[BaseException], None]:
    """Makes the first library call of every command raise ``exc``: loading the config
    (every command that touches state), reading a folder of posts (``extract``)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where exit 70 leaves its file

    def install(exc: BaseException) -> None:
        import archiver.cli.options
        import archiver.sources.folders

        monkeypatch.setattr(archiver.cli.options, "load_config", _raising(exc))
        monkeypatch.setattr(archiver.sources.folders, "collect", _raising(exc))

    return install


def test_every_command_is_covered() -> None:
    assert sorted(COMMAND_ARGS) == sorted(cli.commands)


def test_the_documented_codes_are_the_errors_own() -> None:
    doc = archiver.errors.__doc__ or ""
    for exc, code in ERRORS:
        assert exc.exit_code == code
        name = type(exc).__name__
        (line,) = [line for line in doc.splitlines() if re.search(rf"\b{name}\b\s", line)]
        documented = "128 + signal" if isinstance(exc, RunInterrupted) else f"exit {code}"
        assert documented in line, line


@pytest.mark.parametrize("command", sorted(COMMAND_ARGS))
@pytest.mark.parametrize(("exc", "code"), ERRORS, ids=lambda e: type(e).__name__)
def test_a_library_error_in_any_command_is_one_line_and_its_code(
    raise_in_library: Callable[[BaseException], None],
    command: str,
    exc: ArchiverError,
    code: int,
) -> None:
    raise_in_library(exc)
    result = CliRunner().invoke(cli, [command, *COMMAND_ARGS[command]])
    assert (result.exit_code, result.stdout, result.stderr) == (code, "", f"archiver: {exc}\n")


@pytest.mark.parametrize("command", sorted(COMMAND_ARGS))
def test_a_bug_in_any_command_is_one_line_and_exit_70(
    raise_in_library: Callable[[BaseException], None], tmp_path: Path, command: str
) -> None:
    raise_in_library(RuntimeError("boom\nsecond line"))
    result = CliRunner().invoke(cli, [command, *COMMAND_ARGS[command]])
    assert result.exit_code == 70 and result.stdout == ""
    (saved,) = tmp_path.glob("archiver-traceback-*.txt")
    assert result.stderr == (
        f"archiver: internal error: RuntimeError: boom (traceback in {saved}; please report it)\n"
    )
    assert "Traceback (most recent call last)" in saved.read_text(encoding="utf-8")


def test_debug_prints_the_traceback_instead(
    raise_in_library: Callable[[BaseException], None], tmp_path: Path
) -> None:
    raise_in_library(RuntimeError("boom"))
    result = CliRunner().invoke(cli, ["--debug", "status"])
    assert result.exit_code == 70
    assert result.stderr.startswith("Traceback (most recent call last)")
    assert result.stderr.endswith(
        "RuntimeError: boom\n"
        "archiver: internal error: RuntimeError: boom (traceback above; please report it)\n"
    )
    assert list(tmp_path.glob("archiver-traceback-*.txt")) == []


@pytest.mark.parametrize("command", ["crawl", "check"])
@pytest.mark.parametrize(("exc", "code"), ERRORS, ids=lambda e: type(e).__name__)
def test_a_json_log_gets_the_error_as_its_last_json_line(
    raise_in_library: Callable[[BaseException], None],
    command: str,
    exc: ArchiverError,
    code: int,
) -> None:
    raise_in_library(exc)
    result = CliRunner().invoke(cli, [command, "--log-format", "json", "--quiet"])
    assert result.exit_code == code and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert json.loads(line) == {"level": "error", "message": str(exc), "exit_code": code}


@pytest.mark.parametrize(("exc", "code"), ERRORS, ids=lambda e: type(e).__name__)
def test_main_maps_errors_as_the_group_does(
    raise_in_library: Callable[[BaseException], None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: ArchiverError,
    code: int,
) -> None:
    raise_in_library(exc)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # main's SIGTERM handler
    monkeypatch.setattr(sys, "argv", ["archiver", "gc"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == code
    assert capsys.readouterr() == ("", f"archiver: {exc}\n")


def test_main_words_click_usage_errors_on_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    monkeypatch.setattr(sys, "argv", ["archiver", "gc", "--bogus"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == click.UsageError.exit_code == 2
    assert capsys.readouterr() == (
        "",
        "archiver: no such option '--bogus' (see 'archiver gc --help')\n",
    )
