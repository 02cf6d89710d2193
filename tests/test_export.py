"""WARC export: one response record per archived version, valid for `warcio check`."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import media
import pytest
from server import LoopbackServer
from test_report import FINE, PDF, PNG, World, make_world, sha
from warcio.archiveiterator import ArchiveIterator

from archiver.ops.export import FETCHED_URI_HEADER


@pytest.fixture
def world(tmp_path: Path, server: LoopbackServer) -> World:
    return make_world(tmp_path, server)


def records(path: Path) -> list[dict[str, object]]:
    out = []
    with path.open("rb") as f:
        for rec in ArchiveIterator(f):
            out.append(
                {
                    "type": rec.rec_type,
                    "version": rec.rec_headers.protocol,
                    "uri": rec.rec_headers.get_header("WARC-Target-URI"),
                    "date": rec.rec_headers.get_header("WARC-Date"),
                    "digest": rec.rec_headers.get_header("WARC-Payload-Digest"),
                    "status": rec.http_headers.get_statuscode() if rec.http_headers else None,
                    "ctype": rec.http_headers.get_header("Content-Type")
                    if rec.http_headers
                    else None,
                    "body": rec.content_stream().read(),
                }
            )
    return out


def warcio_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warcio.cli", "check", "-v", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_version_becomes_a_checked_response_record(world: World, tmp_path: Path) -> None:
    world.bodies["/fine.pdf"] = FINE + b"% v2\n"
    world.crawl()  # a second version of fine.pdf
    warc = tmp_path / "archive.warc.gz"
    code, out, err = world.run("export", "--warc", str(warc))
    assert (code, out) == (0, "")
    assert err == "export: 4 records written, 0 versions skipped\n"
    recs = records(warc)
    assert recs[0]["type"] == "warcinfo" and recs[0]["version"] == "WARC/1.1"
    responses = recs[1:]
    assert [(r["uri"], r["body"]) for r in responses] == [
        (world.deck, PDF),
        (world.fine, FINE),
        (world.fine, FINE + b"% v2\n"),
        (world.photo, PNG),
    ]
    assert all(r["type"] == "response" and r["status"] == "200" for r in responses)
    assert all(str(r["digest"]).startswith("sha1:") for r in responses)
    assert responses[0]["date"] == "2026-01-01T00:00:00Z"  # when it was fetched
    assert responses[2]["date"] == "2026-01-05T00:00:00Z"
    assert responses[3]["ctype"] == "image/png"  # the headers as fetched
    check = warcio_check(warc)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("digest pass") >= 4


def test_a_corrupt_blob_is_left_out_and_named(world: World, tmp_path: Path) -> None:
    blob = world.store().path_for(sha(PNG))
    os.chmod(blob, 0o644)
    blob.write_bytes(media.png_broken_idat(PNG))  # 8 bytes flipped: not these bytes
    warc = tmp_path / "archive.warc"
    code, _, err = world.run("export", "--warc", str(warc))
    assert code == 1
    assert err == (
        f"archiver: warning: {world.photo}: blob {sha(PNG)} is missing or corrupt; skipped\n"
        "export: 2 records written, 1 version skipped\n"
    )
    assert [r["uri"] for r in records(warc)][1:] == [world.deck, world.fine]
    assert warcio_check(warc).returncode == 0


def test_under_remap_the_record_is_for_the_url_the_post_links(
    tmp_path: Path, server: LoopbackServer
) -> None:
    """Replaying the post's URL finds the copy; the fetched address is a header beside it."""
    world = World(tmp_path, server)
    # The post links an address that is never asked (port 9 on loopback, nothing there):
    # [remap] sends the fetch to the server.
    linked = "http://127.0.0.1:9/old/deck.pdf"
    world.write("2024/meetup.md", f"[deck]({linked})\n")
    world.write("2025/talk.md", "nothing here\n")
    world.cfg = replace(
        world.cfg, remap=((r"^http://127\.0\.0\.1:9/old/(.*)$", server.url("/") + r"\1"),)
    )
    world.crawl()
    warc = tmp_path / "remapped.warc.gz"
    code, _, err = world.run("export", "--warc", str(warc))
    assert (code, err) == (0, "export: 1 record written, 0 versions skipped\n")
    with warc.open("rb") as f:
        found = [
            (
                rec.rec_headers.get_header("WARC-Target-URI"),
                rec.rec_headers.get_header(FETCHED_URI_HEADER),
                rec.rec_headers.get_header("WARC-Payload-Digest"),
                rec.content_stream().read(),
            )
            for rec in ArchiveIterator(f)
            if rec.rec_type == "response"
        ]
    digest = "sha1:" + base64.b32encode(hashlib.sha1(PDF).digest()).decode()
    assert found == [(linked, world.deck, digest, PDF)]
    check = warcio_check(warc)
    assert check.returncode == 0, check.stdout + check.stderr


def test_without_remap_no_fetched_address_header_is_written(world: World, tmp_path: Path) -> None:
    warc = tmp_path / "plain.warc"
    world.run("export", "--warc", str(warc))
    with warc.open("rb") as f:
        assert [
            rec.rec_headers.get_header(FETCHED_URI_HEADER)
            for rec in ArchiveIterator(f)
            if rec.rec_type == "response"
        ] == [None, None, None]
