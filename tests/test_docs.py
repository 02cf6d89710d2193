"""The README is an interface too: its commands must be the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [
        line
        for block in blocks[:2]
        for line in block.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_readme_starts_with_the_two_newcomer_commands() -> None:
    run, test = readme_commands()
    assert run.endswith("archiver crawl")
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert readme_commands()[1] in ci.splitlines()


def test_every_command_is_documented() -> None:
    from archiver.cli import cli

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in cli.commands:
        assert f"archiver {name}" in readme, name


def test_every_option_is_documented() -> None:
    import click

    from archiver.cli import cli

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        f"{name} {opt}"
        for name, command in cli.commands.items()
        for param in command.params
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt.startswith("--") and opt not in readme
    ]
    assert missing == []


def test_every_config_key_is_documented() -> None:
    from archiver.config import _FETCH_KEYS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    config = (ROOT / "config.toml").read_text(encoding="utf-8")
    for key in sorted(_FETCH_KEYS):
        assert f"`fetch.{key}`" in readme, key
        assert key in config, key
    from archiver.config import _SOURCE_KEYS, _TOP_KEYS

    for key in _TOP_KEYS:
        assert any(f in readme for f in (f"`{key}`", f"`[{key}]`", f"`[[{key}]]`")), key
    for key in _SOURCE_KEYS:
        assert f"`{key}`" in readme, key
