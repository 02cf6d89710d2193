"""Reports a CI reads: JUnit XML, GitHub workflow commands and SARIF 2.1.0.

Owns how one use of a link (a ``Finding``: a URL at a line of a post, with the state
its URL is in) is written for a CI system, so that a pull request that adds a dead link
shows it on the changed line. Each writer streams: it writes finding by finding and
never builds the whole document, so a million findings cost the memory of one.

What each state becomes:

======== ================== ==================== =====================
state    ``junit``          ``github``           ``sarif``
======== ================== ==================== =====================
ok       passed testcase    nothing              nothing
failing  ``<failure>``      ``::error``          result, level error
dead     ``<failure>``      ``::error``          result, level error
invalid  ``<failure>``      ``::error``          result, level error
error    ``<failure>``      ``::error``          result, level error
blocked  ``<skipped>``      ``::warning``        result, level warning
pending  ``<skipped>``      nothing              nothing
======== ================== ==================== =====================

``failing`` is an error although not yet confirmed: in CI a fresh database can never
confirm a link dead, and a link that 404s now is what a reviewer wants to see.
``blocked`` was never asked (a guard refused it; ``--fail-on any`` ignores it too), so
it is not a failure, but it is shown, as ``check`` warns about it: a link archiver
refuses to check is something to look at. ``pending`` was never checked: JUnit counts
it as skipped, the others say nothing.

Every format shows URLs as text reports do (password masked, control characters
dropped, ``archiver.redact``); escaping is each format's own (XML by
``xml.sax.saxutils``, JSON by ``json``, workflow commands by ``escape_data`` and
``escape_property``), so no URL, link text or server message can end a command, open
an element or inject a line.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote
from xml.sax.saxutils import XMLGenerator
from xml.sax.xmlreader import AttributesImpl

from archiver.records import UrlState
from archiver.redact import clean_text, shown_url

__all__ = [
    "BROKEN",
    "INFORMATION_URI",
    "RULES",
    "SARIF_SCHEMA",
    "Finding",
    "Findings",
    "escape_data",
    "escape_property",
    "github",
    "junit",
    "sarif",
]

#: States reported as errors (JUnit failures) by every format.
BROKEN = ("failing", "dead", "invalid", "error")

#: The project's address, as the User-Agent names it (SARIF ``informationUri``).
INFORMATION_URI = "https://github.com/archiver"

#: The ``$schema`` of the SARIF log: the OASIS 2.1.0 schema (with its errata).
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)

#: SARIF's ``uriBaseId`` for file locations: the root the paths are relative to.
SRCROOT = "%SRCROOT%"

#: state -> (what it means, completing "The link ...", and what to do next): the SARIF
#: rules, and the message when a finding has no error or status of its own.
RULES: dict[str, tuple[str, str]] = {
    "failing": (
        "fails permanently (404, 410, unknown host) but is not yet confirmed dead",
        "Fix or replace the link if it moved; archiver confirms a link dead only after"
        " confirm_runs failing runs, confirm_after apart.",
    ),
    "dead": (
        "failed permanently on consecutive runs: it is confirmed dead",
        "Replace or remove the link; if archiver holds a copy, 'archiver restore' can"
        " publish it (--mirror) and point the link at it (--rewrite).",
    ),
    "invalid": (
        "answers with the wrong bytes (an HTML page for a PDF, a non-image for an image)",
        "Fix the link; if archiver holds a good copy, 'archiver restore' can publish it"
        " and point the link at it.",
    ),
    "error": (
        "still fails after retries with a transient failure (5xx, 429, timeout, reset)",
        "Nothing yet: a transient failure is checked again on the next run and never"
        " confirms a link dead by itself.",
    ),
    "blocked": (
        "was never asked: a guard refused it",
        "If the address is meant to be fetched, allow it (fetch.allow_addresses or"
        " --allow-address); error_class says which guard refused it.",
    ),
}

_LEVEL = {state: "error" for state in BROKEN} | {"blocked": "warning"}
_RULE_INDEX = {state: i for i, state in enumerate(RULES)}
_STATES = frozenset(s.value for s in UrlState)


@dataclass(frozen=True, slots=True)
class Finding:
    """One use of a link (a URL at a line of a post) and the state its URL is in.

    The writers' whole input, so that they depend on no report row or database.
    """

    #: The URL as written in the post.
    url: str
    #: ok, failing, dead, invalid, error, blocked or pending.
    state: str
    http_status: int | None = None
    #: One line of what went wrong (server-supplied: shown cleaned).
    error: str | None = None
    error_class: str | None = None
    #: The post's file, or None for a page of a site (then ``post`` is its URL).
    file: Path | None = None
    line: int | None = None
    #: The post as people name it: a site page's URL, else the source's label or path.
    post: str = ""
    #: The reference's syntactic form ("markdown-image", "html-img", ...).
    kind: str = ""
    #: The link text (or alt text), "" when there is none.
    text: str = ""

    def __post_init__(self) -> None:
        if self.state not in _STATES:
            raise ValueError(f"unknown state {self.state!r}")


#: What ``junit`` takes: a callable returning a fresh iterable (it reads twice, to put
#: the totals first), or a collection. ``github`` and ``sarif`` take any iterable.
Findings = Callable[[], Iterable[Finding]] | Iterable[Finding]


def _passes(findings: Findings) -> Callable[[], Iterable[Finding]]:
    """A factory for the two passes ``junit`` needs; refuses a one-shot iterator."""
    if callable(findings):
        return findings
    if iter(findings) is findings:
        raise TypeError(
            "junit reads the findings twice (totals first): give a collection, or a"
            " callable that returns a fresh iterable, not an iterator"
        )
    return lambda: findings


def _utf8(text: str) -> str:
    """``text`` encodable as UTF-8: lone surrogates (undecodable file names) become U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def _shown(text: str) -> str:
    return _utf8(clean_text(text))


def _url(finding: Finding) -> str:
    return _utf8(shown_url(finding.url))


def _post(finding: Finding) -> str:
    """The post's name (a site page's URL: its password masked)."""
    return _utf8(shown_url(finding.post)) if finding.post else "(no post)"


def _detail(finding: Finding) -> str:
    """Why the link is in its state, on one line: the error, else the status, else the meaning."""
    if finding.error:
        return _shown(finding.error)
    if finding.http_status is not None:
        return f"HTTP {finding.http_status}"
    if finding.state in RULES:
        return f"the link {RULES[finding.state][0]}"
    return "not checked yet" if finding.state == "pending" else finding.state


def _message(finding: Finding, url: str, *, where: bool) -> str:
    """``URL is STATE: detail``, with the link text, and the page when there is no file."""
    parts = [f"{url} is {finding.state}: {_detail(finding)}"]
    if finding.text:
        parts.append(f' (link text "{_shown(finding.text)}")')
    if where and finding.file is None:
        at = f" line {finding.line}" if _line(finding) else ""
        parts.append(f" on {_post(finding)}{at}")
    return "".join(parts)


def _line(finding: Finding) -> int | None:
    """The line, when it is one a viewer can point at (1 or more)."""
    return finding.line if finding.line is not None and finding.line >= 1 else None


class _Paths:
    """File paths as a CI shows them: relative to ``cwd`` when under it, else absolute.

    Cached per file: a post has many uses and a million findings few posts.
    """

    def __init__(self, cwd: Path | None) -> None:
        self.cwd = Path(os.path.abspath(cwd if cwd is not None else Path.cwd()))
        self._real = Path(os.path.realpath(self.cwd))
        self._cache: dict[Path, tuple[Path, bool]] = {}
        self._shown: dict[Path, str] = {}

    def locate(self, file: Path) -> tuple[Path, bool]:
        """(path relative to cwd, True) when the file is under cwd, else (absolute, False)."""
        hit = self._cache.get(file)
        if hit is None:
            hit = self._cache[file] = self._locate(file)
        return hit

    def _locate(self, file: Path) -> tuple[Path, bool]:
        absolute = Path(os.path.normpath(self.cwd / file))  # an absolute file stays itself
        for path, root in ((absolute, self.cwd), (Path(os.path.realpath(absolute)), self._real)):
            if path.is_relative_to(root):
                return path.relative_to(root), True
        return absolute, False

    def shown(self, file: Path) -> str:
        """The path as text (``/`` separators)."""
        text = self._shown.get(file)
        if text is None:
            text = self._shown[file] = _utf8(self.locate(file)[0].as_posix())
        return text


# -- JUnit ------------------------------------------------------------------------------

# Characters XML 1.0 cannot hold at all, even escaped: C0 controls but tab/LF/CR,
# surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


class _Chunks(io.TextIOBase):
    """What XMLGenerator writes to: any text stream, fed in chunks of some KiB.

    XMLGenerator makes several tiny writes per element; a million testcases would be
    tens of millions of calls on the caller's stream. It also treats a stream that is
    not an ``io.TextIOBase`` as binary, which this class is not.
    """

    #: Pieces held before they are written: a testcase is about ten, of ~20 characters.
    LIMIT = 4096

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self._out = out
        self._parts: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        parts = self._parts
        parts.append(text)
        if len(parts) >= self.LIMIT:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self._parts:
            self._out.write("".join(self._parts))
            self._parts.clear()


def _attrs(values: dict[str, str]) -> AttributesImpl[str]:
    return AttributesImpl(values)


def junit(findings: Findings, out: TextIO, *, cwd: Path | None = None) -> int:
    """Write JUnit XML: one testcase per use (post x link); return how many failed.

    ``classname`` is the post's file (relative to ``cwd`` when under it) or, for a site
    page, its URL; ``name`` is the URL; ``file`` and ``line`` say where the link is.
    Broken states get a ``<failure type=STATE>``, ``blocked`` and ``pending`` a
    ``<skipped>``. Two passes: the suite's totals come first. The document declares
    UTF-8: ``out`` should encode as UTF-8 (``sys.stdout`` in a UTF-8 locale, a file
    opened with ``encoding="utf-8"``).
    """
    passes = _passes(findings)
    tests = failures = skipped = 0
    for f in passes():
        tests += 1
        if f.state in BROKEN:
            failures += 1
        elif f.state in ("blocked", "pending"):
            skipped += 1
    totals = {
        "tests": str(tests),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
    }
    paths = _Paths(cwd)
    chunks = _Chunks(out)
    xml = XMLGenerator(chunks, encoding="utf-8", short_empty_elements=True)
    xml.startDocument()
    xml.startElement("testsuites", _attrs({"name": "archiver", **totals}))
    xml.characters("\n  ")
    xml.startElement("testsuite", _attrs({"name": "archiver links", **totals}))
    for f in passes():
        xml.characters("\n    ")
        _testcase(xml, f, paths)
    xml.characters("\n  ")
    xml.endElement("testsuite")
    xml.characters("\n")
    xml.endElement("testsuites")
    xml.characters("\n")
    xml.endDocument()
    chunks.flush()
    return failures


def _testcase(xml: XMLGenerator, f: Finding, paths: _Paths) -> None:
    attrs = {
        "classname": _xml(paths.shown(f.file) if f.file is not None else _post(f)),
        "name": _xml(_url(f)),
    }
    if f.file is not None:
        attrs["file"] = attrs["classname"]
    if (line := _line(f)) is not None:
        attrs["line"] = str(line)
    child = (
        "failure" if f.state in BROKEN else "skipped" if f.state in ("blocked", "pending") else ""
    )
    if not child:
        xml.startElement("testcase", _attrs(attrs))
        xml.endElement("testcase")
        return
    xml.startElement("testcase", _attrs(attrs))
    xml.characters("\n      ")
    detail = f"{f.state}: {_detail(f)}"
    if child == "failure":
        xml.startElement("failure", _attrs({"type": f.state, "message": _xml(detail)}))
        xml.characters(_xml(_body(f, paths)))
    else:
        xml.startElement("skipped", _attrs({"message": _xml(detail)}))
    xml.endElement(child)
    xml.characters("\n    ")
    xml.endElement("testcase")


def _body(f: Finding, paths: _Paths) -> str:
    """The failure's text: every field a reader may need, one per line."""
    where = paths.shown(f.file) if f.file is not None else _post(f)
    rows = [
        ("url", _url(f)),
        ("state", f"{f.state}: the link {RULES[f.state][0]}"),
        ("http_status", "" if f.http_status is None else str(f.http_status)),
        ("error", _shown(f.error or "")),
        ("error_class", _shown(f.error_class or "")),
        ("where", f"{where}:{f.line}" if _line(f) else where),
        ("kind", _shown(f.kind)),
        ("link text", _shown(f.text)),
        ("next step", RULES[f.state][1]),
    ]
    return "".join(f"{k}: {v}\n" for k, v in rows if v)


# -- GitHub workflow commands ------------------------------------------------------------


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF escaped (the runner decodes them)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: as ``escape_data``, and ``:`` and ``,`` too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github(findings: Iterable[Finding], out: TextIO, cwd: Path | None = None) -> int:
    """Write a GitHub workflow command per broken use; return how many were errors.

    ``::error file=F,line=N,title=T::message`` for each use in a file (``file`` relative
    to ``cwd`` when the post is under it, else absolute), ``::error title=T::message``
    for one on a site page; ``blocked`` is a ``::warning``; ``ok`` and ``pending`` say
    nothing. One pass.
    """
    paths = _Paths(cwd)
    errors = 0
    for f in findings:
        level = _LEVEL.get(f.state)
        if level is None:
            continue
        errors += level == "error"
        props = []
        if f.file is not None:
            props.append(f"file={escape_property(paths.shown(f.file))}")
            if (line := _line(f)) is not None:
                props.append(f"line={line}")
        props.append(f"title={escape_property(f'archiver: {f.state} link')}")
        message = escape_data(_message(f, _url(f), where=True))
        out.write(f"::{level} {','.join(props)}::{message}\n")
    return errors


# -- SARIF 2.1.0 -------------------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    return [
        {
            "id": f"archiver/{state}",
            "name": f"{state.capitalize()}Link",
            "shortDescription": {"text": f"{state.capitalize()} link"},
            "fullDescription": {"text": f"The link {meaning}."},
            "help": {"text": step},
            "defaultConfiguration": {"level": _LEVEL[state]},
            "properties": {"tags": ["links"]},
        }
        for state, (meaning, step) in RULES.items()
    ]


def sarif(
    findings: Iterable[Finding],
    out: TextIO,
    tool_version: str,
    *,
    root: Path | None = None,
    information_uri: str = INFORMATION_URI,
) -> int:
    """Write a SARIF 2.1.0 log with one run; return how many results are errors.

    One result per broken or blocked use; its location is the post's file relative to
    ``%SRCROOT%`` (``root``, default the current directory) when under it, else its
    ``file:`` URI, or the page's URL for a site page, with the line as ``startLine``.
    The rules are fixed (one per reported state), so the log streams in one pass:
    header, then one result at a time, then the closing brackets.
    """
    paths = _Paths(root)
    run_head = {
        "tool": {
            "driver": {
                "name": "archiver",
                "version": tool_version,
                "informationUri": information_uri,
                "rules": _rules(),
            }
        },
        "originalUriBaseIds": {SRCROOT: {"uri": _directory_uri(paths.cwd)}},
        "columnKind": "unicodeCodePoints",
    }
    head = {"$schema": SARIF_SCHEMA, "version": "2.1.0"}
    # Every piece is a json.dumps of a complete value; only the brackets around the
    # results array are written by hand, so the log streams and stays valid JSON.
    out.write(json.dumps(head)[:-1] + ', "runs": [')
    out.write(json.dumps(run_head)[:-1] + ', "results": [')
    errors = 0
    first = True
    for result in _results(findings, paths):
        errors += result["level"] == "error"
        out.write(("\n" if first else ",\n") + json.dumps(result, ensure_ascii=False))
        first = False
    out.write("\n]}]}\n")
    return errors


def _directory_uri(path: Path) -> str:
    """A directory's ``file:`` URI; SARIF wants a base URI to end with a slash."""
    uri = path.as_uri()
    return uri if uri.endswith("/") else uri + "/"


def _results(findings: Iterable[Finding], paths: _Paths) -> Iterator[dict[str, Any]]:
    artifacts: dict[Path, dict[str, str]] = {}  # per file: a post has many uses
    for f in findings:
        level = _LEVEL.get(f.state)
        if level is None:
            continue
        if f.file is None:
            artifact = {"uri": _post(f)} if f.post else None
        elif (artifact := artifacts.get(f.file)) is None:
            artifact = artifacts[f.file] = _artifact(f.file, paths)
        location: dict[str, Any] = {"artifactLocation": artifact} if artifact else {}
        if artifact and (line := _line(f)) is not None:
            location["region"] = {"startLine": line}
        url = _url(f)
        properties: dict[str, Any] = {"url": url, "state": f.state}
        if f.http_status is not None:
            properties["httpStatus"] = f.http_status
        for key, value in (
            ("errorClass", f.error_class),
            ("error", f.error),
            ("kind", f.kind),
            ("linkText", f.text),
        ):
            if value:
                properties[key] = _shown(value)
        if f.post:
            properties["post"] = _post(f)
        yield {
            "ruleId": f"archiver/{f.state}",
            "ruleIndex": _RULE_INDEX[f.state],
            "level": level,
            "message": {"text": _message(f, url, where=False)},
            "locations": [{"physicalLocation": location}] if location else [],
            "properties": properties,
        }


def _artifact(file: Path, paths: _Paths) -> dict[str, str]:
    """The file relative to %SRCROOT% when under it, else its ``file:`` URI."""
    path, under = paths.locate(file)
    if under:
        uri = quote(os.fsencode(path).replace(os.sep.encode(), b"/"))
        return {"uri": uri, "uriBaseId": SRCROOT}
    return {"uri": path.as_uri()}
