"""Hostile posts: each is bounded, and what it still yields is exact.

Front matter over its depth or alias budget is front matter that does not parse (its
links dropped, one warning, the body still read); a body not read within its budget
skips the post. Timing bounds here are deliberately generous: the point is "bounded,
not minutes or hours", which the code before these guards was.
"""

from __future__ import annotations

import time
from pathlib import Path

import media
import pytest
from server import LoopbackServer, Reply

from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source
from archiver.db import Database
from archiver.extract import (
    FRONT_MATTER_MAX_DEPTH,
    MAX_POST_CHARS,
    Extraction,
    extract,
    post_budget,
)
from archiver.run.crawl import RunSummary, crawl

FIXTURES = Path(__file__).parent / "fixtures" / "posts"
BODY = "Body ![shot](https://x.test/body.png)\n"
BODY_URL = "https://x.test/body.png"
PDF = media.deck("x")
PNG = media.picture("PNG", 1)


def timed(text: str, fmt: str = "markdown") -> tuple[Extraction, float]:
    """The extraction and the CPU seconds it took: the clock its budget is counted in, so
    a loaded machine (the wall time of a process waiting for a core) changes nothing."""
    started = time.thread_time()
    result = extract(text, fmt)  # type: ignore[arg-type]
    return result, time.thread_time() - started


def urls(result: Extraction) -> list[str]:
    return [r.url for r in result.references]


def messages(result: Extraction) -> list[str]:
    return [w.message for w in result.warnings]


def billion_laughs() -> str:
    """The classic YAML alias bomb: under 400 bytes, 9**9 strings once expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_toml_front_matter_nested_20000_deep_is_dropped_with_one_warning() -> None:
    deep = "a = " + "[" * 20_000 + "]" * 20_000 + "\n"
    text = '+++\ncover = "https://x.test/cover.png"\n' + deep + "+++\n" + BODY
    assert len(text) > 40_000
    result, seconds = timed(text)
    assert urls(result) == [BODY_URL]  # the cover went with the front matter
    assert messages(result) == [
        f"front matter is nested deeper than {FRONT_MATTER_MAX_DEPTH} levels; its links are skipped"
    ]
    assert result.warnings[0].line == 2 and not result.skipped
    assert seconds < 5


def test_toml_front_matter_just_past_the_depth_budget_is_refused_too() -> None:
    # Below Python's recursion limit, so it is the budget (not a RecursionError) that says no.
    deep = "a = " + "[" * (FRONT_MATTER_MAX_DEPTH + 1) + "]" * (FRONT_MATTER_MAX_DEPTH + 1)
    ok = "a = " + "[" * 5 + "]" * 5
    for inner, dropped in ((deep, True), (ok, False)):
        text = f'+++\ncover = "https://x.test/cover.png"\n{inner}\n+++\n{BODY}'
        result = extract(text, "markdown")
        expected = [BODY_URL] if dropped else ["https://x.test/cover.png", BODY_URL]
        assert urls(result) == expected
        assert len(result.warnings) == int(dropped)


def test_yaml_alias_bomb_is_refused_with_one_warning() -> None:
    bomb = billion_laughs()
    assert len(bomb) < 400
    text = "---\ncover: https://x.test/cover.png\n" + bomb + "---\n" + BODY
    result, seconds = timed(text)
    assert urls(result) == [BODY_URL]
    assert messages(result) == [
        "front matter expands YAML aliases past 10000 nodes; its links are skipped"
    ]
    assert seconds < 5


def test_yaml_recursive_alias_and_deep_nesting_are_refused() -> None:
    recursive = "---\ncover: https://x.test/cover.png\nloop: &a [*a]\n---\n" + BODY
    flow = "---\ncover: https://x.test/cover.png\nx: " + "[" * 20_000 + "]" * 20_000 + "\n---\n"
    block = "---\ncover: https://x.test/cover.png\n"
    block += "".join("  " * i + "k:\n" for i in range(FRONT_MATTER_MAX_DEPTH + 5)) + "---\n"
    for text in (recursive, flow + BODY, block + BODY):
        result, seconds = timed(text)
        assert urls(result) == [BODY_URL], text[:60]
        assert len(result.warnings) == 1 and not result.skipped
        assert seconds < 5
    assert "recursive" in messages(extract(recursive, "markdown"))[0]


def test_yaml_aliases_within_the_budget_still_work() -> None:
    text = "---\nimg: &i https://x.test/cover.png\ncover: *i\nlist: &l [a, b]\nmore: *l\n---\n"
    result = extract(text + BODY, "markdown")
    assert urls(result) == ["https://x.test/cover.png", "https://x.test/cover.png", BODY_URL]
    assert result.warnings == []


def test_deep_json_like_front_matter_is_just_markdown() -> None:
    # JSON front matter is not supported: a post that starts with "{" is Markdown, read
    # in bounded time, and its links are found.
    text = '{\n"a": ' + "[" * 20_000 + "]" * 20_000 + "\n}\n\n" + BODY
    result, seconds = timed(text)
    assert urls(result) == [BODY_URL] and result.warnings == []
    assert seconds < 5


def test_div_nested_10000_deep_is_read_in_linear_time() -> None:
    text = (
        "<html><body>"
        + "<div>" * 10_000
        + '<img src="https://x.test/deep.png">'
        + "</div>" * 10_000
        + '<pre><div><img src="https://x.test/code.png"></div></pre>'
        + "</body></html>"
    )
    result, seconds = timed(text, "html")
    assert urls(result) == ["https://x.test/deep.png"]  # the one inside <pre> is code
    assert result.warnings == []
    assert seconds < 5


def test_nested_links_read_a_bounded_link_text() -> None:
    # 3,000 deep: ~0.4 s of CPU here, well inside the post's budget (1.1 s) on a slower
    # machine too, while reading each link's whole subtree (4.5 M node visits) would
    # not be. At 10,000 the parse alone took 1.3 s of its 1.4 s budget.
    n = 3_000
    text = "<html>" + '<a href="https://x.test/a.pdf">' * n + "text" + "</a>" * n
    result, seconds = timed(text, "html")
    assert len(result.references) == n
    assert {r.text for r in result.references[-5:]} == {"text"}
    assert seconds < 10


def test_bare_url_followed_by_300k_closing_brackets() -> None:
    text = "see https://x.test/a.png" + ")" * 300_000 + " and (https://x.test/b(1).png)\n"
    result, seconds = timed(text)
    assert urls(result) == ["https://x.test/a.png", "https://x.test/b(1).png"]
    assert seconds < 5


def test_style_attribute_with_6000_url_openings() -> None:
    hostile = '<div style="' + "url(" * 6_000 + '"></div>'
    quoted = "<div style=\"background: url('https://x.test/q.png'), url(&quot;"
    quoted += 'https://x.test/e.png&quot;), url(https://x.test/u.png)"></div>'
    for fmt in ("html", "markdown"):
        result, seconds = timed(hostile + quoted, fmt)
        assert urls(result) == [
            "https://x.test/q.png",
            "https://x.test/e.png",
            "https://x.test/u.png",
        ]
        assert seconds < 5


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "[a](https://x.test/a.png)" * 20_000,
        "<!--" * 200_000,
        "`a" * 300_000,
        "<pre>" * 200_000,
        "<a b " * 200_000,
        '<a x=">" ' * 100_000,
        "x <a>" * 200_000,
        "![a](<" * 100_000,
    ],
    ids=["brackets", "comments", "backticks", "pre", "unclosed-tags", "quoted-gt", "a", "angle"],
)
def test_pathological_markdown_is_bounded(text: str) -> None:
    result, seconds = timed(text)
    # Either read to the end or skipped with its one warning; never much past the budget.
    assert not result.skipped or messages(result)[0].startswith("post could not be read")
    assert seconds < post_budget(len(text)) + 5


def test_unclosed_tag_run_in_html_is_cut_at_the_budget() -> None:
    text = "<html>" + "<a b " * 200_000  # html.parser rescans the run for each tag
    result, seconds = timed(text, "html")
    assert result.skipped or result.references == []
    assert seconds < post_budget(len(text)) + 5


def test_a_post_over_its_time_budget_is_skipped_with_one_warning() -> None:
    now = [0.0]

    def clock() -> float:  # each reading is an hour later: the budget is spent at once
        now[0] += 3600.0
        return now[0]

    for fmt in ("markdown", "html"):
        result = extract(BODY * 100, fmt, clock=clock)  # type: ignore[arg-type]
        assert result.skipped and result.references == []
        assert messages(result) == [
            f"post could not be read within its budget ({post_budget(len(BODY) * 100):.1f} s);"
            " skipped, its earlier links kept"
        ]


def test_a_steady_clock_changes_nothing() -> None:
    result = extract(BODY, "markdown", clock=lambda: 0.0)
    assert urls(result) == [BODY_URL] and not result.skipped


def test_a_post_over_the_size_budget_is_skipped_unread() -> None:
    result = extract("x" * (MAX_POST_CHARS + 1), "markdown")
    assert result.skipped and result.references == []
    assert messages(result) == ["post is larger than 32 MiB; skipped, its earlier links kept"]


def test_a_realistic_1mb_post_extracts_fully_within_its_budget() -> None:
    posts = sorted(FIXTURES.rglob("*.md"))
    bodies = [p.read_text(encoding="utf-8").split("---", 2)[-1] for p in posts]
    one = "\n\n".join(bodies)
    expected = len(extract(one, "markdown").references)
    text = "\n\n".join([one] * (1_000_000 // len(one) + 1))
    copies = text.count(bodies[0][:200])
    result, seconds = timed(text)
    assert not result.skipped and result.warnings == []
    assert len(result.references) == expected * copies
    assert seconds < post_budget(len(text))


# -- in a crawl: the run goes on, and a skipped post keeps what it had -------------


def crawl_posts(tmp_path: Path, posts: Path) -> tuple[RunSummary, list[str], dict[str, set[str]]]:
    cfg = Config(
        db=tmp_path / "state" / "archive.db",
        store=tmp_path / "state" / "store",
        fetch=FetchConfig(retries=0, connect_timeout=5, read_timeout=5),
    )
    warnings: list[str] = []
    summary = crawl(cfg, [Source(path=posts)], clock=FakeClock(), warn=warnings.append)
    db = Database(cfg.db)
    try:
        refs: dict[str, set[str]] = {}
        for row in db.rows(
            "SELECT p.path, u.url FROM posts p LEFT JOIN refs r ON r.post_id = p.id"
            " LEFT JOIN urls u ON u.id = r.url_id WHERE p.gone_since IS NULL"
        ):
            refs.setdefault(row["path"], set()).update([row["url"]] if row["url"] else [])
    finally:
        db.close()
    return summary, warnings, refs


def test_a_crawl_goes_on_past_hostile_posts(tmp_path: Path, server: LoopbackServer) -> None:
    deck = server.route("/deck.pdf", Reply(body=PDF))
    cover = server.route("/cover.png", Reply(body=PNG, content_type="image/png"))
    posts = tmp_path / "posts"
    posts.mkdir()
    deep = "a = " + "[" * 20_000 + "]" * 20_000
    (posts / "a-toml.md").write_text(f'+++\ncover = "{cover}"\n{deep}\n+++\n[d]({deck})\n')
    (posts / "b-yaml.md").write_text(f"---\ncover: {cover}\n{billion_laughs()}---\n[d]({deck})\n")
    divs = "<div>" * 10_000 + f'<img src="{cover}">' + "</div>" * 10_000
    (posts / "c-divs.html").write_text(f"<html><body>{divs}</body></html>")
    (posts / "d-fine.md").write_text(f"![c]({cover}) [d]({deck})\n")
    summary, warnings, refs = crawl_posts(tmp_path, posts)
    assert summary.exit_code == 0 and summary.counts == {"ok": 2}
    assert refs == {
        "a-toml.md": {deck},  # the front matter's cover went with it; the body was read
        "b-yaml.md": {deck},
        "c-divs.html": {cover},
        "d-fine.md": {cover, deck},
    }
    assert warnings == [
        f"{posts / 'a-toml.md'}:2: front matter is nested deeper than 64 levels;"
        " its links are skipped",
        f"{posts / 'b-yaml.md'}:2: front matter expands YAML aliases past 10000 nodes;"
        " its links are skipped",
    ]


def test_a_post_skipped_for_its_budget_keeps_its_earlier_links(
    tmp_path: Path, server: LoopbackServer
) -> None:
    deck = server.route("/deck.pdf", Reply(body=PDF))
    other = server.route("/other.pdf", Reply(body=PDF + b"2"))
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "big.md").write_text(f"[d]({deck})\n")
    (posts / "next.md").write_text("nothing yet\n")
    crawl_posts(tmp_path, posts)
    # Now too big to read: one warning naming it, and the rest of the run goes on.
    (posts / "big.md").write_text(f"[d]({deck})\n" + "x" * MAX_POST_CHARS)
    (posts / "next.md").write_text(f"[o]({other})\n")
    summary, warnings, refs = crawl_posts(tmp_path, posts)
    assert warnings == [
        f"{posts / 'big.md'}: post is larger than 32 MiB; skipped, its earlier links kept"
    ]
    assert refs == {"big.md": {deck}, "next.md": {other}}
    assert summary.exit_code == 0 and summary.posts == 2 and summary.posts_parsed == 1
    # Once readable again, it is parsed again (its hash was not taken as read).
    (posts / "big.md").write_text(f"[o]({other})\n")
    summary, warnings, refs = crawl_posts(tmp_path, posts)
    assert warnings == [] and refs == {"big.md": {other}, "next.md": {other}}
