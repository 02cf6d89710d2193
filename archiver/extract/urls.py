"""What a URL in a post is: its canonical form, and whether it names a PDF or an image.

Also the decoding a URL as written needs first (HTML entities, Markdown escapes).
Pure functions on strings: no parsing of documents, no network.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = [
    "ASSET_EXTENSIONS",
    "FETCHABLE_SCHEMES",
    "IMAGE_EXTENSIONS",
    "KNOWN_IMAGE_CDNS",
    "SCHEME",
    "decode_entities",
    "decode_markdown",
    "extension",
    "is_asset_url",
    "normalize_fetchable",
    "normalize_url",
]

IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "bmp", "ico"})
ASSET_EXTENSIONS = IMAGE_EXTENSIONS | {"pdf"}

KNOWN_IMAGE_CDNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # Kept deliberately short: each entry is an image service whose URLs carry no
    # extension and that the corpus uses thousands of times. Matched against
    # "host + path + ?query" of the URL, lower-cased.
    ("Alipay/AntV afts image service", re.compile(r"^[^/]*/(?:.*/)?afts/img/")),
    ("juejin (ByteDance) image CDN", re.compile(r"^[^/]*byteimg\.com/.*~tplv-[^/?]*image")),
    ("WeChat article images", re.compile(r"^mmbiz\.qpic\.cn/.*[?&]wx_fmt=")),
    ("GitHub avatars", re.compile(r"^avatars\.githubusercontent\.com/")),
)


SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST_OK = re.compile(r"[a-z0-9._~!$&'()*+,;=%\-]+|\[[0-9a-f:.]+\]")
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
# ``file:`` is kept so that the local-file rule (``localfiles``) can refuse it where it
# points outside the source, rather than it vanishing silently.
FETCHABLE_SCHEMES = frozenset({"http", "https", "file"})


def _quote_part(part: str, safe: str) -> str:
    """Percent-encodes spaces and non-ASCII, leaving existing ``%XX`` escapes alone."""
    return quote(_STRAY_PERCENT.sub("%25", part), safe=safe)


def normalize_url(url: str) -> str:
    """Canonical form of an absolute URL, so the same file is fetched once.

    Lower-cases scheme and host, drops the default port and the fragment,
    percent-encodes spaces and non-ASCII, and gives protocol-relative URLs https.
    Entities and Markdown escapes must already be decoded. Raises ValueError when
    the URL cannot be parsed or is not absolute.
    """
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        raise ValueError(f"not an absolute URL: {url!r}")
    host = parts.hostname or ""
    port = parts.port  # raises ValueError on a non-numeric port
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"invalid host name in {url!r}") from exc
    if ":" in host:
        host = f"[{host}]"
    if not _HOST_OK.fullmatch(host):
        raise ValueError(f"invalid host name in {url!r}")
    netloc = host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{host}:{port}"
    if parts.username is not None:
        userinfo = _quote_part(parts.username, "%!$&'()*+,;=-._~")
        if parts.password is not None:
            userinfo += ":" + _quote_part(parts.password, "%!$&'()*+,;=-._~")
        netloc = f"{userinfo}@{netloc}"
    path = _quote_part(parts.path, _PATH_SAFE) or "/"
    query = _quote_part(parts.query, _QUERY_SAFE)
    return urlunsplit((scheme, netloc, path, query, ""))


def normalize_fetchable(url: str) -> str:
    """``normalize_url``, and for ``file:`` URLs (which have no host) ``file://`` + path."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "file":
        return normalize_url(url)
    host = (parts.hostname or "").lower()
    netloc = "" if host in ("", "localhost") else host
    return urlunsplit(("file", netloc, _quote_part(parts.path, _PATH_SAFE) or "/", "", ""))


def extension(path: str) -> str:
    """Lower-case extension of the last path segment ("" when it has none)."""
    segment = path.rsplit("/", 1)[-1]
    dot = segment.rfind(".")
    return segment[dot + 1 :].lower() if dot >= 0 else ""


def is_asset_url(url: str) -> bool:
    """True when the URL alone says PDF or image: by extension or a known image CDN."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    if extension(unquote(parts.path)) in ASSET_EXTENSIONS:
        return True
    if not parts.netloc:
        return False
    probe = (parts.netloc + parts.path + ("?" + parts.query if parts.query else "")).lower()
    return any(pattern.search(probe) for _, pattern in KNOWN_IMAGE_CDNS)


def decode_entities(value: str) -> str:
    """Decodes ``&name;`` and ``&#..;`` references; ``&`` without ``;`` stays literal."""
    if "&" not in value:
        return value
    return _ENTITY.sub(lambda m: html.unescape(m.group()), value)


def decode_markdown(value: str) -> str:
    """Decodes what CommonMark decodes in a link destination: escapes and entities."""
    if "\\" in value:
        value = _MD_ESCAPE.sub(r"\1", value)
    return decode_entities(value)
