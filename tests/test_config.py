from __future__ import annotations

from pathlib import Path

import pytest

from archiver.config import load_config, parse_duration
from archiver.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_shipped_config_loads_with_paths_relative_to_the_file() -> None:
    root = Path(__file__).resolve().parent.parent
    cfg = load_config(root / "config.toml")
    assert cfg.db == root / "data" / "archive.db"
    assert cfg.store == root / "data" / "store"
    assert [s.path for s in cfg.sources] == [root / "data" / "posts"]
    assert cfg.recheck_after == 86400
    assert cfg.confirm_runs == 2
    assert cfg.confirm_after == 3600


def test_relative_paths_resolve_against_config_dir(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            'db = "state/a.db"\nstore = "/abs/store"\n'
            '[[sources]]\npath = "posts"\nbase_url = "https://example.org/"\n'
            'static_roots = ["public"]\n[fetch]\nper_host = 2\n',
        )
    )
    assert cfg.db == tmp_path / "state" / "a.db"
    assert cfg.store == Path("/abs/store")
    src = cfg.sources[0]
    assert src.path == tmp_path / "posts"
    assert src.base_url == "https://example.org/"
    assert src.static_roots == (tmp_path / "public",)
    assert cfg.fetch.per_host == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dbb = 'x'", "unknown config key 'dbb'"),
        ("[fetch]\nper_hots = 3", "unknown config key 'fetch.per_hots'"),
        ("[fetch]\nper_host = 0", "config key 'fetch.per_host' must be greater than 0, got 0"),
        ("[fetch]\nper_host = 'many'", "config key 'fetch.per_host' must be a whole number"),
        ("[[sources]]\nbase_url = 'https://x/'", "config key 'sources[0]' needs exactly one"),
        ("[[sources]]\npath = 'a'\nfoo = 1", "unknown config key 'sources[0].foo'"),
        ("[[sources]]\nurl = 'ftp://x'", "config key 'sources[0].url' must be an http(s) URL"),
        ("recheck_after = 'soon'", "config key 'recheck_after' must be a duration"),
        ("db = [", "is not valid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)
    assert info.value.exit_code == 2


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), ("90s", 90.0), ("30m", 1800.0), ("1h", 3600.0), ("1d", 86400.0)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration("k", value) == seconds


def test_one_settings_type_reaches_the_fetcher_as_read(tmp_path: Path) -> None:
    """The config's ``[fetch]`` table, ``exclude_urls`` and the command line's overrides
    make one value of one type, which the fetcher takes as it is."""
    import archiver
    from archiver.config import FetchConfig, override_fetch
    from archiver.net.fetch import USER_AGENT, Fetcher, FetchSettings

    assert archiver.FetchConfig is FetchSettings is FetchConfig
    path = tmp_path / "config.toml"
    path.write_text(
        'exclude_urls = ["//ads\\\\."]\n[fetch]\nper_host = 3\nhttp2 = true\n', encoding="utf-8"
    )
    cfg = load_config(path)
    cfg = cfg.with_overrides(fetch=override_fetch(cfg.fetch, concurrency=5, timeout=2.5))
    f = cfg.fetch
    assert (f.per_host, f.concurrency, f.connect_timeout, f.read_timeout) == (3, 5, 2.5, 2.5)
    assert f.http2 is True and f.user_agent == USER_AGENT
    assert f.exclude_urls == cfg.exclude_urls == (r"//ads\.",)  # one list, for redirects too
    assert Fetcher(f).settings is f
    # the defaults: http2 is off, the user agent is archiver's
    assert (FetchConfig().http2, FetchConfig().user_agent) == (False, USER_AGENT)


def test_settings_not_in_the_fetch_table_are_refused_there(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    for key in ("exclude_urls", "rate_window", "backoff_base", "backoff_max"):
        path.write_text(f"[fetch]\n{key} = 1\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=f"unknown config key 'fetch.{key}'"):
            load_config(path)
