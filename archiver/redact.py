"""What archiver shows of URLs and server-supplied text in what it publishes.

Owns three small transforms: ``mask_url`` hides a URL's password (``user:***@``),
``clean_text`` drops control characters a server or a post could use to rewrite a
terminal or a page (ANSI escapes, CR/LF, bidi overrides), and ``public_url`` is the
form of a URL the mirror's manifest may publish (no userinfo, the query as its
hash). Pure functions on strings: never parses more of a URL than it must, never
raises for a malformed one.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["clean_text", "mask_url", "public_url", "shown_url", "url_sha256"]

# C0 controls, DEL, C1 controls (NEL included), and the invisible characters that reorder
# or break displayed text: bidi embeddings, overrides and isolates, line and paragraph
# separators. Whitespace controls become a space so words stay apart; the rest go.
_SPACE_LIKE = "\t\n\v\f\r\x85\u2028\u2029"
_CONTROLS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
# scheme "://" then the authority, which ends at the first / ? or #.
_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)(.*)\Z", re.DOTALL)


def clean_text(text: str) -> str:
    """``text`` without control characters: whitespace ones become a space."""
    if not _CONTROLS.search(text):
        return text
    return _CONTROLS.sub(lambda m: " " if m.group() in _SPACE_LIKE else "", text)


def _split_authority(url: str) -> tuple[str, str, str, str] | None:
    """(scheme://, userinfo or "", host[:port], rest) of a URL with an authority."""
    m = _AUTHORITY.match(url)
    if m is None:
        return None
    userinfo, at, hostport = m.group(2).rpartition("@")
    return m.group(1), userinfo if at else "", hostport, m.group(3)


def mask_url(url: str) -> str:
    """The URL with its password, if any, shown as ``***``: ``https://user:***@host/``."""
    parts = _split_authority(url)
    if parts is None or ":" not in parts[1]:
        return url
    scheme, userinfo, hostport, rest = parts
    return f"{scheme}{userinfo.partition(':')[0]}:***@{hostport}{rest}"


def shown_url(url: str) -> str:
    """A URL as a text report shows it: password masked, control characters dropped."""
    return clean_text(mask_url(url))


def url_sha256(text: str) -> str:
    """The hex SHA-256 of a URL (or a query) as UTF-8; lone surrogates survive."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def public_url(url: str) -> str:
    """The URL without userinfo and with its query replaced by ``?sha256-<hex>``.

    What the mirror publishes as a manifest key: a token in the userinfo or the query
    stays out of it, while two URLs that differ in their query keep different keys.
    The fragment (never sent to a server) is dropped.
    """
    scheme, _, hostport, rest = _split_authority(url) or ("", "", "", url)
    rest = rest.partition("#")[0]
    path, q, query = rest.partition("?")
    tail = f"?sha256-{url_sha256(query)}" if q else ""
    return f"{scheme}{hostport}{path}{tail}"
