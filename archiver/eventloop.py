"""Starting anyio's event loop: on uvloop where it is installed (issue 13 item 3).

uvloop (libuv under asyncio's API) spends less CPU per socket event than asyncio's own
loop. It is an optional dependency (``pip install 'archiver[fast]'``, Linux and macOS):
on a 2-core VM it bought no CPU per URL beyond the noise (docs/benchmarks.md), as a
check's CPU goes to the HTTP and database code rather than the loop. Without it, or with
``ARCHIVER_EVENT_LOOP=asyncio`` in the environment (to compare, or to rule it out when
something misbehaves), asyncio's loop runs as before. Every ``anyio.run`` goes through
``run`` here.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, TypeVarTuple, Unpack

import anyio

__all__ = ["loop_name", "run"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def _loop_factory() -> Callable[[], Any] | None:
    """uvloop's ``new_event_loop`` when installed and not turned off, else None."""
    if os.environ.get("ARCHIVER_EVENT_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: the loop ``run`` starts."""
    return "uvloop" if _loop_factory() is not None else "asyncio"


def run(func: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
    """``anyio.run(func, *args)`` on uvloop where it is installed."""
    factory = _loop_factory()
    if factory is None:
        return anyio.run(func, *args)
    return anyio.run(func, *args, backend_options={"loop_factory": factory})
