"""The canary: one URL asked before the first link, so that a machine without network is
told apart from links that died (no answer means offline, and no link state changes)."""

from __future__ import annotations

from archiver.errors import ConfigError, NetworkDownError
from archiver.net.fetch import Fetcher
from archiver.records import UrlState
from archiver.run.summary import RunSummary

__all__ = ["ask_canary"]


async def ask_canary(fetcher: Fetcher, url: str, summary: RunSummary) -> None:
    """Raises ``NetworkDownError`` when the canary does not answer, ``ConfigError`` when a
    guard refuses it (refused, not unanswered: that says nothing about the network)."""
    canary = await fetcher.fetch(url, expect="any")
    summary.bytes += canary.bytes_received
    if canary.state == UrlState.BLOCKED:
        raise ConfigError(f"config key 'canary': {url} is not fetched: {canary.error}")
    if canary.http_status is None:
        raise NetworkDownError(
            f"network unreachable: the canary {url} did not answer"
            f" ({canary.error}); no link state was changed"
        )
