"""Time, as something tests can replace.

Backoff, Retry-After and confirmation windows all read and wait through a
``Clock`` so that the test suite never sleeps and can jump hours ahead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio

__all__ = ["Clock", "FakeClock", "SystemClock", "utcnow_iso"]


class Clock:
    """The interface: wall-clock time in UTC and an awaitable sleep."""

    def now(self) -> datetime:
        raise NotImplementedError

    async def sleep(self, seconds: float) -> None:
        raise NotImplementedError


class SystemClock(Clock):
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class FakeClock(Clock):
    """A clock that only moves when told to; sleeping advances it instantly."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += timedelta(seconds=seconds)
        await anyio.lowlevel.checkpoint()


def utcnow_iso(clock: Clock) -> str:
    """The clock's time as an ISO 8601 string with seconds precision, e.g. 2026-01-01T00:00:00Z."""
    return clock.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
