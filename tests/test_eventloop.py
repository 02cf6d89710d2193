"""anyio's event loop is uvloop where it is installed (issue 13 item 3), asyncio's own
with ``ARCHIVER_EVENT_LOOP=asyncio``; a crawl works on either."""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
from pathlib import Path

import pytest
from test_cli import run, site  # noqa: F401  (site: the fixture)

from archiver import eventloop

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_uvloop_runs_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARCHIVER_EVENT_LOOP", raising=False)
    expected = "uvloop" if HAS_UVLOOP else "asyncio"
    assert eventloop.loop_name() == expected
    assert eventloop.run(_loop_module) == expected


def test_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_EVENT_LOOP", "asyncio")
    assert eventloop.loop_name() == "asyncio"
    assert eventloop.run(_loop_module) == "asyncio"


@pytest.mark.parametrize(
    "loop",
    [
        pytest.param("uvloop", marks=pytest.mark.skipif(not HAS_UVLOOP, reason="no uvloop")),
        "asyncio",
    ],
)
def test_a_crawl_archives_on_either_loop(site: Path, loop: str) -> None:  # noqa: F811
    env = {"ARCHIVER_EVENT_LOOP": "" if loop == "uvloop" else "asyncio"}
    proc = run("crawl", cwd=site, env=env)
    assert proc.returncode == 0, proc.stderr
    conn = sqlite3.connect(site / "state" / "archive.db")
    try:
        assert {r[0] for r in conn.execute("SELECT state FROM urls")} == {"ok"}
    finally:
        conn.close()
