"""Shared fixtures: real HTTP servers on two loopback hosts and a clock that never waits."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from archiver.clock import FakeClock

# The helpers live next to the tests; import them by module name whether or not
# ``tests`` is a package.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from server import LoopbackServer


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """A scriptable HTTP/1.1 server on 127.0.0.1."""
    with LoopbackServer("127.0.0.1") as srv:
        yield srv


@pytest.fixture
def server2() -> Iterator[LoopbackServer]:
    """A second server on 127.0.0.2: another host, for per-host limits and cross-host redirects."""
    with LoopbackServer("127.0.0.2") as srv:
        yield srv


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority for TLS servers on loopback."""
    return trustme.CA()


@pytest.fixture
def trust(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts ``ca`` and nothing else (hostnames checked)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    return context


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


_real_getaddrinfo = socket.getaddrinfo


def _loopback_only_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
    """Tests never resolve real names: only IP literals and localhost get an answer."""
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        if name != "localhost":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
    return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_real_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only_getaddrinfo)


@pytest.fixture(autouse=True)
def _no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's HTTP(S)_PROXY must not send loopback test traffic elsewhere."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
