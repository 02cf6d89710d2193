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
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from run import link_posts, served  # noqa: E402

from archiver.db import Database  # noqa: E402


def one_row(work: Path, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Runs ``workers`` worker processes over fresh servers, database and store."""
    state = work / f"state-{workers}"
    state.mkdir()
    db = args.dsn if args.backend == "postgresql" else str(state / "archive.db")
    with ExitStack() as stack:
        servers = [
            stack.enter_context(_server(args, f"127.0.0.{i + 1}")) for i in range(args.hosts)
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
        # Deep checks and thumbnails stay on, as users run them: every body is a real
        # PDF or PNG of its own (the servers' --distinct), so each URL stores, checks and
        # (for a PNG) thumbnails one new blob.
        env = {**os.environ, "ARCHIVER_ALLOW_ADDRESSES": "127.0.0.0/8"}
        env.pop("ARCHIVER_DEEP_CHECK", None)
        load_before = _loadavg()
        started = time.perf_counter()
        procs = []
        for k in range(max(1, workers)):
            log = open(state / f"worker-{k + 1}.err", "w+", encoding="utf-8")  # noqa: SIM115
            stack.callback(log.close)
            procs.append(
                (
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
                        stderr=log,
                        env=env,
                    ),
                    log,
                )
            )
        watcher, peaks = _watch_rss([p.pid for p, _ in procs])
        finished = [_reap(p) for p, _ in procs]
        wall = time.perf_counter() - started
        watcher.join()
        load_after = _loadavg()
        codes = [code for code, _ in finished]
        errors = []
        for _, log in procs:
            log.seek(0)
            errors.append(log.read()[-2000:])
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}: {errors}")
    state_db = Database(db, readonly=True)
    try:
        run_id = state_db.scalar("SELECT MAX(id) FROM runs")
        checks = state_db.scalar("SELECT COUNT(*) FROM checks WHERE run_id = ?", [run_id])
        ok = state_db.scalar(
            "SELECT COUNT(*) FROM checks WHERE run_id = ? AND state = 'ok'", [run_id]
        )
        blobs = state_db.scalar("SELECT COUNT(*) FROM blobs")
        deep_ok = state_db.scalar("SELECT COUNT(*) FROM blobs WHERE deep_check = 'ok'")
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
    cpu = [c for _, c in finished]
    return {
        "workers": workers,
        "urls": len(urls),
        "wall": wall,
        "rate": len(urls) / wall,
        "cpu": sum(cpu),
        "cpu_per_worker": cpu,
        "rss_mb": [peaks[p.pid] / 1024 for p, _ in procs],
        "load": f"{load_before} -> {load_after}",
        "bound": len(urls) * args.latency / (args.per_host * args.hosts),
        "one_alone": len(urls) * args.latency / min(args.concurrency, args.per_host * args.hosts),
        "max_in_flight": max(int(s["max_in_flight"]) for s in servers),
        "server_cpu": sum(float(s["cpu_seconds"]) for s in servers),
        "requests": sum(int(s["requests"]) for s in servers),
        "checks": int(checks),
        "ok": int(ok),
        "blobs": int(blobs),
        "deep_ok": int(deep_ok),
        "per_worker": per_worker,
    }


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _watch_rss(pids: list[int]) -> tuple[threading.Thread, dict[int, int]]:
    """Each process's peak RSS in KiB (``VmHWM``), sampled until it exits: the figure
    of the worker itself, not of its deep-check children (which ``wait4`` would mix in)."""
    peaks = dict.fromkeys(pids, 0)

    def sample() -> None:
        live = set(pids)
        while live:
            for pid in list(live):
                try:
                    text = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    text = ""
                if "VmHWM:" not in text:  # gone, or a zombie: it has exited
                    live.discard(pid)
                    continue
                peaks[pid] = max(peaks[pid], int(text.split("VmHWM:", 1)[1].split()[0]))
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    return watcher, peaks


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Waits for one worker; its exit code and CPU seconds (user + system, with the
    deep-check and thumbnail children it reaped: all of that is the worker's work)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


@contextmanager
def _server(args: argparse.Namespace, host: str) -> Iterator[dict[str, Any]]:
    """``latency_server.py`` on ``host``; yields its port, then its figures (on exit)."""
    script = str(HERE / "latency_server.py")
    options = ["--latency", str(args.latency), "--size", str(args.size), "--host", host]
    with served([sys.executable, script, *options, "--distinct"]) as info:
        yield info


def _urls(port: int, n: int, host_index: int) -> list[str]:
    """``n`` URLs on one host, numbered apart from every other host's (distinct bodies)."""
    host = f"127.0.0.{host_index + 1}"
    return [
        f"http://{host}:{port}/a/{i}.{'png' if i % 2 else 'pdf'}"
        for i in range(host_index * n, (host_index + 1) * n)
    ]


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
    ap.add_argument(
        "--dsn",
        help="an empty PostgreSQL database (--backend postgresql; without it a throwaway"
        " cluster is started on 127.0.0.1 with Debian's binaries, as the tests do)",
    )
    ap.add_argument("--smoke", action="store_true", help="1,200 URLs")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.smoke:
        args.urls = 1_200
    work = Path(tempfile.mkdtemp(prefix="archiver-workers-", dir=args.workdir))
    rows = []
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        if args.backend == "postgresql" and not args.dsn:
            args.dsn = stack.enter_context(_cluster())
        print(_header(args), file=sys.stderr)
        for n in (int(x) for x in args.workers.split(",")):
            rows.append(one_row(work, n, args))
            print(_line(rows[-1], rows, args), file=sys.stderr, flush=True)
    print(_header(args))
    print(
        "| workers | wall s | URLs/s | vs 1 worker | CPU s (user+sys) | CPU ms/URL"
        " | peak RSS per worker MB | max in flight per host (limit) | per-host bound s"
        " | requests | checks (ok) | blobs (deep ok) | checks per worker"
        " | load 1/5/15 before -> after |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(_line(r, rows, args))
    return 0


def _header(args: argparse.Namespace) -> str:
    return (
        f"\n{args.urls:,} URLs on {args.hosts} hosts, {args.latency * 1000:.0f} ms a request,"
        f" {args.size:,} bytes each, a distinct real PDF or PNG per URL (deep checks on),"
        f" per host {args.per_host}, {args.concurrency} in flight per worker,"
        f" {args.backend}; {os.cpu_count()} CPUs\n"
    )


def _line(r: dict[str, Any], rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    base = next((x["rate"] for x in rows if x["workers"] == 1), rows[0]["rate"])
    return (
        f"| {r['workers'] or 'plain crawl'} | {r['wall']:.1f} | {r['rate']:,.0f} |"
        f" {r['rate'] / base:.2f}x | {r['cpu']:.0f} | {r['cpu'] * 1000 / r['urls']:.2f} |"
        f" {', '.join(f'{m:.0f}' for m in r['rss_mb'])} |"
        f" {r['max_in_flight']} ({args.per_host}) | {r['bound']:.1f} |"
        f" {r['requests']:,} | {r['checks']:,} ({r['ok']:,}) | {r['blobs']:,} ({r['deep_ok']:,}) |"
        f" {', '.join(str(c) for c in r['per_worker'])} | {r['load']} |"
    )


@contextmanager
def _cluster() -> Iterator[str]:
    """A throwaway PostgreSQL on 127.0.0.1 (the tests' ``pg_server``); yields its DSN."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from pg_server import find_bindir, start_cluster, stop_cluster

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("workers.py: PostgreSQL not installed (apt-get install postgresql)")
    server = start_cluster(bindir)
    try:
        name = server.create_database()
        yield server.dsn(name)
    finally:
        stop_cluster(server)


if __name__ == "__main__":
    sys.exit(main())
