"""CI formats: JUnit XML, GitHub workflow commands and SARIF 2.1.0 from findings.

Each writer is read back the way its consumer reads it: JUnit with ElementTree,
workflow commands with a parser that follows the Actions runner's rules, SARIF with
the official 2.1.0 JSON schema (tests/fixtures/sarif/, see SOURCE.md there). Hostile
URLs, server messages, link texts and file names must never inject a command, break
the XML or leave the schema.
"""

from __future__ import annotations

import io
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from archiver.ops.ci_formats import (
    BROKEN,
    RULES,
    SRCROOT,
    Finding,
    escape_data,
    escape_property,
    github,
    junit,
    sarif,
)

SCHEMA = Path(__file__).parent / "fixtures" / "sarif" / "sarif-schema-2.1.0.json"

#: Strings that try to end a workflow command, start another, or break XML/JSON.
HOSTILE = [
    "x\n::error::injected",
    "x\r\n::warning file=evil.md::injected",
    "x%0A::error::injected",
    "x%0D%0A::error::injected",
    "x,line=1,title=owned",
    "x::error::y",
    "a:b,c%d",
    "]]></failure><testcase name='owned'>",
    "<script>&amp;\"'",
    "nul\x00bel\x07esc\x1b[31m",
    "bidi\u202eevil\u2066",
    "not xml \ufffe\uffff",
    "lone \udcff surrogate",
    "ünïcödé ✓ 🎉",
]

STATES = ("ok", "failing", "dead", "invalid", "error", "blocked", "pending")


def finding(tmp_path: Path, state: str = "dead", **kw: object) -> Finding:
    values: dict[str, object] = {
        "url": "https://example.org/deck.pdf",
        "state": state,
        "http_status": 404,
        "error": None,
        "error_class": None,
        "file": tmp_path / "posts" / "a.md",
        "line": 3,
        "post": "blog",
        "kind": "markdown-link",
        "text": "The deck",
    }
    values.update(kw)
    return Finding(**values)  # type: ignore[arg-type]


def every_state(tmp_path: Path) -> list[Finding]:
    return [
        finding(tmp_path, s, url=f"https://example.org/{s}.pdf", line=i + 1)
        for i, s in enumerate(STATES)
    ]


def hostile(tmp_path: Path) -> list[Finding]:
    """Every hostile string in every text field, in every state, with a file and without."""
    out = []
    for i, text in enumerate(HOSTILE):
        for state in STATES:
            for file in (tmp_path / "posts" / f"p{i}.md", None):
                out.append(
                    Finding(
                        url=f"https://example.org/{text}",
                        state=state,
                        http_status=500,
                        error=text,
                        error_class=text,
                        file=file,
                        line=i + 1,
                        post=f"https://site.example/{text}",
                        kind=text,
                        text=text,
                    )
                )
    return out


def test_finding_rejects_an_unknown_state(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown state 'gone'"):
        finding(tmp_path, "gone")


# -- JUnit ------------------------------------------------------------------------------


def run_junit(findings: object, cwd: Path) -> tuple[int, ET.Element, str]:
    out = io.StringIO()
    failures = junit(findings, out, cwd=cwd)  # type: ignore[arg-type]
    text = out.getvalue()
    return failures, ET.fromstring(text.encode("utf-8")), text


def test_junit_one_testcase_per_use_with_file_line_and_totals(tmp_path: Path) -> None:
    a, b = tmp_path / "posts" / "a.md", tmp_path / "posts" / "b.md"
    url = "https://example.org/deck.pdf"
    uses = [
        finding(tmp_path, "dead", file=a, line=3, url=url),
        finding(tmp_path, "dead", file=a, line=9, url=url),  # the same link twice in a post
        finding(tmp_path, "dead", file=b, line=1, url=url),
        finding(tmp_path, "ok", file=b, line=2, url="https://example.org/ok.png"),
    ]
    failures, root, _ = run_junit(uses, tmp_path)
    assert failures == 3
    assert root.tag == "testsuites"
    (suite,) = root
    assert suite.tag == "testsuite"
    for element in (root, suite):
        assert element.get("tests") == "4"
        assert element.get("failures") == "3"
        assert element.get("errors") == "0"
        assert element.get("skipped") == "0"
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name"), c.get("file"), c.get("line")) for c in cases] == [
        ("posts/a.md", url, "posts/a.md", "3"),
        ("posts/a.md", url, "posts/a.md", "9"),
        ("posts/b.md", url, "posts/b.md", "1"),
        ("posts/b.md", "https://example.org/ok.png", "posts/b.md", "2"),
    ]
    assert list(cases[3]) == []  # ok: a passed testcase
    failure = cases[0].find("failure")
    assert failure is not None
    assert failure.get("type") == "dead"
    assert failure.get("message") == "dead: HTTP 404"
    assert "link text: The deck" in (failure.text or "")
    assert "where: posts/a.md:3" in (failure.text or "")


def test_junit_states(tmp_path: Path) -> None:
    """Broken states fail, blocked and pending are skipped (with why), ok passes."""
    failures, root, _ = run_junit(every_state(tmp_path), tmp_path)
    suite = root[0]
    assert failures == len(BROKEN) == 4
    assert suite.get("skipped") == "2"
    children = {c.get("name", "").rsplit("/", 1)[1][:-4]: list(c) for c in suite}
    assert set(children) == set(STATES)
    assert children["ok"] == []
    for state in BROKEN:
        (child,) = children[state]
        assert (child.tag, child.get("type")) == ("failure", state)
    for state in ("blocked", "pending"):
        (child,) = children[state]
        assert child.tag == "skipped"
        assert (child.get("message") or "").startswith(f"{state}: ")
    blocked = finding(tmp_path, "blocked", http_status=None, error="refused 10.0.0.1")
    _, root, _ = run_junit([blocked], tmp_path)
    assert root[0][0][0].get("message") == "blocked: refused 10.0.0.1"


def test_junit_site_page_and_paths(tmp_path: Path) -> None:
    outside = tmp_path.parent / "elsewhere.md"
    uses = [
        finding(tmp_path, file=None, post="https://u:secret@site.example/2025/talk/", line=7),
        finding(tmp_path, file=outside),
        finding(tmp_path, file=Path("posts/relative.md"), line=None),
        finding(tmp_path, file=None, post=""),
    ]
    _, root, _ = run_junit(uses, tmp_path)
    page, out, rel, nowhere = root[0]
    assert page.get("classname") == "https://u:***@site.example/2025/talk/"
    assert page.get("file") is None
    assert page.get("line") == "7"
    assert out.get("file") == outside.as_posix()
    assert rel.get("file") == "posts/relative.md"
    assert rel.get("line") is None
    assert nowhere.get("classname") == "(no post)"


def test_junit_hostile_text_stays_well_formed(tmp_path: Path) -> None:
    findings = hostile(tmp_path)
    failures, root, text = run_junit(findings, tmp_path)
    suite = root[0]
    assert len(suite) == len(findings)  # nothing opened or closed an element
    assert failures == sum(f.state in BROKEN for f in findings)
    assert "owned" not in {c.get("name") for c in suite}
    for case in suite:
        assert case.tag == "testcase"
        name = case.get("name") or ""
        assert name.startswith("https://example.org/")
        assert "\x00" not in name and "\x1b" not in name and "\u202e" not in name
        assert not any(0xD800 <= ord(ch) <= 0xDFFF for ch in name)
    text.encode("utf-8")  # no lone surrogate reached the document
    cases = {c.get("name"): c for c in suite if c.get("file")}
    assert "https://example.org/<script>&amp;\"'" in cases
    assert "https://example.org/]]></failure><testcase name='owned'>" in cases


def test_junit_password_is_masked(tmp_path: Path) -> None:
    _, root, text = run_junit(
        [finding(tmp_path, url="https://me:hunter2@example.org/a.pdf")], tmp_path
    )
    assert root[0][0].get("name") == "https://me:***@example.org/a.pdf"
    assert "hunter2" not in text


def test_junit_needs_two_passes(tmp_path: Path) -> None:
    """A one-shot iterator is refused; a factory is called once per pass."""
    items = every_state(tmp_path)
    with pytest.raises(TypeError, match="twice"):
        junit(iter(items), io.StringIO())
    with pytest.raises(TypeError, match="twice"):
        junit((f for f in items), io.StringIO())
    calls = []

    def factory() -> Iterator[Finding]:
        calls.append(1)
        return iter(items)

    failures, root, _ = run_junit(factory, tmp_path)
    assert len(calls) == 2
    assert failures == 4
    assert len(root[0]) == len(items)


def test_junit_empty(tmp_path: Path) -> None:
    failures, root, _ = run_junit([], tmp_path)
    assert failures == 0
    assert root[0].get("tests") == "0"
    assert len(root[0]) == 0


# -- GitHub workflow commands --------------------------------------------------------------


def _unescape_data(text: str) -> str:
    # The runner's order (actions/runner ActionCommand): %0D, %0A, then %25.
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(text: str) -> str:
    return (
        text.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


def parse_command(line: str) -> tuple[str, dict[str, str], str]:
    """A workflow command as the Actions runner reads it: ``::name k=v,k=v::data``."""
    assert line.startswith("::")
    end = line.index("::", 2)
    name, _, props = line[2:end].partition(" ")
    properties = {}
    for pair in filter(None, props.split(",")):
        key, eq, value = pair.partition("=")
        assert eq, pair
        assert key not in properties, f"duplicate property {key} in {line!r}"
        properties[key] = _unescape_property(value)
    return name, properties, _unescape_data(line[end + 2 :])


def run_github(findings: list[Finding], cwd: Path) -> tuple[int, list[str]]:
    out = io.StringIO()
    errors = github(findings, out, cwd)
    text = out.getvalue()
    assert text == "" or text.endswith("\n")
    return errors, text.splitlines()


def test_escape_rules() -> None:
    assert escape_data("100%\r\n: , done") == "100%25%0D%0A: , done"
    assert escape_property("100%\r\n: , done") == "100%25%0D%0A%3A %2C done"
    assert escape_data("%0A") == "%250A"
    assert escape_property("a::b,line=1") == "a%3A%3Ab%2Cline=1"
    for text in HOSTILE:
        assert "\n" not in escape_data(text) and "\r" not in escape_data(text)
        assert _unescape_data(escape_data(text)) == text
        assert not {":", ",", "\n", "\r"} & set(escape_property(text))
        assert _unescape_property(escape_property(text)) == text


def test_github_commands_per_state(tmp_path: Path) -> None:
    errors, lines = run_github(every_state(tmp_path), tmp_path)
    assert errors == 4
    parsed = [parse_command(line) for line in lines]
    assert [(name, props["title"]) for name, props, _ in parsed] == [
        ("error", "archiver: failing link"),
        ("error", "archiver: dead link"),
        ("error", "archiver: invalid link"),
        ("error", "archiver: error link"),
        ("warning", "archiver: blocked link"),
    ]
    _, props, message = parsed[1]
    assert props == {"file": "posts/a.md", "line": "3", "title": "archiver: dead link"}
    assert message == 'https://example.org/dead.pdf is dead: HTTP 404 (link text "The deck")'
    assert lines[1] == (
        "::error file=posts/a.md,line=3,title=archiver%3A dead link::"
        'https://example.org/dead.pdf is dead: HTTP 404 (link text "The deck")'
    )


def test_github_messages_say_why(tmp_path: Path) -> None:
    uses = [
        finding(tmp_path, "error", http_status=None, error="timed out after 30 s", text=""),
        finding(tmp_path, "failing", http_status=None, error=None, text=""),
    ]
    _, lines = run_github(uses, tmp_path)
    assert (
        parse_command(lines[0])[2] == "https://example.org/deck.pdf is error: timed out after 30 s"
    )
    assert parse_command(lines[1])[2] == (
        f"https://example.org/deck.pdf is failing: the link {RULES['failing'][0]}"
    )


def test_github_hostile_strings_inject_nothing(tmp_path: Path) -> None:
    findings = hostile(tmp_path)
    reported = [f for f in findings if f.state in (*BROKEN, "blocked")]
    errors, lines = run_github(findings, tmp_path)
    assert errors == sum(f.state in BROKEN for f in findings)
    assert len(lines) == len(reported)  # one line per finding: no newline got through
    for line, f in zip(lines, reported, strict=True):
        name, props, message = parse_command(line)
        assert name == ("warning" if f.state == "blocked" else "error")
        expected = {"title"} | ({"file", "line"} if f.file is not None else set())
        assert set(props) == expected  # ",line=1" in a value added no property
        assert props["title"] == f"archiver: {f.state} link"
        if f.file is not None:
            assert props["line"] == str(f.line)
            assert props["file"] == f.file.relative_to(tmp_path).as_posix()
        assert "\n" not in message and "\r" not in message
        assert message.startswith("https://example.org/")
    # A literal %0A in a URL stays literal: escaped as %250A, decoded back to "%0A".
    assert any("x%250A::error::injected" in line for line in lines)
    assert not any("x%0A::error::injected" in line for line in lines)


def test_github_hostile_file_names(tmp_path: Path) -> None:
    names = ["a,line=1.md", "b::error::c.md", "c%0A::error::d.md", "d\n::error::e.md", "e:f,g.md"]
    uses = [finding(tmp_path, file=tmp_path / name) for name in names]
    _, lines = run_github(uses, tmp_path)
    assert len(lines) == len(names)
    for line, name in zip(lines, names, strict=True):
        _, props, _ = parse_command(line)
        assert props["file"] == name
        assert props["line"] == "3"
        assert set(props) == {"file", "line", "title"}


def test_github_file_relative_to_cwd(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "posts").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(repo, target_is_directory=True)
    elsewhere = tmp_path / "other" / "post.md"
    uses = [
        finding(tmp_path, file=repo / "posts" / "a.md"),
        finding(tmp_path, file=Path("posts/b.md")),  # relative: to cwd
        finding(tmp_path, file=Path("../other/post.md")),  # relative but outside cwd
        finding(tmp_path, file=elsewhere),
        finding(tmp_path, file=link / "posts" / "c.md"),  # under cwd through a symlink
    ]
    _, lines = run_github(uses, repo)
    files = [parse_command(line)[1]["file"] for line in lines]
    assert files == [
        "posts/a.md",
        "posts/b.md",
        elsewhere.as_posix(),
        elsewhere.as_posix(),
        "posts/c.md",
    ]
    _, lines = run_github(uses[:1], link)  # cwd through a symlink, the file not
    assert parse_command(lines[0])[1]["file"] == "posts/a.md"


def test_github_default_cwd_is_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    github([finding(tmp_path)], out)
    assert parse_command(out.getvalue())[1]["file"] == "posts/a.md"


def test_github_site_page_has_no_file(tmp_path: Path) -> None:
    page = finding(tmp_path, file=None, post="https://site.example/2025/talk/", line=12)
    _, lines = run_github([page], tmp_path)
    name, props, message = parse_command(lines[0])
    assert (name, props) == ("error", {"title": "archiver: dead link"})
    assert message.endswith(" on https://site.example/2025/talk/ line 12")
    assert lines[0].startswith("::error title=archiver%3A dead link::")


def test_github_ok_and_pending_say_nothing(tmp_path: Path) -> None:
    assert run_github([finding(tmp_path, "ok"), finding(tmp_path, "pending")], tmp_path) == (
        0,
        [],
    )


# -- SARIF ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def run_sarif(
    findings: object, root: Path, validator: jsonschema.protocols.Validator
) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    errors = sarif(findings, out, "1.2.3", root=root)  # type: ignore[arg-type]
    log = json.loads(out.getvalue())
    validator.validate(log)
    return errors, log


def test_sarif_is_valid_and_has_a_rule_per_reported_state(
    tmp_path: Path, validator: jsonschema.protocols.Validator
) -> None:
    errors, log = run_sarif(every_state(tmp_path), tmp_path, validator)
    assert errors == 4
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("archiver", "1.2.3")
    assert driver["informationUri"].startswith("https://")
    rules = [r["id"] for r in driver["rules"]]
    assert rules == [f"archiver/{s}" for s in ("failing", "dead", "invalid", "error", "blocked")]
    assert run["originalUriBaseIds"] == {SRCROOT: {"uri": tmp_path.as_uri() + "/"}}
    results = run["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [
        ("archiver/failing", "error"),
        ("archiver/dead", "error"),
        ("archiver/invalid", "error"),
        ("archiver/error", "error"),
        ("archiver/blocked", "warning"),
    ]
    for r in results:
        assert rules[r["ruleIndex"]] == r["ruleId"]
    dead = results[1]
    assert dead["locations"] == [
        {
            "physicalLocation": {
                "artifactLocation": {"uri": "posts/a.md", "uriBaseId": SRCROOT},
                "region": {"startLine": 3},
            }
        }
    ]
    assert dead["message"]["text"] == (
        'https://example.org/dead.pdf is dead: HTTP 404 (link text "The deck")'
    )
    assert dead["properties"] == {
        "url": "https://example.org/dead.pdf",
        "state": "dead",
        "httpStatus": 404,
        "kind": "markdown-link",
        "linkText": "The deck",
        "post": "blog",
    }


def test_sarif_locations(tmp_path: Path, validator: jsonschema.protocols.Validator) -> None:
    outside = tmp_path.parent / "elsewhere dir" / "p.md"
    uses = [
        finding(tmp_path, file=tmp_path / "posts" / "with space & ü.md"),
        finding(tmp_path, file=outside, line=0),
        finding(tmp_path, file=None, post="https://site.example/talk/", line=4),
        finding(tmp_path, file=None, post=""),
        finding(tmp_path, file=Path(os.fsdecode(b"posts/\xff.md"))),
    ]
    _, log = run_sarif(uses, tmp_path, validator)
    locations = [r["locations"] for r in log["runs"][0]["results"]]
    assert locations == [
        [
            {
                "physicalLocation": {
                    "artifactLocation": {
                        "uri": "posts/with%20space%20%26%20%C3%BC.md",
                        "uriBaseId": SRCROOT,
                    },
                    "region": {"startLine": 3},
                }
            }
        ],
        [{"physicalLocation": {"artifactLocation": {"uri": outside.as_uri()}}}],
        [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": "https://site.example/talk/"},
                    "region": {"startLine": 4},
                }
            }
        ],
        [],
        [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": "posts/%FF.md", "uriBaseId": SRCROOT},
                    "region": {"startLine": 3},
                }
            }
        ],
    ]


def test_sarif_hostile_strings_stay_valid(
    tmp_path: Path, validator: jsonschema.protocols.Validator
) -> None:
    findings = hostile(tmp_path)
    errors, log = run_sarif(findings, tmp_path, validator)
    results = log["runs"][0]["results"]
    assert len(results) == sum(f.state in (*BROKEN, "blocked") for f in findings)
    assert errors == sum(f.state in BROKEN for f in findings)
    for r in results:
        text = r["message"]["text"]
        assert not any(ord(ch) < 0x20 or 0xD800 <= ord(ch) <= 0xDFFF for ch in text)
        assert "\u202e" not in text


def test_sarif_empty_and_root_directory(validator: jsonschema.protocols.Validator) -> None:
    errors, log = run_sarif([], Path("/"), validator)
    assert errors == 0
    run = log["runs"][0]
    assert run["results"] == []
    assert run["originalUriBaseIds"][SRCROOT]["uri"] == "file:///"


# -- Streaming -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["junit", "github", "sarif"])
def test_writers_stream(tmp_path: Path, name: str) -> None:
    """Output is written while findings are still being produced: no whole document."""
    n = 20_000
    out = io.StringIO()
    seen: list[int] = []

    def produce() -> Iterator[Finding]:
        for i in range(n):
            if i == n - 1:
                seen.append(len(out.getvalue()))
            yield finding(tmp_path, "dead", line=i + 1)

    if name == "junit":
        junit(produce, out, cwd=tmp_path)
    elif name == "github":
        github(produce(), out, tmp_path)
    else:
        sarif(produce(), out, "0", root=tmp_path)
    assert seen[-1] > len(out.getvalue()) // 2  # most of it was out before the last finding


def test_sarif_schema_is_enforced(validator: jsonschema.protocols.Validator) -> None:
    """The fixture really is the schema: a log it must refuse is refused."""
    out = io.StringIO()
    sarif([], out, "1.0")
    log = json.loads(out.getvalue())
    validator.validate(log)
    bad = {**log, "version": "2.0.0"}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(bad)
    log["runs"][0]["results"] = [{"message": {"text": "x"}, "level": "fatal"}]
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(log)


def test_junit_writes_to_any_text_writer(tmp_path: Path) -> None:
    """A stream that is only ``write(str)`` (no io.TextIOBase) gets text, not bytes."""

    class Writer:
        def __init__(self) -> None:
            self.parts: list[str] = []

        def write(self, text: str) -> int:
            assert isinstance(text, str)
            self.parts.append(text)
            return len(text)

    writer = Writer()
    assert junit(every_state(tmp_path), writer, cwd=tmp_path) == 4  # type: ignore[arg-type]
    root = ET.fromstring("".join(writer.parts).encode("utf-8"))
    assert len(root[0]) == len(STATES)
