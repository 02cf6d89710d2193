"""Time, as something tests can replace.

Backoff, Retry-After and confirmation windows all read and wait through a
``Clock`` so that the test suite never sleeps and can jump hours ahead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio

__all__ = ["Clock", "FakeClock", "SystemClock", "iso", "parse_iso", "utcnow_iso"]


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


def iso(when: datetime) -> str:
    """A time as the database stores it: UTC, seconds, e.g. ``2026-01-01T00:00:00Z``.

    Strings in this form sort as the times they name, so SQL compares them directly.
    """
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str | None) -> datetime | None:
    """The inverse of ``iso`` (any ISO 8601 time with an offset or ``Z``); None for none."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def utcnow_iso(clock: Clock) -> str:
    """The clock's time in the database's form."""
    return iso(clock.now())
