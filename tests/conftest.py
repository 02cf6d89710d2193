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
from pg_server import pg_dsn, postgres  # noqa: E402, F401 (fixtures, for every module)
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
    # uvloop (the 'fast' extra) resolves and connects in C, past this resolver and the
    # tripwire: tests run asyncio's loop unless they ask for uvloop (test_eventloop, on IP
    # literals only).
    monkeypatch.setenv("ARCHIVER_EVENT_LOOP", "asyncio")
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


#: ``ARCHIVER_TEST_DB=postgres``: each SQLite path a test opens in this process is a fresh
#: PostgreSQL database of that test instead (``pg_server.redirect_to_postgres``): for
#: running any module of db-level tests against PostgreSQL by hand.
STATE_DB_VAR = "ARCHIVER_TEST_DB"

#: The state tests: every test of these modules runs on both backends (``state_backend``),
#: its in-process ``Database`` on a PostgreSQL database of its own in the second run.
#: Tests that open the SQLite file themselves (sqlite3, PRAGMAs, file identity) and CLI
#: subprocesses are not here: ``test_pg_cli`` runs the commands on PostgreSQL.
BOTH_BACKENDS = frozenset(
    {
        "test_crawl",
        "test_check",
        "test_recheck",
        "test_states",
        "test_sites",
        "test_post_stat",
        "test_rewrite",
        "test_export",
        "test_gc",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.module.__name__.rpartition(".")[2] not in BOTH_BACKENDS:
        return
    if "state_backend" not in metafunc.fixturenames:
        metafunc.fixturenames.append("state_backend")
    metafunc.parametrize("state_backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def state_backend(request: pytest.FixtureRequest) -> str:
    """Which backend this run of a state test uses (``BOTH_BACKENDS``)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(autouse=True)
def _state_db_redirect(request: pytest.FixtureRequest) -> Iterator[None]:
    wanted = os.environ.get(STATE_DB_VAR, "sqlite") == "postgres"
    if "state_backend" in request.fixturenames:
        wanted = request.getfixturevalue("state_backend") == "postgresql"
    if not wanted:
        yield
        return
    from pg_server import redirect_to_postgres

    with redirect_to_postgres(request.getfixturevalue("postgres")):
        yield


@pytest.fixture(params=["sqlite", "postgresql"])
def state_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The ``db`` value of a test's state, on each backend: a SQLite file under the test's
    directory, or a fresh PostgreSQL database of its own (skipped, saying why, without a
    server). A test that takes it runs twice."""
    if request.param == "sqlite":
        yield str(tmp_path / "state" / "archive.db")
        return
    server = request.getfixturevalue("postgres")
    name = server.create_database(icu_locale="en-US")
    try:
        yield server.dsn(name)
    finally:
        server.drop_database(name)
