"""Which files of a source folder are posts: ``extensions`` / ``--extensions`` (issue 12).

Real folders, real processes, a loopback server: a folder of ``.txt`` posts used to read
"0 posts, 0 URLs" with no hint why.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from server import LoopbackServer, Reply
from test_cli import PDF, run

from archiver.config import DEFAULT_EXTENSIONS, parse_config, parse_extensions
from archiver.errors import ConfigError
from archiver.sources.folders import iter_post_files


@pytest.fixture
def txt_site(tmp_path: Path, server: LoopbackServer) -> Path:
    """A folder whose two posts are ``.txt`` files, each linking a PDF on loopback."""
    pdf = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    posts = tmp_path / "posts"
    (posts / "2024").mkdir(parents=True)
    (posts / "a.txt").write_text(f"[deck]({pdf})\n", encoding="utf-8")
    (posts / "2024" / "b.TXT").write_text(f"[deck]({pdf})\n", encoding="utf-8")
    (posts / ".hidden.txt").write_text(f"[deck]({pdf})\n", encoding="utf-8")  # never counted
    return tmp_path


def _urls(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT url, state FROM urls ORDER BY url").fetchall()


def test_a_folder_of_txt_posts_says_how_many_files_were_skipped(txt_site: Path) -> None:
    proc = run("crawl", "posts", "--db", "a.db", "--store", "s", cwd=txt_site)
    assert proc.returncode == 0, proc.stderr
    line = proc.stderr.strip()
    assert line.startswith("0 posts, 0 URLs, checked 0:"), line
    assert line.endswith("; 2 files skipped by extension (see --extensions)"), line
    assert _urls(txt_site / "a.db") == []


def test_the_json_summary_counts_skipped_files_even_when_quiet(txt_site: Path) -> None:
    proc = run(
        "check", "posts", "--db", "a.db", "--store", "s", "-q", "--log-format", "json",
        cwd=txt_site,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (summary,) = [json.loads(x) for x in proc.stderr.splitlines()]
    assert summary["skipped_by_extension"] == 2
    assert summary["posts"] == 0
    assert "2 files skipped by extension (see --extensions)" in summary["message"]


def test_extensions_option_reads_them_and_the_summary_no_longer_mentions_skips(
    txt_site: Path, server: LoopbackServer
) -> None:
    proc = run(
        "crawl", "posts", "--db", "a.db", "--store", "s", "--extensions", ".TXT",
        "--log-format", "json", cwd=txt_site,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stderr.splitlines()[-1])
    assert (summary["posts"], summary["urls"], summary["skipped_by_extension"]) == (2, 1, 0)
    assert "skipped by extension" not in summary["message"]
    assert _urls(txt_site / "a.db") == [(server.url("/deck.pdf"), "ok")]


def test_a_plain_summary_with_nothing_skipped_has_no_skip_clause(txt_site: Path) -> None:
    proc = run(
        "check", "posts", "--db", "a.db", "--store", "s", "--extensions", "txt", cwd=txt_site
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("2 posts, 1 URL, checked 1: ok=1;"), proc.stderr
    assert "skipped" not in proc.stderr


def test_sources_extensions_key_chooses_the_posts_and_counts_the_rest(
    txt_site: Path, server: LoopbackServer
) -> None:
    (txt_site / "posts" / "c.md").write_text("no links\n", encoding="utf-8")
    (txt_site / "config.toml").write_text(
        'db = "a.db"\nstore = "s"\n[[sources]]\npath = "posts"\nextensions = ["txt"]\n',
        encoding="utf-8",
    )
    proc = run("crawl", cwd=txt_site)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("2 posts, 1 URL, checked 1: ok=1;"), proc.stderr
    assert proc.stderr.strip().endswith("; 1 file skipped by extension (see --extensions)")
    # --extensions replaces the source's own list.
    proc = run("crawl", "--extensions", "md", cwd=txt_site)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("1 post, 0 URLs"), proc.stderr
    assert "2 files skipped by extension" in proc.stderr


def test_mdx_is_a_post_by_default_and_a_named_file_is_read_whatever_its_extension(
    txt_site: Path, server: LoopbackServer
) -> None:
    (txt_site / "posts" / "d.mdx").write_text(
        f"![x]({server.url('/deck.pdf')})\n", encoding="utf-8"
    )
    proc = run("extract", "posts", "--format", "tsv", cwd=txt_site)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"d.mdx\t1\tmarkdown-image\t{server.url('/deck.pdf')}"]
    assert proc.stderr == "archiver: warning: 2 files skipped by extension (see --extensions)\n"
    proc = run("extract", "posts/a.txt", "--format", "tsv", "--extensions", "md", cwd=txt_site)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [f"a.txt\t1\tmarkdown-link\t{server.url('/deck.pdf')}"]
    assert proc.stderr == ""
    proc = run("check", "posts/2024/b.TXT", "--db", "a.db", "--store", "s", cwd=txt_site)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("1 post, 1 URL, checked 1: ok=1;"), proc.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "archiver: option --extensions must be a file extension like \"md\", got ''"),
        ("md,", "archiver: option --extensions must be a file extension like \"md\", got ''"),
        (
            "md,a/b",
            "archiver: option --extensions must be a file extension like \"md\", got 'a/b'",
        ),
        ("..md", "archiver: option --extensions must be a file extension like \"md\", got '..md'"),
    ],
)
@pytest.mark.parametrize("command", ["crawl", "check", "extract"])
def test_a_bad_extensions_option_is_one_line_and_exit_2(
    txt_site: Path, command: str, value: str, message: str
) -> None:
    state = [] if command == "extract" else ["--db", "a.db", "--store", "s"]
    proc = run(command, "posts", *state, "--extensions", value, cwd=txt_site)
    assert (proc.returncode, proc.stderr) == (2, message + "\n")
    assert proc.stdout == ""
    assert not (txt_site / "a.db").exists()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            'extensions = "md"',
            "config key 'sources[0].extensions' must be a list of file extensions"
            " like [\"md\"], got 'md'",
        ),
        (
            "extensions = []",
            "config key 'sources[0].extensions' must name at least one file extension, like \"md\"",
        ),
        (
            'extensions = ["md", ""]',
            "config key 'sources[0].extensions[1]' must be a file extension like \"md\", got ''",
        ),
        (
            'extensions = ["md/x"]',
            "config key 'sources[0].extensions[0]' must be a file extension like \"md\","
            " got 'md/x'",
        ),
        ("extensions = [1]", "config key 'sources[0].extensions[0]' must be a string, got 1"),
    ],
)
def test_a_bad_extensions_key_is_one_line_and_exit_2(
    txt_site: Path, toml: str, message: str
) -> None:
    (txt_site / "config.toml").write_text(
        f'db = "a.db"\nstore = "s"\n[[sources]]\npath = "posts"\n{toml}\n', encoding="utf-8"
    )
    proc = run("crawl", cwd=txt_site)
    assert (proc.returncode, proc.stderr) == (2, f"archiver: {message}\n")


def test_extensions_apply_to_path_sources_only(tmp_path: Path) -> None:
    raw = {"sources": [{"url": "http://127.0.0.1:9/", "extensions": ["md"]}]}
    with pytest.raises(ConfigError) as err:
        parse_config(raw, base=tmp_path)
    assert str(err.value) == (
        "config key 'sources[0].extensions' applies to path sources only (this one has a url)"
    )


def test_parse_extensions_normalises_dots_case_spaces_and_repeats() -> None:
    assert parse_extensions("--extensions", [".MD", " txt ", "md", "Html"]) == (
        "md",
        "txt",
        "html",
    )
    cfg = parse_config({"sources": [{"path": "p"}]}, base=Path("/x"))
    assert cfg.sources[0].extensions == DEFAULT_EXTENSIONS


def test_iter_post_files_reports_each_skipped_visible_file(txt_site: Path) -> None:
    posts = txt_site / "posts"
    (posts / "e.markdown").write_text("", encoding="utf-8")
    (posts / "notes.md.bak").write_text("", encoding="utf-8")
    skipped: list[Path] = []
    found = list(iter_post_files(posts, DEFAULT_EXTENSIONS, skipped.append))
    assert found == [posts / "e.markdown"]
    assert skipped == [posts / "a.txt", posts / "notes.md.bak", posts / "2024" / "b.TXT"]
