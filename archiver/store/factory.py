"""Which backend a config names: ``store = "s3://bucket/prefix"``, or a directory."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archiver.store.base import BlobStore
from archiver.store.directory import Store

if TYPE_CHECKING:
    from archiver.config import Config

__all__ = ["open_store"]


def open_store(config: Config, *, create: bool = False) -> BlobStore:
    """The store ``config`` names. ``create=False`` (the default: read-only commands, or
    before the store's identity is checked) makes nothing; ``create()`` does it later.
    The S3 client (and obstore) is loaded only for an S3 store."""
    if config.blob_store.url is None:
        return Store(config.store, create=create)
    from archiver.store.s3 import S3Store

    return S3Store(config.blob_store, config.store, create=create)
