"""Workers that share a run: 1, 2 and 3 ``crawl --worker`` processes over the same URLs.

    .venv/bin/python benchmarks/workers.py                 # 100,000 URLs (several minutes)
    .venv/bin/python benchmarks/workers.py --urls 10000
    .venv/bin/python benchmarks/workers.py --smoke         # 1,200 URLs, < 60 s
    .venv/bin/python benchmarks/workers.py --backend postgresql --dsn postgresql://...

The URLs are spread evenly over ``--hosts`` loopback hosts (127.0.0.1, 127.0.0.2, ...),
each a ``latency_server.py`` answering after ``--latency`` seconds, which counts the
requests it has in flight at once. Each worker may have ``--concurrency`` requests in
flight and a host ``--per-host``: one worker alone cannot fill every host's limit, so
more workers can go faster, up to the per-host bound (``urls x latency / (per-host x
hosts)``) or the machine's CPU, whichever comes first. Each row is a fresh database and
store, and fresh servers (their in-flight maximum is per row); the first row is a plain
``crawl`` (no ``--worker``) over the same URLs, for comparison. Printed per row: wall
time from the first worker's start to the last one's exit, URLs per second, the bound,
the most requests any host had in flight (it must never exceed ``--per-host``, however
many workers run), the requests the servers answered (one per URL) and each worker's
recorded checks. All traffic stays on loopback; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from run import asset_urls, link_posts, served  # noqa: E402

from archiver.db import Database  # noqa: E402


def one_row(work: Path, workers: int, args: argparse.Namespace) -> dict[str, object]:
    """Runs ``workers`` worker processes over fresh servers, database and store."""
    state = work / f"state-{workers}"
    state.mkdir()
    db = args.dsn if args.backend == "postgresql" else str(state / "archive.db")
    with ExitStack() as stack:
        servers = [
            stack.enter_context(_server(args.latency, args.size, f"127.0.0.{i + 1}"))
            for i in range(args.hosts)
        ]
        per = args.urls // args.hosts
        urls = [u for i, s in enumerate(servers) for u in _urls(int(s["port"]), per, i)]
        posts = link_posts(state / "posts", urls, per_post=args.hosts)
        config = state / "config.toml"
        config.write_text(
            f'db = "{db}"\nstore = "{state / "store"}"\n'
            f"[fetch]\nconcurrency = {args.concurrency}\nper_host = {args.per_host}\n"
            f"[workers]\nlease_seconds = {args.lease}\n",
            encoding="utf-8",
        )
        # The servers' stand-in PDFs open in no parser: the deep check (a child process
        # per new body, which would say "corrupt") is not what is measured here.
        env = {
            **os.environ,
            "ARCHIVER_ALLOW_ADDRESSES": "127.0.0.0/8",
            "ARCHIVER_DEEP_CHECK": "off",
        }
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "archiver",
                    "crawl",
                    str(posts),
                    "--config",
                    str(config),
                    *(("--worker-name", f"w{k + 1}") if workers else ()),
                    "--fail-on",
                    "none",
                    "--no-progress",
                    "--quiet",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for k in range(max(1, workers))
        ]
        errors = [p.communicate()[1] for p in procs]
        wall = time.perf_counter() - started
        codes = [p.returncode for p in procs]
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}: {errors}")
    state_db = Database(db, readonly=True)
    try:
        run_id = state_db.scalar("SELECT MAX(id) FROM runs")
        checks = state_db.scalar("SELECT COUNT(*) FROM checks WHERE run_id = ?", [run_id])
        per_worker = [
            int(r["checked"])
            for r in state_db.rows(
                "SELECT checked FROM workers WHERE run_id = ? ORDER BY id", [run_id]
            )
        ]
    finally:
        state_db.close()
    if args.backend == "postgresql":
        _drop_state(args.dsn)
    return {
        "workers": workers,
        "urls": len(urls),
        "wall": wall,
        "rate": len(urls) / wall,
        "bound": len(urls) * args.latency / (args.per_host * args.hosts),
        "one_alone": len(urls) * args.latency / min(args.concurrency, args.per_host * args.hosts),
        "max_in_flight": max(int(s["max_in_flight"]) for s in servers),
        "requests": sum(int(s["requests"]) for s in servers),
        "checks": int(checks),
        "per_worker": per_worker,
    }


@contextmanager
def _server(latency: float, size: int, host: str) -> Iterator[dict[str, float]]:
    """``latency_server.py`` on ``host``; yields its port, then its figures (on exit)."""
    script = str(HERE / "latency_server.py")
    args = ["--latency", str(latency), "--size", str(size), "--host", host]
    with served([sys.executable, script, *args]) as info:
        yield info


def _urls(port: int, n: int, host_index: int) -> list[str]:
    return asset_urls(port, n, host=f"127.0.0.{host_index + 1}")


def _drop_state(dsn: str) -> None:
    """Empties a PostgreSQL database between rows (each row starts from nothing)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--urls", type=int, default=100_000)
    ap.add_argument("--hosts", type=int, default=12)
    ap.add_argument("--latency", type=float, default=0.02, help="seconds per request")
    ap.add_argument("--concurrency", type=int, default=16, help="requests in flight per worker")
    ap.add_argument("--per-host", type=int, default=4)
    ap.add_argument("--size", type=int, default=2_000, help="bytes per asset")
    ap.add_argument("--lease", type=float, default=6.0, help="[workers] lease_seconds")
    ap.add_argument(
        "--workers", default="0,1,2,3", help="comma list of worker counts (0: a plain crawl)"
    )
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--dsn", help="an empty PostgreSQL database (--backend postgresql)")
    ap.add_argument("--smoke", action="store_true", help="1,200 URLs")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.smoke:
        args.urls = 1_200
    if args.backend == "postgresql" and not args.dsn:
        ap.error("--backend postgresql needs --dsn")
    work = Path(tempfile.mkdtemp(prefix="archiver-workers-", dir=args.workdir))
    rows = []
    try:
        for n in (int(x) for x in args.workers.split(",")):
            rows.append(one_row(work, n, args))
            print(f"{n} worker(s) done in {rows[-1]['wall']:.1f} s", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{args.urls:,} URLs on {args.hosts} hosts, {args.latency * 1000:.0f} ms a request,"
        f" {args.size:,} bytes each,"
        f" per host {args.per_host}, {args.concurrency} in flight per worker,"
        f" {args.backend}; {os.cpu_count()} CPUs\n"
    )
    print(
        "| workers | wall s | URLs/s | vs 1 worker | per-host bound s | one worker's bound s"
        " | max in flight per host (limit) | requests | checks | checks per worker |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    base = next((r["rate"] for r in rows if r["workers"] == 1), rows[0]["rate"] if rows else 1)
    for r in rows:
        print(
            f"| {r['workers'] or 'plain crawl'} | {r['wall']:.1f} | {r['rate']:,.0f} |"
            f" {float(r['rate']) / float(base):.2f}x | {r['bound']:.1f} | {r['one_alone']:.1f} |"  # type: ignore[arg-type]
            f" {r['max_in_flight']} ({args.per_host}) | {r['requests']:,} | {r['checks']:,} |"
            f" {', '.join(str(c) for c in r['per_worker'])} |"  # type: ignore[attr-defined]
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
