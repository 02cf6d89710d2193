"""archiver: keep the slides and pictures of event posts alive.

The library behind the ``archiver`` command: ``crawl`` runs the pipeline
(collect -> extract -> fetch -> store -> record); the stages are usable alone.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .clock import Clock, FakeClock, SystemClock
from .config import Config, FetchConfig, Source, load_config
from .crawl import RunSummary, crawl
from .db import STATES, Database
from .errors import (
    ArchiverError,
    ConfigError,
    DatabaseError,
    LockedError,
    NetworkDownError,
    StoreError,
)
from .extract import Reference, extract, normalize_url
from .fetch import Fetcher, FetchResult, FetchSettings, HostMapTransport
from .store import Store, StoredBlob

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
    "RunSummary",
    "Source",
    "Store",
    "StoreError",
    "StoredBlob",
    "SystemClock",
    "__version__",
    "crawl",
    "extract",
    "load_config",
    "normalize_url",
]
