"""The content-addressed blob store (file name = SHA-256 of the bytes) and its identity."""

from archiver.store.directory import BlobWriter, Store, StoredBlob

__all__ = ["BlobWriter", "Store", "StoredBlob"]
