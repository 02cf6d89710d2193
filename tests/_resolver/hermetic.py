"""Test-only network hermeticity, for the test process and every CLI subprocess it starts.

Two patches, installed by ``conftest`` (per test) and by ``sitecustomize`` here (in a
subprocess whose PYTHONPATH conftest points at this folder):

- ``getaddrinfo`` answers IP literals, ``localhost``, and names under ``.test`` and
  ``.invalid`` listed in ``ARCHIVER_TEST_HOSTS`` (``name=ip|ip,name=ip``); every other name
  is unknown, so no test ever asks the real resolver. ``name=EAI_AGAIN`` (or ``EAI_FAIL``,
  ``EAI_NONAME``) makes the lookup of ``name`` fail with that error.
- a tripwire on ``socket.connect``: a TCP connection to anything but loopback raises, and
  is written to the file ``ARCHIVER_TEST_TRIPWIRE`` names, so a test that maps a name to a
  private address sends nothing there even if the address guard were broken, and fails.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

HOSTS_VAR = "ARCHIVER_TEST_HOSTS"
TRIPWIRE_VAR = "ARCHIVER_TEST_TRIPWIRE"

real_getaddrinfo = socket.getaddrinfo
real_connect = socket.socket.connect
real_connect_ex = socket.socket.connect_ex
violations: list[str] = []
# A test name mapped to one of these (``name=EAI_AGAIN``) fails to resolve that way.
_FAILURES = {
    "EAI_AGAIN": "Temporary failure in name resolution",
    "EAI_FAIL": "Non-recoverable failure in name resolution",
    "EAI_NONAME": "Name or service not known",
}


def mapping() -> dict[str, list[str]]:
    """The test names and their addresses, from ``ARCHIVER_TEST_HOSTS``."""
    out: dict[str, list[str]] = {}
    for item in os.environ.get(HOSTS_VAR, "").split(","):
        name, sep, addresses = item.strip().partition("=")
        if sep:
            out[name.lower().rstrip(".")] = [a for a in addresses.split("|") if a]
    return out


def fake_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    """Tests never resolve real names: IP literals, localhost and mapped test names only."""
    name = host.decode() if isinstance(host, bytes) else str(host)
    if _numeric(name):  # 127.1 and 2130706433 too: the OS reads them as addresses
        return real_getaddrinfo(host, port, *args, **kwargs)
    key = name.lower().rstrip(".")
    if key.endswith((".test", ".invalid")) and key in mapping():
        addresses = mapping()[key]
        if addresses and addresses[0] in _FAILURES:  # name=EAI_AGAIN: the resolver fails
            raise socket.gaierror(getattr(socket, addresses[0]), _FAILURES[addresses[0]])
        return _answer(addresses, port, *args, **kwargs)
    if name != "localhost":
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return real_getaddrinfo(host, port, *args, **kwargs)


def _numeric(name: str) -> bool:
    """Whether the system resolver would read ``name`` as an address, not look it up."""
    try:
        ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
    except ValueError:
        try:
            socket.inet_aton(name)
        except OSError:
            return False
    return True


def _answer(addresses: list[str], port: Any, *args: Any, **kwargs: Any) -> list[Any]:
    out = []
    for address in addresses:
        # Each address as getaddrinfo gives a literal: its family, its sockaddr shape.
        out += real_getaddrinfo(address, port, *args, **kwargs)
    return out


def _loopback(address: Any) -> bool:
    host = str(address[0]) if isinstance(address, tuple) else ""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _trip(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or _loopback(address):
        return
    message = f"tripwire: a test tried to connect to {address!r}"
    violations.append(message)
    path = os.environ.get(TRIPWIRE_VAR)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(message + "\n")
    raise PermissionError(message)


def tripwire_connect(self: socket.socket, address: Any) -> None:
    _trip(self, address)
    real_connect(self, address)


def tripwire_connect_ex(self: socket.socket, address: Any) -> int:
    _trip(self, address)
    return real_connect_ex(self, address)


def install() -> None:
    """Installs both patches for the rest of this process (subprocesses)."""
    socket.getaddrinfo = fake_getaddrinfo
    socket.socket.connect = tripwire_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = tripwire_connect_ex  # type: ignore[method-assign]
