"""Which store a database belongs to, and which databases a store serves.

Owns the binding between the two: the store's id file (``archiver-store.json`` at
its root: the store's id and the ids of the databases that use it) and the store id
recorded in the database. A command given another store, or an empty one where the
database names blobs, is refused before it can mark every blob missing. A store
serves two databases only when each says so (``shared_store = true``). Stores and
databases from before ids are adopted on first use when the store holds what the
database names. Never touches a blob.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from archiver.db.sqlite import Database
from archiver.errors import ConfigError, StoreError
from archiver.store.base import BlobStore

__all__ = ["ID_FILE", "StoreIdentity", "bind_store", "is_shared", "read_identity"]

#: The store's id file, at its root (outside the fan-out directories).
ID_FILE = "archiver-store.json"


@dataclass(frozen=True)
class StoreIdentity:
    store_id: str
    databases: tuple[str, ...]  # ids of the databases that use the store


def read_identity(store: BlobStore) -> StoreIdentity | None:
    """The store's id file, or None when it has none (new, empty, or from before ids)."""
    raw = store.read_meta(ID_FILE)
    if raw is None:
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
        identity = StoreIdentity(str(data["store_id"]), tuple(map(str, data["databases"])))
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(
            f"{store.meta_location(ID_FILE)} is not an archiver store id file ({exc}):"
            " restore it from a backup"
        ) from exc
    return identity


def _write_identity(store: BlobStore, identity: StoreIdentity) -> None:
    """Replaces the id file whole (a crash leaves the old one or the new)."""
    text = json.dumps(
        {"store_id": identity.store_id, "databases": list(identity.databases)}, indent=2
    )
    store.write_meta(ID_FILE, (text + "\n").encode("utf-8"))


def _held(db: Database, store: BlobStore) -> tuple[int, int]:
    """How many of the blobs the database names are in the store, and how many it names."""
    named = list(db.blob_shas())
    return sum(1 for sha in named if store.has(sha)), len(named)


def _empty(store: BlobStore) -> bool:
    """No blob at all (asks a bucket for one key, not for all of them)."""
    return next(iter(store.iter_blobs()), None) is None


def bind_store(db: Database, store: BlobStore, *, shared: bool, write: bool) -> list[str]:
    """Refuses a store that is not this database's; returns warnings worth showing.

    ``write=False`` (read-only commands) checks the same way and records nothing.
    Raises ``ConfigError`` (exit 2) with one line naming both paths.
    """
    database_id = str(db.meta("database_id"))
    known = db.meta("store_id")
    identity = read_identity(store)
    both = f"database {db.path} and store {store.location}"
    warnings: list[str] = []
    if identity is None:
        held, named = _held(db, store)
        if named and not held:
            what = "is empty" if _empty(store) else f"holds none of its {named} blobs"
            raise ConfigError(
                f"{both}: the store {what}; pass the --store the database was crawled with"
            )
        if not named and known is None and not _empty(store) and not shared:
            raise ConfigError(
                f"{both}: the store holds blobs this new database does not name (another"
                " database's store?); use another --store, or set shared_store = true"
            )
        if held < named:
            warnings.append(
                f"store {store.location} holds {held} of the {named} blobs database {db.path}"
                " names; 'archiver verify' lists the missing ones"
            )
        identity = StoreIdentity(known or uuid.uuid4().hex, (database_id,))
        if write:
            _write_identity(store, identity)
    elif known is not None and known != identity.store_id:
        raise ConfigError(
            f"{both}: the database belongs to store {known[:12]}, this is store"
            f" {identity.store_id[:12]}; pass the --store the database was crawled with"
        )
    elif database_id not in identity.databases:
        if not shared:
            raise ConfigError(
                f"{both}: the store belongs to another database; to share it, set"
                " shared_store = true in the config of every database that uses it"
            )
        identity = StoreIdentity(identity.store_id, (*identity.databases, database_id))
        if write:
            _write_identity(store, identity)
    elif len(identity.databases) > 1 and not shared:
        raise ConfigError(
            f"{both}: the store is shared by {len(identity.databases)} databases;"
            " set shared_store = true in this database's config to use it"
        )
    if write and known is None:
        with db.transaction():
            db.add_meta("store_id", identity.store_id)
    return warnings


def is_shared(store: BlobStore) -> bool:
    """Whether more than one database uses the store (``gc`` would remove their blobs)."""
    identity = read_identity(store)
    return identity is not None and len(identity.databases) > 1
