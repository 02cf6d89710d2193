"""Probing (``archiver check``): the first bytes decide, against a real server on loopback.

Two kinds of server matter: one that honours ``Range`` (answers 206 with the head) and one
that ignores it (answers 200 with the whole body, which the probe must drop early).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import media
import pytest
from server import LoopbackServer, Reply, Request, Script

from archiver.clock import FakeClock
from archiver.net.fetch import Fetcher, FetchResult, FetchSettings
from archiver.net.localfiles import LocalRoots
from archiver.store import Store
from archiver.store.directory import BlobWriter
from archiver.validate import HEAD_SIZE

pytestmark = pytest.mark.anyio

PDF = media.deck("slides", 16_000)
HTML = b"<!DOCTYPE html><html><head><title>Not found</title></head><body>Gone</body></html>"
FAST = FetchSettings(retries=2, connect_timeout=2.0, read_timeout=5.0)
BIG = 200 * 1024 * 1024
CHUNK = 64 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def big_pdf() -> Iterator[bytes]:
    """200 MB that open like a PDF, generated rather than held."""
    yield PDF[:CHUNK].ljust(CHUNK, b"\0")
    block = b"\0" * CHUNK
    for _ in range(BIG // CHUNK - 1):
        yield block


def ranged(body: bytes, content_type: str = "application/pdf") -> Script:
    """A route that honours ``Range: bytes=a-b`` with 206, like any static file server."""

    def script(req: Request) -> Reply:
        spec = req.headers.get("range", "")
        if not spec.startswith("bytes="):
            return Reply(body=body, content_type=content_type)
        first, _, last = spec[len("bytes=") :].partition("-")
        start, end = int(first), min(int(last), len(body) - 1)
        if start >= len(body):
            return Reply(status=416, headers=[("Content-Range", f"bytes */{len(body)}")])
        return Reply(
            status=206,
            body=body[start : end + 1],
            content_type=content_type,
            headers=[("Content-Range", f"bytes {start}-{end}/{len(body)}")],
        )

    return script


class WatchedStore(Store):
    """A store that counts the blob writers a fetch asks it for."""

    writers = 0

    def writer(self) -> BlobWriter:
        self.writers += 1
        return super().writer()


async def probe(
    url: str,
    expect: str = "any",
    store: Store | None = None,
    settings: FetchSettings = FAST,
    local_roots: LocalRoots | None = None,
) -> FetchResult:
    async with Fetcher(
        settings, store=store, clock=FakeClock(), local_roots=local_roots
    ) as fetcher:
        return await fetcher.fetch(url, expect=expect, probe=True)  # type: ignore[arg-type]


async def test_a_server_that_honours_range_sends_only_the_head(
    server: LoopbackServer, tmp_path: Path
) -> None:
    body = PDF * 40
    url = server.route("/deck.pdf", ranged(body))
    store = WatchedStore(tmp_path / "store")

    r = await probe(url, "pdf", store=store)

    assert (r.state, r.http_status, r.error) == ("ok", 206, None)
    assert r.status_line == "HTTP/1.1 206 Partial Content"
    assert (r.sha256, store.writers) == (None, 0)  # no blob: nothing was written
    assert r.content_type == "application/pdf"
    assert r.size == len(body)  # the whole file's size, from Content-Range
    assert r.bytes_received == HEAD_SIZE  # the server sent the head only: a 206 of 8 KiB
    assert server.stats("/deck.pdf").requests[0].headers["range"] == f"bytes=0-{HEAD_SIZE - 1}"
    assert list(store.tmp_dir.iterdir()) == []
    assert list(store.root.glob("??/*")) == []


async def test_a_server_that_ignores_range_is_dropped_once_the_type_is_known(
    server: LoopbackServer,
) -> None:
    url = server.route(
        "/big.pdf", Reply(chunks=big_pdf, length=BIG, content_type="application/pdf")
    )

    r = await probe(url, "pdf")

    assert (r.state, r.http_status, r.sha256, r.size) == ("ok", 200, None, BIG)
    assert r.bytes_received < 1024 * 1024
    # What the server managed to write before the connection dropped is bounded by socket
    # buffers (a few MB on loopback), not by the body.
    assert server.stats("/big.pdf").bytes_sent < BIG // 10


async def test_a_soft_404_is_invalid_whether_or_not_range_is_honoured(
    server: LoopbackServer,
) -> None:
    honoured = server.route("/a.pdf", ranged(HTML, "text/html"))
    ignored = server.route("/b.pdf", Reply(body=HTML, content_type="text/html"))
    for url in (honoured, ignored):
        r = await probe(url, "pdf")
        assert (r.state, r.error_class) == ("invalid", "soft-404")
        assert r.sha256 is None


async def test_a_large_soft_404_is_judged_on_its_head_and_dropped(server: LoopbackServer) -> None:
    page = HTML + b"<p>padding</p>" * 400_000  # ~5.6 MB of HTML, Range ignored
    url = server.route("/c.png", Reply(body=page, content_type="text/html"))

    r = await probe(url, "image")

    assert (r.state, r.error_class) == ("invalid", "soft-404")
    assert r.bytes_received < 1024 * 1024


async def test_416_for_an_empty_file_asks_again_without_a_range(server: LoopbackServer) -> None:
    url = server.route("/empty.pdf", ranged(b""))

    r = await probe(url, "pdf")

    assert (r.state, r.http_status, r.error_class) == ("invalid", 200, "wrong-type")
    assert r.error == "got an empty body where a PDF was expected"
    assert "range" not in server.stats("/empty.pdf").requests[-1].headers


async def test_416_from_a_server_that_mishandles_ranges_still_finds_the_asset(
    server: LoopbackServer,
) -> None:
    url = server.route(
        "/odd.pdf", lambda req: Reply(status=416) if "range" in req.headers else Reply(body=PDF)
    )

    r = await probe(url, "pdf")

    assert (r.state, r.http_status) == ("ok", 200)
    assert server.stats("/odd.pdf").hits == 2


async def test_the_range_follows_redirects(server: LoopbackServer, server2: LoopbackServer) -> None:
    final = server2.route("/deck.pdf", ranged(PDF * 4))
    start = server.route("/go", Reply.redirect(final))

    r = await probe(start, "pdf")

    assert (r.state, r.http_status, r.final_url) == ("ok", 206, final)
    assert "range" in server2.stats("/deck.pdf").requests[0].headers


async def test_dead_and_transient_failures_are_the_same_as_a_crawl(server: LoopbackServer) -> None:
    gone = server.route("/gone.pdf", Reply(status=404))
    busy = server.route("/busy.pdf", Reply(status=503), Reply(status=206, body=PDF[:100]))

    r = await probe(gone, "pdf")
    assert (r.state, r.error_class, r.attempts) == ("dead", "http-404", 1)
    r = await probe(busy, "pdf")
    assert (r.state, r.http_status, r.attempts) == ("ok", 206, 2)


async def test_a_truncated_head_is_an_error(server: LoopbackServer) -> None:
    url = server.route("/cut.pdf", Reply(status=206, body=PDF[:100], length=HEAD_SIZE))

    r = await probe(url, "pdf", settings=FetchSettings(retries=0))

    assert (r.state, r.error_class) == ("error", "truncated")


async def test_the_whole_size_is_held_to_the_cap(server: LoopbackServer) -> None:
    url = server.route("/huge.pdf", ranged(PDF * 4))

    r = await probe(url, "pdf", settings=FetchSettings(retries=0, max_size=len(PDF)))

    assert (r.state, r.error_class) == ("error", "too-large")


async def test_file_urls_are_probed_without_storing(tmp_path: Path) -> None:
    path = tmp_path / "deck.pdf"
    path.write_bytes(PDF * 10)
    store = WatchedStore(tmp_path / "store")

    r = await probe(path.as_uri(), "pdf", store=store, local_roots=LocalRoots.of([tmp_path]))

    assert (r.state, r.sha256, store.writers, r.size) == ("ok", None, 0, len(PDF) * 10)
    assert r.bytes_received == HEAD_SIZE
    assert list(store.root.glob("??/*")) == []
