"""The address guard: which IP addresses a fetch may connect to.

Owns the classes of addresses refused by default (loopback, private, shared, link-local
with the cloud metadata address, unspecified, multicast, broadcast, reserved, and IPv6
addresses that embed such an IPv4 address: mapped, compatible, 6to4, NAT64), the allow
list that opens exceptions (CIDRs and host names, from ``fetch.allow_addresses``,
``--allow-address`` and ``ARCHIVER_ALLOW_ADDRESSES``), and ``BlockedAddress``, the error a
refused connection raises. Addresses are parsed by the stdlib ``ipaddress``, never by
hand. This module never resolves a name nor opens a socket: the transports ask it after
DNS, for every address they would try, so posts and servers cannot turn a crawl into a
scan of the machine's own network.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from archiver.errors import ConfigError

__all__ = ["ENV_VAR", "PUBLIC_VAR", "AddressGuard", "BlockedAddress", "classify", "is_public"]

#: The environment variable whose comma-separated entries join the allow list.
ENV_VAR = "ARCHIVER_ALLOW_ADDRESSES"

#: Test hook: comma-separated CIDRs whose addresses count as public hosts for the offline
#: rule (a loopback test server can then stand for a host on the internet).
PUBLIC_VAR = "ARCHIVER_PUBLIC_ADDRESSES"

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Checked in order: the first range holding an address names its class. Anything else
# that ``ipaddress`` does not call global is "reserved" (documentation, benchmarking...).
_V4_CLASSES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/32", "unspecified"),
        ("0.0.0.0/8", "unspecified"),  # "this network": Linux connects it to the local host
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "private"),  # shared address space (carrier-grade NAT)
        ("169.254.169.254/32", "cloud metadata"),
        ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)
_V6_CLASSES: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fc00::/7", "private"),
        ("fec0::/10", "private"),  # deprecated site-local
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
        ("64:ff9b:1::/48", "reserved"),  # local-use NAT64 (RFC 8215): embeds any IPv4 address
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible addresses
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def _embedded(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if ip in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _COMPATIBLE and int(ip) > 1:  # :: and ::1 are classes of their own
        return "IPv4-compatible", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _ip(address: str | _IP) -> _IP:
    if isinstance(address, str):
        return ipaddress.ip_address(address.strip("[]"))
    return address


def classify(address: str | _IP) -> str | None:
    """Why ``address`` is refused by default ("loopback", "private", "IPv4-mapped
    loopback"...), or None for a public address. Raises ValueError for a non-address."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded(ip)
        if inner is not None:
            kind, v4 = inner
            why = classify(v4)
            return f"{kind} {why}" if why else None
        classes: Iterable[tuple[_Network, str]] = _V6_CLASSES
    else:
        classes = _V4_CLASSES
    for network, why in classes:
        if ip in network:
            return why
    return None if ip.is_global and not ip.is_multicast else "reserved"


# The classes of the machine's own networks: a host there answers without the internet.
_LOCAL_CLASSES = ("loopback", "private", "link-local", "cloud metadata")


def public_networks(environ: Mapping[str, str] | None = None) -> tuple[_Network, ...]:
    """The networks ``ARCHIVER_PUBLIC_ADDRESSES`` marks as public (a test hook)."""
    env = os.environ if environ is None else environ
    entries = [e.strip() for e in env.get(PUBLIC_VAR, "").split(",") if e.strip()]
    try:
        return tuple(ipaddress.ip_network(e.strip("[]")) for e in entries)
    except ValueError as exc:
        raise ConfigError(f"environment variable {PUBLIC_VAR} must hold CIDRs: {exc}") from None


def is_public(address: str | _IP, marked: Iterable[_Network] = ()) -> bool:
    """Whether ``address`` is a host on the internet for the offline rule: anything but
    loopback, private and link-local (IPv6 forms embedding them included), or in ``marked``."""
    ip = _ip(address)
    if any(ip.version == n.version and ip in n for n in marked):
        return True
    why = classify(ip)
    return why is None or not why.endswith(_LOCAL_CLASSES)


def _host_key(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class AddressGuard:
    """The allow list; every address it does not open is checked by ``classify``."""

    networks: tuple[_Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[tuple[str, str]]) -> AddressGuard:
        """A guard from ``(where, entry)`` pairs; a bad entry is a ``ConfigError`` naming
        where it came from (a config key, an option or the environment variable)."""
        networks: list[_Network] = []
        hosts: set[str] = set()
        for where, entry in entries:
            parsed = _entry(where, entry)
            if isinstance(parsed, str):
                hosts.add(parsed)
            else:
                networks.append(parsed)
        return cls(tuple(networks), frozenset(hosts))

    @classmethod
    def of(
        cls, allow: Iterable[str] = (), environ: Mapping[str, str] | None = None
    ) -> AddressGuard:
        """The guard a run uses: ``allow`` (config and CLI) merged with the environment's."""
        return cls.parse(
            [*(("fetch.allow_addresses", a) for a in allow), *environment_entries(environ)]
        )

    def refusal(self, host: str, address: str | _IP) -> str | None:
        """Why connecting to ``address`` for ``host`` is refused, or None when it may go."""
        ip = _ip(address)
        if _host_key(host) in self.hosts:
            return None
        why = classify(ip)
        if why is None:
            return None
        candidates: list[_IP] = [ip]
        if isinstance(ip, ipaddress.IPv6Address) and (inner := _embedded(ip)) is not None:
            candidates.append(inner[1])  # allowing 127.0.0.0/8 allows ::ffff:127.0.0.1 too
        if any(c.version == n.version and c in n for c in candidates for n in self.networks):
            return None
        return why

    def allowed(self, host: str, addresses: list[tuple[int, tuple[Any, ...]]]) -> list[Any]:
        """The entries of a resolver's answer that may be tried; none is ``BlockedAddress``."""
        refused: list[tuple[str, str]] = []
        out = []
        for entry in addresses:
            address = str(entry[1][0])
            why = self.refusal(host, address)
            if why is None:
                out.append(entry)
            else:
                refused.append((address, why))
        if not out and refused:
            raise BlockedAddress(host, refused)
        return out

    def check_every(self, host: str, addresses: Iterable[str]) -> None:
        """Raises ``BlockedAddress`` when any of ``addresses`` is refused: for a proxy or a
        transport that picks among them itself, where one refused is one too many."""
        refused = [(a, why) for a in addresses if (why := self.refusal(host, a)) is not None]
        if refused:
            raise BlockedAddress(host, refused)


class BlockedAddress(OSError):
    """The guard refused every address of ``host`` it was asked about; nothing connected."""

    def __init__(self, host: str, refused: list[tuple[str, str]]) -> None:
        self.host = host
        self.refused = refused
        shown = ", ".join(f"{a} ({why})" for a, why in refused[:4])
        more = f" and {len(refused) - 4} more" if len(refused) > 4 else ""
        named = "" if _host_key(host) == _host_key(refused[0][0]) else f"{host} resolves to "
        super().__init__(
            f"refused address: {named}{shown}{more}; to fetch it anyway, allow it"
            f" (fetch.allow_addresses, --allow-address or {ENV_VAR})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (BlockedAddress, (self.host, self.refused))


def environment_entries(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The allow-list entries ``ARCHIVER_ALLOW_ADDRESSES`` names, comma-separated."""
    env = os.environ if environ is None else environ
    text = env.get(ENV_VAR, "")
    return [(f"environment variable {ENV_VAR}", e.strip()) for e in text.split(",") if e.strip()]


def _entry(where: str, entry: str) -> _Network | str:
    """A network from a CIDR or an address, else a host name; anything else is an error."""
    name = where if where.startswith(("option ", "environment ")) else f"config key '{where}'"
    text = entry.strip()
    if "/" in text or ":" in text or text.replace(".", "").isdigit():
        try:
            return ipaddress.ip_network(text.strip("[]"))
        except ValueError as exc:
            raise ConfigError(
                f"{name} must hold CIDRs (127.0.0.0/8), IP addresses or host names,"
                f" got {entry!r} ({exc})"
            ) from None
    host = _host_key(text)
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ConfigError(
            f"{name} must hold CIDRs (127.0.0.0/8), IP addresses or host names, got {entry!r}"
        )
    if labels[-1].isdigit():  # 127.1, 2130706433: addresses in disguise, not names
        raise ConfigError(f"{name}: {entry!r} is neither a host name nor a full IP address")
    return host
