"""URL rules (``exclude_urls``, ``[remap]``) and the config keys that carry them."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from archiver.config import Config, parse_config
from archiver.errors import ConfigError
from archiver.net.rules import UrlRules


def config(text: str) -> Config:
    return parse_config(tomllib.loads(text), base=Path("/tmp"))


def test_remap_rewrites_with_groups_and_keeps_first_match() -> None:
    rules = UrlRules.compile(
        remap=[
            (r"^https://old\.cdn/(.*)", r"https://new.cdn/\1"),
            (r"^https://old\.cdn/x/(.*)", r"https://never/\1"),
        ]
    )
    assert rules.fetch_url("https://old.cdn/x/deck.pdf") == "https://new.cdn/x/deck.pdf"
    assert rules.fetch_url("https://other/x.pdf") is None
    assert rules.fetch_url("https://new.cdn/a.png") is None


def test_a_rule_that_changes_nothing_is_no_remap() -> None:
    rules = UrlRules.compile(remap=[(r"^(https://a/.*)", r"\1")])
    assert rules.fetch_url("https://a/x.png") is None


def test_exclude_matches_anywhere() -> None:
    rules = UrlRules.compile(exclude=[r"//ads\.", r"\.gif$"])
    assert rules.excluded("https://ads.example/x.png")
    assert rules.excluded("https://a/spacer.gif")
    assert not rules.excluded("https://a/x.png")


def test_fingerprint_follows_the_rules() -> None:
    assert UrlRules().fingerprint == ""
    a = UrlRules.compile(exclude=["x"])
    assert a.fingerprint == UrlRules.compile(exclude=["x"]).fingerprint != ""
    assert a.fingerprint != UrlRules.compile(exclude=["y"]).fingerprint
    assert a.fingerprint != UrlRules.compile(remap=[("x", "y")]).fingerprint


def test_config_reads_exclude_urls_and_remap_in_order() -> None:
    cfg = config(
        'exclude_urls = ["//ads\\\\."]\n'
        "[remap]\n"
        '"^https://old.cdn/(.*)" = "https://new.cdn/\\\\1"\n'
        '"^http://b/" = "https://b/"\n'
    )
    assert cfg.exclude_urls == (r"//ads\.",)
    assert cfg.remap == (
        ("^https://old.cdn/(.*)", r"https://new.cdn/\1"),
        ("^http://b/", "https://b/"),
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'exclude_urls = ["ok", "(unclosed"]',
            "config key 'exclude_urls[1]' is not a valid regular expression"
            " (missing ), unterminated subpattern at position 0): '(unclosed'",
        ),
        ('exclude_urls = "x"', "config key 'exclude_urls' must be a list of regular expressions"),
        (
            '[remap]\n"^https://old.cdn/(" = "x"',
            "config key 'remap.\"^https://old.cdn/(\"' is not a valid regular expression",
        ),
        (
            '[remap]\n"^a(.*)" = "b\\\\2"',
            "config key 'remap.\"^a(.*)\"' has an invalid replacement 'b\\\\2'"
            " (invalid group reference 2 at position 2)",
        ),
        ("remap = 3", "config key 'remap' must be a table"),
        ('[remap]\n"x" = 1', "config key 'remap.x' must be a replacement string, got 1"),
    ],
)
def test_bad_rules_name_their_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(text)
    assert str(err.value).startswith(message)


def test_site_source_keys() -> None:
    cfg = config(
        "[fetch]\nmax_page_size = 1000\n"
        '[[sources]]\nurl = "https://example.org/events/"\nkind = "listing"\n'
        'include = ["/events/"]\nexclude = ["/tags/"]\nmax_depth = 2\nmax_pages = 50\n'
        "ignore_robots = true\n"
    )
    (source,) = cfg.sources
    assert cfg.fetch.max_page_size == 1000
    assert (source.include, source.exclude) == (("/events/",), ("/tags/",))
    assert (source.max_depth, source.max_pages, source.ignore_robots) == (2, 50, True)
    default = config('[[sources]]\nurl = "https://example.org/"\n').sources[0]
    assert (default.max_depth, default.max_pages, default.ignore_robots) == (3, 1000, False)
    assert config("").fetch.max_page_size == 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            'url = "https://a/"\ninclude = ["("]',
            "config key 'sources[0].include[0]' is not a valid regular expression",
        ),
        (
            'url = "https://a/"\nmax_depth = -1',
            "config key 'sources[0].max_depth' must be 0 or more",
        ),
        ('url = "https://a/"\nmax_pages = 0', "config key 'sources[0].max_pages' must be greater"),
        (
            'url = "https://a/"\nignore_robots = "yes"',
            "config key 'sources[0].ignore_robots' must be true or false",
        ),
        (
            'path = "posts"\nmax_depth = 1',
            "config key 'sources[0].max_depth' applies to url sources only",
        ),
    ],
)
def test_bad_site_keys_name_their_key(source: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(f"[[sources]]\n{source}\n")
    assert str(err.value).startswith(message)
