"""The address guard: internal addresses are refused after DNS, on every hop and address.

Refusals are asserted where no connection is needed: a raw listening socket shows that
nothing connected to it (its accept queue stays empty), and names mapped to private
addresses (``internal.test`` -> 10.0.0.1) are safe to use because conftest's tripwire
refuses any non-loopback connect even if the guard failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import hermetic
import media
import pytest
from cli_process import run_cli
from server import LoopbackServer, Reply

from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source, parse_config
from archiver.db import Database
from archiver.errors import ConfigError
from archiver.net.fetch import (
    Fetcher,
    FetchResult,
    FetchSettings,
    host_answered,
)
from archiver.net.guard import ENV_VAR, AddressGuard, BlockedAddress, classify
from archiver.run.crawl import crawl
from archiver.run.reachability import Reachability

pytestmark = pytest.mark.anyio

PDF = media.deck("x", 2000)
LEAN = FetchSettings(retries=0, connect_timeout=2.0, read_timeout=5.0, transport="lean")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the lean transport is asyncio only


@pytest.fixture
def no_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard as shipped: nothing internal allowed, loopback included."""
    monkeypatch.delenv(ENV_VAR)


def hosts(monkeypatch: pytest.MonkeyPatch, **names: str) -> None:
    """Maps test names (``internal_test="10.0.0.1"`` -> internal.test) for the resolver."""
    table = ",".join(f"{n.replace('_', '.')}={a}" for n, a in names.items())
    monkeypatch.setenv(hermetic.HOSTS_VAR, table)


@contextlib.contextmanager
def listener(host: str = "127.0.0.1") -> Iterator[socket.socket]:
    """A listening socket nobody should connect to: ``untouched`` tells whether none did."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def untouched(sock: socket.socket) -> bool:
    """True when no connection waits in the accept queue (the handshake is done by the
    kernel before the client goes on, so a connect attempt would be there by now)."""
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


async def fetch(url: str, settings: FetchSettings = LEAN, **kw: object) -> FetchResult:
    async with Fetcher(settings, clock=FakeClock()) as fetcher:
        return await fetcher.fetch(url, **kw)  # type: ignore[arg-type]


# -- classifying addresses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fe80::1", "link-local"),
        ("fe80::1%1", "link-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "reserved"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("::ffff:169.254.169.254", "IPv4-mapped cloud metadata"),
        ("::10.0.0.1", "IPv4-compatible private"),
        ("2002:7f00:1::", "6to4 loopback"),
        ("2002:a9fe:a9fe::1", "6to4 cloud metadata"),
        ("2002:c0a8:101::", "6to4 private"),
        ("64:ff9b::a00:1", "NAT64 private"),
        ("64:ff9b::127.0.0.1", "NAT64 loopback"),
        ("64:ff9b:1::a00:1", "reserved"),
        ("2001::1", "reserved"),  # Teredo: its IPv4 address is obfuscated
    ],
)
def test_internal_addresses_are_refused_by_default(address: str, why: str) -> None:
    assert classify(address) == why
    assert AddressGuard().refusal("example.test", address) == why


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "2002:808:808::",
        "64:ff9b::8.8.8.8",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert classify(address) is None


def test_the_allow_list_opens_cidrs_addresses_and_names() -> None:
    guard = AddressGuard.parse(
        [("k", "127.0.0.0/8"), ("k", "10.1.2.3"), ("k", "fd00::/8"), ("k", "Intranet.Example.")]
    )
    assert guard.refusal("a.test", "127.0.0.2") is None
    assert guard.refusal("a.test", "::ffff:127.0.0.2") is None  # the same host, mapped
    assert guard.refusal("a.test", "10.1.2.3") is None
    assert guard.refusal("a.test", "10.1.2.4") == "private"
    assert guard.refusal("a.test", "fd00::5") is None
    assert guard.refusal("a.test", "::1") == "loopback"
    assert guard.refusal("intranet.example", "192.168.0.9") is None
    assert guard.refusal("INTRANET.example.", "169.254.169.254") is None


def test_a_host_with_some_refused_addresses_keeps_the_others() -> None:
    guard = AddressGuard()
    answer = [(socket.AF_INET, ("10.0.0.1", 80)), (socket.AF_INET, ("93.184.216.34", 80))]
    assert guard.allowed("mixed.test", answer) == answer[1:]
    with pytest.raises(BlockedAddress) as caught:
        guard.allowed("internal.test", answer[:1])
    assert str(caught.value).startswith("refused address: internal.test resolves to 10.0.0.1")
    with pytest.raises(BlockedAddress):  # a proxy picks on its own: one refused is too many
        guard.check_every("mixed.test", ["93.184.216.34", "10.0.0.1"])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "10.0.0.1/33",
            "config key 'fetch.allow_addresses[1]' must hold CIDRs (127.0.0.0/8), IP addresses"
            " or host names, got '10.0.0.1/33' ('10.0.0.1/33' does not appear to be an IPv4"
            " or IPv6 network)",
        ),
        (
            "10.0.0.1/8",
            "config key 'fetch.allow_addresses[1]' must hold CIDRs (127.0.0.0/8), IP addresses"
            " or host names, got '10.0.0.1/8' (10.0.0.1/8 has host bits set)",
        ),
        (
            "127.1",
            "config key 'fetch.allow_addresses[1]' must hold CIDRs (127.0.0.0/8), IP addresses"
            " or host names, got '127.1' ('127.1' does not appear to be an IPv4 or IPv6"
            " network)",
        ),
        (
            "bad name!",
            "config key 'fetch.allow_addresses[1]' must hold CIDRs (127.0.0.0/8), IP addresses"
            " or host names, got 'bad name!'",
        ),
        (
            "",
            "config key 'fetch.allow_addresses[1]' must hold CIDRs (127.0.0.0/8), IP addresses"
            " or host names, got ''",
        ),
    ],
)
def test_a_bad_allow_list_entry_is_a_config_error(entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"fetch": {"allow_addresses": ["127.0.0.0/8", entry]}}, base=Path("."))
    assert str(caught.value) == message


def test_allow_addresses_in_the_config(tmp_path: Path) -> None:
    cfg = parse_config(
        {"fetch": {"allow_addresses": ["127.0.0.0/8", "intranet.example"]}}, base=tmp_path
    )
    assert cfg.fetch.allow_addresses == ("127.0.0.0/8", "intranet.example")
    with pytest.raises(ConfigError, match="must be a list of CIDRs and host names"):
        parse_config({"fetch": {"allow_addresses": "127.0.0.0/8"}}, base=tmp_path)


# -- the fetcher: before connecting, after DNS ---------------------------------------------


@pytest.mark.usefixtures("no_allow_list")
@pytest.mark.parametrize("host", ["localhost", "127.1", "2130706433", "[::1]", "127.0.0.1"])
async def test_loopback_in_any_spelling_is_blocked_without_an_allow_list(host: str) -> None:
    v6 = host == "[::1]"
    with listener("::1" if v6 else "127.0.0.1") as sock:
        port = sock.getsockname()[1]
        r = await fetch(f"http://{host}:{port}/deck.pdf")
        assert untouched(sock)
    assert (r.state, r.error_class, r.http_status) == ("blocked", "blocked-address", None)
    assert ("::1 (loopback)" if v6 else "127.0.0.1 (loopback)") in (r.error or "")
    assert not r.transient and r.attempts == 1  # never retried


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("10.0.0.1", "private"),
        ("192.168.1.20", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00::1", "private"),
        ("::ffff:10.0.0.1", "IPv4-mapped private"),
        ("2002:a00:1::", "6to4 private"),
        ("64:ff9b::a00:1", "NAT64 private"),
    ],
)
async def test_a_name_resolving_to_an_internal_address_is_blocked(
    monkeypatch: pytest.MonkeyPatch, address: str, why: str
) -> None:
    hosts(monkeypatch, internal_test=address)
    r = await fetch("http://internal.test/deck.pdf")
    assert (r.state, r.error_class) == ("blocked", "blocked-address")
    assert r.error == (
        f"refused address: internal.test resolves to {address} ({why}); to fetch it anyway,"
        f" allow it (fetch.allow_addresses, --allow-address or {ENV_VAR})"
    )


async def test_of_several_addresses_only_the_allowed_ones_are_tried(
    monkeypatch: pytest.MonkeyPatch, server: LoopbackServer
) -> None:
    """10.0.0.1 comes first in the answer; the tripwire would fail the test had it been tried."""
    server.route("/deck.pdf", Reply(body=PDF))
    hosts(monkeypatch, mixed_test="10.0.0.1|127.0.0.1")
    r = await fetch(f"http://mixed.test:{server.port}/deck.pdf", expect="pdf")
    assert (r.state, r.sha256) == ("ok", hashlib.sha256(PDF).hexdigest())


@pytest.mark.parametrize("http2", [False, True])
async def test_https_is_guarded_with_http2_on_or_off(
    monkeypatch: pytest.MonkeyPatch, http2: bool
) -> None:
    hosts(monkeypatch, internal_test="10.0.0.1")
    r = await fetch("https://internal.test/deck.pdf", replace(LEAN, http2=http2))
    assert (r.state, r.error_class) == ("blocked", "blocked-address")
    assert "10.0.0.1 (private)" in (r.error or "")


async def test_the_httpx_transport_is_checked_before_it_connects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosts(monkeypatch, internal_test="10.0.0.1")
    r = await fetch("http://internal.test/deck.pdf", replace(LEAN, transport="httpx"))
    assert (r.state, r.error_class) == ("blocked", "blocked-address")
    assert "10.0.0.1 (private)" in (r.error or "")


async def test_a_redirect_to_a_refused_address_is_never_connected_to(
    monkeypatch: pytest.MonkeyPatch, server: LoopbackServer
) -> None:
    monkeypatch.setenv(ENV_VAR, "127.0.0.1/32")  # the first server only
    with listener("127.0.0.2") as sock:
        target = f"http://127.0.0.2:{sock.getsockname()[1]}/secret"
        server.route("/deck.pdf", Reply.redirect(target))
        r = await fetch(server.url("/deck.pdf"))
        assert untouched(sock)
    assert (r.state, r.error_class, r.final_url) == ("blocked", "blocked-address", target)
    assert "127.0.0.2 (loopback)" in (r.error or "")
    assert server.stats("/deck.pdf").hits == 1  # asked once: a blocked hop is not retried


@pytest.mark.usefixtures("no_allow_list")
async def test_allow_list_by_cidr_name_environment_merged(
    monkeypatch: pytest.MonkeyPatch, server: LoopbackServer, server2: LoopbackServer
) -> None:
    server.route("/a.pdf", Reply(body=PDF))
    server2.route("/a.pdf", Reply(body=PDF))
    hosts(monkeypatch, intranet_test="127.0.0.2")
    one = f"http://127.0.0.1:{server.port}/a.pdf"
    named = f"http://intranet.test:{server2.port}/a.pdf"
    two = f"http://127.0.0.2:{server2.port}/a.pdf"

    async def states(settings: FetchSettings) -> list[str]:
        async with Fetcher(settings, clock=FakeClock()) as f:
            return [(await f.fetch(u)).state for u in (one, named, two)]

    assert await states(LEAN) == ["blocked"] * 3
    by_cidr = replace(LEAN, allow_addresses=("127.0.0.1/32",))
    assert await states(by_cidr) == ["ok", "blocked", "blocked"]
    by_name = replace(LEAN, allow_addresses=("intranet.test",))
    assert await states(by_name) == ["blocked", "ok", "blocked"]
    monkeypatch.setenv(ENV_VAR, " 127.0.0.2/32 , ")
    assert await states(LEAN) == ["blocked", "ok", "ok"]
    assert await states(by_cidr) == ["ok", "ok", "ok"]  # config and environment merged


async def test_a_bad_environment_entry_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "127.0.0.0/8,10.0.0.0/33")
    with pytest.raises(ConfigError, match=f"environment variable {ENV_VAR} must hold CIDRs"):
        Fetcher(LEAN)


# -- behind a proxy -------------------------------------------------------------------------


async def test_behind_a_proxy_the_target_is_resolved_and_checked_first(
    monkeypatch: pytest.MonkeyPatch, server: LoopbackServer
) -> None:
    """The loopback server plays the proxy (its own address is not checked): a target that
    resolves here to an internal address never reaches it; an allowed one does."""
    server.route("http://internal.test/a.pdf", Reply(body=PDF))
    server.route("http://cdn.test/a.pdf", Reply(body=PDF))
    hosts(
        monkeypatch, internal_test="10.0.0.1", cdn_test="127.0.0.3", mixed_test="127.0.0.3|10.0.0.1"
    )
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    async with Fetcher(FetchSettings(retries=0), clock=FakeClock()) as fetcher:
        blocked = await fetcher.fetch("http://internal.test/a.pdf")
        mixed = await fetcher.fetch("http://mixed.test/a.pdf")
        ok = await fetcher.fetch("http://cdn.test/a.pdf", expect="pdf")
    assert (blocked.state, blocked.error_class) == ("blocked", "blocked-address")
    assert "10.0.0.1 (private)" in (blocked.error or "")
    assert (mixed.state, mixed.error_class) == ("blocked", "blocked-address")
    assert server.stats("http://internal.test/a.pdf").hits == 0
    assert ok.state == "ok"
    assert server.stats("http://cdn.test/a.pdf").hits == 1


# -- redirects and exclude_urls, site sources ---------------------------------------------------


async def test_a_redirect_into_exclude_urls_is_blocked(server: LoopbackServer) -> None:
    server.route("/deck.pdf", Reply.redirect("/private/deck.pdf"))
    server.route("/private/deck.pdf", Reply(body=PDF))
    r = await fetch(server.url("/deck.pdf"), replace(LEAN, exclude_urls=("/private/",)))
    assert (r.state, r.error_class) == ("blocked", "excluded-redirect")
    assert r.final_url == server.url("/private/deck.pdf")
    assert r.error == (
        f"redirect to {server.url('/private/deck.pdf')}, which exclude_urls excludes: not followed"
    )
    assert server.stats("/private/deck.pdf").hits == 0


def test_a_site_source_never_follows_a_redirect_off_its_site(
    tmp_path: Path, server: LoopbackServer, server2: LoopbackServer
) -> None:
    pdf = server.route("/files/a.pdf", Reply(body=PDF, content_type="application/pdf"))
    elsewhere = server2.route(
        "/moved/", Reply(body=b"<a href='/x.pdf'>x</a>", content_type="text/html")
    )
    server.route(
        "/events/",
        Reply(
            body=b"<a href='/events/one/'>one</a><a href='/events/two/'>two</a>",
            content_type="text/html",
        ),
    )
    server.route("/events/one/", Reply.redirect(elsewhere))
    server.route(
        "/events/two/", Reply(body=f"<a href='{pdf}'>deck</a>".encode(), content_type="text/html")
    )
    server.route("/moved-source/", Reply.redirect(elsewhere))
    cfg = Config(
        db=tmp_path / "archive.db",
        store=tmp_path / "store",
        fetch=FetchConfig(retries=0, connect_timeout=5, read_timeout=5),
    )
    warnings: list[str] = []
    sources = [
        Source(url=server.url("/events/"), ignore_robots=True),
        Source(url=server.url("/moved-source/"), ignore_robots=True),
    ]
    summary = crawl(cfg, sources, clock=FakeClock(), warn=warnings.append)
    assert server2.stats("/moved/").hits == 0
    assert summary.counts == {"ok": 1}  # the deck of page two
    assert any(
        w.startswith(f"{server.url('/moved-source/')}: redirect off the site to {elsewhere}")
        for w in warnings
    ), warnings


# -- blocked in a run: not broken, not an answer, in the report --------------------------------


def test_blocked_is_neither_an_answer_nor_a_failure_to_reach() -> None:
    blocked = FetchResult(url="http://internal.test/a", state="blocked", final_url="http://x/")
    assert not host_answered(blocked)
    assert not Reachability.of([blocked]).down  # all blocked: nothing was tried, not offline
    dns = FetchResult(url="http://gone.test/a", state="dead", unreachable=True)
    assert Reachability.of([blocked, dns]).down  # the rule still holds for what was tried


def test_a_run_whose_links_are_blocked_is_not_offline_and_not_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts(monkeypatch, internal_test="10.0.0.1")
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "a.md").write_text(
        "[a](http://internal.test/a.pdf) [b](http://169.254.169.254/latest/meta.pdf)\n",
        encoding="utf-8",
    )
    cfg = Config(db=tmp_path / "archive.db", store=tmp_path / "store", fetch=FetchConfig(retries=0))
    for _ in range(2):  # twice: blocked never confirms anything dead
        summary = crawl(cfg, [Source(path=posts)], clock=FakeClock(), fail_on="any", all_=True)
        assert (summary.counts, summary.exit_code) == ({"blocked": 2}, 0)
        assert not summary.network_down and summary.newly_broken == []
    db = Database(cfg.db)
    try:
        rows = {r["url"]: r for r in db.rows("SELECT url, state, error_class FROM urls")}
    finally:
        db.close()
    assert {u: (r["state"], r["error_class"]) for u, r in rows.items()} == {
        "http://internal.test/a.pdf": ("blocked", "blocked-address"),
        "http://169.254.169.254/latest/meta.pdf": ("blocked", "blocked-address"),
    }


def test_a_blocked_canary_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts(monkeypatch, internal_test="10.0.0.1")
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "a.md").write_text("[a](http://internal.test/a.pdf)\n", encoding="utf-8")
    cfg = Config(
        db=tmp_path / "archive.db",
        store=tmp_path / "store",
        canary="http://internal.test/",
        fetch=FetchConfig(retries=0),
    )
    with pytest.raises(ConfigError, match=r"^config key 'canary': http://internal.test/ is not"):
        crawl(cfg, [Source(path=posts)], clock=FakeClock())


# -- the command line, end to end ---------------------------------------------------------------


def test_crawl_end_to_end_blocks_allows_and_reports(tmp_path: Path, server: LoopbackServer) -> None:
    deck = server.route("/deck.pdf", Reply(body=PDF, content_type="application/pdf"))
    posts = tmp_path / "posts"
    posts.mkdir()
    (posts / "a.md").write_text(f"[deck]({deck}) [secret](http://internal.test/s.pdf)\n")
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env[hermetic.HOSTS_VAR] = "internal.test=10.0.0.1"
    (tmp_path / "config.toml").write_text('db = "archive.db"\nstore = "store"\n')

    proc = run_cli("crawl", "posts", "--fail-on", "any", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr  # blocked is not broken, even for --fail-on any
    assert proc.stderr.startswith("1 post, 2 URLs, checked 2: blocked=2;"), proc.stderr
    assert server.stats("/deck.pdf").hits == 0

    args = ("crawl", "posts", "--all", "--fail-on", "any", "--allow-address", "127.0.0.1/32")
    proc = run_cli(*args, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "ok=1" in proc.stderr and "blocked=1" in proc.stderr
    assert server.stats("/deck.pdf").hits == 1

    report = run_cli("report", "--format", "json", cwd=tmp_path, env=env)  # the default states
    rows = json.loads(report.stdout)
    assert [(r["url"], r["state"]) for r in rows] == [("http://internal.test/s.pdf", "blocked")]
    assert "10.0.0.1 (private)" in rows[0]["error"]

    bad = run_cli("crawl", "posts", "--allow-address", "10.0.0.0/33", cwd=tmp_path, env=env)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "archiver: option --allow-address must hold CIDRs (127.0.0.0/8), IP addresses or host"
        " names, got '10.0.0.0/33' ('10.0.0.0/33' does not appear to be an IPv4 or IPv6"
        " network)"
    ]
    bad = run_cli("verify", "--repair", "--allow-address", "127.1", cwd=tmp_path, env=env)
    assert (bad.returncode, bad.stderr.count("\n")) == (2, 1)
    assert bad.stderr.startswith("archiver: option --allow-address must hold CIDRs")
    env[ENV_VAR] = "nope!"
    bad = run_cli("check", "posts", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith(f"archiver: environment variable {ENV_VAR} must hold CIDRs")


# -- the test harness itself: a broken guard still sends nothing off loopback ------------------


def test_the_tripwire_refuses_a_non_loopback_connect_here_and_in_subprocesses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "violations"  # not the one conftest checks: these trips are expected
    monkeypatch.setenv(hermetic.TRIPWIRE_VAR, str(log))
    with socket.socket() as sock, pytest.raises(PermissionError, match="tripwire"):
        sock.connect(("10.0.0.1", 80))
    assert hermetic.violations == ["tripwire: a test tried to connect to ('10.0.0.1', 80)"]
    hermetic.violations.clear()
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('192.168.1.1', 80), timeout=5)\n"
        "except PermissionError as e:\n"
        "    print(e)\n"
        "try:\n"
        "    socket.getaddrinfo('example.com', 80)\n"
        "except socket.gaierror as e:\n"
        "    print('no dns:', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.splitlines() == [
        "tripwire: a test tried to connect to ('192.168.1.1', 80)",
        "no dns: [Errno -2] Name or service not known",
    ], proc.stderr
    assert log.read_text().splitlines() == [
        "tripwire: a test tried to connect to ('10.0.0.1', 80)",
        "tripwire: a test tried to connect to ('192.168.1.1', 80)",
    ]
