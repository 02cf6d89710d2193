"""Test helper: many fetches at once through one ``Fetcher``."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import anyio

from archiver.net.fetch import Fetcher, FetchResult


async def fetch_all(
    fetcher: Fetcher,
    items: Iterable[tuple[str, str] | tuple[str, str, dict[str, str] | None]],
    on_result: Callable[[FetchResult], None] | None = None,
) -> list[FetchResult]:
    """Fetches ``(url, expect[, validators])`` items concurrently, calling ``on_result`` as each
    completes. (The crawl schedules its own fetches, fairly across hosts: ``schedule.Scheduler``.)
    """
    results: list[FetchResult] = []

    async def one(url: str, expect: str, validators: dict[str, str] | None = None) -> None:
        r = await fetcher.fetch(url, expect=expect, validators=validators)  # type: ignore[arg-type]
        results.append(r)
        if on_result is not None:
            on_result(r)

    async with anyio.create_task_group() as tg:
        for item in items:
            tg.start_soon(one, *item)
    return results
