"""Tests for archiver.sources.folders: walking a folder, reading posts, resolving local files."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import media
import pytest

from archiver.sources.folders import Post, collect, iter_post_files, read_post, source_roots

FIXTURES = Path(__file__).parent / "fixtures" / "posts"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A writable copy of the fixture site."""
    root = tmp_path / "site"
    shutil.copytree(FIXTURES, root)
    return root


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_bytes(data.encode("utf-8"))
    return path


def by_path(posts: list[Post]) -> dict[str, Post]:
    return {post.path: post for post in posts}


def test_iter_post_files_is_sorted_and_skips_hidden_and_non_posts(tmp_path: Path) -> None:
    for name in ["b/index.md", "a/z.html", "a/page.HTM", "a/notes.txt", "c.markdown"]:
        write(tmp_path / name, "x")
    write(tmp_path / ".git/x.md", "x")
    write(tmp_path / "a/.draft.md", "x")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_post_files(tmp_path)]
    assert found == ["c.markdown", "a/page.HTM", "a/z.html", "b/index.md"]


def test_collect_fixture_site_resolves_local_files(site: Path) -> None:
    posts = by_path(list(collect(site, source="sofastack")))
    assert len(posts) == 10
    bundle = posts["content/zh/activities/sofastack-cloud-native-workshop/index.md"]
    folder = site.resolve() / "content/zh/activities/sofastack-cloud-native-workshop"
    assert [(r.url, r.relative, r.as_written) for r in bundle.references] == [
        ((folder / "cover.jpg").as_uri(), False, "/cover.jpg"),
        (
            (folder / "sofastack-cloud-native-workshop.jpg").as_uri(),
            False,
            "sofastack-cloud-native-workshop.jpg",
        ),
    ]
    mosn = posts["content/en/projects/mosn/_index.md"]
    assert [r.url for r in mosn.references] == [
        (site.resolve() / "static/img/icons/mosn.png").as_uri()
    ]
    meetup = posts["content/zh/activities/sofa-meetup-6/index.md"]
    assert meetup.source == "sofastack"
    assert meetup.abs_path == (site / meetup.path).resolve()
    assert meetup.content_sha256 == hashlib.sha256((site / meetup.path).read_bytes()).hexdigest()
    assert len(meetup.references) == 7
    assert all(r.url.startswith("https://") for r in meetup.references)


def test_root_relative_resolution_order(tmp_path: Path) -> None:
    post = write(
        tmp_path / "content/p/index.md", "![](/a.png) ![](/b.png) ![](/c.png) ![](/d.png)\n"
    )
    for name in [
        "content/p/a.png",
        "a.png",
        "static/a.png",
        "b.png",
        "static/b.png",
        "static/c.png",
    ]:
        write(tmp_path / name, media.picture("PNG"))
    result = read_post(
        tmp_path, post, source="s", base_url=None, static_roots=[tmp_path, tmp_path / "static"]
    )
    root = tmp_path.resolve()
    assert [r.url for r in result.references] == [
        (root / "content/p/a.png").as_uri(),  # the post's own folder first
        (root / "b.png").as_uri(),  # then the static roots in order
        (root / "static/c.png").as_uri(),
        (root / "content/p/d.png").as_uri(),  # nowhere: the first candidate (dead later)
    ]


def test_relative_paths_are_percent_decoded_then_encoded_as_file_uri(tmp_path: Path) -> None:
    post = write(tmp_path / "p/index.md", "![](img/my%20pic.png) [deck](../files/talk 1.pdf)\n")
    write(tmp_path / "p/img/my pic.png", b"x")
    result = read_post(tmp_path, post, source="s", base_url=None, static_roots=[tmp_path])
    root = tmp_path.resolve()
    assert [r.url for r in result.references] == [
        (root / "p/img/my pic.png").as_uri(),
        (root / "files/talk 1.pdf").as_uri(),
    ]
    assert "%20" in result.references[0].url


def test_reference_escaping_the_source_is_kept_for_the_fetcher_to_refuse(
    tmp_path: Path,
) -> None:
    # The local-file rule has one owner (localfiles, asked by fetch): collect only
    # resolves the path, and the crawl records it as blocked (test_crawl).
    post = write(tmp_path / "src/p/index.md", "![](../../outside.png)\n")
    result = read_post(tmp_path / "src", post, source="s", base_url=None, static_roots=[])
    assert [r.url for r in result.references] == [(tmp_path.resolve() / "outside.png").as_uri()]
    assert result.warnings == []
    roots = source_roots(tmp_path / "src", [])
    assert roots.refusal(tmp_path / "outside.png") is not None
    assert roots.refusal(tmp_path / "src/p/x.png") is None


def test_base_url_joins_against_the_post_folder(site: Path) -> None:
    posts = by_path(list(collect(site, base_url="https://www.sofastack.tech")))
    bundle = posts["content/zh/activities/sofastack-cloud-native-workshop/index.md"]
    assert [r.url for r in bundle.references] == [
        "https://www.sofastack.tech/cover.jpg",
        "https://www.sofastack.tech/content/zh/activities/sofastack-cloud-native-workshop/"
        "sofastack-cloud-native-workshop.jpg",
    ]


def test_binary_and_undecodable_files_are_warnings(tmp_path: Path) -> None:
    write(tmp_path / "a.md", b"![](a.png)\x00\x01")
    write(tmp_path / "b.md", b"![](b.png) \xff\xfe")
    posts = list(collect(tmp_path))
    assert [(p.path, p.references) for p in posts] == [("a.md", []), ("b.md", [])]
    assert "a.md looks binary" in posts[0].warnings[0].message
    assert "b.md is not UTF-8" in posts[1].warnings[0].message
    assert posts[1].content_sha256 == hashlib.sha256(b"![](b.png) \xff\xfe").hexdigest()


def test_unreadable_file_is_a_warning(tmp_path: Path) -> None:
    post = read_post(tmp_path, tmp_path / "gone.md", source="s", base_url=None, static_roots=[])
    assert post.references == []
    assert "cannot read gone.md" in post.warnings[0].message


def test_single_file_root(site: Path) -> None:
    file = site / "content/en/projects/mosn/_index.md"
    posts = list(collect(file))
    assert [p.path for p in posts] == ["_index.md"]
    # Default static roots follow the file's folder, so /img/icons/... is not found
    # and the first candidate (beside the post) is reported.
    assert posts[0].references[0].url == (file.parent.resolve() / "img/icons/mosn.png").as_uri()


def test_html_posts_are_read_as_html(tmp_path: Path) -> None:
    write(tmp_path / "e/index.html", '<html><body><img src="pic.jpg"></body></html>')
    write(tmp_path / "e/pic.jpg", media.picture("JPEG"))
    (post,) = collect(tmp_path)
    assert [(r.kind, r.url) for r in post.references] == [
        ("html-img", (tmp_path.resolve() / "e/pic.jpg").as_uri())
    ]


def test_post_is_a_frozen_record(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("![x](x.png)\n", encoding="utf-8")
    post = read_post(tmp_path, tmp_path / "a.md", source="s", base_url=None, static_roots=[])
    assert [ref.url for ref in post.references] == [(tmp_path / "x.png").resolve().as_uri()]
    with pytest.raises(dataclasses.FrozenInstanceError):
        post.skipped = True  # type: ignore[misc]
