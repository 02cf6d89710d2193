"""Hostile input, measured: what each bomb, trickle and pathological post costs archiver.

    .venv/bin/python benchmarks/hostile.py            # full sizes (10 GiB gzip bombs, ...)
    .venv/bin/python benchmarks/hostile.py --smoke    # small sizes, a few seconds (CI)

Each case runs a real ``python -m archiver`` process against a raw-socket server on
127.0.0.1 (``tests/hostile_server.py``) or on a folder of generated posts, and prints its
peak RSS (from ``wait4``), its wall time and the state the hostile URL ended in, next to
the bound the hostile-input issue sets: 150 MB of RSS per process, about a second per MB
of post, and the configured time limits for slow servers. Nothing here is a test: the
tests assert the outcomes; this prints what they cost.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_media import png_gradient  # noqa: E402
from hostile_server import HostileServer  # noqa: E402
from run import archiver, compile_archiver  # noqa: E402

GiB = 1 << 30
MiB = 1 << 20
RSS_BOUND_MB = 150.0
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
CACHE = HERE / ".cache"


@dataclass(frozen=True)
class Case:
    """One hostile case: how to set it up, what bounds it, and what state it should end in."""

    name: str
    build: Callable[[Path, HostileServer], list[str]]  # returns the command line's args
    seconds_bound: str
    expect: str


# -- bombs ---------------------------------------------------------------------------------


def bomb(decoded: int, layers: int) -> Path:
    """A PDF head then zeros, ``decoded`` bytes in all, gzipped ``layers`` times.

    Made once by a child process and cached on disk, then streamed from the file: the
    figures are ``wait4``'s peak RSS of archiver's process, which on Linux includes the
    parent's pages at fork time, so this process must stay small.
    """
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"bomb-{decoded}-{layers}.gz"
    if not path.exists():
        subprocess.run(
            [sys.executable, __file__, "--make-bomb", str(decoded), str(layers), str(path)],
            check=True,
        )
    return path


def make_bomb(decoded: int, layers: int, path: Path) -> None:
    data = _gzip_stream(decoded)
    for _ in range(layers - 1):
        data = _gzip(data)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _gzip_stream(decoded: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [z.compress(PDF_HEAD)]
    block = bytes(MiB)
    left = decoded - len(PDF_HEAD)
    while left > 0:
        n = min(left, MiB)
        out.append(z.compress(block[:n]))
        left -= n
    out.append(z.flush())
    return b"".join(out)


def _gzip(data: bytes) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    return z.compress(data) + z.flush()


def serve_bomb(server: HostileServer, path: str, body: Path, layers: int, ctype: str) -> str:
    coding = ", ".join(["gzip"] * layers)
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Encoding: {coding}\r\n"
        f"Content-Length: {body.stat().st_size}\r\n\r\n"
    ).encode()

    def handler(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(head)
        with body.open("rb") as f:
            while chunk := f.read(65536):
                sock.sendall(chunk)
        return True

    return server.route(path, handler)


def _post_linking(folder: Path, url: str) -> Path:
    posts = folder / "posts"
    posts.mkdir(exist_ok=True)
    (posts / "post.md").write_text(f"---\ntitle: t\n---\n\nSlides: [deck]({url})\n")
    return posts


def asset_case(
    decoded: int, layers: int, command: str
) -> Callable[[Path, HostileServer], list[str]]:
    def build(work: Path, server: HostileServer) -> list[str]:
        url = serve_bomb(server, "/deck.pdf", bomb(decoded, layers), layers, "application/pdf")
        return [command, str(_post_linking(work, url))]

    return build


def page_case(decoded: int, layers: int) -> Callable[[Path, HostileServer], list[str]]:
    def build(work: Path, server: HostileServer) -> list[str]:
        body = bomb(decoded, layers)
        url = serve_bomb(server, "/events/", body, layers, "text/html")
        server.route("/robots.txt", _plain(b"User-agent: *\nAllow: /\n"))
        return ["crawl", url]

    return build


def _plain(body: bytes, ctype: str = "text/plain") -> Callable[[socket.socket, bytes], bool]:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"

    def handler(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(head.encode() + body)
        return True

    return handler


# -- slow servers ----------------------------------------------------------------------------


def trickle_case(interval: float) -> Callable[[Path, HostileServer], list[str]]:
    """A PDF whose body comes one byte every ``interval`` seconds, for ever."""

    def handler(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n")
        sock.sendall(b"Content-Length: 100000000\r\n\r\n" + PDF_HEAD)
        while True:
            time.sleep(interval)
            sock.sendall(b"\0")

    def build(work: Path, server: HostileServer) -> list[str]:
        return ["crawl", str(_post_linking(work, server.route("/slow.pdf", handler)))]

    return build


def continue_case(interval: float) -> Callable[[Path, HostileServer], list[str]]:
    """An endless stream of ``100 Continue``, never a final response."""

    def handler(sock: socket.socket, request: bytes) -> bool:
        while True:
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            time.sleep(interval)

    def build(work: Path, server: HostileServer) -> list[str]:
        return ["crawl", str(_post_linking(work, server.route("/c.pdf", handler)))]

    return build


def slow_head_case(interval: float) -> Callable[[Path, HostileServer], list[str]]:
    """A response head sent one header line every ``interval`` seconds, never ending."""

    def handler(sock: socket.socket, request: bytes) -> bool:
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        n = 0
        while True:
            time.sleep(interval)
            sock.sendall(f"X-Filler-{n}: y\r\n".encode())
            n += 1

    def build(work: Path, server: HostileServer) -> list[str]:
        return ["crawl", str(_post_linking(work, server.route("/h.pdf", handler)))]

    return build


# -- hostile posts ------------------------------------------------------------------------------


def post_case(name: str, text: str) -> Callable[[Path, HostileServer], list[str]]:
    """A folder with the hostile post and a sound one beside it (the run must go on)."""

    def build(work: Path, server: HostileServer) -> list[str]:
        posts = work / "posts"
        posts.mkdir(exist_ok=True)
        # Links point at the loopback server (a 404), never at a name to resolve.
        (posts / name).write_text(text.replace("{asset}", server.url("/missing.png")))
        good = server.route("/good.png", _plain(PNG, "image/png"))
        (posts / "sound.md").write_text(f"![ok]({good})\n")
        return ["crawl", str(posts)]

    return build


#: The sound post's picture: a real PNG that decodes (the deep check is on).
PNG = png_gradient(64, 48)

YAML_BOMB = (
    "---\n"
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
    "---\n\nbody\n"
)


def posts_cases(scale: int) -> list[Case]:
    """The hostile posts of the issue; ``scale`` 1 is the issue's sizes."""
    deep = 20_000 // scale
    return [
        Case(
            "TOML front matter nested 20,000 deep",
            post_case("toml.md", "+++\na = " + "[" * deep + "]" * deep + "\n+++\n\nbody\n"),
            "1 s per MB",
            "post skipped or front matter dropped; run goes on",
        ),
        Case("YAML alias bomb (399 bytes)", post_case("yaml.md", YAML_BOMB), "1 s per MB", "-"),
        Case(
            "<div> nested 10,000 deep",
            post_case(
                "deep.html",
                "<html><body>"
                + "<div>" * (10_000 // scale)
                + '<img src="{asset}">'
                + "</div>" * (10_000 // scale)
                + "</body></html>",
            ),
            "1 s per MB",
            "-",
        ),
        Case(
            "bare URL then 300k ')'",
            post_case("parens.md", "see {asset}" + ")" * (300_000 // scale) + "\n"),
            "1 s per MB",
            "-",
        ),
        Case(
            "style attribute with 6k 'url('",
            post_case(
                "style.html", '<html><body><div style="' + "url(" * (6_000 // scale) + '">x</div>'
            ),
            "1 s per MB",
            "-",
        ),
    ]


def all_cases(smoke: bool) -> list[Case]:
    decoded = 64 * MiB if smoke else 10 * GiB
    label = "64 MiB" if smoke else "10 GiB"
    cases: list[Case] = []
    for layers in (1, 2):
        kind = "gzip" if layers == 1 else "gzip, gzip"
        cases += [
            Case(f"asset: {label} {kind} bomb", asset_case(decoded, layers, "crawl"), "-", "error"),
            Case(f"check: {label} {kind} bomb", asset_case(decoded, layers, "check"), "-", "-"),
            Case(f"page: {label} {kind} bomb", page_case(decoded, layers), "-", "-"),
        ]
    cases += [
        Case("one body byte every 2 s", trickle_case(2.0), "min_rate window", "error"),
        Case("endless 100 Continue", continue_case(0.05), "1xx cap", "error"),
        Case("head, one line every 1 s", slow_head_case(1.0), "total_timeout", "error"),
    ]
    return cases + posts_cases(20 if smoke else 1)


def url_states(db: Path) -> str:
    """Each URL's state (and error class) in the run's database, for the figure column."""
    if not db.exists():
        return "no database"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT url, state, error_class FROM urls ORDER BY url").fetchall()
    shown = [f"{state}{f' ({cls})' if cls else ''}" for _, state, cls in rows]
    return ", ".join(shown) or "no URL"


def sound_post_ok(db: Path) -> bool:
    """Whether the sound post beside a hostile one (if the case has one) was archived:
    the run went on past the hostile post."""
    if not db.exists():
        return True
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT state FROM urls WHERE url LIKE '%/good.png'").fetchall()
    return all(state == "ok" for (state,) in rows)


@dataclass(frozen=True)
class Result:
    """What one case cost, and what became of its URLs."""

    case: str
    rss_mb: float
    seconds: float
    exit_code: int
    outcome: str
    bound: str
    within: bool


def run_case(case: Case, root: Path, settings: str) -> Result:
    work = Path(tempfile.mkdtemp(dir=root))
    (work / "config.toml").write_text(
        f'db = "{work / "a.db"}"\nstore = "{work / "store"}"\n[fetch]\nretries = 0\n{settings}'
    )
    env = {"ARCHIVER_ALLOW_ADDRESSES": "127.0.0.0/8"}
    with HostileServer() as server:
        args = case.build(work, server)
        config = ("--fail-on", "none", "--config", str(work / "config.toml"))
        run = archiver(*args, *config, cwd=work, env=env)
    return Result(
        case.name,
        run.maxrss_mb,
        run.wall,
        run.code,
        url_states(work / "a.db"),
        f"< {RSS_BOUND_MB:.0f} MB; {case.seconds_bound}",
        run.maxrss_mb < RSS_BOUND_MB and run.code in (0, 1, 3) and sound_post_ok(work / "a.db"),
    )


def results_table(results: list[Result]) -> str:
    head = ("case", "peak RSS", "seconds", "exit", "bound", "", "URL states after the run")
    cells = [head] + [
        (
            r.case,
            f"{r.rss_mb:.0f} MB",
            f"{r.seconds:.1f}",
            str(r.exit_code),
            r.bound,
            "met" if r.within else "MISSED",
            r.outcome,
        )
        for r in results
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip() for c in cells]
    lines.insert(1, "-" * len(max(lines, key=len)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument(
        "--make-bomb", nargs=3, metavar=("BYTES", "LAYERS", "PATH"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.make_bomb:
        size, layers, out = args.make_bomb
        make_bomb(int(size), int(layers), Path(out))
        return 0
    compile_archiver()
    # Short limits in the smoke run so the slow-server cases end in seconds and the small
    # bombs still overflow max_size; the full run keeps the shipped defaults.
    smoke = "total_timeout = 3.0\nmin_rate = 1024\nmax_size = 8388608\nmax_page_size = 1048576\n"
    settings = os.environ.get("HOSTILE_FETCH_SETTINGS", smoke if args.smoke else "")
    results = []
    with tempfile.TemporaryDirectory(prefix="archiver-hostile-") as tmp:
        for case in all_cases(args.smoke):
            if args.only and args.only not in case.name:
                continue
            results.append(run_case(case, Path(tmp), settings))
            r = results[-1]
            print(f"  {r.case}: {r.rss_mb:.0f} MB, {r.seconds:.1f} s; {r.outcome}", file=sys.stderr)
    print(results_table(results))
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=1))
    return 0 if args.smoke or all(r.within for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
