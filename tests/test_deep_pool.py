"""The zygote behind deep checks: one process that forks bounded workers, each serving
checks one at a time; a verdict that is not ``ok`` from a worker that served before is
checked again in a fresh one.

Real processes throughout. A check that must block does so on a FIFO nobody has opened
for writing yet, and the test releases it by opening the FIFO: nothing waits on a clock.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import media
import pytest

from archiver.validate_deep import (
    CHILDREN,
    DeepCheck,
    DeepLimits,
    MiB,
    close,
    deep_check,
    run_bounded,
    warm,
    zygote_pid,
)

LINUX = sys.platform.startswith("linux")
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the zygote forks")


# -- Functions the zygote's children run (this module is importable there) ------------


def whoami(path: Path, kind: str, limits: DeepLimits) -> dict[str, Any]:
    return {"pid": os.getpid(), "parent": os.getppid()}


def allocate(path: Path, kind: str, limits: DeepLimits, *, megabytes: int) -> dict[str, Any]:
    return {"size": len(bytearray(megabytes * MiB))}


def verdict_from(path: Path, kind: str, limits: DeepLimits, *, verdict: str) -> dict[str, Any]:
    """A deep check's result shape that names the worker that gave it."""
    return {"verdict": verdict, "pid": os.getpid()}


def crash(path: Path, kind: str, limits: DeepLimits, *, sig: int) -> dict[str, Any]:
    os.kill(os.getpid(), sig)
    return {}


def announce_then_block(path: Path, kind: str, limits: DeepLimits, *, fifo: str) -> dict[str, Any]:
    """Writes this child's pid into ``fifo``, then blocks until ``path`` (a FIFO) opens."""
    with open(fifo, "w") as f:
        f.write(f"{os.getpid()}\n")
    with open(path, "rb"):
        pass
    return {"released": True}


# -- Fixtures ---------------------------------------------------------------------------


@pytest.fixture
def zygote(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh zygote that can import this module (the shared one was started without)."""
    close()
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    yield
    close()


def _fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


def _release(fifo: Path) -> None:
    """Opens ``fifo`` for writing (waits for its reader) and closes it: the reader's
    ``open`` returns, and it reads EOF."""
    os.close(os.open(fifo, os.O_WRONLY))


def _read_pid(fifo: Path) -> int:
    with fifo.open() as f:
        return int(f.read())


def _ends(pidfds: list[int], timeout: float = 60.0) -> bool:
    """Whether every process behind ``pidfds`` ends within ``timeout`` (no polling)."""
    left = list(pidfds)
    while left:
        ready, _, _ = select.select(left, [], [], timeout)
        if not ready:
            return False
        left = [fd for fd in left if fd not in ready]
    return True


needs_pidfd = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="needs pidfd_open")


def _files(tmp_path: Path) -> dict[Path, str]:
    good = media.encode(media.noise(200, 150), "PNG")
    files = {
        "deck.pdf": ("pdf", media.pdf(3)),
        "cut.pdf": ("pdf", media.pdf(5)[:900]),
        "photo.png": ("image", good),
        "broken.png": ("image", media.png_broken_idat(good)),
        "photo.jpg": ("image", media.encode(media.photo(300, 200), "JPEG")),
        "drawing.svg": ("svg", media.SVG_OK),
        "page.svg": ("svg", media.XML_NOT_SVG),
        "bomb.png": ("image", media.png_declaring(6000, 6000)),
    }
    out = {}
    for name, (kind, data) in files.items():
        (tmp_path / name).write_bytes(data)
        out[tmp_path / name] = kind
    return out


# -- Tests ------------------------------------------------------------------------------


def test_checks_from_many_threads_each_get_their_own_verdict(tmp_path: Path) -> None:
    files = _files(tmp_path)
    expected = {path: deep_check(path, kind, isolate=False) for path, kind in files.items()}
    assert {c.verdict for c in expected.values()} == {"ok", "corrupt", "skipped"}
    jobs = [path for path in files for _ in range(4)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda p: deep_check(p, files[p]), jobs))
    assert got == [expected[path] for path in jobs]


def test_one_zygote_forks_a_worker_that_serves_check_after_check(
    zygote: None, tmp_path: Path
) -> None:
    runs = [run_bounded(whoami, tmp_path, "pdf", DeepLimits()) for _ in range(3)]
    pid = zygote_pid()
    assert pid is not None and pid != os.getpid()
    assert all(run.result is not None and run.result["parent"] == pid for run in runs)
    assert len({run.result["pid"] for run in runs if run.result}) == 1
    assert all(0 < run.peak_rss < 150 * MiB for run in runs)


@pytest.mark.parametrize("verdict", ["corrupt", "skipped"])
def test_a_verdict_not_ok_from_a_worker_that_served_is_given_by_a_fresh_one(
    zygote: None, tmp_path: Path, verdict: str
) -> None:
    first = run_bounded(whoami, tmp_path, "pdf", DeepLimits()).result
    assert first is not None
    run = run_bounded(verdict_from, tmp_path, "pdf", DeepLimits(), verdict=verdict)
    assert run.result is not None and run.result["verdict"] == verdict
    assert run.result["pid"] != first["pid"]  # checked again in a new worker, which said it
    # That worker refused or skipped a file: it is replaced too, not reused.
    after = run_bounded(whoami, tmp_path, "pdf", DeepLimits()).result
    assert after is not None and after["pid"] not in (first["pid"], run.result["pid"])


def test_an_ok_verdict_keeps_its_worker(zygote: None, tmp_path: Path) -> None:
    runs = [run_bounded(verdict_from, tmp_path, "pdf", DeepLimits(), verdict="ok") for _ in "ab"]
    assert [r.result["verdict"] for r in runs if r.result] == ["ok", "ok"]
    assert len({r.result["pid"] for r in runs if r.result}) == 1


def test_a_worker_that_served_and_dies_in_a_check_is_replaced_and_the_check_rerun(
    zygote: None, tmp_path: Path
) -> None:
    """A decoder that crashes does so again in a fresh worker: that worker's death is
    the verdict, and the next check gets a new worker."""
    first = run_bounded(whoami, tmp_path, "image", DeepLimits()).result
    run = run_bounded(crash, tmp_path, "image", DeepLimits(), sig=int(signal.SIGSEGV))
    assert (run.result, run.failure) == (None, "the decoder died (SIGSEGV)")
    after = run_bounded(whoami, tmp_path, "image", DeepLimits()).result
    assert first is not None and after is not None and after["pid"] != first["pid"]


@pytest.mark.skipif(not LINUX, reason="RLIMIT_AS is enforced on Linux")
def test_a_child_over_the_memory_limit_is_skipped_and_the_zygote_serves_on(
    zygote: None, tmp_path: Path
) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(media.encode(media.noise(64, 64), "PNG"))
    assert deep_check(good, "image").ok
    pid = zygote_pid()
    run = run_bounded(allocate, good, "image", DeepLimits(), megabytes=400)
    assert (run.result, run.failure) == (None, "needs more than 150 MB")
    # A real decode that needs 324 MB (9000 x 9000 RGBA), the pixel limit lifted.
    big = tmp_path / "big.png"
    big.write_bytes(media.png_declaring(9000, 9000, color_type=6))
    check = deep_check(big, "image", DeepLimits(max_pixels=10**9))
    assert check == DeepCheck("skipped", "needs more than 150 MB to decode")
    assert run_bounded(allocate, good, "image", DeepLimits(), megabytes=20).result == {
        "size": 20 * MiB
    }
    assert deep_check(good, "image").ok
    assert zygote_pid() == pid


def test_a_child_past_its_time_budget_is_killed_and_the_next_check_runs(tmp_path: Path) -> None:
    stuck = _fifo(tmp_path, "stuck.pdf")
    check = deep_check(stuck, "pdf", DeepLimits(seconds=0.2))
    assert check == DeepCheck("skipped", "over the time budget of 0.2 s")
    pid = zygote_pid()
    deck = tmp_path / "deck.pdf"
    deck.write_bytes(media.pdf(2))
    assert deep_check(deck, "pdf") == DeepCheck(
        "ok", pages=2, title="Keynote: the slides", format="PDF"
    )
    assert zygote_pid() == pid


@pytest.mark.parametrize("sig", [signal.SIGSEGV, signal.SIGABRT])
def test_a_child_killed_by_a_signal_says_which(zygote: None, tmp_path: Path, sig: int) -> None:
    run = run_bounded(crash, tmp_path, "image", DeepLimits(), sig=int(sig))
    assert (run.result, run.failure) == (None, f"the decoder died ({sig.name})")
    assert run_bounded(whoami, tmp_path, "image", DeepLimits()).result is not None


def test_a_check_that_blocks_does_not_hold_up_the_others(tmp_path: Path) -> None:
    """A child blocked on a FIFO; meanwhile another check is answered."""
    stuck = _fifo(tmp_path, "stuck.pdf")
    deck = tmp_path / "deck.pdf"
    deck.write_bytes(media.pdf(1))
    with ThreadPoolExecutor(1) as pool:
        blocked = pool.submit(deep_check, stuck, "pdf")
        assert deep_check(deck, "pdf").ok
        assert not blocked.done()
        _release(stuck)
        assert blocked.result() == DeepCheck("skipped", "not a regular file")


@pytest.mark.skipif(not LINUX, reason="reads /proc")
def test_at_most_children_checks_run_at_once(zygote: None, tmp_path: Path) -> None:
    """The third check waits in the parent until one of the first two ends, then runs
    in the worker that served it."""
    assert CHILDREN == 2
    stuck = [_fifo(tmp_path, f"stuck{i}") for i in range(3)]
    said = [_fifo(tmp_path, f"pid{i}") for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        runs = [
            pool.submit(
                run_bounded, announce_then_block, stuck[i], "pdf", DeepLimits(), fifo=str(said[i])
            )
            for i in range(2)
        ]
        children = [_read_pid(said[0]), _read_pid(said[1])]
        runs.append(
            pool.submit(
                run_bounded, announce_then_block, stuck[2], "pdf", DeepLimits(), fifo=str(said[2])
            )
        )
        pid = zygote_pid()
        listed = Path(f"/proc/{pid}/task/{pid}/children")
        if not listed.exists():
            pytest.skip("no /proc/PID/task/TID/children")
        assert sorted(int(c) for c in listed.read_text().split()) == sorted(children)
        _release(stuck[0])
        assert runs[0].result().result == {"released": True}
        children.append(_read_pid(said[2]))  # forked only now
        _release(stuck[1])
        _release(stuck[2])
        assert [r.result().result for r in runs] == [{"released": True}] * 3
        assert sorted(int(c) for c in listed.read_text().split()) == sorted(children[:2])
    assert len(set(children)) == 2 and children[2] == children[0]


def test_a_killed_zygote_is_replaced_by_the_next_check(tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    png.write_bytes(media.encode(media.noise(64, 64), "PNG"))
    assert deep_check(png, "image").ok
    first = zygote_pid()
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert deep_check(png, "image") == DeepCheck("ok", width=64, height=64, format="PNG")
    second = zygote_pid()
    assert second is not None and second != first


def test_a_zygote_started_from_a_thread_that_ends_lives_on(tmp_path: Path) -> None:
    """Linux's parent-death signal follows the thread that forked: anyio retires idle
    worker threads, and the zygote must not die with one."""
    close()
    png = tmp_path / "p.png"
    png.write_bytes(media.encode(media.noise(64, 64), "PNG"))
    thread = threading.Thread(target=deep_check, args=(png, "image"))
    thread.start()
    thread.join()
    pid = zygote_pid()
    assert pid is not None
    assert deep_check(png, "image").ok
    assert zygote_pid() == pid


@needs_pidfd
def test_close_ends_the_zygote(tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    png.write_bytes(media.encode(media.noise(64, 64), "PNG"))
    assert deep_check(png, "image").ok
    pid = zygote_pid()
    assert pid is not None
    fd = os.pidfd_open(pid)
    try:
        close()
        assert zygote_pid() is None
        assert select.select([fd], [], [], 0)[0] == [fd]  # ended, not merely asked to
    finally:
        os.close(fd)
    assert deep_check(png, "image").ok  # and the next check starts another
    assert zygote_pid() not in (None, pid)


_PARENT = """
import os, signal, sys, threading
from pathlib import Path
from archiver.validate_deep import DeepLimits, run_bounded, zygote_pid
from test_deep_pool import announce_then_block

how, stuck, said = sys.argv[1:]
args = (announce_then_block, Path(stuck), "pdf", DeepLimits())
threading.Thread(target=run_bounded, args=args, kwargs={"fifo": said}, daemon=True).start()
with open(said) as f:
    child = int(f.read())
print(zygote_pid(), child, flush=True)
sys.stdin.readline()
if how == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@needs_pidfd
@pytest.mark.parametrize("how", ["exit", "kill"])
def test_the_zygote_and_its_children_end_with_their_parent(tmp_path: Path, how: str) -> None:
    """A parent that exits, or is killed with SIGKILL, while a check blocks, leaves
    neither the zygote nor the blocked child behind."""
    stuck, said = _fifo(tmp_path, "stuck.pdf"), _fifo(tmp_path, "said")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT), str(TESTS)))}
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, how, str(stuck), str(said)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert parent.stdin is not None and parent.stdout is not None
    zygote, child = (int(pid) for pid in parent.stdout.readline().split())
    fds = [os.pidfd_open(pid) for pid in (zygote, child)]  # alive until told to go
    try:
        parent.stdin.close()
        assert parent.wait() == (-signal.SIGKILL if how == "kill" else 0)
        assert _ends(fds)
    finally:
        for fd in fds:
            os.close(fd)


def test_warm_starts_the_zygote_before_any_check(tmp_path: Path) -> None:
    close()
    assert zygote_pid() is None
    warm()
    for thread in threading.enumerate():
        if thread.name == "deep-check warm-up":
            thread.join()
    pid = zygote_pid()
    assert pid is not None
    png = tmp_path / "p.png"
    png.write_bytes(media.encode(media.noise(64, 64), "PNG"))
    assert deep_check(png, "image").ok
    assert zygote_pid() == pid  # the check used the zygote warm() started


def test_the_zygote_runs_this_code_whatever_the_current_directory_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -c`` imports from the current directory first: another ``archiver``
    package there (a second checkout) must not be what the zygote runs."""
    decoy = tmp_path / "archiver"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the decoy checkout')\n")
    png = tmp_path / "p.png"
    png.write_bytes(media.encode(media.noise(64, 64), "PNG"))
    close()
    monkeypatch.chdir(tmp_path)
    try:
        assert deep_check(png, "image") == DeepCheck("ok", width=64, height=64, format="PNG")
    finally:
        close()
