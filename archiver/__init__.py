"""archiver: keep the slides and pictures of event posts alive.

The library behind the ``archiver`` command: ``archiver.crawl.crawl`` runs the
pipeline (collect -> extract -> fetch -> store -> record); each stage is a module
usable alone (``archiver.extract.extract`` is pure: text in, references out).
Names are imported on first use, so ``archiver --version`` and cron runs do not
pay for modules they never touch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the private module that defines it.
_EXPORTS = {
    "STATES": "db",
    "ArchiverError": "errors",
    "Clock": "clock",
    "Config": "config",
    "ConfigError": "errors",
    "Database": "db",
    "DatabaseError": "errors",
    "FakeClock": "clock",
    "FetchConfig": "config",
    "FetchResult": "net.fetch",
    "FetchSettings": "net.fetch",
    "Fetcher": "net.fetch",
    "HostMapTransport": "net.fetch",
    "LockedError": "errors",
    "NetworkDownError": "errors",
    "Reference": "extract",
    "RunInterrupted": "errors",
    "RunSummary": "run.crawl",
    "Source": "config",
    "Store": "store",
    "StoreError": "errors",
    "StoredBlob": "store",
    "SystemClock": "clock",
    "load_config": "config",
    "normalize_url": "extract",
}

__all__ = [
    "STATES",
    "ArchiverError",
    "Clock",
    "Config",
    "ConfigError",
    "Database",
    "DatabaseError",
    "FakeClock",
    "FetchConfig",
    "FetchResult",
    "FetchSettings",
    "Fetcher",
    "HostMapTransport",
    "LockedError",
    "NetworkDownError",
    "Reference",
    "RunInterrupted",
    "RunSummary",
    "Source",
    "Store",
    "StoreError",
    "StoredBlob",
    "SystemClock",
    "__version__",
    "load_config",
    "normalize_url",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'archiver' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .clock import Clock, FakeClock, SystemClock
    from .config import Config, FetchConfig, Source, load_config
    from .db import STATES, Database
    from .errors import (
        ArchiverError,
        ConfigError,
        DatabaseError,
        LockedError,
        NetworkDownError,
        RunInterrupted,
        StoreError,
    )
    from .extract import Reference, normalize_url
    from .net.fetch import Fetcher, FetchResult, FetchSettings, HostMapTransport
    from .run.crawl import RunSummary
    from .store import Store, StoredBlob
