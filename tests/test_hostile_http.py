"""Hostile HTTP/1.1 servers (raw bytes from ``hostile_server``) against the lean transport.

Each case asserts what became of the URL: the state and error class a malformed response
earns, or, for a response that sends more than it framed, that the next URL on the same
server is archived with its own bytes (issue 10: such bytes once shifted every later
response on a kept-alive connection, and the wrong bytes were stored as ``ok``).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import httpx
import media
import pytest
import trustme
from hostile_server import HostileServer, raw

from archiver.clock import FakeClock
from archiver.config import Config, FetchConfig, Source, load_config
from archiver.errors import ConfigError
from archiver.net.fetch import Fetcher, FetchSettings
from archiver.net.transport import Http11Transport
from archiver.run.crawl import crawl

A = media.deck("first deck", 2200)
B = media.deck("second deck", 3600)
EVIL = media.deck("NOT THE SECOND DECK")
SETTINGS = FetchSettings(retries=0, connect_timeout=5.0, read_timeout=10.0, transport="lean")


def ok(body: bytes, *headers: bytes) -> bytes:
    """A well-framed 200 with ``body``."""
    head = [b"HTTP/1.1 200 OK", b"Content-Type: application/pdf", *headers]
    head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


#: What a smuggling server appends: a whole response, for the next request to take.
FAKE = ok(EVIL)


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as srv:
        yield srv


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def run_crawl(tmp_path: Path, urls: list[str], *, again: bool = False, **fetch: object) -> Config:
    """One crawl of a post linking ``urls`` in order, one request at a time (so the
    second URL goes out on the connection the first one used, if it was kept)."""
    posts = tmp_path / "posts"
    posts.mkdir(exist_ok=True)
    (posts / "talk.md").write_text("".join(f"[deck]({u})\n" for u in urls), encoding="utf-8")
    settings = {"retries": 0, "concurrency": 1, "per_host": 1, "read_timeout": 10.0, **fetch}
    cfg = Config(
        db=tmp_path / "state" / "archive.db",
        store=tmp_path / "state" / "store",
        fetch=FetchConfig(transport="lean", **settings),  # type: ignore[arg-type]
    )
    crawl(cfg, [Source(path=posts)], clock=FakeClock(), all_=again)  # again: every URL due
    return cfg


def outcomes(cfg: Config) -> dict[str, tuple[str, str | None, str | None]]:
    """``url -> (state, error_class, sha256)`` as recorded."""
    with sqlite3.connect(cfg.db) as conn:
        rows = conn.execute("SELECT url, state, error_class, sha256 FROM urls").fetchall()
    return {url: (state, error_class, digest) for url, state, error_class, digest in rows}


def stored(cfg: Config, body: bytes) -> bool:
    digest = sha(body)
    path = cfg.store / digest[:2] / digest
    return path.exists() and path.read_bytes() == body


# --- bytes past a response's end never start the next one ---------------------------------


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(ok(A) + FAKE, id="body-longer-than-content-length"),
        pytest.param(ok(A) + b"junk", id="stray-bytes-after-the-body"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n%s"
            % (len(A), A, FAKE),
            id="bytes-after-the-last-chunk",
        ),
    ],
)
def test_bytes_past_the_framed_end_never_reach_the_next_url(
    tmp_path: Path, hostile: HostileServer, first: bytes
) -> None:
    a = hostile.route("/a.pdf", raw(first))
    b = hostile.route("/b.pdf", raw(ok(B)))
    cfg = run_crawl(tmp_path, [a, b])
    assert outcomes(cfg) == {a: ("ok", None, sha(A)), b: ("ok", None, sha(B))}
    assert stored(cfg, A) and stored(cfg, B) and not stored(cfg, EVIL)
    assert hostile.seen.connections == 2  # the connection with bytes left over was dropped


def test_a_204_with_a_body_never_shifts_the_next_url(
    tmp_path: Path, hostile: HostileServer
) -> None:
    a = hostile.route("/a.pdf", raw(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n" + FAKE))
    b = hostile.route("/b.pdf", raw(ok(B)))
    cfg = run_crawl(tmp_path, [a, b])
    got = outcomes(cfg)
    assert got[a][0] != "ok" and got[a][2] is None  # an empty 204 is not a PDF
    assert got[b] == ("ok", None, sha(B))
    assert stored(cfg, B) and not stored(cfg, EVIL)
    assert hostile.seen.connections == 2


def test_a_well_framed_server_keeps_one_connection(tmp_path: Path, hostile: HostileServer) -> None:
    """The control case: when nothing is left over, the connection is reused."""
    a = hostile.route("/a.pdf", raw(ok(A)))
    b = hostile.route("/b.pdf", raw(ok(B)))
    cfg = run_crawl(tmp_path, [a, b])
    assert outcomes(cfg) == {a: ("ok", None, sha(A)), b: ("ok", None, sha(B))}
    assert hostile.seen.connections == 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    ("method", "first"),
    [
        pytest.param("HEAD", ok(A) + FAKE, id="head-answered-with-a-body"),
        pytest.param(
            "GET",
            b'HTTP/1.1 304 Not Modified\r\nETag: "1"\r\nContent-Length: 20\r\n\r\n' + FAKE,
            id="304-with-a-body",
        ),
    ],
)
async def test_a_response_that_has_no_body_but_sends_one_drops_the_connection(
    hostile: HostileServer, method: str, first: bytes, anyio_backend: str
) -> None:
    a = hostile.route("/a.pdf", raw(first))
    b = hostile.route("/b.pdf", raw(ok(B)))
    transport = Http11Transport()
    async with httpx.AsyncClient(transport=transport) as client:
        answer = await client.request(method, a, headers={"If-None-Match": '"1"'})
        nxt = await client.get(b)
    assert answer.content == b""
    assert (nxt.status_code, nxt.content) == (200, B)
    assert transport.connections_opened == hostile.seen.connections == 2


# --- what h11 rejects is rejected -------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        pytest.param(b"HTTP/1.x 200 OK\r\nContent-Length: 3\r\n\r\nabc", "status line", id="1.x"),
        pytest.param(ok(A, b"X\x00Y: 1"), "illegal header line", id="nul-in-name"),
        pytest.param(ok(A, b"X Y: 1"), "illegal header line", id="space-in-name"),
        pytest.param(ok(A, b"X-Name : 1"), "illegal header line", id="space-before-colon"),
        pytest.param(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n" + ok(A),
            "_SWITCH_UPGRADE",
            id="101-then-200",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" + A,
            "Only Transfer-Encoding: chunked",
            id="transfer-encoding-gzip",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(A), A),
            "multiple Transfer-Encoding",
            id="duplicate-transfer-encoding",
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            "Only Transfer-Encoding: chunked",
            id="chunked-twice-in-one-field",
        ),
        pytest.param(
            ok(A, b"X-Pad: " + b"a" * 70_000), "longer than 65536 bytes", id="head-over-64k"
        ),
        pytest.param(
            ok(A, *[b"X-Pad-%d: %s" % (i, b"b" * 1000) for i in range(66)]),
            "longer than 65536 bytes",
            id="many-fields-over-64k",
        ),
        pytest.param(
            b"HTTP/1.1 100 Continue\r\n\r\n" * 17 + ok(A),
            "more than 16 informational",
            id="seventeen-100-continue",
        ),
        pytest.param(b'HTTP/1.1 200 OK\r\nETag: "a\rb"\r\n' + ok(A)[17:], "illegal", id="bare-cr"),
    ],
)
def test_a_malformed_response_is_a_protocol_error(
    tmp_path: Path, hostile: HostileServer, answer: bytes, message: str
) -> None:
    a = hostile.route("/a.pdf", raw(answer))
    b = hostile.route("/b.pdf", raw(ok(B)))
    cfg = run_crawl(tmp_path, [a, b])
    got = outcomes(cfg)
    assert got[a] == ("error", "protocol", None)
    assert got[b] == ("ok", None, sha(B))  # the next URL, on a fresh connection, is whole
    assert not stored(cfg, A)
    with sqlite3.connect(cfg.db) as conn:
        error = conn.execute("SELECT error FROM urls WHERE url=?", (a,)).fetchone()[0]
    assert message in error


def test_an_endless_stream_of_100_continue_ends_as_a_protocol_error(
    tmp_path: Path, hostile: HostileServer
) -> None:
    def endless(sock: socket.socket, head: bytes) -> bool:
        try:
            while True:  # until the client hangs up
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        except OSError:
            return False

    a = hostile.route("/a.pdf", endless)
    cfg = run_crawl(tmp_path, [a])
    assert outcomes(cfg) == {a: ("error", "protocol", None)}


def test_sixteen_informational_responses_are_still_read_through(
    tmp_path: Path, hostile: HostileServer
) -> None:
    a = hostile.route("/a.pdf", raw(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" * 16 + ok(A)))
    cfg = run_crawl(tmp_path, [a])
    assert outcomes(cfg) == {a: ("ok", None, sha(A))}


def test_a_head_just_under_64k_is_read(tmp_path: Path, hostile: HostileServer) -> None:
    a = hostile.route("/a.pdf", raw(ok(A, b"X-Pad: " + b"a" * 60_000)))
    cfg = run_crawl(tmp_path, [a])
    assert outcomes(cfg) == {a: ("ok", None, sha(A))}


# --- what is stored of a response's headers ---------------------------------------------


def test_only_the_headers_archiver_uses_are_stored(tmp_path: Path, hostile: HostileServer) -> None:
    junk = [b"Set-Cookie: session=secret", b"X-Junk: " + b"j" * 30_000, b"Server: hostile"]
    kept = [b'ETag: "v1"', b"Last-Modified: Tue, 01 Dec 2026 10:00:00 GMT"]
    a = hostile.route("/a.pdf", raw(ok(A, *junk, *kept, b"Date: Tue, 01 Dec 2026 10:00:00 GMT")))
    cfg = run_crawl(tmp_path, [a])
    with sqlite3.connect(cfg.db) as conn:
        (headers,) = conn.execute("SELECT headers FROM responses").fetchone()
    names = [name for name, _ in json.loads(headers)]
    assert names == ["Content-Type", "ETag", "Last-Modified", "Date", "Content-Length"]


def test_stored_headers_are_capped_at_8_kib(tmp_path: Path, hostile: HostileServer) -> None:
    long_type = b"Content-Type: application/pdf; x=" + b"y" * 9000
    a = hostile.route("/a.pdf", raw(ok(A, long_type, b"Date: Tue, 01 Dec 2026 10:00:00 GMT")))
    cfg = run_crawl(tmp_path, [a])
    with sqlite3.connect(cfg.db) as conn:
        (headers,) = conn.execute("SELECT headers FROM responses").fetchone()
    assert len(headers) <= 8 * 1024 + 64  # JSON punctuation aside
    names = [name for name, _ in json.loads(headers)]
    assert names == ["Content-Type"]  # the first field fits; what follows would not


# --- header injection: nothing we send carries CR, LF or NUL -----------------------------


def requests_for(hostile: HostileServer, path: str) -> list[bytes]:
    return [head for head in hostile.seen.requests if head.split(b" ", 2)[1] == path.encode()]


def test_an_etag_with_a_bare_lf_is_never_sent_back(tmp_path: Path, hostile: HostileServer) -> None:
    a = hostile.route("/a.pdf", raw(ok(A, b'ETag: "v1\n2"')))
    run_crawl(tmp_path, [a])
    hostile.route("/a.pdf", raw(ok(A, b'ETag: "v2"')))
    cfg = run_crawl(tmp_path, [a], again=True)
    assert outcomes(cfg)[a] == ("ok", None, sha(A))
    _, second = requests_for(hostile, "/a.pdf")
    assert b"if-none-match" not in second.lower()
    assert second.count(b"\n") == second.count(b"\r\n")  # no bare LF anywhere


def test_a_recorded_validator_with_cr_lf_is_dropped_before_sending(
    tmp_path: Path, hostile: HostileServer
) -> None:
    """A validator recorded before they were checked (or edited into the database) must
    not inject a header line: the request goes out unconditional instead."""
    a = hostile.route("/a.pdf", raw(ok(A, b'ETag: "v1"')))
    cfg = run_crawl(tmp_path, [a])
    with sqlite3.connect(cfg.db) as conn:
        conn.execute(
            "UPDATE urls SET etag=?, last_modified=?",
            ('"v1"\r\nX-Injected: yes', "Tue\n"),
        )
    run_crawl(tmp_path, [a], again=True)
    second = requests_for(hostile, "/a.pdf")[1].lower()
    assert b"x-injected" not in second
    assert b"if-none-match" not in second and b"if-modified-since" not in second


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_validator_with_a_lf_is_not_kept(anyio_backend: str) -> None:
    """Unit test of ``Fetcher``'s reading of validators: h11 never yields such a value,
    but another transport (or a future one) might."""

    def answer(request: httpx.Request) -> httpx.Response:
        headers = [("ETag", '"a\nb"'), ("Last-Modified", "Tue\r\n"), ("Content-Type", "x/y")]
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(A))

    async with Fetcher(SETTINGS, transport=httpx.MockTransport(answer)) as fetcher:
        result = await fetcher.fetch("http://127.0.0.1:9/a.pdf", expect="pdf")
    assert (result.state, result.etag, result.last_modified) == ("ok", None, None)


@pytest.mark.parametrize("agent", ["bot\r\nX-Injected: yes", "bot\n", "bot\x00"])
def test_a_user_agent_with_cr_lf_or_nul_is_a_config_error(tmp_path: Path, agent: str) -> None:
    path = tmp_path / "config.toml"
    escaped = agent.replace("\r", "\\r").replace("\n", "\\n").replace("\0", "\\u0000")
    path.write_text(f'[fetch]\nuser_agent = "{escaped}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(
        "config key 'fetch.user_agent' must not contain CR, LF or NUL, got "
    )
    assert info.value.exit_code == 2
    with pytest.raises(ValueError, match="user_agent must not contain CR, LF or NUL"):
        FetchSettings(user_agent=agent)


def test_a_user_agent_with_crlf_exits_2_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "posts").mkdir()
    (tmp_path / "config.toml").write_text(
        'db = "state/archive.db"\nstore = "state/store"\n[[sources]]\npath = "posts"\n'
        '[fetch]\nuser_agent = "bot\\r\\nX-Injected: yes"\n',
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "archiver", "crawl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "archiver: config key 'fetch.user_agent' must not contain CR, LF or NUL"
    )


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_bytes_that_arrive_while_the_connection_is_idle_drop_it(
    hostile: HostileServer, anyio_backend: str
) -> None:
    """A response for nobody, sent after the last one ended: the idle connection it
    arrives on is never used again, and the next URL gets its own bytes."""
    idle, sent = threading.Event(), threading.Event()

    def late(sock: socket.socket, head: bytes) -> bool:
        sock.sendall(ok(A))
        idle.wait(timeout=30)
        sock.sendall(FAKE)
        sent.set()
        return True

    a = hostile.route("/a.pdf", late)
    b = hostile.route("/b.pdf", raw(ok(B)))
    transport = Http11Transport()
    async with Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher:
        first = await fetcher.fetch(a, expect="pdf")
        idle.set()
        assert await anyio.to_thread.run_sync(sent.wait, 30)
        second = await fetcher.fetch(b, expect="pdf")
    assert (first.state, first.sha256) == ("ok", sha(A))
    assert (second.state, second.sha256) == ("ok", sha(B))
    assert transport.connections_opened == hostile.seen.connections == 2


@pytest.fixture
def hostile_tls(ca: trustme.CA) -> Iterator[HostileServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with HostileServer(tls=context) as srv:
        yield srv


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    "first",
    [
        pytest.param(ok(A) + FAKE, id="body-longer-than-content-length"),
        pytest.param(b"HTTP/1.1 204 No Content\r\n\r\n" + FAKE, id="204-with-a-body"),
    ],
)
async def test_over_tls_bytes_past_the_end_never_reach_the_next_url(
    hostile_tls: HostileServer, trust: ssl.SSLContext, first: bytes, anyio_backend: str
) -> None:
    a = hostile_tls.route("/a.pdf", raw(first))
    b = hostile_tls.route("/b.pdf", raw(ok(B)))
    c = hostile_tls.route("/c.pdf", raw(ok(A)))
    transport = Http11Transport(ssl_context=trust)
    async with Fetcher(SETTINGS, transport=transport, clock=FakeClock()) as fetcher:
        results = [await fetcher.fetch(url, expect="pdf") for url in (a, b, c)]
    assert results[0].sha256 in (None, sha(A))  # an empty 204 is not a PDF
    assert [(r.state, r.sha256) for r in results[1:]] == [("ok", sha(B)), ("ok", sha(A))]
    # The first connection was dropped; the second, well framed, carried the third URL.
    assert transport.connections_opened == hostile_tls.seen.connections == 2
