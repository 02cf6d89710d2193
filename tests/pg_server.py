"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests that need a real server.

``postgres`` (session-scoped) starts one cluster per test session with Debian's
binaries (``/usr/lib/postgresql/*/bin``) and stops it at the end; ``pg_dsn`` gives each
test a database of its own, created empty (or from a ``template``) and dropped after
it, so tests never see each other's rows. A module that needs them imports both:

    from pg_server import pg_dsn, postgres  # noqa: F401

Without the binaries the tests skip, saying what to install. ``ARCHIVER_TEST_PG_DSN``
names a server that is already running (its user must be allowed CREATE DATABASE):
then nothing is started. Administration goes through ``psql`` from the same binaries,
so this module needs neither psycopg nor archiver; only the tests' own queries use
psycopg, through ``archiver.db.postgres_schema.connect``.

As root (CI, this machine) initdb and pg_ctl refuse to run: they run as the
``postgres`` user, in a directory under the system temp directory that it owns (the
pytest temp directories are private to root). The cluster trusts local connections
and listens on 127.0.0.1 only, with its unix socket in that directory, never in
/run/postgresql; fsync is off: the data is thrown away.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["PgServer", "find_bindir", "pg_dsn", "postgres", "start_cluster"]

INSTALL_HINT = "PostgreSQL not installed: apt-get install postgresql"
DSN_VAR = "ARCHIVER_TEST_PG_DSN"
_counter = itertools.count(1)


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/N/bin`` with initdb, pg_ctl and psql, if any."""
    found = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        if all((bindir / exe).is_file() for exe in ("initdb", "pg_ctl", "psql")):
            with contextlib.suppress(ValueError):
                found.append((int(bindir.parent.name.split(".")[0]), bindir))
    return max(found)[1] if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running server: where it listens, and how to make and drop databases on it."""

    host: str
    port: int
    user: str
    bindir: Path | None
    #: The cluster's directory when this session started it (None: an outside server).
    home: Path | None = None
    started_in: float = 0.0
    _as: list[str] = field(default_factory=list)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Runs one statement as the server's superuser; its output, tuples only."""
        psql = str(self.bindir / "psql") if self.bindir else "psql"
        done = subprocess.run(
            [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.dsn(dbname)],
            input=sql,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout

    def create_database(self, template: str = "template0", icu_locale: str | None = None) -> str:
        """A new database (a copy of ``template``), sorting text by ``icu_locale``; its name."""
        name = f"t{os.getpid()}_{next(_counter)}"
        sql = f'CREATE DATABASE "{name}" TEMPLATE "{template}" ENCODING \'UTF8\''
        if icu_locale is not None:
            sql += f" LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}'"
        self.psql(sql)
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_as(user: str | None) -> list[str]:
    """The prefix that runs a server binary as ``user`` (root may not run them itself)."""
    return ["runuser", "-u", user, "--"] if user else []


def start_cluster(bindir: Path) -> PgServer:
    """initdb and start a cluster on a free port of 127.0.0.1; raises when it cannot."""
    owner = "postgres" if os.geteuid() == 0 else None
    home = Path(tempfile.mkdtemp(prefix="archiver-pg-"))
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(home, entry.pw_uid, entry.pw_gid)
    data, log = home / "data", home / "log"
    as_owner = _run_as(owner)
    user = "postgres"
    began = time.monotonic()
    subprocess.run(
        [
            *as_owner,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            user,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    last = ""
    for _ in range(3):  # another process may take the free port before the server does
        port = _free_port()
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={home}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        done = subprocess.run(
            [
                *as_owner,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        if done.returncode == 0:
            server = PgServer("127.0.0.1", port, user, bindir, home, 0.0, as_owner)
            server.started_in = time.monotonic() - began
            return server
        last = log.read_text(errors="replace")[-2000:] if log.exists() else done.stderr
    shutil.rmtree(home, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start: {last}")


def stop_cluster(server: PgServer) -> None:
    """Stops a cluster this session started and removes its directory."""
    assert server.home is not None and server.bindir is not None
    subprocess.run(
        [
            *server._as,
            str(server.bindir / "pg_ctl"),
            "-D",
            str(server.home / "data"),
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "stop",
        ],
        capture_output=True,
        timeout=90,
        check=False,
    )
    shutil.rmtree(server.home, ignore_errors=True)


def _outside_server(dsn: str) -> PgServer:
    from urllib.parse import urlsplit

    parts = urlsplit(dsn)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    return PgServer(host, port, parts.username or "postgres", find_bindir())


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A PostgreSQL server for the session: ``ARCHIVER_TEST_PG_DSN``'s, or one started here."""
    import importlib.util

    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg not installed: pip install -e '.[postgres]'")
    if os.environ.get(DSN_VAR):
        yield _outside_server(os.environ[DSN_VAR])
        return
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(INSTALL_HINT)
    server = start_cluster(bindir)
    try:
        yield server
    finally:
        stop_cluster(server)


@pytest.fixture
def pg_dsn(postgres: PgServer) -> Iterator[str]:
    """A DSN to a fresh, empty database of this test's own, dropped after it.

    Its default collation is ICU's en-US, where "a" sorts before "B": unlike SQLite's
    byte order, so a query that sorts by a column not declared ``COLLATE "C"`` shows.
    """
    name = postgres.create_database(icu_locale="en-US")
    try:
        yield postgres.dsn(name)
    finally:
        postgres.drop_database(name)


@contextlib.contextmanager
def redirect_to_postgres(server: PgServer) -> Iterator[None]:
    """Within: a ``Database`` opened on a SQLite path (in this process) opens a PostgreSQL
    database made for that path instead, and ``db.exists`` says whether it was made; the
    databases are dropped at the end. What ``ARCHIVER_TEST_DB=postgres`` runs under."""
    from archiver.db import location, sqlite
    from archiver.db.location import PostgresUrl
    from archiver.ops import access

    made: dict[Path, str] = {}
    real_open, real_exists = sqlite.open_backend, location.exists

    def url_for(path: Path, create: bool) -> PostgresUrl | None:
        key = path.absolute()
        if key not in made:
            if not create:
                return None
            made[key] = server.create_database(icu_locale="en-US")
        return PostgresUrl(server.dsn(made[key]))

    def open_backend(where: Any, *, readonly: bool, side_files: bool) -> Any:
        if isinstance(where, Path):
            url = url_for(where, create=True)
            assert url is not None
            where = url
        return real_open(where, readonly=readonly, side_files=side_files)

    def exists(where: Any) -> bool:
        if isinstance(where, Path):
            return url_for(where, create=False) is not None
        return bool(real_exists(where))

    sqlite.open_backend = open_backend  # type: ignore[assignment]
    access.database_exists = exists  # type: ignore[assignment]
    try:
        yield
    finally:
        sqlite.open_backend = real_open
        access.database_exists = real_exists
        for name in made.values():
            server.drop_database(name)
