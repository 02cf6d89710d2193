"""The terminal table: a URL is never broken over lines, and the totals come last.

At 80 columns a report is a list (the facts, then each URL whole on its own line);
at 120 and 160 a table whose other columns narrow or go so the URL column holds
the longest URL. Built from a real crawl against a loopback server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from server import LoopbackServer
from test_report import World

from archiver.cli import cli
from archiver.ops.report import TABLE_COLUMNS, table_layout

#: A URL longer than 80 columns (as a docs site's asset paths often are).
LONG = "/conference/2025/talks/archived-slides/a-talk-about-archiving.pdf"


@pytest.fixture
def world(tmp_path: Path, server: LoopbackServer) -> World:
    world = World(tmp_path, server)
    world.write("2025/long.md", f"[long]({server.url(LONG)}) and [again]({world.deck})\n")
    world.crawl()
    world.kill("/deck.pdf", "/photo.png")
    world.crawl()
    return world


def report(world: World, *args: str, columns: int | None = None) -> tuple[int, str]:
    # Without ``columns`` no width reaches the report, whatever the test process inherited
    # (pytest-xdist's workers set COLUMNS).
    env: dict[str, str | None] = {"COLUMNS": str(columns) if columns else None}
    result = CliRunner(env=env).invoke(cli, ["report", *world.args(), *args])
    return result.exit_code, result.stdout


def urls_and_totals(world: World) -> tuple[list[str], str]:
    _, out = report(world, "--format", "json", "--state", "all")
    data = json.loads(out)
    counts: dict[str, int] = {}
    for r in data:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    order = ("ok", "failing", "dead", "invalid", "error", "blocked", "pending")
    parts = ", ".join(f"{s} {counts[s]}" for s in order if s in counts)
    return [r["url"] for r in data], f"{len(data)} links: {parts}"


@pytest.mark.parametrize("columns", [80, 120, 160])
def test_each_url_is_whole_on_one_line_and_totals_come_last(world: World, columns: int) -> None:
    urls, totals = urls_and_totals(world)
    assert len(urls) == 5 and max(len(u) for u in urls) > 80
    code, out = report(world, "--format", "table", "--state", "all", columns=columns)
    assert code == 1
    lines = out.splitlines()
    for url in urls:
        assert sum(url in line for line in lines) == 1, (url, out)
        # No piece of a URL is left on another line (a fold would leave its tail there).
        tail = url[-12:]
        assert sum(tail in line for line in lines) == 1, (url, out)
    assert lines[-1] == totals
    if columns < 100:
        # A list: the facts, then the URL alone on its line, however long.
        for url in urls:
            assert f"  {url}" in lines
        assert not any(line.startswith("STATE") for line in lines)
    else:
        # A table that fits the terminal: only the URL column may not narrow.
        assert lines[0].startswith("STATE")
        assert all(len(line) <= columns for line in lines), out


def test_at_120_columns_other_columns_narrow_and_drop_before_the_url(world: World) -> None:
    _, out = report(world, "--format", "table", "--state", "all", columns=120)
    header = out.splitlines()[0].split()
    assert header[:3] == ["STATE", "STATUS", "URL"] and "SINCE" not in header
    # 170: every column fits (the copy column names what it holds: "restorable (1 page)")
    _, wide = report(world, "--format", "table", "--state", "all", columns=170)
    assert wide.splitlines()[0].split() == [
        "STATE",
        "STATUS",
        "URL",
        "WHERE",
        "FAILING",
        "SINCE",
        "COPY",
    ]


def test_off_a_terminal_without_columns_nothing_wraps(world: World) -> None:
    urls, totals = urls_and_totals(world)
    _, out = report(world, "--format", "table", "--state", "all")
    lines = out.splitlines()
    assert lines[0].split() == ["STATE", "STATUS", "URL", "WHERE", "FAILING", "SINCE", "COPY"]
    assert len(lines) == 2 + len(urls) + 1  # header, rule, one line per URL, totals
    assert lines[-1] == totals


def test_the_layout_narrows_foldable_columns_then_drops_in_order() -> None:
    natural = dict(zip(TABLE_COLUMNS, (7, 40, 60, 30, 13, 10), strict=True))
    assert table_layout(natural, None) == natural
    assert table_layout(natural, 99) is None  # below 100 columns: a list
    full = sum(natural.values()) + 3 * 5
    assert table_layout(natural, full) == natural
    narrowed = table_layout(natural, full - 10)
    assert narrowed is not None and narrowed["url"] == 60 and narrowed["status"] == 30
    assert sum(narrowed.values()) + 15 == full - 10
    # state, status 12, url, where 14, since, copy = 116 + 15: 130 fits all six, 129 not
    assert table_layout(natural, 131) == dict(
        zip(TABLE_COLUMNS, (7, 12, 60, 14, 13, 10), strict=True)
    )
    assert list(table_layout(natural, 130) or {}) == ["state", "status", "url", "where", "copy"]
    # state, status 12, url, where 14 = 93 + 9: 102 keeps WHERE, 101 drops it
    assert list(table_layout(natural, 102) or {}) == ["state", "status", "url", "where"]
    assert list(table_layout(natural, 101) or {}) == ["state", "status", "url"]
    assert table_layout({**natural, "url": 95}, 100) is None  # state and URL alone do not fit
