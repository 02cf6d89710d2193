from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

import media
import pytest

from archiver.errors import StoreError
from archiver.store import Store
from archiver.store.base import INLINE_BYTES


def test_blob_is_named_by_its_sha256_and_read_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    body = media.deck("hello")
    blob = store.put_bytes(body)
    digest = hashlib.sha256(body).hexdigest()
    assert blob.sha256 == digest
    assert blob.path == tmp_path / "store" / digest[:2] / digest
    assert blob.path.read_bytes() == body
    assert not blob.path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert blob.new


def test_identical_bytes_are_stored_once(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a = store.put_bytes(b"same")
    b = store.put_bytes(b"same")
    assert a.path == b.path and not b.new
    assert len(store.iter_blobs()) == 1
    assert list(store.tmp_dir.iterdir()) == []


def test_aborted_writer_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.writer() as w:
        w.write(b"partial")
        tmp = w.tmp_path
        assert tmp.exists()
    assert not tmp.exists()
    assert store.iter_blobs() == []


def test_uncommitted_temp_never_appears_under_a_final_name(tmp_path: Path) -> None:
    store = Store(tmp_path)
    w = store.writer()
    w.write(b"data")
    w.finish()
    assert store.iter_blobs() == []  # finished (fsynced) but not renamed: not a blob yet
    w.commit()
    assert len(store.iter_blobs()) == 1


def test_clean_temp_removes_leftovers_of_a_killed_run(tmp_path: Path) -> None:
    store = Store(tmp_path)
    (store.tmp_dir / "partial-abc").write_bytes(b"half")
    assert store.clean_temp() == 1
    assert list(store.tmp_dir.iterdir()) == []


def test_disk_full_is_a_store_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    w = store.writer()

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    w.write(b"x")
    with pytest.raises(StoreError, match="the disk is full"):
        w.commit()
    assert list(store.tmp_dir.iterdir()) == []
    assert store.iter_blobs() == []


def test_hash_file_detects_damage(tmp_path: Path) -> None:
    store = Store(tmp_path)
    blob = store.put_bytes(b"good bytes")
    assert store.hash_file(blob.sha256) == blob.sha256
    os.chmod(blob.path, 0o644)
    blob.path.write_bytes(b"bad bytes!")
    assert store.hash_file(blob.sha256) != blob.sha256
    blob.path.unlink()
    assert store.hash_file(blob.sha256) is None


def test_a_large_body_is_written_and_hashed_in_order_past_the_inline_part(tmp_path: Path) -> None:
    """Past INLINE_BYTES a thread writes and hashes; the blob is the same bytes."""
    store = Store(tmp_path)
    data = os.urandom(3 * INLINE_BYTES + 12345)
    with store.writer() as w:
        for at in range(0, len(data), 65536):
            w.write(data[at : at + 65536])
        assert w.size == len(data)
        blob = w.commit()
    assert blob.sha256 == hashlib.sha256(data).hexdigest()
    assert blob.path is not None and blob.path.read_bytes() == data
    assert list(store.tmp_dir.iterdir()) == []


class _FullAfter:
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, file: BinaryIO, room: int) -> None:
        self._file, self._room = file, room

    def write(self, chunk: bytes) -> int:
        if len(chunk) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(chunk)
        return self._file.write(chunk)

    def __getattr__(self, name: str) -> object:
        return getattr(self._file, name)


def test_a_disk_full_past_the_inline_part_is_a_store_error(tmp_path: Path) -> None:
    store = Store(tmp_path)
    w = store.writer()
    w._file = _FullAfter(w._open_temp(), INLINE_BYTES + 65536)  # type: ignore[assignment]
    chunk = b"x" * 65536
    with pytest.raises(StoreError, match="the disk is full"):
        for _ in range(4 * INLINE_BYTES // len(chunk)):
            w.write(chunk)
        w.commit()
    assert list(store.tmp_dir.iterdir()) == []
    assert store.iter_blobs() == []


def test_an_abort_past_the_inline_part_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with store.writer() as w:
        for _ in range(40):
            w.write(b"y" * 65536)
        w.abort()
    assert list(store.tmp_dir.iterdir()) == []


def test_the_same_bytes_committed_at_once_are_new_exactly_once(tmp_path: Path) -> None:
    """Threads of a run storing one body together (the same deck linked twice)."""
    import threading

    store = Store(tmp_path)
    body = media.deck("twice", 200_000)
    writers = []
    for _ in range(8):
        w = store.writer()
        w.write(body)
        w.finish()
        writers.append(w)
    start = threading.Barrier(len(writers))
    got: list[bool] = []

    def commit(w: object) -> None:
        start.wait()
        got.append(w.commit().new)  # type: ignore[attr-defined]

    threads = [threading.Thread(target=commit, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got) == [False] * 7 + [True]
    sha = hashlib.sha256(body).hexdigest()
    assert store.hash_file(sha) == sha
    assert list(store.tmp_dir.iterdir()) == []
