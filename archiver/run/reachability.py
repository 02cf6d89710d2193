"""The offline rule: a run where no host answered changes no URL's state (offline is not
dead), decided per kind of host (public, or on this machine's own networks), so an
intranet server cannot vouch for the internet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from archiver.net.fetch import host_answered, is_network
from archiver.net.guard import is_public, public_networks
from archiver.net.transport import system_resolver
from archiver.records import Outcome

__all__ = ["Reachability"]


class Reachability:
    """Whether any host answered, and which: offline is decided per kind of host (public,
    or on this machine's own networks), so an intranet server cannot vouch for the internet."""

    def __init__(self) -> None:
        self.tried = False  # some network URL was tried
        self.answered = False  # some host answered (or a redirect proved it did)
        self.answering: set[str] = set()  # the hosts that answered
        self._marked = public_networks()  # the ARCHIVER_PUBLIC_ADDRESSES test hook
        self._kinds: dict[str, frozenset[bool]] = {}
        self._public_answered = False
        self._not_public: set[str] = set()  # answering hosts known not to be public

    def add(self, result: Outcome) -> None:
        # A blocked URL was never asked: it proves neither an answer nor a failure.
        if is_network(result) and result.state != "blocked":
            self.tried = True
            if host_answered(result):
                self.answered = True
                self.answering.add(_host(result.url))

    @classmethod
    def of(cls, outcomes: Iterable[Outcome]) -> Reachability:
        reach = cls()
        for outcome in outcomes:
            reach.add(outcome)
        return reach

    @property
    def down(self) -> bool:
        """True when network URLs were tried and no host answered any of them: offline.

        Blocked URLs were not tried: a run whose URLs are all blocked is not offline."""
        return self.tried and not self.answered

    async def public_answered(self) -> bool:
        """Whether some public host answered: one whose every address is public (once
        true, it stays so: later calls cost nothing)."""
        if self._public_answered:
            return True
        for host in self.answering - self._not_public:
            if all(await self._public(host)):
                self._public_answered = True
                return True
            self._not_public.add(host)
        return False

    async def protects(self, result: Outcome) -> bool:
        """Whether an unanswered ``result`` is a public link's, held back when offline: a
        name that did not resolve counts as public, as does a host with a public address."""
        if not is_network(result) or result.state == "blocked":
            return False
        if result.error_class in ("dns", "dns-temporary"):
            return True
        return any(await self._public(_host(result.url)))

    async def _public(self, host: str) -> frozenset[bool]:
        """For each address of ``host``, whether it is public; a lookup per host and run."""
        known = self._kinds.get(host)
        if known is None:
            known = self._kinds[host] = await self._lookup(host)
        return known

    async def _lookup(self, host: str) -> frozenset[bool]:
        try:
            return frozenset({is_public(ipaddress.ip_address(host), self._marked)})
        except ValueError:
            pass
        try:
            answer = await system_resolver(host, 443)
        except OSError:  # a name that does not resolve counts as public
            return frozenset({True})
        return frozenset(
            is_public(str(addr[0]).split("%", 1)[0], self._marked) for _, addr in answer
        ) or frozenset({True})


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()
