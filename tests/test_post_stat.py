"""Unchanged posts are not read: a folder post's stat, recorded when its bytes were read,
tells the next crawl it need not read them again (git's index, racy window included).

Real files with their real stats (``os.utime`` moves an mtime out of the racy window, as
an old post's is), a real SQLite file, a loopback server for the links.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import media
from server import LoopbackServer, Reply

from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source
from archiver.db import Database
from archiver.db.sqlite import PostRow, PostStat
from archiver.run.crawl import crawl
from archiver.run.indexing import CHUNK, RACY_NS, same_file
from archiver.run.summary import RunSummary

PDF = media.deck("slides", 1400)


def make_config(tmp_path: Path) -> Config:
    return Config(
        db=tmp_path / "state" / "archive.db",
        store=tmp_path / "state" / "store",
        fetch=FetchConfig(retries=0),
    )


def write_old(path: Path, text: str, age: float = 60.0) -> None:
    """Writes a post whose mtime is ``age`` seconds old: outside the racy window."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    past = time.time() - age
    os.utime(path, (past, past))


def run(cfg: Config, posts: Path, **kw: object) -> RunSummary:
    return crawl(cfg, [Source(path=posts, **kw)], clock=FakeClock())  # type: ignore[arg-type]


def links(cfg: Config) -> dict[str, list[str]]:
    """Each post's linked URLs, and whether it is marked gone (``"gone"`` first)."""
    db = Database(cfg.db)
    try:
        out: dict[str, list[str]] = {}
        for row in db.rows("SELECT id, path, gone_since FROM posts ORDER BY path"):
            urls = db.rows(
                "SELECT u.url FROM refs r JOIN urls u ON u.id = r.url_id WHERE r.post_id=?"
                " ORDER BY u.url",
                [row["id"]],
            )
            out[row["path"]] = ["gone"] * (row["gone_since"] is not None) + [u["url"] for u in urls]
        return out
    finally:
        db.close()


def test_an_unchanged_post_is_not_read_again(tmp_path: Path, server: LoopbackServer) -> None:
    deck = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    posts = tmp_path / "posts"
    write_old(posts / "a.md", f"[deck]({deck})\n")
    cfg = make_config(tmp_path)
    first = run(cfg, posts)
    assert (first.posts, first.posts_read, first.posts_parsed) == (1, 1, 1)
    again = run(cfg, posts)
    assert (again.posts, again.posts_read, again.posts_parsed) == (1, 0, 0)
    assert links(cfg) == {"a.md": [deck]}


def test_a_same_size_change_with_its_mtime_put_back_is_read_in_the_racy_window(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """Written and crawled within one moment, then changed (same size) and its mtime put
    back: the stat's size and mtime say nothing changed, yet the change is found."""
    one = server.route("/one.pdf", Reply(body=PDF, content_type="application/pdf"))
    two = server.route("/two.pdf", Reply(body=PDF, content_type="application/pdf"))
    posts = tmp_path / "posts"
    post = posts / "a.md"
    posts.mkdir()
    post.write_text(f"[deck]({one})\n", encoding="utf-8")  # mtime: now, as an editor saves
    cfg = make_config(tmp_path)
    run(cfg, posts)
    before = post.stat()
    post.write_text(f"[deck]({two})\n", encoding="utf-8")
    os.utime(post, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = post.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    again = run(cfg, posts)
    assert (again.posts_read, again.posts_parsed) == (1, 1)
    assert links(cfg) == {"a.md": [two]}


def test_a_stat_that_matches_exactly_is_trusted_only_outside_the_racy_window(
    tmp_path: Path,
) -> None:
    """The rule alone, on a real file's stat: equal in every field, the file is trusted only
    when its mtime is older than the recorded read by more than ``RACY_NS``."""
    post = tmp_path / "a.md"
    post.write_text("text\n", encoding="utf-8")
    st = post.stat()

    def row(read_ns: int, **changes: int) -> PostRow:
        stat = PostStat(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, read_ns)
        return PostRow(1, "f" * 64, "v", stat=replace(stat, **changes))

    old_enough = st.st_mtime_ns + RACY_NS + 1
    assert same_file(row(old_enough), st)
    assert not same_file(row(st.st_mtime_ns + RACY_NS), st)  # within the tick's margin
    assert not same_file(row(st.st_mtime_ns), st)  # read in the very tick it was written
    for field in ("size", "mtime_ns", "ctime_ns", "inode"):
        assert not same_file(row(old_enough, **{field: getattr(row(0).stat, field) + 1}), st)
    assert not same_file(replace(row(old_enough), gone=True), st)
    assert not same_file(replace(row(old_enough), stat=None), st)


def test_a_touched_post_is_hashed_again_but_not_parsed(
    tmp_path: Path, server: LoopbackServer
) -> None:
    deck = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    posts = tmp_path / "posts"
    post = posts / "a.md"
    write_old(post, f"[deck]({deck})\n")
    cfg = make_config(tmp_path)
    run(cfg, posts)
    past = time.time() - 30
    os.utime(post, (past, past))  # `touch -d`: a new mtime and ctime, the same bytes
    touched = run(cfg, posts)
    assert (touched.posts, touched.posts_read, touched.posts_parsed) == (1, 1, 0)
    assert links(cfg) == {"a.md": [deck]}
    # The new stat was recorded: the run after reads nothing.
    assert run(cfg, posts).posts_read == 0


def test_a_vanished_post_is_gone_and_one_that_comes_back_gets_its_links_back(
    tmp_path: Path, server: LoopbackServer
) -> None:
    deck = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    img = server.route("/img.pdf", Reply(body=PDF, content_type="application/pdf"))
    posts = tmp_path / "posts"
    write_old(posts / "a.md", f"[deck]({deck})\n")
    write_old(posts / "b" / "c.md", f"[img]({img})\n")
    cfg = make_config(tmp_path)
    run(cfg, posts)
    kept = (posts / "b" / "c.md").read_bytes()
    (posts / "b" / "c.md").unlink()
    gone = run(cfg, posts)
    assert (gone.posts, gone.posts_read) == (1, 0)
    assert links(cfg) == {"a.md": [deck], "b/c.md": ["gone"]}
    (posts / "b" / "c.md").write_bytes(kept)  # restored from a backup, same bytes
    past = time.time() - 60
    os.utime(posts / "b" / "c.md", (past, past))
    back = run(cfg, posts)
    assert (back.posts, back.posts_read, back.posts_parsed) == (2, 1, 1)
    assert links(cfg) == {"a.md": [deck], "b/c.md": [img]}


def test_changed_url_rules_read_every_post_again(tmp_path: Path, server: LoopbackServer) -> None:
    deck = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    posts = tmp_path / "posts"
    write_old(posts / "a.md", f"[deck]({deck})\n")
    cfg = make_config(tmp_path)
    run(cfg, posts)
    strict = replace(cfg, exclude_urls=(deck,))
    summary = crawl(strict, [Source(path=posts)], clock=FakeClock())
    assert (summary.posts_read, summary.posts_parsed) == (1, 1)
    assert links(cfg) == {"a.md": []}


def test_more_posts_than_a_chunk(tmp_path: Path, server: LoopbackServer) -> None:
    """Posts are looked up a chunk at a time: every one is found, one changed among them."""
    deck = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    posts = tmp_path / "posts"
    n = CHUNK + 7
    for i in range(n):
        write_old(posts / f"{i % 3}" / f"p{i:04d}.md", f"[deck]({deck}?{i})\n")
    cfg = make_config(tmp_path)
    first = run(cfg, posts)
    assert (first.posts_read, first.urls) == (n, n)
    write_old(posts / "1" / "p0004.md", f"[deck]({deck}?new)\n")
    again = run(cfg, posts)
    assert (again.posts, again.posts_read, again.posts_parsed, again.urls) == (n, 1, 1, n)
    assert again.checked == 1  # only the new link was due
    assert links(cfg)["1/p0004.md"] == [f"{deck}?new"]


def test_only_some_posts_named_reads_those_and_marks_none_gone(
    tmp_path: Path, server: LoopbackServer
) -> None:
    deck = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    posts = tmp_path / "posts"
    write_old(posts / "a.md", f"[deck]({deck}?a)\n")
    write_old(posts / "b.md", f"[deck]({deck}?b)\n")
    cfg = make_config(tmp_path)
    run(cfg, posts)
    write_old(posts / "b.md", f"[deck]({deck}?b2)\n")
    named = run(cfg, posts, only=(posts / "a.md", posts / "b.md", posts / "a.md"))
    assert (named.posts, named.posts_read, named.posts_parsed) == (2, 1, 1)
    one = run(cfg, posts, only=(posts / "a.md",))
    assert (one.posts, one.posts_read) == (1, 0)
    assert links(cfg) == {"a.md": [f"{deck}?a"], "b.md": [f"{deck}?b2"]}
