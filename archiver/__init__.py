"""archiver: keep the slides and pictures of event posts alive.

The library behind the ``archiver`` command. A run flows one way through stages, a
package each:

- ``sources``: where posts come from: folders (``folders``) and live sites (``sites``,
  with ``discover`` for listings, ``sitemap`` for sitemaps and feeds, ``robots``).
- ``extract``: pure, a post's text in and ``Reference`` values out.
- ``net``: the one HTTP client (``net.fetch.Fetcher``) and its transport, the address
  guard, the URL rules (``exclude_urls``, ``[remap]``) and the local folders ``file:``
  URLs may be read from.
- ``validate``: whether a body is the PDF or image its link promised.
- ``store``: the content-addressed blob store behind one interface (a directory, or an
  S3 bucket), and which database it belongs to.
- ``db``: state: the schema, its migrations and every query.
- ``run``: a crawl or check: the pipeline, the scheduler, the recorder, the run lock.
- ``ops``: what users do with the archive: report, status, restore, mirror, rewrite,
  verify, gc, export.
- ``cli``: the command line, a client of all of the above.

Beside them: ``states`` (the state rules: what is due, what a run may change,
confirmation), ``records`` (the typed records passed between stages), ``config`` (one
settings type per concern), ``errors``, ``clock``, ``redact``, ``text``.

Rules, kept by ``tests/test_layout.py`` and ``tests/test_http_stack.py``:

- only `db` has SQL: no other module writes a statement, touches a connection or
  imports a database driver, so a second backend replaces one package;
- only `net` speaks HTTP (httpx, httpcore, h11, h2: in fact only ``net.fetch`` and
  ``net.transport``), so every fetch gets the guard, the limits and the retries;
- nothing imports `cli`: the library never depends on the command line;
- no import cycle, between modules or between stages.

Names are imported on first use, so ``archiver --version`` and cron runs do not pay for
modules they never touch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it (README's "Library" section lists them).
_EXPORTS = {
    "STATES": "db",
    "ArchiverError": "errors",
    "Config": "config",
    "ConfigError": "errors",
    "DatabaseError": "errors",
    "FetchConfig": "config",
    "LockedError": "errors",
    "NetworkDownError": "errors",
    "Reference": "extract",
    "ReportFilter": "ops.report",
    "RunInterrupted": "errors",
    "RunSummary": "run.summary",
    "Source": "config",
    "StoreError": "errors",
    "UrlState": "records",
    "VerifyResult": "ops.verify",
    "check": "api",
    "crawl": "api",
    "load_config": "config",
    "normalize_url": "extract",
    "report_rows": "api",
    "restore": "api",
    "verify": "api",
}

__all__ = [
    "STATES",
    "ArchiverError",
    "Config",
    "ConfigError",
    "DatabaseError",
    "FetchConfig",
    "LockedError",
    "NetworkDownError",
    "Reference",
    "ReportFilter",
    "RunInterrupted",
    "RunSummary",
    "Source",
    "StoreError",
    "UrlState",
    "VerifyResult",
    "__version__",
    "check",
    "crawl",
    "load_config",
    "normalize_url",
    "report_rows",
    "restore",
    "verify",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'archiver' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .api import check, crawl, report_rows, restore, verify
    from .config import Config, FetchConfig, Source, load_config
    from .db import STATES
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
    from .ops.report import ReportFilter
    from .ops.verify import VerifyResult
    from .records import UrlState
    from .run.summary import RunSummary
