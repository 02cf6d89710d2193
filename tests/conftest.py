"""Shared fixtures: real HTTP servers on two loopback hosts and a clock that never waits."""

from __future__ import annotations

import os
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

_RESOLVER = Path(__file__).parent / "_resolver"
if str(_RESOLVER) not in sys.path:
    sys.path.insert(0, str(_RESOLVER))

import hermetic  # noqa: E402
from server import LoopbackServer  # noqa: E402

#: What every test may connect to: the loopback servers. Guard tests narrow or drop it.
LOOPBACK_ALLOWED = "127.0.0.0/8,::1/128"


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


@pytest.fixture(autouse=True)
def _no_real_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only IP literals, localhost and the ``.test``/``.invalid`` names a test maps (see
    ``hermetic``) resolve, here and in CLI subprocesses (its ``sitecustomize``)."""
    monkeypatch.setattr(socket, "getaddrinfo", hermetic.fake_getaddrinfo)
    monkeypatch.delenv(hermetic.HOSTS_VAR, raising=False)
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(_RESOLVER), path) if p))


@pytest.fixture(autouse=True)
def _tripwire(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No test connects anywhere but loopback, even if the address guard failed: such a
    connect raises before any packet leaves, and fails the test (subprocesses included)."""
    log = tmp_path_factory.mktemp("tripwire") / "violations"
    monkeypatch.setenv(hermetic.TRIPWIRE_VAR, str(log))
    monkeypatch.setattr(socket.socket, "connect", hermetic.tripwire_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", hermetic.tripwire_connect_ex)
    hermetic.violations.clear()
    yield
    tripped = [*hermetic.violations, *(log.read_text().splitlines() if log.exists() else [])]
    hermetic.violations.clear()
    assert not tripped, tripped


@pytest.fixture(autouse=True)
def _loopback_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The address guard is on in every test; the loopback servers are let through."""
    monkeypatch.setenv("ARCHIVER_ALLOW_ADDRESSES", LOOPBACK_ALLOWED)


@pytest.fixture(autouse=True)
def _no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's HTTP(S)_PROXY must not send loopback test traffic elsewhere."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(autouse=True)
def deep_checking(monkeypatch: pytest.MonkeyPatch) -> None:
    """A crawl deep-checks each new body, as it does outside the tests: the bodies the
    tests serve are real files (``media``). A test whose point is not the check may set
    ``ARCHIVER_DEEP_CHECK=off`` itself, with its reason."""
    monkeypatch.delenv("ARCHIVER_DEEP_CHECK", raising=False)
