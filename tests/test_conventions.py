"""The conventions a lychee user looks for: --accept, --include/--exclude, --no-progress,
-v, ``-`` and globs as sources, [hosts] headers, shell completion.

Real processes on real files against loopback servers; the database is read back.
"""

from __future__ import annotations

import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path

import media
import pytest
from server import LoopbackServer, Reply

from archiver.config import Source, load_config, parse_accept, parse_config
from archiver.errors import ConfigError
from archiver.run.crawl import sources_from_args

PDF = media.pdf(pages=2)
PNG = media.encode(media.noise(16, 16), "PNG")
SOFT_404 = b"<!doctype html><html><body>Sorry, gone</body></html>"
TOKEN = "token s3cr3t-Zq9"


def run(
    *args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archiver", *args],
        cwd=cwd,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


def urls(db: Path) -> dict[str, tuple[object, ...]]:
    return {r[0]: r[1:] for r in rows(db, "SELECT url, state, sha256, http_status FROM urls")}


def folder(tmp_path: Path, config: str = "", *, source: str = "") -> Path:
    """A working folder whose config has one path source, ``posts`` (``source``: more
    keys of it), then the tables of ``config``."""
    (tmp_path / "config.toml").write_text(
        'db = "state/archive.db"\nstore = "state/store"\n'
        '[[sources]]\npath = "posts"\n' + source + config,
        encoding="utf-8",
    )
    (tmp_path / "posts").mkdir()
    return tmp_path


def post(root: Path, rel: str, text: str) -> Path:
    path = root / "posts" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --accept ---------------------------------------------------------------------------------


def test_accept_parses_lychee_ranges() -> None:
    assert parse_accept("--accept", ["403", "200..=299,500..600"]) == (
        (403, 403),
        (200, 299),
        (500, 599),
    )
    assert parse_accept("--accept", ["..300", "900.."]) == ((100, 299), (900, 999))
    for bad in [
        "",
        "abc",
        "200-299",
        "200..=",
        "99",
        "1000",
        "300..200",
        "200..200",
        "4o4",
        "403,",
    ]:
        with pytest.raises(ConfigError):
            parse_accept("--accept", [bad])


@pytest.mark.parametrize("value", ["abc", "200-299", "300..=200", "403,,404", "1000"])
def test_a_bad_accept_is_one_usage_line(tmp_path: Path, value: str) -> None:
    root = folder(tmp_path)
    out = run("check", "--accept", value, cwd=root)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--accept" in lines[0] and "archiver check --help" in lines[0]
    assert not (root / "state").exists()  # refused before anything was made


@pytest.mark.parametrize("command", ["crawl", "check"])
def test_an_accepted_status_is_ok_without_a_copy(
    tmp_path: Path, server: LoopbackServer, command: str
) -> None:
    forbidden = server.route("/members/deck.pdf", Reply(status=403, body=b"members only"))
    broken = server.route("/oops.pdf", Reply(status=503, body=b"down"))
    good = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    soft = server.route("/gone.pdf", Reply(body=SOFT_404, content_type="text/html"))
    gone = server.route("/missing.png", Reply(status=404))
    root = folder(tmp_path)
    post(root, "a.md", f"[m]({forbidden}) [o]({broken}) [d]({good}) [s]({soft}) ![g]({gone})\n")
    out = run(
        command,
        "--accept",
        "403",
        "--accept",
        "200..=299,500..600",
        "--fail-on",
        "none",
        cwd=root,
    )
    assert out.returncode == 0, out.stderr
    table = urls(root / "state" / "archive.db")
    assert table[forbidden] == ("ok", None, 403)
    assert table[broken] == ("ok", None, 503)
    assert server.stats("/oops.pdf").hits == 1  # an accepted 503 is an answer, not retried
    # 2xx bodies are judged as always, and a crawl archives the good one.
    assert table[soft][0] == "invalid"
    assert table[good][0] == "ok" and table[good][2] in (200, 206)
    assert (table[good][1] is not None) == (command == "crawl")
    assert table[gone][0] in ("failing", "dead")  # a status not accepted is as before
    blobs = list((root / "state" / "store").glob("??/*"))
    assert len(blobs) == (1 if command == "crawl" else 0)


# --include / --exclude --------------------------------------------------------------------


def test_include_and_exclude_on_the_command_line(tmp_path: Path, server: LoopbackServer) -> None:
    deck = server.route("/talks/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    draft = server.route("/talks/draft.pdf", Reply(body=PDF, content_type="application/pdf"))
    cover = server.route("/img/cover.png", Reply(body=PNG, content_type="image/png"))
    ads = server.route("/ads/banner.png", Reply(body=PNG, content_type="image/png"))
    root = folder(tmp_path)
    config = (root / "config.toml").read_text(encoding="utf-8")
    (root / "config.toml").write_text('exclude_urls = ["/ads/"]\n' + config, encoding="utf-8")
    post(root, "a.md", f"[d]({deck}) [x]({draft}) ![c]({cover}) ![a]({ads})\n")
    out = run("check", "--include", r"/talks/", "--exclude", "draft", cwd=root)
    assert out.returncode == 0, out.stderr
    assert set(urls(root / "state" / "archive.db")) == {deck}
    assert server.stats("/img/cover.png").hits == 0
    assert server.stats("/ads/banner.png").hits == 0
    # Without them the post is read again under the config's rules: its other links return.
    out = run("check", cwd=root)
    assert out.returncode == 0, out.stderr
    assert set(urls(root / "state" / "archive.db")) == {deck, draft, cover}


@pytest.mark.parametrize("option", ["--include", "--exclude"])
def test_a_bad_regex_option_is_one_line(tmp_path: Path, option: str) -> None:
    root = folder(tmp_path)
    out = run("crawl", option, "a[b", cwd=root)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and "regular expression" in lines[0], lines


# -v and --no-progress ---------------------------------------------------------------------


def test_verbose_prints_each_url_as_judged_masked(tmp_path: Path, server: LoopbackServer) -> None:
    good = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    gone = server.route("/gone.png", Reply(status=404))
    secret = good.replace("http://", "http://user:hunter2@").replace("deck", "d%1bx")
    server.route("/d%1bx.pdf", Reply(body=PDF, content_type="application/pdf"))
    root = folder(tmp_path)
    post(root, "a.md", f"[d]({good}) ![g]({gone}) [s]({secret})\n")
    out = run("check", "-v", "--fail-on", "none", cwd=root)
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert f"ok {good}" in lines
    # The state recorded, as the summary and ``report`` say it: a first 404 is failing.
    assert any(line.startswith(f"failing {gone} (HTTP 404") for line in lines), lines
    assert "hunter2" not in out.stderr
    assert any(line.startswith("ok http://user:***@") for line in lines), lines
    assert out.stderr.count("\n") == 4  # three URLs and the summary
    out = run("check", "--verbose", "--log-format", "json", cwd=root, env={})
    import json

    events = [json.loads(line) for line in out.stderr.splitlines()]
    judged = {e["url"]: e["state"] for e in events if "state" in e}
    assert judged[good] == "ok" and judged[gone] == "failing" and "hunter2" not in out.stderr
    assert next(e["error"] for e in events if e.get("url") == gone).startswith("HTTP 404")
    quiet = run("check", "-v", "-q", cwd=root)
    assert good not in quiet.stderr


def test_verbose_says_invalid_for_a_body_that_does_not_open(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """The fetch calls a cut PDF with the right magic bytes ok; the deep check that runs
    before it is recorded says invalid, and so must the line ``-v`` prints."""
    cut = server.route("/cut.pdf", Reply(body=PDF[: len(PDF) // 2], content_type="application/pdf"))
    root = folder(tmp_path)
    post(root, "a.md", f"[d]({cut})\n")
    out = run("crawl", "-v", "--fail-on", "none", cwd=root)
    assert out.returncode == 0, out.stderr
    assert any(line.startswith(f"invalid {cut} (") for line in out.stderr.splitlines()), out.stderr


def _on_a_terminal(root: Path, *args: str) -> bytes:
    """stderr of ``archiver`` run with a pseudo-terminal as its stderr."""
    main, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "archiver", *args],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=secondary,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "80"},
        )
        os.close(secondary)
        secondary = -1
        out = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=60) == 0, out
        return out
    finally:
        os.close(main)
        if secondary != -1:
            os.close(secondary)


def test_no_progress_keeps_a_terminal_free_of_the_bar(
    tmp_path: Path, server: LoopbackServer
) -> None:
    good = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    root = folder(tmp_path)
    post(root, "a.md", f"[d]({good})\n")
    with_bar = _on_a_terminal(root, "check")
    assert b"\x1b[" in with_bar  # the bar draws (and hides the cursor) on a terminal
    without = _on_a_terminal(root, "check", "--no-progress")
    assert b"\x1b[" not in without and b"1 post" in without


# stdin and globs --------------------------------------------------------------------------


def test_stdin_lists_posts_as_git_diff_prints_them(tmp_path: Path, server: LoopbackServer) -> None:
    deck = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    other = server.route("/other.pdf", Reply(body=PDF, content_type="application/pdf"))
    notes = server.route("/notes.pdf", Reply(body=PDF, content_type="application/pdf"))
    root = folder(tmp_path)
    post(root, "2024/a.md", f"[d]({deck})\n")
    post(root, "2024/b.md", f"[o]({other})\n")
    post(root, "notes.txt", f"[n]({notes})\n")
    diff = "posts/2024/a.md\n\nposts/deleted.md\nposts/notes.txt\nREADME\n"
    out = run("check", "--fail-on", "any", "-", cwd=root, stdin=diff)
    assert out.returncode == 0, out.stderr
    assert "posts/deleted.md (from stdin) does not exist: skipped" in out.stderr
    assert set(urls(root / "state" / "archive.db")) == {deck}
    # A diff that names no post checks nothing, and passes.
    out = run("check", "--fail-on", "any", "-", cwd=root, stdin="")
    assert out.returncode == 0, out.stderr
    assert "0 posts" in out.stderr


def test_globs_are_sources_filtered_by_extension(tmp_path: Path, server: LoopbackServer) -> None:
    deck = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    cover = server.route("/cover.png", Reply(body=PNG, content_type="image/png"))
    notes = server.route("/notes.pdf", Reply(body=PDF, content_type="application/pdf"))
    root = folder(tmp_path)
    post(root, "2024/spring/a.md", f"[d]({deck})\n")
    post(root, "b.md", f"![c]({cover})\n")
    post(root, "2024/notes.txt", f"[n]({notes})\n")
    out = run("check", "posts/2024/**/*", cwd=root)
    assert out.returncode == 0, out.stderr
    assert set(urls(root / "state" / "archive.db")) == {deck}
    assert rows(root / "state" / "archive.db", "SELECT path FROM posts") == [("2024/spring/a.md",)]
    out = run("check", "posts/nothing/*.md", cwd=root)
    assert out.returncode == 2 and "matches no file" in out.stderr


def test_sources_from_args_orders_globs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = folder(tmp_path)
    for rel in ("b.md", "a/c.md", "a.md"):
        post(root, rel, "text\n")
    monkeypatch.chdir(root)
    cfg = load_config(root / "config.toml")
    (source,) = sources_from_args(["posts/**/*.md"], cfg)
    posts = (root / "posts").resolve()
    assert source.path == cfg.sources[0].path
    assert [p.resolve() for p in source.only] == [posts / "a.md", posts / "a/c.md", posts / "b.md"]


# a path inside a configured source ---------------------------------------------------------


def test_a_file_inside_a_source_uses_its_settings(tmp_path: Path, server: LoopbackServer) -> None:
    server.route("/site/2024/cover.png", Reply(body=PNG, content_type="image/png"))
    deck = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    base = server.url("/site/")
    root = folder(tmp_path, source=f'base_url = "{base}"\nextensions = ["txt"]\n')
    a = post(root, "2024/a.txt", f"![c](cover.png) [d]({deck})\n")
    post(root, "b.txt", f"[d]({deck})\n")
    full = run("crawl", cwd=root)
    assert full.returncode == 0, full.stderr
    db = root / "state" / "archive.db"
    before = rows(db, "SELECT id, source, path, gone_since FROM posts ORDER BY path")
    assert len(before) == 2
    out = run("check", str(a.relative_to(root)), cwd=root)
    assert out.returncode == 0, out.stderr
    assert "1 post" in out.stderr
    # Same rows as the full crawl's: the source's label and base_url, no post marked gone.
    assert rows(db, "SELECT id, source, path, gone_since FROM posts ORDER BY path") == before
    assert server.url("/site/2024/cover.png") in urls(db)


def test_a_path_outside_every_source_is_a_source_of_its_own(tmp_path: Path) -> None:
    root = folder(tmp_path)
    other = tmp_path / "elsewhere" / "x.md"
    other.parent.mkdir()
    other.write_text("text\n", encoding="utf-8")
    cfg = load_config(root / "config.toml")
    assert sources_from_args([str(other)], cfg) == [Source(path=other.resolve())]
    # The source's own folder named: the configured source itself.
    assert sources_from_args([str(root / "posts")], cfg) == [cfg.sources[0]]


# [hosts] headers --------------------------------------------------------------------------


def test_host_headers_go_to_that_host_only(
    tmp_path: Path, server: LoopbackServer, server2: LoopbackServer
) -> None:
    elsewhere = server2.route("/moved.pdf", Reply(body=PDF, content_type="application/pdf"))
    hop = server.route("/deck.pdf", Reply.redirect(elsewhere))
    private = server.route("/private.png", Reply(body=PNG, content_type="image/png"))
    # A remapped URL is fetched from 127.0.0.2: that host's headers go with it.
    remapped = server2.route("/mirror/cover.png", Reply(body=PNG, content_type="image/png"))
    config = (
        f'[remap]\n"^http://old\\\\.invalid/" = "{server2.url("/mirror/")}"\n'
        f'[hosts."127.0.0.1"]\nheaders = {{ Authorization = "{TOKEN}", X-Team = "docs" }}\n'
        '[hosts."127.0.0.2"]\nheaders = { X-Mirror = "yes" }\n'
    )
    root = folder(tmp_path, config)
    post(root, "a.md", f"[d]({hop}) ![p]({private}) ![c](http://old.invalid/cover.png)\n")
    out = run("crawl", "-v", cwd=root)
    assert out.returncode == 0, out.stderr
    (first,) = server.stats("/deck.pdf").requests
    assert first.headers["authorization"] == TOKEN and first.headers["x-team"] == "docs"
    assert server.stats("/private.png").requests[0].headers["authorization"] == TOKEN
    (moved,) = server2.stats("/moved.pdf").requests
    assert "authorization" not in moved.headers and "x-team" not in moved.headers
    assert moved.headers["x-mirror"] == "yes"
    (mirror,) = server2.stats("/mirror/cover.png").requests
    assert mirror.headers["x-mirror"] == "yes" and "authorization" not in mirror.headers
    assert remapped
    # Never logged, reported or stored.
    report = run("report", "--format", "json", cwd=root)
    assert report.returncode in (0, 1), report.stderr
    for text in (out.stdout, out.stderr, report.stdout, report.stderr):
        assert "s3cr3t" not in text
    db = root / "state" / "archive.db"
    for (table,) in rows(db, "SELECT name FROM sqlite_master WHERE type='table'"):
        for row in rows(db, f'SELECT * FROM "{table}"'):
            assert "s3cr3t" not in repr(row), table
    assert b"s3cr3t" not in db.read_bytes()


def test_host_headers_replace_the_user_agent(tmp_path: Path, server: LoopbackServer) -> None:
    deck = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    root = folder(tmp_path, '[hosts."127.0.0.1"]\nheaders = { User-Agent = "docs-bot/1" }\n')
    post(root, "a.md", f"[d]({deck})\n")
    assert run("check", cwd=root).returncode == 0
    (req,) = server.stats("/deck.pdf").requests
    assert req.headers["user-agent"] == "docs-bot/1"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[hosts."a.test"]\nheaders = { Host = "b.test" }', "archiver sets Host itself"),
        ('[hosts."a.test"]\nheaders = { content-length = "1" }', "sets content-length"),
        ('[hosts."a.test"]\nheaders = { "Bad Name" = "x" }', "not a valid header name"),
        ('[hosts."a.test"]\nheaders = { X-Token = "abc\\r\\nX-Evil: 1" }', "printable ASCII"),
        ('[hosts."a.test"]\nheaders = { X-Token = 3 }', "must be a string"),
        ('[hosts."a.test"]\nheader = {}', "unknown config key 'hosts.\"a.test\".header'"),
        ('[hosts."a.test/x"]\nheaders = {}', "must be a host name"),
        ('hosts = ["a.test"]', "must be tables"),
    ],
)
def test_bad_host_headers_are_config_errors(tmp_path: Path, table: str, message: str) -> None:
    import tomllib

    with pytest.raises(ConfigError, match=message) as raised:
        parse_config(tomllib.loads(table), base=tmp_path)
    assert "X-Evil" not in str(raised.value) and "\n" not in str(raised.value)


def test_host_keys_match_as_urls_name_hosts(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "hosts": {
                "Files.Example.ORG.": {"headers": {"A": "1"}},
                "::1": {"headers": {"B": "zz-secret"}},
            }
        },
        base=tmp_path,
    )
    assert cfg.fetch.headers_for("files.example.org") == (("A", "1"),)
    assert cfg.fetch.headers_for("FILES.example.org") == (("A", "1"),)
    assert cfg.fetch.headers_for("::1") == (("B", "zz-secret"),)
    assert cfg.fetch.headers_for("example.org") == ()
    assert "zz-secret" not in repr(cfg.fetch) and "zz-secret" not in repr(cfg)


def test_a_bad_host_header_is_exit_2_without_the_value(tmp_path: Path) -> None:
    root = folder(tmp_path, '[hosts."a.test"]\nheaders = { X-Token = " s3cr3t " }\n')
    out = run("check", cwd=root)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "s3cr3t" not in out.stderr


# shell completion -------------------------------------------------------------------------


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o"), ("zsh", "compdef")])
def test_shell_completion_prints_a_script(tmp_path: Path, shell: str, marker: str) -> None:
    out = run(cwd=tmp_path, env={"_ARCHIVER_COMPLETE": f"{shell}_source"})
    assert out.returncode == 0, out.stderr
    assert marker in out.stdout and "_ARCHIVER_COMPLETE" in out.stdout


def test_completion_offers_the_new_options(tmp_path: Path) -> None:
    env = {
        "_ARCHIVER_COMPLETE": "bash_complete",
        "COMP_WORDS": "archiver check --no",
        "COMP_CWORD": "2",
    }
    out = run(cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "--no-progress" in out.stdout
