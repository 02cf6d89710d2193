from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

import media
import pytest

from archiver.errors import StoreError
from archiver.store import Store


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
