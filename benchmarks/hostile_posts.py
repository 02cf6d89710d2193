"""Hostile posts: seconds and peak RSS of extracting each, next to its bound.

Each case runs ``extract`` in a fresh ``python`` process (so peak RSS, from ``wait4``,
is that case's alone) and prints what it yielded: read fully, front matter refused,
or the post skipped at its budget. Not a test: nothing here asserts a timing.

    .venv/bin/python benchmarks/hostile_posts.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def realistic_post() -> str:
    posts = sorted((ROOT / "tests" / "fixtures" / "posts").rglob("*.md"))
    one = "\n\n".join(p.read_text(encoding="utf-8").split("---", 2)[-1] for p in posts)
    return "\n\n".join([one] * (1_000_000 // len(one) + 1))


CASES: list[tuple[str, str, str]] = [
    ("TOML front matter nested 20,000 deep", "markdown",
     "+++\na = " + "[" * 20_000 + "]" * 20_000 + "\n+++\nbody\n"),
    ("YAML alias bomb (billion laughs)", "markdown", "---\n" + billion_laughs() + "---\nbody\n"),
    ("JSON-like text nested 20,000 deep", "markdown",
     '{\n"a": ' + "[" * 20_000 + "]" * 20_000 + "\n}\n"),
    ("<div> nested 10,000 deep", "html",
     "<html>" + "<div>" * 10_000 + '<img src="https://x.test/a.png">' + "</div>" * 10_000),
    ("bare URL then 300k ')'", "markdown", "https://x.test/a.png" + ")" * 300_000),
    ("style with 6k 'url('", "html", '<div style="' + "url(" * 6_000 + '"></div>'),
    ("1 MB of unclosed '<a b ' (HTML)", "html", "<html>" + "<a b " * 200_000),
    ("1 MB of unclosed '<a b ' (Markdown)", "markdown", "<a b " * 200_000),
    ("100k '[' then 20k links", "markdown", "[" * 100_000 + "[a](https://x.test/a.png)" * 20_000),
    ("realistic 1 MB Markdown post", "markdown", realistic_post()),
]  # fmt: skip

CHILD = """
import json, sys, time
from archiver.extract import extract, post_budget
text = open(sys.argv[1], encoding="utf-8").read()
t = time.perf_counter()
r = extract(text, sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t, "refs": len(r.references),
                  "skipped": r.skipped, "warnings": [w.message for w in r.warnings],
                  "budget": post_budget(len(text))}))
"""


def run_case(text: str, fmt: str, workdir: Path) -> tuple[dict[str, object], int]:
    path = workdir / "post"
    path.write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), fmt], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}"}, usage.ru_maxrss
    return json.loads(out), usage.ru_maxrss  # ru_maxrss: KiB on Linux


def main() -> None:
    started = time.perf_counter()
    print(f"{'case':40} {'bytes':>9} {'seconds':>8} {'bound':>7} {'peak RSS':>9}  outcome")
    with tempfile.TemporaryDirectory() as tmp:
        for name, fmt, text in CASES:
            got, rss_kib = run_case(text, fmt, Path(tmp))
            if "error" in got:
                print(f"{name:40} {len(text):>9} {'-':>8} {'-':>7} {'-':>9}  {got['error']}")
                continue
            warnings = got["warnings"]
            assert isinstance(warnings, list)
            if got["skipped"]:
                outcome = "post skipped at its budget"
            elif warnings:
                outcome = f"{got['refs']} refs; {warnings[0]}"
            else:
                outcome = f"{got['refs']} refs, read fully"
            print(
                f"{name:40} {len(text):>9} {got['seconds']:>8.2f} {got['budget']:>6.1f}s"
                f" {rss_kib / 1024:>7.0f}MB  {outcome}"
            )
    print(f"(total {time.perf_counter() - started:.1f} s; bound = the post's time budget)")


if __name__ == "__main__":
    main()
