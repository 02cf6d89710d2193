"""robots.txt: which pages of a site discovery may fetch.

Owns the reading of one origin's robots.txt into a yes/no per URL, following
RFC 9309. How the file was served decides first: a 4xx (no file) allows
everything, while a server error or no answer at all disallows everything for
this run, because a site that is down must not be taken as a site without
rules. A file that was served is read as the RFC says: the group naming our
product token (all such groups merged, else the ``*`` groups) applies, the
longest matching ``allow``/``disallow`` pattern wins (``allow`` on a tie),
``*`` and a final ``$`` are wildcards, percent-encoding is normalised on both
sides, and only the first 500 KiB count. Pure: the caller fetches the file,
this module never does I/O. Only page discovery asks this module; the assets a
post links to are checked whatever robots.txt says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Robots", "origin", "robots_url"]

#: RFC 9309 section 2.5: crawlers must parse at least this much; the rest is ignored.
MAX_OCTETS = 500 * 1024

# RFC 3986 unreserved characters: %XX of one of them means the character itself.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# An escape, a stray "%", or a run of characters a URI cannot hold as they are. ``*`` and
# ``$`` count as such: in a URL they are literal, and RFC 9309 (section 2.2.3) matches them
# with ``%2A``/``%24`` in a pattern, so both sides spell them escaped.
_TO_NORMALISE = re.compile(r"%[0-9A-Fa-f]{2}|%|[^A-Za-z0-9\-._~:/?#\[\]@!&'()+,;=%]+")
_EOL = re.compile(r"\r\n|\r|\n")


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased: robots.txt applies per origin."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), "", "", ""))


def robots_url(url: str) -> str:
    """Where the robots.txt that governs ``url`` lives."""
    return origin(url) + "/robots.txt"


def _escape(match: re.Match[str]) -> str:
    text = match.group()
    if len(text) == 3 and text[0] == "%":
        char = chr(int(text[1:], 16))
        return char if char in _UNRESERVED else text.upper()
    return "".join(f"%{octet:02X}" for octet in text.encode("utf-8", "replace"))


def _normalise(text: str) -> str:
    """One spelling per octet (RFC 3986 section 6.2.2), so ``%7E`` and ``~`` compare equal."""
    return _TO_NORMALISE.sub(_escape, text)


def _product_token(user_agent: str) -> str:
    """``archiver`` from ``archiver/0.1.0 (+https://...)``, lower-cased: groups match on it."""
    words = user_agent.split("/", 1)[0].split()
    return words[0].lower() if words else ""


def _path_to_match(url: str) -> str:
    """The part of ``url`` that rules are matched against: path and query, normalised."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return _normalise(f"{path}?{parts.query}" if parts.query else path)


def _head(text: str) -> str:
    """The first ``MAX_OCTETS`` of the file, without the line the limit cuts through.

    Half a line would be a different rule (a shorter ``allow`` allows more), so it goes.
    """
    head = text[:MAX_OCTETS].encode("utf-8", "replace")[:MAX_OCTETS].decode("utf-8", "ignore")
    if len(head) == len(text) or text[len(head)] in "\r\n":
        return head
    return head[: max(head.rfind("\n"), head.rfind("\r")) + 1]


@dataclass(frozen=True)
class _Rule:
    """One ``allow``/``disallow`` line, compiled once into the literal pieces between ``*``.

    Matching pieces left to right with ``str.find`` takes time linear in the URL, where a
    backtracking regex could take exponential time on a hostile ``/a*a*a*...*b``.
    """

    allow: bool
    pieces: tuple[str, ...]  # normalised; more than one when the pattern has a ``*``
    anchored: bool  # the pattern ended in ``$``: the match must reach the end
    length: int  # octets of the normalised pattern, wildcards included: the specificity

    @classmethod
    def compile(cls, pattern: str, allow: bool) -> _Rule:
        """The rule for a non-empty pattern."""
        anchored = pattern.endswith("$")
        pieces = tuple(_normalise(p) for p in (pattern[:-1] if anchored else pattern).split("*"))
        length = sum(map(len, pieces)) + len(pieces) - 1 + anchored
        return cls(allow, pieces, anchored, length)

    def matches(self, path: str) -> bool:
        """Does the pattern match ``path`` (already normalised) from its start?"""
        pieces = self.pieces
        if not path.startswith(pieces[0]):
            return False
        if len(pieces) == 1:
            return not self.anchored or len(path) == len(pieces[0])
        pos = len(pieces[0])
        # The earliest place for each piece leaves the most room for the rest.
        for piece in pieces[1:-1]:
            found = path.find(piece, pos)
            if found < 0:
                return False
            pos = found + len(piece)
        last = pieces[-1]
        if self.anchored:
            return len(path) - len(last) >= pos and path.endswith(last)
        return path.find(last, pos) >= 0


@dataclass(frozen=True)
class _Group:
    """The merged rules of every group naming one product token, most specific first."""

    agent: str  # lower-cased product token, or ``*``
    rules: tuple[_Rule, ...]

    def allowed(self, path: str) -> bool:
        """The longest matching rule decides, ``allow`` on a tie; no match allows."""
        for rule in self.rules:
            if rule.matches(path):
                return rule.allow
        return True


def _parse_groups(text: str) -> tuple[_Group, ...]:
    """The groups of a robots.txt (RFC 9309 section 2.2), rules before any group dropped."""
    rules: dict[str, list[_Rule]] = {}
    agents: list[str] = []  # the product tokens of the group being read
    in_rules = False  # a rule came after the group's user-agent lines: the next one starts anew
    for line in _EOL.split(_head(text.removeprefix("\ufeff"))):
        key, colon, value = line.split("#", 1)[0].partition(":")
        if not colon:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "user-agent":
            if in_rules:
                agents, in_rules = [], False
            token = _product_token(value)
            if token and token not in agents:
                agents.append(token)
                # Even a group without rules is the one its crawler obeys (it allows all).
                rules.setdefault(token, [])
        elif key in ("allow", "disallow"):
            in_rules = True
            if value:  # an empty pattern matches nothing
                rule = _Rule.compile(value, allow=key == "allow")
                for agent in agents:
                    rules[agent].append(rule)
        # Anything else (sitemap, crawl-delay, ...) is not ours and leaves the group as it is.
    return tuple(
        _Group(agent, tuple(sorted(found, key=lambda r: (-r.length, not r.allow))))
        for agent, found in rules.items()
    )


@dataclass(frozen=True)
class Robots:
    """The rules of one origin; ``why`` says where a blanket answer came from."""

    groups: tuple[_Group, ...] | None = field(default=None, repr=False)  # None: no file
    allow_all: bool = True
    why: str = ""

    @classmethod
    def parse(cls, text: str) -> Robots:
        """Rules from the text of a robots.txt served with a 2xx."""
        return cls(groups=_parse_groups(text), allow_all=False)

    @classmethod
    def from_status(cls, status: int | None, error: str | None = None) -> Robots:
        """The blanket answer when there is no file to read (RFC 9309, section 2.3.1)."""
        if status is not None and 400 <= status < 500:
            return cls(allow_all=True, why=f"robots.txt answered HTTP {status}: no rules")
        return cls(
            allow_all=False,
            why=f"robots.txt could not be fetched ({error or f'HTTP {status}'})",
        )

    def allowed(self, url: str, user_agent: str) -> bool:
        """May a crawler calling itself ``user_agent`` fetch ``url``?"""
        path = _path_to_match(url)
        if path == "/robots.txt":  # RFC 9309 section 2.2.2: always allowed
            return True
        if self.groups is None:
            return self.allow_all
        token = _product_token(user_agent)
        fallback = None
        for group in self.groups:
            if group.agent == token:
                return group.allowed(path)
            if group.agent == "*":
                fallback = group
        return fallback is None or fallback.allowed(path)
