"""The content-addressed blob store (name = SHA-256 of the bytes), its backends and identity.

``BlobStore`` is what the rest of archiver sees; ``open_store`` picks the backend a
config names (a directory, or ``s3://bucket/prefix``). ``Store`` is the directory
backend, which tests and tools may build directly.
"""

from archiver.store.base import BlobEntry, BlobStore, BlobWriter, StoredBlob
from archiver.store.directory import Store
from archiver.store.factory import open_store

__all__ = ["BlobEntry", "BlobStore", "BlobWriter", "Store", "StoredBlob", "open_store"]
