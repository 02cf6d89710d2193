"""Front matter that does not parse: no links from it, one warning naming post and line.

A line-by-line reading of broken front matter once turned ``cover: [https://...``
under an unclosed quote into ``file:///.../%5Bhttps%3A/...``, a link to a missing file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from archiver.extract import extract
from archiver.sources.folders import collect

BROKEN_YAML = (
    "---\n"
    'title: "Meetup\n'  # the quote never closes
    "cover: [https://cdn.x.org/cover.png\n"
    "---\n"
    "Slides: [deck](https://x.org/deck.pdf)\n"
    "![](photo.png)\n"
)


def _post(tmp_path: Path, text: str, name: str = "post.md") -> Path:
    root = tmp_path / "posts"
    root.mkdir(exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")
    return root


def test_broken_yaml_yields_no_front_matter_references_but_the_body_is_read() -> None:
    result = extract(BROKEN_YAML, "markdown")
    assert [(r.line, r.kind, r.url) for r in result.references] == [
        (5, "markdown-link", "https://x.org/deck.pdf"),
        (6, "markdown-image", "photo.png"),
    ]
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert warning.message.startswith("front matter is not valid YAML (")
    assert warning.message.endswith("; no links read from it")
    assert 2 <= warning.line <= 4  # inside the front matter, where PyYAML gave up


def test_broken_yaml_makes_no_file_url_out_of_a_field(tmp_path: Path) -> None:
    root = _post(tmp_path, BROKEN_YAML)
    [post] = list(collect(root, source="s"))
    urls = [r.url for r in post.references]
    assert urls == ["https://x.org/deck.pdf", (root.resolve() / "photo.png").as_uri()]
    assert not any("%5B" in u or "cover" in u for u in urls)
    assert [w.message for w in post.warnings if "front matter" in w.message] == [
        post.warnings[0].message
    ]


def test_broken_toml_yields_no_front_matter_references_and_names_its_line() -> None:
    text = '+++\ncover = "a.png"\ntitle = \n+++\n![](b.png)\n'
    result = extract(text, "markdown")
    assert [r.url for r in result.references] == ["b.png"]
    assert [w.line for w in result.warnings] == [3]
    assert "not valid TOML" in result.warnings[0].message
    assert result.warnings[0].message.endswith("; no links read from it")


def test_yaml_that_parses_once_trailing_tabs_are_blanked_is_still_read() -> None:
    # Hugo accepts trailing tabs PyYAML rejects: that is a parse, not a guess.
    text = "---\ncover: https://cdn.x.org/c.png\t\ntitle: x\n---\n"
    result = extract(text, "markdown")
    assert [r.url for r in result.references] == ["https://cdn.x.org/c.png"]


def test_extract_command_warns_once_with_the_post_and_line(tmp_path: Path) -> None:
    root = _post(tmp_path, BROKEN_YAML)
    proc = subprocess.run(
        [sys.executable, "-m", "archiver", "extract", str(root)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    refs = json.loads(proc.stdout)
    assert [r["url"] for r in refs] == [
        "https://x.org/deck.pdf",
        (root.resolve() / "photo.png").as_uri(),
    ]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"archiver: warning: {(root / 'post.md').resolve()}:")
    line_no = int(lines[0].split(f"{(root / 'post.md').resolve()}:")[1].split(":")[0])
    assert 2 <= line_no <= 4
    assert "not valid YAML" in lines[0]
