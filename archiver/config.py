"""Reading ``config.toml`` into typed settings.

Owns the meaning of every configuration key and its default. Relative paths
in a config file are relative to that file, so a cron job can run from any
directory. A wrong key or value is a ``ConfigError`` naming the key; the file
is never modified here.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from archiver.db.location import Location, directory_beside, parse_location
from archiver.errors import ConfigError
from archiver.net.guard import AddressGuard
from archiver.net.rules import UrlRules, compile_pattern
from archiver.net.settings import (
    TRANSPORTS,
    USER_AGENT,
    FetchConfig,
    HostHeaders,
    StatusRanges,
    TransportChoice,
    sendable,
)

__all__ = [
    "DEFAULT_EXTENSIONS",
    "MAX_CONCURRENCY",
    "MAX_PER_HOST",
    "USER_AGENT",
    "Config",
    "FetchConfig",
    "Source",
    "StoreSettings",
    "TransportChoice",
    "WorkerSettings",
    "finite_option",
    "load_config",
    "override_fetch",
    "parse_accept",
    "parse_config",
    "parse_duration",
    "parse_extensions",
    "sendable",
    "with_url_options",
]

# Upper bounds on requests in flight: enough for any archive (the scheduler keeps twice
# as many rows ready), and far below what would exhaust file descriptors or a host.
MAX_CONCURRENCY = 1024
MAX_PER_HOST = 256

#: The file extensions a source folder's posts have, when neither the source's
#: ``extensions`` key nor ``--extensions`` says otherwise.
DEFAULT_EXTENSIONS = ("md", "markdown", "mdx", "html", "htm")


@dataclass(frozen=True)
class Source:
    """One place posts come from: a local folder/file (``path``) or a URL (``url``)."""

    path: Path | None = None
    url: str | None = None
    base_url: str | None = None
    static_roots: tuple[Path, ...] = ()
    kind: str | None = None
    # Which files of a folder are posts (lower case, no dot); a file named as the path is
    # read whatever its extension.
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    # Crawling a site (url sources only): which pages are followed, and how far.
    include: tuple[str, ...] = ()  # regexes; when given, a page URL must match one
    exclude: tuple[str, ...] = ()  # regexes; a page URL matching one is not fetched
    max_depth: int = 3  # link hops from the source page (pagination does not count)
    max_pages: int = 1000  # pages fetched per run for this source, all kinds together
    ignore_robots: bool = False
    # Path sources only: the files (or folders) under ``path`` to read instead of all of
    # it, as named on the command line. A partial source never marks unread posts gone.
    only: tuple[Path, ...] = ()

    @property
    def label(self) -> str:
        """How the source is named in the database and in reports."""
        return str(self.path) if self.path is not None else str(self.url)


#: The keys of the ``[fetch]`` table (the other settings are set by code, not config).
_FETCH_KEYS = frozenset(FetchConfig.__dataclass_fields__) - {
    "exclude_urls",
    "accept",
    "host_headers",
    "rate_window",
    "backoff_base",
    "backoff_max",
}


@dataclass(frozen=True)
class StoreSettings:
    """Where the blobs live when not in the directory ``Config.store``: ``store =
    "s3://bucket/prefix"`` and the ``[s3]`` table. Credentials left out here come from
    the usual ``AWS_*`` environment variables; they are never shown (not in ``repr``)."""

    url: str | None = None  # s3://bucket/prefix; None: the directory store
    endpoint: str | None = None  # e.g. http://127.0.0.1:8333 (AWS's own when None)
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    allow_http: bool = False  # a plain-HTTP endpoint (a loopback or LAN server)
    #: Where anyone can read the bucket's objects (``<public_url>/<key>``): the links
    #: ``restore --mirror --link`` and the HTML report write. Never a presigned URL.
    public_url: str | None = None

    @property
    def bucket(self) -> str:
        return (self.url or "")[len("s3://") :].partition("/")[0]

    @property
    def prefix(self) -> str:
        return (self.url or "")[len("s3://") :].partition("/")[2].strip("/")


@dataclass(frozen=True)
class WorkerSettings:
    """``[workers]``: how ``crawl --worker`` shares a run with other workers."""

    #: A worker's host leases (and its own liveness) expire this long after its last
    #: renewal; it renews every third of it. A worker that died loses its hosts then.
    lease_seconds: float = 60.0
    #: Hosts one worker leases at once; 0: as many as ``[fetch] concurrency``.
    hosts: int = 0


@dataclass(frozen=True)
class Config:
    """Everything a run needs to know, with paths already made absolute."""

    #: The state: a SQLite file, or a PostgreSQL database (``db = "postgresql://..."``).
    db: Location
    store: Path
    sources: tuple[Source, ...] = ()
    fetch: FetchConfig = field(default_factory=FetchConfig)
    recheck_after: float = 86400.0
    confirm_runs: int = 2
    confirm_after: float = 3600.0
    canary: str | None = None
    config_path: Path | None = None
    exclude_urls: tuple[str, ...] = ()  # regexes: matching URLs are neither saved nor fetched
    remap: tuple[tuple[str, str], ...] = ()  # (regex, replacement): where to fetch a URL from
    shared_store: bool = False  # this database may use a store other databases use too
    # Regexes (``--include``, not a config key): when given, only matching asset URLs are kept.
    include_urls: tuple[str, ...] = ()
    #: ``[archive] endpoint``: the Wayback-style availability API ``report --suggest`` and
    #: ``restore --from-archive`` ask (and nothing else ever does).
    archive_endpoint: str = "https://archive.org/wayback/available"
    #: ``store = "s3://..."`` and ``[s3]``; then ``store`` is the store's local directory
    #: (temp bodies and thumbnails), ``[s3] cache``, by default beside the database.
    blob_store: StoreSettings = field(default_factory=StoreSettings)
    workers: WorkerSettings = field(default_factory=WorkerSettings)

    def __post_init__(self) -> None:
        # One list of exclusions: the fetcher's copy (for redirects) is always this one.
        if self.fetch.exclude_urls != self.exclude_urls:
            object.__setattr__(self, "fetch", replace(self.fetch, exclude_urls=self.exclude_urls))

    def with_overrides(self, **kwargs: Any) -> Config:
        """``--db`` and ``--store`` (None: not given); a ``--store`` directory replaces
        a bucket the config names."""
        given = {k: v for k, v in kwargs.items() if v is not None}
        if "store" in given and "blob_store" not in given:
            given["blob_store"] = replace(self.blob_store, url=None)
        return replace(self, **given)

    def with_bucket(self, url: str) -> Config:
        """``--store s3://bucket/prefix``: that bucket, with the ``[s3]`` table's endpoint
        and credentials; the local cache stays where the config put it (``[s3] cache``),
        or goes beside the database."""
        if self.blob_store.url:
            cache = self.store
        else:
            base = self.config_path.parent if self.config_path else Path.cwd()
            cache = directory_beside(self.db, base) / "s3-cache"
        return replace(self, blob_store=replace(self.blob_store, url=url), store=cache)


_TOP_KEYS = {
    "db",
    "store",
    "sources",
    "fetch",
    "recheck_after",
    "confirm_runs",
    "confirm_after",
    "canary",
    "exclude_urls",
    "remap",
    "shared_store",
    "hosts",
    "archive",
    "s3",
    "workers",
}
_S3_KEYS = (
    "endpoint",
    "region",
    "access_key_id",
    "secret_access_key",
    "allow_http",
    "public_url",
    "cache",
)
_SOURCE_KEYS = {
    "path",
    "url",
    "base_url",
    "static_roots",
    "kind",
    "extensions",
    "include",
    "exclude",
    "max_depth",
    "max_pages",
    "ignore_robots",
}
_SITE_KEYS = ("include", "exclude", "max_depth", "max_pages", "ignore_robots")
_SOURCE_KINDS = {"post", "listing", "sitemap", "feed"}


def _name(key: str) -> str:
    """How a setting is named in a message: options as typed, config keys quoted."""
    return f"option {key}" if key.startswith("--") else f"config key '{key}'"


def _expect(key: str, value: Any, types: type | tuple[type, ...], what: str) -> Any:
    # bool is an int in Python; a number key given `true` is a mistake.
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ConfigError(f"{_name(key)} must be {what}, got {value!r}")
    if not isinstance(value, types):
        raise ConfigError(f"{_name(key)} must be {what}, got {value!r}")
    return value


def _positive(key: str, value: Any, *, integer: bool = False) -> Any:
    kind = int if integer else (int, float)
    _expect(key, value, kind, "a whole number" if integer else "a number")
    _finite(key, value)
    if value <= 0:
        raise ConfigError(f"{_name(key)} must be greater than 0, got {value!r}")
    return int(value) if integer else float(value)


def _finite(key: str, value: float) -> None:
    # NaN passes every comparison's "else" (nan <= 0 is False) and inf means "never".
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{_name(key)} must be a finite number, got {value!r}")


def _at_most(key: str, value: int, cap: int) -> int:
    if value > cap:
        raise ConfigError(f"{_name(key)} must be at most {cap}, got {value!r}")
    return value


_CAPS = {"concurrency": MAX_CONCURRENCY, "per_host": MAX_PER_HOST}


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(key: str, value: Any) -> float:
    """Seconds from a number or a string like ``"90s"``, ``"30m"``, ``"1h"``, ``"1d"``."""
    if isinstance(value, str):
        text = value.strip().lower()
        unit = text[-1:] if text[-1:] in _UNITS else "s"
        number = text[:-1] if text[-1:] in _UNITS else text
        try:
            seconds = float(number) * _UNITS[unit]
        except ValueError:
            raise ConfigError(
                f'{_name(key)} must be a duration like "1h" or "1d", got {value!r}'
            ) from None
        if not math.isfinite(seconds):  # "inf", "nan", "1e400s"
            raise ConfigError(f"{_name(key)} must be a finite number, got {value!r}")
        if seconds <= 0:
            raise ConfigError(f"{_name(key)} must be greater than 0, got {value!r}")
        return seconds
    return float(_positive(key, value))


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _source(base: Path, index: int, raw: Any) -> Source:
    where = f"sources[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"config key '{where}' must be a table with 'path' or 'url'")
    for key in raw:
        if key not in _SOURCE_KEYS:
            raise ConfigError(
                f"unknown config key '{where}.{key}' (known: {', '.join(sorted(_SOURCE_KEYS))})"
            )
    has_path, has_url = "path" in raw, "url" in raw
    if has_path == has_url:
        raise ConfigError(f"config key '{where}' needs exactly one of 'path' or 'url'")
    path = (
        _resolve(base, _expect(f"{where}.path", raw["path"], str, "a string")) if has_path else None
    )
    url = _expect(f"{where}.url", raw["url"], str, "a string") if has_url else None
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"config key '{where}.url' must be an http(s) URL, got {url!r}")
    base_url = raw.get("base_url")
    if base_url is not None:
        _expect(f"{where}.base_url", base_url, str, "a string")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"config key '{where}.base_url' must be an http(s) URL, got {base_url!r}"
            )
    roots = raw.get("static_roots", [])
    _expect(f"{where}.static_roots", roots, list, "a list of paths")
    static_roots = tuple(
        _resolve(base, _expect(f"{where}.static_roots", r, str, "a list of paths")) for r in roots
    )
    kind = raw.get("kind")
    if kind is not None and kind not in _SOURCE_KINDS:
        raise ConfigError(
            f"config key '{where}.kind' must be one of"
            f" {', '.join(sorted(_SOURCE_KINDS))}, got {kind!r}"
        )
    site = _site_keys(where, raw) if has_url else {}
    if "extensions" in raw:
        if has_url:
            raise ConfigError(
                f"config key '{where}.extensions' applies to path sources only (this one has a url)"
            )
        value = raw["extensions"]
        _expect(f"{where}.extensions", value, list, 'a list of file extensions like ["md"]')
        names = [
            _expect(f"{where}.extensions[{i}]", v, str, "a string") for i, v in enumerate(value)
        ]
        site["extensions"] = parse_extensions(f"{where}.extensions", names)
    if has_path:
        for key in _SITE_KEYS:
            if key in raw:
                raise ConfigError(
                    f"config key '{where}.{key}' applies to url sources only (this one has a path)"
                )
    return Source(
        path=path, url=url, base_url=base_url, static_roots=static_roots, kind=kind, **site
    )


def parse_extensions(key: str, names: list[str]) -> tuple[str, ...]:
    """File extensions as matched: lower case, without the dot (``".MD"`` is ``md``).

    Refused when none is given or one is empty or names a path: each would quietly make
    a folder's posts unread.
    """
    out: list[str] = []
    for i, name in enumerate(names):
        ext = name.strip().removeprefix(".").lower()
        if not ext or ext.startswith(".") or any(c in ext for c in "/\\\0"):
            item = key if key.startswith("--") else f"{key}[{i}]"
            raise ConfigError(f'{_name(item)} must be a file extension like "md", got {name!r}')
        if ext not in out:
            out.append(ext)
    if not out:
        raise ConfigError(f'{_name(key)} must name at least one file extension, like "md"')
    return tuple(out)


def _patterns(key: str, value: Any) -> tuple[str, ...]:
    """A list of regexes, each checked now so a typo is reported before any fetch."""
    _expect(key, value, list, "a list of regular expressions")
    for i, item in enumerate(value):
        compile_pattern(f"{key}[{i}]", _expect(f"{key}[{i}]", item, str, "a string"))
    return tuple(value)


def _site_keys(where: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The keys that steer crawling a site, for a url source."""
    out: dict[str, Any] = {}
    for key in ("include", "exclude"):
        if key in raw:
            out[key] = _patterns(f"{where}.{key}", raw[key])
    if "max_depth" in raw:
        depth = _expect(f"{where}.max_depth", raw["max_depth"], int, "a whole number")
        if depth < 0:
            raise ConfigError(f"config key '{where}.max_depth' must be 0 or more, got {depth!r}")
        out["max_depth"] = depth
    if "max_pages" in raw:
        out["max_pages"] = _positive(f"{where}.max_pages", raw["max_pages"], integer=True)
    if "ignore_robots" in raw:
        out["ignore_robots"] = _expect(
            f"{where}.ignore_robots", raw["ignore_robots"], bool, "true or false"
        )
    return out


def _remap(raw: Any) -> tuple[tuple[str, str], ...]:
    """The ``[remap]`` table: regex = replacement, in file order."""
    if not isinstance(raw, dict):
        raise ConfigError('config key \'remap\' must be a table of "regex" = "replacement" pairs')
    for pattern, replacement in raw.items():
        _expect(f"remap.{pattern}", replacement, str, "a replacement string")
    pairs = tuple((str(k), str(v)) for k, v in raw.items())
    UrlRules.compile(remap=pairs)  # raises ConfigError naming the bad key
    return pairs


def _allow_addresses(key: str, value: Any) -> tuple[str, ...]:
    """A list of CIDRs and host names, each checked now (a typo must not open nothing)."""
    _expect(key, value, list, "a list of CIDRs and host names")
    items = tuple(_expect(f"{key}[{i}]", v, str, "a string") for i, v in enumerate(value))
    AddressGuard.parse((f"{key}[{i}]", item) for i, item in enumerate(items))
    return items


def _fetch(raw: Any) -> FetchConfig:
    if not isinstance(raw, dict):
        raise ConfigError("config key 'fetch' must be a table")
    known = _FETCH_KEYS
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"fetch.{key}"
        if key not in known:
            raise ConfigError(f"unknown config key '{name}' (known: {', '.join(sorted(known))})")
        if key == "user_agent":
            _expect(name, value, str, "a string")
            if not sendable(value):
                raise ConfigError(
                    f"config key '{name}' must not contain CR, LF or NUL, got {value!r}"
                )
            values[key] = value
        elif key == "transport":
            if value not in TRANSPORTS:
                choices = ", ".join(repr(t) for t in TRANSPORTS)
                raise ConfigError(f"config key '{name}' must be one of {choices}, got {value!r}")
            values[key] = value
        elif key == "http2":
            values[key] = _expect(name, value, bool, "true or false")
        elif key == "allow_addresses":
            values[key] = _allow_addresses(name, value)
        elif key in ("concurrency", "per_host", "max_redirects", "max_size", "max_page_size"):
            values[key] = _positive(name, value, integer=True)
            if key in _CAPS:
                _at_most(name, values[key], _CAPS[key])
        elif key == "retries":
            _expect(name, value, int, "a whole number")
            if value < 0:
                raise ConfigError(f"config key '{name}' must be 0 or more, got {value!r}")
            values[key] = value
        else:
            values[key] = _positive(name, value)
    return FetchConfig(**values)


def finite_option(option: str, value: float) -> float:
    """``value`` of a command-line number, refused (exit 2) when NaN or infinite."""
    _finite(option, value)
    return value


def override_fetch(
    fetch: FetchConfig,
    *,
    concurrency: int | None = None,
    per_host: int | None = None,
    timeout: float | None = None,
) -> FetchConfig:
    """``fetch`` with the command line's options applied (None: not given), each bounded
    as its config key is; ``timeout`` sets both the connect and the read timeout."""
    if concurrency is not None:
        value = _positive("--concurrency", concurrency, integer=True)
        fetch = replace(fetch, concurrency=_at_most("--concurrency", value, MAX_CONCURRENCY))
    if per_host is not None:
        value = _positive("--per-host", per_host, integer=True)
        fetch = replace(fetch, per_host=_at_most("--per-host", value, MAX_PER_HOST))
    if timeout is not None:
        seconds = _positive("--timeout", timeout)
        fetch = replace(fetch, connect_timeout=seconds, read_timeout=seconds)
    return fetch


def db_option(text: str) -> Location:
    """``--db``: a path (relative to the working directory, resolved) or a PostgreSQL URL."""
    return parse_location(text, Path.cwd(), resolve=True)


def default_config(base: Path | None = None) -> Config:
    """The configuration used when there is no config file."""
    base = base or Path.cwd()
    return Config(db=base / "data" / "archive.db", store=base / "data" / "store")


def load_config(path: Path | None) -> Config:
    """Reads a config file; with ``None``, ``./config.toml`` if it exists, else defaults."""
    explicit = path is not None
    if path is None:
        path = Path("config.toml")
        if not path.exists():
            return default_config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    del explicit
    return parse_config(raw, base=path.resolve().parent, config_path=path.resolve())


def parse_config(raw: dict[str, Any], *, base: Path, config_path: Path | None = None) -> Config:
    """Turns a parsed TOML mapping into a ``Config``; paths resolve against ``base``."""
    for key in raw:
        if key not in _TOP_KEYS:
            raise ConfigError(f"unknown config key '{key}' (known: {', '.join(sorted(_TOP_KEYS))})")
    db = parse_location(
        _expect("db", raw.get("db", "data/archive.db"), str, "a path or a postgresql:// URL"),
        base,
    )
    store_text = _expect("store", raw.get("store", "data/store"), str, "a path or an s3:// URL")
    blob_store, cache = _s3(raw.get("s3", {}), store_text)
    if blob_store.url is None:
        store = _resolve(base, store_text)
    else:
        store = _resolve(base, cache) if cache else directory_beside(db, base) / "s3-cache"
    sources_raw = raw.get("sources", [])
    _expect("sources", sources_raw, list, "an array of [[sources]] tables")
    sources = tuple(_source(base, i, s) for i, s in enumerate(sources_raw))
    fetch = _fetch(raw.get("fetch", {}))
    cfg = Config(
        db=db,
        store=store,
        sources=sources,
        fetch=fetch,
        config_path=config_path,
        blob_store=blob_store,
    )
    if "recheck_after" in raw:
        cfg = replace(cfg, recheck_after=parse_duration("recheck_after", raw["recheck_after"]))
    if "confirm_runs" in raw:
        cfg = replace(
            cfg, confirm_runs=_positive("confirm_runs", raw["confirm_runs"], integer=True)
        )
    if "confirm_after" in raw:
        cfg = replace(cfg, confirm_after=parse_duration("confirm_after", raw["confirm_after"]))
    if "canary" in raw:
        canary = _expect("canary", raw["canary"], str, "a URL")
        if not canary.startswith(("http://", "https://")):
            raise ConfigError(f"config key 'canary' must be an http(s) URL, got {canary!r}")
        cfg = replace(cfg, canary=canary)
    if "exclude_urls" in raw:
        cfg = replace(cfg, exclude_urls=_patterns("exclude_urls", raw["exclude_urls"]))
    if "remap" in raw:
        cfg = replace(cfg, remap=_remap(raw["remap"]))
    if "shared_store" in raw:
        cfg = replace(
            cfg, shared_store=_expect("shared_store", raw["shared_store"], bool, "true or false")
        )
    if "archive" in raw:
        cfg = replace(cfg, archive_endpoint=_archive(raw["archive"]))
    if "hosts" in raw:
        cfg = replace(cfg, fetch=replace(cfg.fetch, host_headers=_hosts(raw["hosts"])))
    if "workers" in raw:
        cfg = replace(cfg, workers=_workers(raw["workers"]))
    return cfg


# ``--accept`` items as lychee writes them: ``403``, ``200..=299`` (inclusive),
# ``200..300`` (end excluded), ``..300`` and ``500..`` (open ends).
_STATUS_RANGE = re.compile(r"(?:(?P<start>[0-9]+)?\.\.(?P<eq>=)?(?P<end>[0-9]+)?|(?P<one>[0-9]+))")
_STATUS_MIN, _STATUS_MAX = 100, 999


def parse_accept(option: str, values: list[str]) -> StatusRanges:
    """``--accept`` values (each a comma list) as inclusive ranges; anything else is refused."""
    out: list[tuple[int, int]] = []
    for value in values:
        for item in value.split(","):
            text = item.strip()
            m = _STATUS_RANGE.fullmatch(text)
            if m is None:
                raise ConfigError(
                    f"{_name(option)} must be status codes or ranges like 403,200..=299,500..,"
                    f" got {item!r}"
                )
            if m["one"] is not None:
                first = last = int(m["one"])
            else:
                first = int(m["start"]) if m["start"] else _STATUS_MIN
                if m["end"] is None:
                    if m["eq"]:  # "200..=" has no end to include
                        raise ConfigError(f"{_name(option)}: range {item!r} has no end")
                    last = _STATUS_MAX
                else:
                    last = int(m["end"]) - (0 if m["eq"] else 1)
            if not (_STATUS_MIN <= first <= _STATUS_MAX and _STATUS_MIN <= last <= _STATUS_MAX):
                raise ConfigError(
                    f"{_name(option)} must be status codes from {_STATUS_MIN} to {_STATUS_MAX},"
                    f" got {item!r}"
                )
            if first > last:
                raise ConfigError(f"{_name(option)}: range {item!r} is empty")
            out.append((first, last))
    return tuple(out)


def with_url_options(
    cfg: Config,
    *,
    exclude: tuple[str, ...] = (),
    include: tuple[str, ...] = (),
    accept: StatusRanges = (),
) -> Config:
    """``cfg`` with the command line's ``--exclude`` (added to ``exclude_urls``),
    ``--include`` and ``--accept``; each regex is checked now (exit 2 before any fetch)."""
    for option, patterns in (("--exclude", exclude), ("--include", include)):
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(
                    f"option {option} is not a valid regular expression ({exc}): {pattern!r}"
                ) from None
    if exclude:
        cfg = replace(cfg, exclude_urls=cfg.exclude_urls + exclude)
    if include:
        cfg = replace(cfg, include_urls=cfg.include_urls + include)
    if accept:
        cfg = replace(cfg, fetch=replace(cfg.fetch, accept=cfg.fetch.accept + accept))
    return cfg


# RFC 9110 section 5.1: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers archiver sets itself or that frame the message: a host's table cannot replace them.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "accept-encoding",
        "range",
        "if-range",
        "if-none-match",
        "if-modified-since",
    }
)
# A host key as a request URL names it: a DNS name, an IPv4 address or a bare IPv6 one.
_HOST_KEY = re.compile(r"[a-z0-9.-]+|[0-9a-f:.]+")
_HOST_KEYS = {"headers"}


def _hosts(raw: Any) -> HostHeaders:
    """The ``[hosts."name"]`` tables: the headers each host is sent. A value is never
    quoted in an error: it is likely a token."""
    if not isinstance(raw, dict):
        raise ConfigError("config key 'hosts' must be tables like [hosts.\"example.org\"]")
    out: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for host, table in raw.items():
        where = f'hosts."{host}"'
        try:
            key = host.strip().rstrip(".").encode("idna").decode("ascii").lower()
        except UnicodeError:
            key = ""
        if not _HOST_KEY.fullmatch(key):
            raise ConfigError(f"config key '{where}' must be a host name, like \"example.org\"")
        if not isinstance(table, dict):
            raise ConfigError(f"config key '{where}' must be a table with 'headers'")
        for name in table:
            if name not in _HOST_KEYS:
                raise ConfigError(
                    f"unknown config key '{where}.{name}' (known: {', '.join(sorted(_HOST_KEYS))})"
                )
        headers = table.get("headers", {})
        if not isinstance(headers, dict):
            raise ConfigError(
                f"config key '{where}.headers' must be a table of header names and values"
            )
        pairs: list[tuple[str, str]] = []
        for name, value in headers.items():
            item = f"{where}.headers.{name}"
            if not _TOKEN.fullmatch(name):
                raise ConfigError(f"config key '{item}': {name!r} is not a valid header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ConfigError(f"config key '{item}': archiver sets {name} itself")
            if not isinstance(value, str):
                raise ConfigError(f"config key '{item}' must be a string")
            if not all(c == "\t" or " " <= c <= "~" for c in value) or value != value.strip():
                raise ConfigError(
                    f"config key '{item}' must be printable ASCII without control characters"
                    " or surrounding spaces (value not shown)"
                )
            pairs.append((name, value))
        if any(k == key for k, _ in out):
            raise ConfigError(f"config key '{where}' names a host already given")
        out.append((key, tuple(pairs)))
    return tuple(out)


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def s3_url(store: str, what: str) -> str | None:
    """``s3://bucket/prefix`` checked and normalised; None for a path. ``what`` names
    where it was written (the config key or the option) in the error."""
    if not store.startswith("s3://"):
        if "://" in store:
            raise ConfigError(f"{what} must be a path or an s3:// URL, got {store!r}")
        return None
    bucket, _, prefix = store[len("s3://") :].partition("/")
    if not _BUCKET.fullmatch(bucket):
        raise ConfigError(
            f"{what} names no valid bucket in {store!r}: write"
            " s3://BUCKET/PREFIX (3-63 lowercase letters, digits, dots, hyphens)"
        )
    parts = prefix.strip("/").split("/") if prefix.strip("/") else []
    if any(part in ("", ".", "..") for part in parts):
        raise ConfigError(f"{what} has an empty or dot part in {store!r}")
    return f"s3://{bucket}/{prefix.strip('/')}".rstrip("/")


def _s3(raw: Any, store: str) -> tuple[StoreSettings, str | None]:
    """``store = "s3://bucket/prefix"`` with the ``[s3]`` table, and ``[s3] cache``."""
    _expect("s3", raw, dict, "a table")
    for key in raw:
        if key not in _S3_KEYS:
            raise ConfigError(f"unknown config key 's3.{key}' (known: {', '.join(_S3_KEYS)})")
    url = s3_url(store, "config key 'store'")
    text = {}
    for key in ("endpoint", "region", "access_key_id", "secret_access_key", "public_url", "cache"):
        if key in raw:
            text[key] = _expect(f"s3.{key}", raw[key], str, "a string")
    for key in ("endpoint", "public_url"):
        if key in text and not text[key].startswith(("http://", "https://")):
            # Not repeated in the message: a mistyped key could be a secret.
            raise ConfigError(f"config key 's3.{key}' must be an http(s) URL")
    allow_http = _expect("s3.allow_http", raw.get("allow_http", False), bool, "true or false")
    settings = StoreSettings(
        url=url,
        endpoint=text.get("endpoint"),
        region=text.get("region"),
        access_key_id=text.get("access_key_id"),
        secret_access_key=text.get("secret_access_key"),
        allow_http=allow_http,
        public_url=text["public_url"].rstrip("/") if "public_url" in text else None,
    )
    return settings, text.get("cache")


def _archive(raw: Any) -> str:
    """The ``[archive]`` table: ``endpoint``, an http(s) URL."""
    _expect("archive", raw, dict, "a table")
    for key in raw:
        if key != "endpoint":
            raise ConfigError(f"unknown config key 'archive.{key}' (known: endpoint)")
    endpoint: str = _expect("archive.endpoint", raw.get("endpoint", ""), str, "a URL")
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"config key 'archive.endpoint' must be an http(s) URL, got {endpoint!r}")
    return endpoint


def _workers(raw: Any) -> WorkerSettings:
    """The ``[workers]`` table: ``lease_seconds`` (at least 2) and ``hosts``."""
    _expect("workers", raw, dict, "a table")
    known = ("hosts", "lease_seconds")
    for key in raw:
        if key not in known:
            raise ConfigError(f"unknown config key 'workers.{key}' (known: {', '.join(known)})")
    out = WorkerSettings()
    if "lease_seconds" in raw:
        lease = _positive("workers.lease_seconds", raw["lease_seconds"])
        if lease < 2:  # times are stored to the second: a shorter lease may lapse at once
            raise ConfigError(
                f"config key 'workers.lease_seconds' must be at least 2, got {lease!r}"
            )
        out = replace(out, lease_seconds=lease)
    if "hosts" in raw:
        out = replace(out, hosts=_positive("workers.hosts", raw["hosts"], integer=True))
    return out
