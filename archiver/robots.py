"""robots.txt: which pages of a site discovery may fetch.

Owns the reading of one origin's robots.txt into a yes/no per URL, following
RFC 9309 where the answer depends on how the file was served: a 4xx (no file)
allows everything, while a server error or no answer at all disallows
everything for this run, because a site that is down must not be taken as a
site without rules. Pure: the caller fetches the file. Only page discovery asks
this module; the assets a post links to are checked whatever robots.txt says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

__all__ = ["Robots", "origin", "robots_url"]


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased: robots.txt applies per origin."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), "", "", ""))


def robots_url(url: str) -> str:
    """Where the robots.txt that governs ``url`` lives."""
    return origin(url) + "/robots.txt"


@dataclass(frozen=True)
class Robots:
    """The rules of one origin; ``why`` says where a blanket answer came from."""

    parser: RobotFileParser | None = field(default=None, compare=False)
    allow_all: bool = True
    why: str = ""

    @classmethod
    def parse(cls, text: str) -> Robots:
        """Rules from the text of a robots.txt served with a 2xx."""
        parser = RobotFileParser()
        parser.parse(text.splitlines())
        return cls(parser=parser, allow_all=False)

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
        if self.parser is None:
            return self.allow_all
        return self.parser.can_fetch(user_agent, url)
