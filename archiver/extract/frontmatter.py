"""Front matter: YAML ``---`` or TOML ``+++`` at the top of a Markdown post, with its bounds.

A string field is a reference when it is an asset URL (or names one under an image-like
key such as ``cover``); a field holding Markdown links is scanned by the Markdown reader,
which passes its inline scanner in. Front matter that is nested too deeply, expands YAML
aliases past YAML_ALIAS_BUDGET nodes or does not parse yields a warning and no references;
the body is read all the same. PyYAML is imported only for a post that has YAML.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from archiver.extract.document import Document
from archiver.extract.urls import ASSET_EXTENSIONS, SCHEME, extension, is_asset_url

if TYPE_CHECKING:
    import yaml

__all__ = ["FRONT_MATTER_MAX_DEPTH", "YAML_ALIAS_BUDGET", "ScanInline", "read"]

# Front matter past these bounds is treated as front matter that does not parse.
FRONT_MATTER_MAX_DEPTH = 64
"""Deepest nesting of lists and tables front matter may have (real posts use under 5)."""
YAML_ALIAS_BUDGET = 10_000
"""How many nodes YAML aliases may add to the document as written ("billion laughs")."""


class ScanInline(Protocol):
    """The Markdown inline scanner, for field values that hold Markdown or HTML."""

    def __call__(
        self, start: int, end: int, *, kind: str | None = None, image: bool = False
    ) -> None: ...


_IMAGE_KEY_WORDS = frozenset(
    {
        "avatar",
        "background",
        "banner",
        "cover",
        "hero",
        "icon",
        "image",
        "images",
        "img",
        "logo",
        "photo",
        "picture",
        "poster",
        "screenshot",
        "slide",
        "slides",
        "thumb",
        "thumbnail",
    }
)
_KEY_SPLIT = re.compile(r"[^a-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


def _is_image_key(key: str) -> bool:
    """A front-matter field whose value is shown as an image (``cover``, ``og_image``, ...)."""
    return any(word.lower() in _IMAGE_KEY_WORDS for word in _KEY_SPLIT.split(key) if word)


def read(doc: Document, scan_inline: ScanInline) -> int:
    """Extracts front-matter references; returns the offset where the body starts."""
    text = doc.text
    offset = 1 if text.startswith("\ufeff") else 0
    content_start = doc.line_starts[1] if len(doc.line_starts) > 1 else len(text)
    fence = text[offset:content_start].rstrip("\r\n").rstrip(" \t")
    if fence not in ("---", "+++"):
        return 0
    closing = re.compile(
        r"^(?:---|\.\.\.)[ \t]*\r?$" if fence == "---" else r"^\+\+\+[ \t]*\r?$", re.MULTILINE
    )
    close = closing.search(text, content_start)
    if close is None:
        doc.warn(offset, f"front matter opened with {fence!r} is never closed; read as Markdown")
        return 0
    content_end = close.start()
    body_start = close.end()
    if body_start < len(text) and text[body_start] == "\r":
        body_start += 1
    if body_start < len(text) and text[body_start] == "\n":
        body_start += 1
    if fence == "---":
        _read_yaml(doc, scan_inline, content_start, content_end)
    else:
        _read_toml(doc, scan_inline, content_start, content_end)
    return body_start


def _read_yaml(doc: Document, scan_inline: ScanInline, start: int, end: int) -> None:
    import yaml  # only posts with YAML front matter pay for PyYAML's import

    source = doc.text[start:end]
    try:
        over = _yaml_over_budget(source)
        if over is not None:
            doc.warn(start, f"front matter {over}; its links are skipped")
            return
        node = yaml.compose(source, Loader=_yaml_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = start + (mark.index if mark is not None else 0)
        # Hugo's YAML reader accepts trailing tabs that PyYAML rejects; blanking
        # them keeps every offset.
        lenient = re.sub(r"[ \t]+$", lambda m: " " * len(m.group()), source, flags=re.M)
        try:
            over = _yaml_over_budget(lenient)
            if over is not None:
                doc.warn(start, f"front matter {over}; its links are skipped")
                return
            node = yaml.compose(lenient, Loader=_yaml_loader())
        except yaml.YAMLError:
            # No guessing at fields: a line-by-line reading of broken YAML turned
            # `cover: [https://...` under an unclosed quote into a bogus file: link.
            doc.warn(
                where,
                f"front matter is not valid YAML ({_first_line(exc)}); no links read from it",
            )
            return
        doc.warn(
            where,
            f"front matter is not valid YAML ({_first_line(exc)}); "
            "read after blanking trailing whitespace",
        )
    if node is not None:
        for key, scalar in _yaml_strings(node, ""):
            s = start + scalar.start_mark.index
            e = start + scalar.end_mark.index
            if scalar.style in ('"', "'") and e - s >= 2:
                s, e = s + 1, e - 1
            _value(doc, scan_inline, key, scalar.value, s, e)


def _read_toml(doc: Document, scan_inline: ScanInline, start: int, end: int) -> None:
    source = doc.text[start:end]
    try:
        data = tomllib.loads(source)
        if _nesting(data) > FRONT_MATTER_MAX_DEPTH:
            raise RecursionError
    except RecursionError:
        # tomllib recurses once per level; past Python's limit it raises this.
        doc.warn(start, f"front matter {_TOO_DEEP}; its links are skipped")
        return
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line_offset = int(m.group(1)) - 1 if m else 0
        where = doc.line_starts[min(doc.line_of(start) - 1 + line_offset, len(doc.line_starts) - 1)]
        doc.warn(where, f"front matter is not valid TOML ({exc}); no links read from it")
        return
    cursor = start
    for key, value in _toml_strings(data, ""):
        found = doc.text.find(value, cursor, end)
        if found < 0:
            found = doc.text.find(value, start, end)
        if found < 0:
            if _front_matter_candidate(key, value.strip()):
                doc.warn(start, f"front-matter value of {key!r} could not be located")
            continue
        cursor = found + len(value)
        _value(doc, scan_inline, key, value, found, found + len(value))


def _value(
    doc: Document, scan_inline: ScanInline, key: str, value: str, start: int, end: int
) -> None:
    """Emits a front-matter string if it is an asset URL or holds Markdown links."""
    stripped = value.strip()
    if not stripped:
        return
    kind = f"front-matter:{key}"
    image = _is_image_key(key)
    if "](" in stripped or "<" in stripped:
        scan_inline(start, end, kind=kind, image=image)
        return
    if not _front_matter_candidate(key, stripped):
        return
    raw = doc.text[start:end]
    if raw.strip() != stripped:
        found = raw.find(stripped)
        if found < 0:
            doc.warn(start, f"front-matter value of {key!r} could not be located")
            return
        start += found
        end = start + len(stripped)
    doc.emit(start, end, kind, "", image=image, markdown=False)


@functools.cache
def _yaml_loader() -> type[yaml.SafeLoader]:
    import yaml

    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return loader


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split("\n")[0].split())


def _front_matter_candidate(key: str, value: str) -> bool:
    """Whether a front-matter string could be an asset URL at all."""
    if any(c.isspace() for c in value):
        # "Talk about a.png" is a title; "https://x/EnvoyCon UDPA 2019.pdf" is a URL.
        looks_like_url = SCHEME.match(value) is not None or value.startswith(("/", "./", "../"))
        return looks_like_url and extension(value) in ASSET_EXTENSIONS
    if is_asset_url(value):
        return True
    # An image-like key makes an extension-less URL an image, but not a bare word
    # such as ``icon: rocket`` (an icon-font name).
    return _is_image_key(key) and ("://" in value or value.startswith("//") or "/" in value)


def _yaml_strings(node: yaml.Node, key: str) -> Iterator[tuple[str, yaml.ScalarNode]]:
    """String scalars of a composed YAML document with their nearest mapping key."""
    import yaml

    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:str":
            yield key, node
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _yaml_strings(item, key)
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            name = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else key
            yield from _yaml_strings(value_node, name)


_TOO_DEEP = f"is nested deeper than {FRONT_MATTER_MAX_DEPTH} levels"


def _yaml_over_budget(source: str) -> str | None:
    """Why YAML front matter is refused before it is composed, or None when it may be.

    One pass over the parser's events (libyaml's parser keeps its own stack, so it does
    not recurse): the nesting depth as a loader would build it (aliases included) and
    how many nodes aliases would add. Composing only shares nodes, but whatever walks
    the result (PyYAML's constructor, ``_yaml_strings``) expands every alias.
    """
    import yaml

    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, height) once complete
    stack: list[list[int | str | None]] = []  # open collections: [anchor, nodes, height]
    added = 0

    def done(anchor: str | None, nodes: int, height: int) -> str | None:
        if anchor is not None:
            sizes[anchor] = (nodes, height)
        if len(stack) + height > FRONT_MATTER_MAX_DEPTH:
            return _TOO_DEEP
        if stack:
            parent = stack[-1]
            parent[1] = int(parent[1] or 0) + nodes
            parent[2] = max(int(parent[2] or 0), height + 1)
        return None

    try:
        events = list(yaml.parse(source, Loader=_yaml_loader()))
    except yaml.YAMLError as exc:
        # libyaml has a depth limit of its own, met while scanning ahead in flow style.
        if "maximum nesting depth" in str(exc):
            return _TOO_DEEP
        raise
    for event in events:
        why: str | None = None
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1, 1])
            why = _TOO_DEEP if len(stack) > FRONT_MATTER_MAX_DEPTH else None
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, nodes, height = stack.pop()
            why = done(
                anchor if isinstance(anchor, str) else None, int(nodes or 0), int(height or 0)
            )
        elif isinstance(event, yaml.ScalarEvent):
            why = done(event.anchor, 1, 0)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:  # unknown, or an alias inside its own anchor
                return "has a recursive YAML alias"
            nodes, height = sizes[event.anchor]
            added += nodes
            if added > YAML_ALIAS_BUDGET:
                return f"expands YAML aliases past {YAML_ALIAS_BUDGET} nodes"
            why = done(None, nodes, height)
        if why is not None:
            return why
    return None


def _nesting(value: object) -> int:
    """How deeply lists and tables nest in parsed TOML (iterative: no recursion limit)."""
    deepest = 0
    todo: list[tuple[object, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth + 1)
            if deepest > FRONT_MATTER_MAX_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            todo.extend((child, depth + 1) for child in children)
    return deepest


def _toml_strings(value: object, key: str) -> Iterator[tuple[str, str]]:
    """String values of parsed TOML with their nearest key, in document order."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, list):
        for item in value:
            yield from _toml_strings(item, key)
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _toml_strings(item, str(name))
