"""robots.txt read as RFC 9309 says: group selection, longest match, wildcards,
percent-encoding, the 500 KiB limit, and the blanket answers when there is no file."""

from __future__ import annotations

import time

import pytest

from archiver.sources.robots import MAX_OCTETS, Robots

UA = "archiver/0.1.0 (+https://github.com/archiver; keeps event slides and images alive)"


def allowed(text: str, path: str, user_agent: str = UA) -> bool:
    return Robots.parse(text).allowed("https://site.example" + path, user_agent)


# RFC 9309 section 5.1, verbatim (the EOF line included: it is not a record, so it is ignored).
RFC_5_1 = """\
User-Agent: *
Disallow: *.gif$
Disallow: /example/
Allow: /publications/

User-Agent: foobot
Disallow:/
Allow:/example/page.html
Allow:/example/allowed.gif

User-Agent: barbot
User-Agent: bazbot
Disallow: /example/page.html

User-Agent: quxbot

EOF
"""


@pytest.mark.parametrize(
    ("agent", "path", "expected"),
    [
        ("otherbot", "/example/page.html", False),
        ("otherbot", "/images/logo.gif", False),
        ("otherbot", "/images/logo.gif?v=2", True),  # ``$`` ends at the end of path and query
        ("otherbot", "/publications/logo.gif", True),  # /publications/ is longer than *.gif$
        ("otherbot", "/about", True),
        ("foobot", "/example/page.html", True),
        ("foobot", "/example/allowed.gif", True),
        ("foobot", "/example/other.html", False),
        ("foobot", "/", False),
        ("barbot", "/example/page.html", False),
        ("bazbot", "/example/page.html", False),
        ("bazbot", "/example/other.gif", True),  # its own group, not the ``*`` rules
        ("quxbot", "/example/page.html", True),  # an empty group of its own allows all
        ("FooBot/2.1 (+https://foo.example)", "/", False),
    ],
)
def test_rfc_9309_simple_example(agent: str, path: str, expected: bool) -> None:
    assert allowed(RFC_5_1, path, agent) is expected


def test_rfc_9309_longest_match_example() -> None:
    text = "User-Agent: foobot\nAllow: /example/page/\nDisallow: /example/page/disallowed.gif\n"
    assert allowed(text, "/example/page/disallowed.gif", "foobot") is False
    assert allowed(text, "/example/page/allowed.gif", "foobot") is True


def test_longest_match_wins_not_the_first() -> None:
    text = "User-agent: *\nDisallow: /\nAllow: /blog/\n"
    assert allowed(text, "/blog/x") is True
    assert allowed(text, "/blog") is False
    assert allowed(text, "/") is False
    # The order in the file does not matter, the length does.
    text = "User-agent: *\nAllow: /blog/\nDisallow: /blog/drafts/\n"
    assert allowed(text, "/blog/drafts/1") is False
    assert allowed(text, "/blog/post") is True


def test_allow_wins_a_tie() -> None:
    assert allowed("User-agent: *\nDisallow: /page\nAllow: /page\n", "/page") is True
    assert allowed("User-agent: *\nAllow: /page\nDisallow: /page\n", "/page") is True
    # Length is the pattern's, wildcards included: /*.html and /a.html are both 7 octets.
    assert allowed("User-agent: *\nDisallow: /a.html\nAllow: /*.html\n", "/a.html") is True


def test_wildcard_and_end_anchor() -> None:
    text = "User-agent: *\nDisallow: /*/private/*.pdf$\nDisallow: /search$\n"
    assert allowed(text, "/2024/private/deck.pdf") is False
    assert allowed(text, "/a/b/private/c/deck.pdf") is False
    assert allowed(text, "/2024/private/deck.pdf?download=1") is True
    assert allowed(text, "/2024/public/deck.pdf") is True
    assert allowed(text, "/search") is False
    assert allowed(text, "/search?q=x") is True
    assert allowed(text, "/searches") is True
    # Without ``$`` a pattern is a prefix; a ``$`` that is not last is a literal character.
    assert allowed("User-agent: *\nDisallow: /fish\n", "/fish.html") is False
    assert allowed("User-agent: *\nDisallow: /a$b\n", "/a$b") is False
    assert allowed("User-agent: *\nDisallow: /a$b\n", "/a") is True
    assert allowed("User-agent: *\nDisallow: /*\n", "/anything") is False
    assert allowed("User-agent: *\nDisallow: /a*b*c$\n", "/abcbc") is False
    assert allowed("User-agent: *\nDisallow: /a*b*c$\n", "/acb") is True


def test_query_is_part_of_the_path_matched() -> None:
    text = "User-agent: *\nDisallow: /*?sort=\nDisallow: /list?page=2$\n"
    assert allowed(text, "/events?sort=date") is False
    assert allowed(text, "/events") is True
    assert allowed(text, "/list?page=2") is False
    assert allowed(text, "/list?page=20") is True
    # No path means "/"; a fragment is not sent, so it is not matched.
    assert Robots.parse("User-agent: *\nDisallow: /$\n").allowed("https://s", UA) is False
    assert allowed("User-agent: *\nDisallow: /a#b\n", "/a#b") is False  # the comment cuts it


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        # The table in RFC 9309 section 2.2.2.
        ("/foo/bar?baz=quz", "/foo/bar?baz=quz", True),
        ("/foo/bar/\u30c4", "/foo/bar/%E3%83%84", True),
        ("/foo/bar/%E3%83%84", "/foo/bar/%E3%83%84", True),
        ("/foo/bar/%62%61%7A", "/foo/bar/baz", True),
        # Both sides are normalised: escapes of unreserved characters, hex case, raw UTF-8.
        ("/~joe/", "/%7Ejoe/", True),
        ("/%7Ejoe/", "/~joe/", True),
        ("/%7ejoe/", "/%7Ejoe/", True),
        ("/a%2fb", "/a%2Fb", True),
        ("/foo/bar/%E3%83%84", "/foo/bar/\u30c4", True),
        ("/caf\u00e9", "/caf%c3%a9", True),
        ("/caf\u00e9", "/cafe", False),
        # An escaped reserved character is not the character: %2F is not a path separator.
        ("/a%2Fb", "/a/b", False),
        # RFC 9309 section 2.2.3: %2A and %24 match a literal ``*`` and ``$``.
        ("/path/file-with-a-%2A.html", "/path/file-with-a-*.html", True),
        ("/path/file-with-a-%2A.html", "/path/file-with-a-x.html", False),
        ("/path/foo-%24", "/path/foo-$", True),
        ("/path/foo-%24", "/path/foo-", False),
        # A space or a stray % is escaped the same way on both sides.
        ("/a b", "/a%20b", True),
        ("/100%", "/100%25", True),
    ],
)
def test_percent_encoding_is_normalised(pattern: str, path: str, matches: bool) -> None:
    assert allowed(f"User-agent: *\nDisallow: {pattern}\n", path) is not matches


def test_non_ascii_pattern_length_counts_octets() -> None:
    # "/ツ" is 2 characters but 10 octets once encoded (/%E3%83%84): longer than "/*abcd".
    text = "User-agent: *\nAllow: /\u30c4\nDisallow: /*abcd\n"
    assert allowed(text, "/%E3%83%84abcd") is True


def test_specific_group_beats_star_and_matches_case_insensitively() -> None:
    text = "User-agent: *\nDisallow: /\n\nUser-agent: ARCHIVER\nDisallow: /private/\n"
    assert allowed(text, "/events/") is True
    assert allowed(text, "/private/x") is False
    assert allowed(text, "/events/", "otherbot/1.0") is False
    assert allowed(text, "/events/", "Archiver") is True
    # Only the product token counts: a longer name is another crawler.
    assert allowed(text, "/events/", "archiver-ng/1.0") is False


def test_groups_naming_the_same_token_are_merged() -> None:
    text = (
        "User-agent: archiver\nDisallow: /foo\n\n"
        "User-agent: *\nDisallow: /star\n\n"
        "user-agent: Archiver\nDisallow: /bar\nAllow: /bar/ok\n"
    )
    assert allowed(text, "/foo") is False
    assert allowed(text, "/bar/x") is False
    assert allowed(text, "/bar/ok") is True
    assert allowed(text, "/star") is True
    star_twice = "User-agent: *\nDisallow: /a\n\nUser-agent: other\nDisallow: /b\n\n"
    star_twice += "User-agent: *\nDisallow: /c\n"
    assert allowed(star_twice, "/a") is False
    assert allowed(star_twice, "/b") is True
    assert allowed(star_twice, "/c") is False


def test_consecutive_user_agents_share_a_group_and_rules_end_it() -> None:
    text = (
        "User-agent: otherbot\n\nUser-agent: archiver\nDisallow: /shared\n"
        "User-agent: otherbot\nDisallow: /other-only\n"
    )
    assert allowed(text, "/shared") is False
    assert allowed(text, "/other-only") is True
    assert allowed(text, "/other-only", "otherbot") is False


def test_fallback_to_star_and_no_group_allows_all() -> None:
    text = "User-agent: googlebot\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\n"
    assert allowed(text, "/private/x") is False
    assert allowed(text, "/public") is True
    assert allowed("User-agent: googlebot\nDisallow: /\n", "/anything") is True
    assert allowed("", "/anything") is True


def test_rules_before_any_user_agent_are_ignored() -> None:
    text = "Disallow: /\nAllow: /nothing\n\nUser-agent: *\nDisallow: /private/\n"
    assert allowed(text, "/events/") is True
    assert allowed(text, "/private/") is False
    assert allowed("Disallow: /\n", "/events/") is True


def test_empty_disallow_disallows_nothing() -> None:
    assert allowed("User-agent: *\nDisallow:\n", "/anything") is True
    assert allowed("User-agent: *\nDisallow: # nothing\n", "/anything") is True
    # An empty rule still ends the user-agent lines of its group.
    text = "User-agent: a\nDisallow:\nUser-agent: archiver\nDisallow: /x\n"
    assert allowed(text, "/x", "a") is True


def test_keys_whitespace_and_comments() -> None:
    text = (
        "\ufeff# robots for site.example\r\n"
        "  USER-AGENT :  *   # everyone\r\n"
        "DisAllow:/private/   # not for you\r"
        "ALLOW :   /private/ok \n"
        "this line is junk\n"
    )
    assert allowed(text, "/private/x") is False
    assert allowed(text, "/private/ok") is True
    assert allowed(text, "/public") is True


def test_robots_txt_itself_is_always_allowed() -> None:
    assert allowed("User-agent: *\nDisallow: /\n", "/robots.txt") is True
    assert allowed("User-agent: *\nDisallow: /robots.txt\n", "/robots.txt") is True
    assert allowed("User-agent: *\nDisallow: /\n", "/robots.txt.bak") is False


def test_sitemap_and_crawl_delay_lines_are_ignored() -> None:
    text = (
        "Sitemap: https://site.example/sitemap.xml\n"
        "User-agent: otherbot\n"
        "Crawl-delay: 10\n"
        "Sitemap: https://site.example/other.xml\n"
        "User-agent: archiver\n"
        "Crawl-delay: 5\n"
        "Disallow: /private/\n"
        "Sitemap: https://site.example/more.xml\n"
        "Allow: /private/ok\n"
    )
    for agent in (UA, "otherbot"):
        assert allowed(text, "/private/x", agent) is False
        assert allowed(text, "/private/ok", agent) is True
    assert allowed(text, "/private/x", "thirdbot") is True


def test_only_the_first_500_kib_is_parsed() -> None:
    start = "User-agent: *\nDisallow: /early\n"
    edge = "Disallow: /edge\n"
    padding = "# " + "x" * 97 + "\n"  # 100 octets
    filler = MAX_OCTETS - len(start) - len(edge)
    pad = padding * (filler // 100) + "#" * (filler % 100 - 1) + "\n"
    kept = start + pad + edge
    assert len(kept.encode()) == MAX_OCTETS
    text = kept + "Disallow: /late\n" + padding * 100
    assert allowed(text, "/early") is False
    assert allowed(text, "/edge") is False  # ends exactly at the limit: kept
    assert allowed(text, "/late") is True  # past the limit: ignored
    # A line the limit cuts through is dropped, not read as a shorter pattern.
    cut = start + pad[:-20] + "\nAllow: /early/abcdefghijklmnopqrstuvwxyz\n"
    assert allowed(cut, "/early/abcdefghijklmnopqrstuvwxyz") is False
    assert allowed(cut, "/early/a") is False


def test_the_limit_counts_octets_not_characters() -> None:
    start = "User-agent: *\nDisallow: /early\n"
    # Each "é" is two octets: half as many characters as the limit already fill it.
    text = start + "#" + "\u00e9" * (MAX_OCTETS // 2) + "\nDisallow: /late\n"
    assert allowed(text, "/early") is False
    assert allowed(text, "/late") is True


def test_hostile_wildcards_take_linear_time() -> None:
    text = "User-agent: *\nDisallow: /" + "a*" * 2000 + "b\n"
    robots = Robots.parse(text)
    started = time.perf_counter()
    assert robots.allowed("https://site.example/" + "a" * 5000, UA) is True
    assert time.perf_counter() - started < 1.0


def test_blanket_answers_without_a_file() -> None:
    for status in (401, 403, 404, 410, 429, 451):
        robots = Robots.from_status(status)
        assert robots.allow_all is True
        assert robots.groups is None
        assert robots.allowed("https://site.example/private/", UA) is True
        assert robots.why == f"robots.txt answered HTTP {status}: no rules"
    for status in (500, 503):
        robots = Robots.from_status(status, f"HTTP {status} Service Unavailable")
        assert (robots.allow_all, robots.groups) == (False, None)
        assert robots.allowed("https://site.example/", UA) is False
        assert robots.why == f"robots.txt could not be fetched (HTTP {status} Service Unavailable)"
    unreachable = Robots.from_status(None, "Connection refused")
    assert unreachable.allowed("https://site.example/", UA) is False
    assert unreachable.why == "robots.txt could not be fetched (Connection refused)"
    assert Robots.from_status(502).why == "robots.txt could not be fetched (HTTP 502)"


def test_a_parsed_file_is_not_a_blanket_answer() -> None:
    # discover.py warns about a site when ``groups is None and not allow_all``.
    robots = Robots.parse("User-agent: *\nDisallow: /\n")
    assert robots.groups is not None
    assert robots.allow_all is False
    assert robots.why == ""
    assert Robots.parse("").groups is not None
