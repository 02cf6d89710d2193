"""Does an archived copy open? Decided by the parsers a viewer would use.

``validate`` judges a body by its first bytes, so a PDF cut short behind an honest
``Content-Length``, a PNG with a broken IDAT or a JPEG cut mid-scan all pass it.
Here maintained parsers read the whole file: pypdf in its lenient mode (trailer,
cross-reference, page tree; a PDF a viewer opens is not corrupt), Pillow (``verify()``,
then a fresh open and ``load()`` of every frame) and defusedxml (well-formed XML with
an ``svg`` root; entities are never expanded).

Three verdicts: ``ok``; ``corrupt`` (the parser rejects the file: it must never
replace a good copy); ``skipped`` (a limit was hit or the check could not tell, say a
password-protected PDF: the copy keeps its magic-byte verdict, with the reason).

Bounds. A hostile or broken file must not take the crawler's memory or time, and
in-process bounds cannot be proven: pypdf's cross-reference repair reads the whole
file, and libjpeg, zlib and libwebp allocate in C. So by default each file is checked
in a process other than the crawler's, which lowers its own address-space limit
(``RLIMIT_AS``, which caps RSS too) to ``max_memory`` and its CPU limit to the check's
budget before it reads the file, and is killed after ``seconds`` of wall clock; the
pixel and page limits keep honest large files from reaching those hard limits.
Starting an interpreter and importing the parsers for each file cost 0.2-0.4 s, so
that process is forked instead, from a *zygote*: one child interpreter, started on
first use, that imports pypdf, Pillow and defusedxml once and forks bounded *workers*,
at most ``CHILDREN`` checking at a time for the whole process. A worker serves checks
one after another (a fork per file cost ~12 ms of CPU, as much as checking a large
PDF); a verdict that is not ``ok`` from a worker that served an earlier check is
checked again in a freshly forked one, so no file is refused or skipped because of
what a worker did before, and such a worker is replaced (see ``_Zygote``). The zygote
is single-threaded and never reads a file itself; it ends when its stdin closes
(``close``, ``atexit``, or the parent's death, which Linux also signals with
``PR_SET_PDEATHSIG``), and a zygote that died is started again by the next check. Its
workers die with it. ``isolate=False`` runs in-process (tests, batch tools): same
verdicts, but only the pixel, page, size and (checked between pages/frames) time
limits apply.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import gc
import importlib
import itertools
import json
import logging
import math
import os
import queue
import re
import selectors
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

__all__ = [
    "ChildRun",
    "DeepCheck",
    "DeepLimits",
    "DeepVerdict",
    "Kind",
    "close",
    "deep_check",
    "deep_kind",
    "run_bounded",
    "warm",
    "zygote_pid",
]

Kind = Literal["pdf", "image", "svg"]
DeepVerdict = Literal["ok", "corrupt", "skipped"]

MiB = 1024 * 1024
SVG_NS = "http://www.w3.org/2000/svg"
_REASON_MAX = 200
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class DeepLimits:
    """What one deep check may cost; a file that needs more is ``skipped``, not corrupt."""

    #: Pixels actually decoded (a JPEG decodes at 1/2, 1/4 or 1/8 when that fits).
    #: Pillow holds 4 bytes a pixel for RGB(A): 20 M px is 80 MB, which with the
    #: interpreter and the libraries the zygote imported (~65 MB of address space,
    #: inherited by each worker) fits ``max_memory``.
    #: A 20 MP PNG or a 48 MP camera JPEG (at 1/4) is checked.
    max_pixels: int = 20_000_000
    #: PDF pages walked, or animation frames decoded. A deck past it is ``skipped``
    #: with its declared page count recorded: the part not walked is not vouched for.
    max_pages: int = 2_000
    #: Wall clock for one file, from the zygote's receipt of the request to its reply
    #: (a check run again in a fresh worker shares it).
    seconds: float = 20.0
    #: Files larger are not opened (repairing a PDF reads it whole).
    max_bytes: int = 256 * MiB
    #: Address space of the worker process (``RLIMIT_AS``, Linux; RSS stays below it),
    #: the zygote's inherited ~65 MB included.
    max_memory: int = 150 * MiB


@dataclass(frozen=True, slots=True)
class DeepCheck:
    """The verdict on one file and what was learned about it (JSON-ready via ``asdict``)."""

    verdict: DeepVerdict
    #: One line: why corrupt or skipped; for ``ok``, what the lenient parser repaired.
    reason: str = ""
    pages: int | None = None
    title: str | None = None
    width: int | None = None
    height: int | None = None
    #: "PDF", "SVG", or Pillow's name ("PNG", "JPEG", "GIF", "WEBP", ...).
    format: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


@dataclass(frozen=True, slots=True)
class ChildRun:
    """One bounded call: the function's JSON result, or why there is none."""

    result: dict[str, Any] | None
    failure: str
    #: The worker's peak resident set size during this call, in bytes (0 when it did not report).
    peak_rss: int
    seconds: float


class _Skip(Exception):
    """A limit was hit: the file is not vouched for, nor condemned."""

    def __init__(self, reason: str, **fields: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


class _Corrupt(_Skip):
    """Raised where a verdict is certain before any parser runs."""


def one_line(text: str, limit: int = _REASON_MAX) -> str:
    """Server and parser text as one bounded line (reasons end up in logs and reports)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def deep_kind(content_type: str | None) -> Kind | None:
    """Which parser reads a body of this (sniffed) type; None: none does."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == "application/pdf":
        return "pdf"
    if mime == "image/svg+xml":
        return "svg"
    if mime.startswith("image/"):
        return "image"
    return None


def deep_check(
    path: Path, kind: Kind, limits: DeepLimits | None = None, *, isolate: bool = True
) -> DeepCheck:
    """Parses ``path`` as ``kind`` and says whether it opens, within ``limits``."""
    limits = limits or DeepLimits()
    if not isolate:
        return check_file(path, kind, limits)
    run = run_bounded(_check_entry, path, kind, limits)
    if run.result is None:
        return DeepCheck("skipped", run.failure)
    return DeepCheck(**run.result)


def _check_entry(path: Path, kind: Kind, limits: DeepLimits) -> dict[str, Any]:
    return dataclasses.asdict(check_file(path, kind, limits))


def check_file(path: Path, kind: Kind, limits: DeepLimits) -> DeepCheck:
    """The check itself, in this process (a worker runs exactly this)."""
    deadline = time.monotonic() + limits.seconds
    try:
        with open_bounded(path, limits) as f:
            if kind == "pdf":
                return _check_pdf(f, limits, deadline)
            if kind == "image":
                return _check_image(f, limits, deadline)
            if kind == "svg":
                return _check_svg(f)
            raise ValueError(f"unknown kind {kind!r}")
    except _Corrupt as bad:
        return DeepCheck("corrupt", one_line(bad.reason), **bad.fields)
    except _Skip as skip:
        return DeepCheck("skipped", one_line(skip.reason), **skip.fields)
    except MemoryError:
        return DeepCheck("skipped", f"needs more than {limits.max_memory // MiB} MB to decode")
    except RecursionError:
        return DeepCheck("skipped", "nested too deeply to check")


@contextlib.contextmanager
def open_bounded(path: Path, limits: DeepLimits) -> Iterator[IO[bytes]]:
    """Opens a regular, non-empty file no larger than ``max_bytes``."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _Skip("not a regular file")
        if st.st_size == 0:
            # Not a limit: an empty body opens as nothing in any viewer.
            raise _Corrupt("empty file")
        if st.st_size > limits.max_bytes:
            raise _Skip(f"{st.st_size:,} bytes, over the {limits.max_bytes:,}-byte limit")
        yield f


def _deadline_check(deadline: float, limits: DeepLimits, done: str) -> None:
    if time.monotonic() > deadline:
        raise _Skip(f"over the time budget of {limits.seconds:g} s after {done}")


def _corrupt(what: str, exc: BaseException, **fields: Any) -> DeepCheck:
    detail = one_line(str(exc)) or type(exc).__name__
    return DeepCheck("corrupt", one_line(f"{what}: {detail}"), **fields)


# -- PDF ------------------------------------------------------------------------------


class _Warnings(logging.Handler):
    """Collects what pypdf repaired, so an ``ok`` can say it was lenient."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _pypdf_warnings() -> Iterator[_Warnings]:
    logger = logging.getLogger("pypdf")
    handler = _Warnings()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False  # a broken file is expected here, not news for the log
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _check_pdf(f: IO[bytes], limits: DeepLimits, deadline: float) -> DeepCheck:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError
    from pypdf.generic import DictionaryObject

    with _pypdf_warnings() as repaired:
        try:
            reader = PdfReader(f, strict=False)
            if reader.is_encrypted:
                try:
                    decrypted = reader.decrypt("")
                except (DependencyError, NotImplementedError) as exc:
                    raise _Skip(f"encrypted PDF: {exc}", format="PDF") from None
                if not decrypted:
                    raise _Skip("encrypted PDF with a user password", format="PDF")
            root = reader.trailer.get("/Root")
            root = root.get_object() if root is not None else None
            if not isinstance(root, DictionaryObject):
                return DeepCheck("corrupt", "PDF has no document catalog (/Root)")
            tree = root.get("/Pages")
            tree = tree.get_object() if tree is not None else None
            if not isinstance(tree, DictionaryObject):
                return DeepCheck("corrupt", "PDF has no page tree (/Pages)")
            declared = tree.get("/Count")
            if isinstance(declared, int) and declared > limits.max_pages:
                raise _Skip(
                    f"{declared:,} pages, over the {limits.max_pages:,}-page limit:"
                    " page tree not walked",
                    pages=int(declared),
                    title=_pdf_title(reader),
                    format="PDF",
                )
            pages = 0
            for page in reader.pages:
                if not isinstance(page, DictionaryObject):
                    return DeepCheck("corrupt", f"PDF page {pages + 1} is not a page object")
                pages += 1
                if pages > limits.max_pages:
                    raise _Skip(
                        f"over {limits.max_pages:,} pages: the rest of the page tree not walked",
                        pages=pages - 1,
                        format="PDF",
                    )
                if pages % 64 == 0:
                    _deadline_check(deadline, limits, f"{pages} pages")
            if pages == 0:
                return DeepCheck("corrupt", "PDF has no pages", pages=0, format="PDF")
            title = _pdf_title(reader)
        except (_Skip, MemoryError, RecursionError):
            raise
        except FileNotDecryptedError as exc:
            raise _Skip(f"encrypted PDF: {exc}", format="PDF") from None
        except Exception as exc:  # pypdf raises many kinds on a broken file
            return _corrupt("PDF does not parse", exc)
    note = ""
    if repaired.messages:
        more = len(repaired.messages) - 1
        note = "repaired: " + repaired.messages[0] + (f" (+{more} more)" if more else "")
    return DeepCheck("ok", one_line(note), pages=pages, title=title, format="PDF")


def _pdf_title(reader: Any) -> str | None:
    """The document title, if the Info dictionary has a usable one (never fatal)."""
    try:
        meta = reader.metadata
        title = meta.title if meta is not None else None
    except Exception:
        return None
    if not isinstance(title, str):
        return None
    title = one_line(title.replace("\x00", ""))
    return title or None


# -- Images ---------------------------------------------------------------------------

_NO_DECODER = "no decoder for"


def _check_image(f: IO[bytes], limits: DeepLimits, deadline: float) -> DeepCheck:
    from PIL import Image, UnidentifiedImageError

    fmt: str | None = None
    width = height = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(f) as im:
                fmt, (width, height) = im.format, im.size
                scale = decode_scale(fmt, width, height, limits.max_pixels)
                im.verify()  # PNG: chunk CRCs; other formats: the header
            f.seek(0)
            with Image.open(f) as im:
                if scale > 1:
                    im.draft(im.mode, (math.ceil(width / scale), math.ceil(height / scale)))
                im.load()
                frames = _load_frames(im, limits, deadline)
        except (_Skip, MemoryError, RecursionError):
            raise
        except Image.DecompressionBombError as exc:  # Pillow's own limit, at open
            raise _Skip(f"over the pixel limit: {exc}", format=fmt) from None
        except UnidentifiedImageError:
            f.seek(0)
            sniffed = _sniff(f.read(8192))
            if sniffed and sniffed.startswith("image/"):
                raise _Skip(f"{_NO_DECODER} {sniffed} in this Pillow") from None
            return DeepCheck("corrupt", "not an image Pillow can identify")
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ...
            if fmt is None:  # Pillow knew the format but not the header (a cut WebP)
                f.seek(0)
                fmt = (_sniff(f.read(8192)) or "image/").removeprefix("image/").upper() or None
            what = f"{fmt or 'image'} does not decode"
            return _corrupt(what, exc, width=width, height=height, format=fmt)
    note = f"{frames} frames" if frames > 1 else ""
    return DeepCheck("ok", note, width=width, height=height, format=fmt)


def decode_scale(fmt: str | None, width: int, height: int, max_pixels: int) -> int:
    """1, or the JPEG draft scale that brings a large image under ``max_pixels``.

    Raises _Skip when even that does not fit: checked before a pixel is decoded, so a
    bomb (huge dimensions, tiny file) costs nothing."""
    for scale in (1, 2, 4, 8) if fmt == "JPEG" else (1,):
        if math.ceil(width / scale) * math.ceil(height / scale) <= max_pixels:
            return scale
    raise _Skip(
        f"{width:,}×{height:,} px, over the {max_pixels:,}-pixel limit",
        width=width,
        height=height,
        format=fmt,
    )


def _load_frames(im: Any, limits: DeepLimits, deadline: float) -> int:
    """Decodes every frame after the first (a GIF cut in frame 5 is still cut)."""
    frames = getattr(im, "n_frames", 1)
    if frames > limits.max_pages:
        raise _Skip(
            f"{frames:,} frames, over the {limits.max_pages:,}-frame limit",
            width=im.width,
            height=im.height,
            format=im.format,
        )
    for index in range(1, frames):
        _deadline_check(deadline, limits, f"{index} frames")
        im.seek(index)
        im.load()
    return int(frames)


def _sniff(head: bytes) -> str | None:
    from archiver.validate import sniff

    return sniff(head)


# -- SVG ------------------------------------------------------------------------------


class _RootOnly:
    """An XML parser target that keeps the root's tag and attributes, nothing else:
    well-formedness is checked over the whole file in constant memory."""

    def __init__(self) -> None:
        self.root: tuple[str, dict[str, str]] | None = None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if self.root is None:
            self.root = (tag, dict(attrib))

    def end(self, tag: str) -> None:
        pass

    def data(self, data: str) -> None:
        pass

    def close(self) -> None:
        pass


def _check_svg(f: IO[bytes]) -> DeepCheck:
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import DefusedXMLParser

    target = _RootOnly()
    parser = DefusedXMLParser(target=target)
    try:
        while chunk := f.read(64 * 1024):
            parser.feed(chunk)
        parser.close()
    except DefusedXmlException as exc:
        # Illustrator's SVGs declare entities and every browser renders them; a bomb
        # does too. Neither is expanded, so neither is vouched for nor condemned.
        why = type(exc).__name__
        raise _Skip(f"XML declares entities or external references, not expanded ({why})") from None
    except ParseError as exc:
        return _corrupt("SVG is not well-formed XML", exc)
    if target.root is None:
        return DeepCheck("corrupt", "SVG has no root element")
    tag, attrib = target.root
    if tag not in ("svg", f"{{{SVG_NS}}}svg"):
        local = tag.rpartition("}")[2]
        return DeepCheck("corrupt", one_line(f"XML root is <{local}>, not <svg>"))
    return DeepCheck(
        "ok",
        width=_svg_length(attrib.get("width")),
        height=_svg_length(attrib.get("height")),
        format="SVG",
    )


_PX = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(?:px)?\s*")


def _svg_length(value: str | None) -> int | None:
    """A width/height in CSS pixels when it is one (not %, em, mm ...)."""
    match = _PX.fullmatch(value or "")
    return round(float(match.group(1))) if match else None


# -- The bounded workers: a zygote forks them ------------------------------------------

#: Checks running at once in the whole process, whatever the number of threads asking
#: (each worker may grow to ``max_memory``): a burst of new blobs waits its turn.
CHILDREN = 2
#: Checks one worker serves before it is replaced (bounds whatever drifts in a
#: long-lived interpreter: pymalloc arenas, caches).
_WORKER_CHECKS = 256
#: A worker whose resident set grew by more than this since its first check is replaced.
_WORKER_GROWTH = 32 * MiB
#: How long past a check's ``seconds`` the parent waits for the zygote's reply before it
#: takes the zygote for hung and replaces it (the zygote kills a worker at ``seconds``).
_GRACE = 10.0
#: How long the zygote may take to start and import the parsers.
_START_SECONDS = 60.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def run_bounded(
    func: Callable[..., dict[str, Any]],
    path: Path,
    kind: Kind,
    limits: DeepLimits,
    **kwargs: Any,
) -> ChildRun:
    """Calls module-level ``func(path, kind, limits, **kwargs)`` in a worker process
    under ``limits.max_memory`` and ``limits.seconds``; JSON in, JSON out. Thread-safe.
    A failure, or a result whose ``"verdict"`` is not ``"ok"``, from a worker that ran an
    earlier call is only returned once a fresh worker gave it too."""
    request = {
        "func": f"{func.__module__}:{func.__qualname__}",
        "path": os.fspath(path),
        "kind": kind,
        "limits": dataclasses.asdict(limits),
        "kwargs": kwargs,
    }
    return _client().run(request, limits.seconds)


def close() -> None:
    """Ends the zygote and any check it still runs (registered with ``atexit``); the next
    check starts a new one."""
    _client().close()


def warm() -> None:
    """Starts the zygote in the background, if it is not running, and returns at once:
    a crawl that expects new bodies calls it before the first one arrives, so the first
    checks do not wait for the parsers' import (~0.35 s of CPU). Never fails: a zygote
    that cannot start fails the first check, with the reason."""
    threading.Thread(target=_client().warm, name="deep-check warm-up", daemon=True).start()


def zygote_pid() -> int | None:
    """The running zygote's process id, None before the first check or after ``close``."""
    return _client().pid()


class _Reply:
    """Where the reader thread leaves one request's reply (None: the zygote died)."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.message: dict[str, Any] | None = None


class _Server:
    """One zygote process, and the thread that hands its replies to the waiting callers."""

    def __init__(self, proc: subprocess.Popen[bytes], errors: IO[bytes]) -> None:
        self.proc, self._errors = proc, errors
        #: ``close`` ended it: checks waiting on it fail rather than start another.
        self.alive, self.closed = True, False
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._waiting: dict[int, _Reply] = {}
        name = f"deep-check zygote {proc.pid}"
        threading.Thread(target=self._read_replies, name=name, daemon=True).start()

    def started(self) -> str | None:
        """Waits for the zygote's first line: None when it is ready, else why not."""
        if self._ready.wait(_START_SECONDS) and self.alive:
            return None
        self.stop()
        self._errors.seek(0)
        lines = self._errors.read()[-4096:].decode(errors="replace").strip().splitlines()
        return one_line(f"deep check did not start: {(lines or ['no output'])[-1]}")

    def ask(self, ident: int, request: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The zygote's reply; None when it died first; raises TimeoutError if it hangs."""
        reply = _Reply()
        line = json.dumps({"id": ident, **request}).encode() + b"\n"
        with self._lock:
            if not self.alive:
                return None
            self._waiting[ident] = reply
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(line)
                self.proc.stdin.flush()
            except (OSError, ValueError):  # it died (or was closed) since the reader looked
                del self._waiting[ident]
                return None
        if not reply.done.wait(timeout):
            with self._lock:
                self._waiting.pop(ident, None)
            raise TimeoutError
        return reply.message

    def _read_replies(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                message = json.loads(line)
                if message.get("ready"):
                    self._ready.set()
                    continue
                with self._lock:
                    reply = self._waiting.pop(message["id"], None)
                if reply is not None:
                    reply.message = message
                    reply.done.set()
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a zygote that says nonsense is as good as dead
        finally:
            with self._lock:
                self.alive = False
                waiting, self._waiting = self._waiting, {}
            for reply in waiting.values():
                reply.done.set()
            self._ready.set()
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self._errors.close()

    def stop(self) -> None:
        """Closes the zygote's stdin, which ends it; killed if it does not end promptly."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Client:
    """The parent's side: one zygote at a time, shared by every thread, started on first
    use and again if it died; at most ``CHILDREN`` checks in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(CHILDREN)
        self._server: _Server | None = None
        self._ids = itertools.count(1)
        self._spawner: _Spawner | None = None
        self._exit_hook = False

    def run(self, request: dict[str, Any], seconds: float) -> ChildRun:
        with self._slots:
            started = time.monotonic()
            for _attempt in range(2):  # a zygote that died meanwhile is replaced, once
                server = self._running()
                if isinstance(server, str):
                    return ChildRun(None, server, 0, 0.0)
                try:
                    message = server.ask(next(self._ids), request, seconds + _GRACE)
                except TimeoutError:
                    self._drop(server)
                    return ChildRun(None, f"over the time budget of {seconds:g} s", 0, seconds)
                if message is not None:
                    break
                if server.closed:
                    why = "deep check did not run: checking was closed"
                    return ChildRun(None, why, 0, time.monotonic() - started)
                self._drop(server)
            else:
                why = "deep check did not run: the zygote process died"
                return ChildRun(None, why, 0, time.monotonic() - started)
        return ChildRun(
            message.get("result"),
            one_line(str(message.get("failure", ""))),
            int(message.get("peak_rss", 0)),
            time.monotonic() - started,
        )

    def warm(self) -> None:
        self._running()

    def _running(self) -> _Server | str:
        """The live zygote, started if need be; or why none could start."""
        with self._lock:
            if self._server is not None and self._server.alive:
                return self._server
            if self._spawner is None:
                self._spawner = _Spawner()
            try:
                server = self._spawner.call(_start_zygote)
            except OSError as exc:
                return one_line(f"deep check did not start: {exc}")
            failed = server.started()
            if failed is not None:
                return failed
            self._server = server
            if not self._exit_hook:
                atexit.register(close)
                self._exit_hook = True
            return server

    def _drop(self, server: _Server) -> None:
        with self._lock:
            if self._server is server:
                self._server = None
        server.stop()

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.closed = True
            server.stop()

    def pid(self) -> int | None:
        server = self._server
        return server.proc.pid if server is not None and server.alive else None


class _Spawner:
    """Starts the zygote from one thread that lives as long as this process: Linux sends
    ``PR_SET_PDEATHSIG`` when the *thread* that forked a child ends, and checks come from
    worker threads that anyio retires when idle."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="deep-check spawner", daemon=True).start()

    def call(self, job: Callable[[], _T]) -> _T:
        done: Future[_T] = Future()
        self._jobs.put((job, done))
        return done.result()

    def _serve(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                done.set_result(job())
            except BaseException as exc:
                done.set_exception(exc)


def _start_zygote() -> _Server:
    # The zygote must import this very code, also from a checkout that is not installed.
    package_root = str(Path(__file__).resolve().parents[len(__name__.split(".")) - 1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    # ``-c`` puts the current directory first on sys.path: a folder that holds another
    # checkout's ``archiver`` would be imported instead, so this one goes before it.
    code = (
        f"import sys; sys.path.insert(0, {package_root!r}); "
        f"import {__name__} as m; m._zygote_main({os.getpid()})"
    )
    errors = tempfile.TemporaryFile()  # noqa: SIM115  (its last words, if it cannot start)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
        )
    except BaseException:
        errors.close()
        raise
    return _Server(proc, errors)


_CLIENT = _Client()


def _client() -> _Client:
    return _CLIENT


def _forget_after_fork() -> None:
    """A forked copy of this process has none of its threads: it starts its own zygote."""
    global _CLIENT
    _CLIENT = _Client()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# -- The zygote's side --------------------------------------------------------------------


def _zygote_main(parent: int) -> None:
    """Imports the parsers once, then hands each request line on stdin to a bounded worker and
    writes one reply line per request on stdout, in any order; ends at EOF on stdin.
    Single-threaded, so that forking it is safe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is the parent's: it closes us
    prctl = _prctl()
    _die_with(parent, prctl)
    _preload()
    gc.freeze()  # the workers then copy no page for the collector's sake
    _write_line(1, {"ready": True})
    _Zygote(prctl).serve()


def _preload() -> None:
    """What each worker would otherwise import (never fatal: a parser that
    is missing fails each check that needs it, with the import's error)."""
    with contextlib.suppress(ImportError):
        import pypdf  # noqa: F401
        from pypdf import errors, generic  # noqa: F401
    with contextlib.suppress(ImportError):
        from PIL import Image, ImageOps, features  # noqa: F401

        Image.init()  # every format's plugin
        features.check("webp")  # and the thumbnails' encoder
    with contextlib.suppress(ImportError):
        import defusedxml.ElementTree  # noqa: F401
    from archiver import validate  # noqa: F401  (``_sniff``)


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def _die_with(parent: int, prctl: Callable[..., int] | None) -> None:
    """Has Linux SIGKILL this process when ``parent`` ends, even by ``kill -9`` (the
    zygote also ends at EOF on stdin, on any system); exits if it has ended already."""
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(0)


@dataclass(slots=True)
class _Job:
    """One request, from its arrival to its reply; ``fresh``: its worker is new."""

    ident: Any
    request: dict[str, Any]
    limits: DeepLimits
    deadline: float
    fresh: bool = False
    retried: bool = False


@dataclass(slots=True)
class _Worker:
    """A forked child that serves requests one at a time: requests go down the pipe
    ``send``, replies (one JSON line each) come up the pipe ``fd``."""

    pid: int
    send: int
    fd: int
    chunks: list[bytes]
    served: int = 0
    #: Its resident set after its first check (a worker that grows past it is replaced).
    rss: int = 0
    job: _Job | None = None
    retiring: bool = False


class _Zygote:
    """The zygote's loop: requests in, handed to workers it forks, replies out.

    A worker is a child forked from the zygote that serves checks one after another
    (forking a child per file cost ~12 ms of CPU each, mostly copy-on-write faults, as
    much as the check of a large PDF itself). What isolation buys is kept: each check
    runs under its own memory and CPU limits and wall-clock deadline (a worker past it
    is killed), and every verdict that is not ``ok`` (``corrupt``, ``skipped``, a
    worker's death or error) from a worker that served an earlier check is checked
    again in a freshly forked one before it is believed, within the same deadline: so
    no verdict that refuses or skips a file depends on what a worker did before. A
    worker is replaced after such a verdict, after ``_WORKER_CHECKS`` checks, or when
    its resident set grew by ``_WORKER_GROWTH``; at most ``CHILDREN`` idle ones stay.
    """

    def __init__(self, prctl: Callable[..., int] | None) -> None:
        self._prctl, self._pid = prctl, os.getpid()
        self._selector = selectors.DefaultSelector()
        self._workers: dict[int, _Worker] = {}  # by reply pipe fd
        self._funcs: dict[str, Callable[..., dict[str, Any]]] = {}

    def serve(self) -> None:
        self._selector.register(0, selectors.EVENT_READ)
        pending = b""
        try:
            while True:
                deadlines = [w.job.deadline for w in self._workers.values() if w.job]
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                for key, _ in self._selector.select(timeout):
                    if key.fd == 0:
                        data = os.read(0, 64 * 1024)
                        if not data:
                            return  # the parent closed us or died
                        *lines, pending = (pending + data).split(b"\n")
                        for line in lines:
                            if line.strip():
                                self._start(json.loads(line))
                    elif (worker := self._workers.get(key.fd)) is not None:
                        self._read(worker)
                now = time.monotonic()
                for worker in list(self._workers.values()):
                    job = worker.job
                    if job is not None and job.deadline <= now:
                        self._kill(worker)
                        why = f"over the time budget of {job.limits.seconds:g} s"
                        self._reply(job, failure=why)
        finally:
            for worker in list(self._workers.values()):
                self._kill(worker)

    def _start(self, request: dict[str, Any]) -> None:
        try:
            limits = DeepLimits(**request["limits"])
            self._func(request["func"])
        except Exception as exc:
            self._write({"id": request["id"], "failure": _failed(exc)})
            return
        job = _Job(request["id"], request, limits, time.monotonic() + limits.seconds)
        self._dispatch(job)

    def _dispatch(self, job: _Job, *, fresh: bool = False) -> None:
        """Hands ``job`` to an idle worker (a new one when ``fresh`` or none is idle)."""
        while True:
            worker = None
            if not fresh:
                idle = (w for w in self._workers.values() if w.job is None and not w.retiring)
                worker = next(idle, None)
            if worker is None:
                worker = self._fork()
            job.fresh = worker.served == 0
            worker.job = job
            try:
                _write_line(worker.send, job.request)
                return
            except OSError:  # it died while idle: reaped, and the job goes to another
                worker.job = None
                self._kill(worker)

    def _fork(self) -> _Worker:
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into this loop
            code = 70
            try:
                os.close(requests_w)
                os.close(replies_r)
                code = self._work(requests_r, replies_w)
            finally:
                os._exit(code)
        os.close(requests_r)
        os.close(replies_w)
        worker = _Worker(pid, requests_w, replies_r, [])
        self._workers[replies_r] = worker
        self._selector.register(replies_r, selectors.EVENT_READ)
        return worker

    def _func(self, name: str) -> Callable[..., dict[str, Any]]:
        """The function a request names, imported here once (workers inherit it)."""
        if name not in self._funcs:
            module, _, qualname = name.partition(":")
            self._funcs[name] = getattr(importlib.import_module(module), qualname)
        return self._funcs[name]

    def _work(self, requests: int, out: int) -> int:
        """Runs in the forked worker: one request line in, one reply line out, until the
        zygote closes the request pipe."""
        _die_with(self._pid, self._prctl)  # a zygote killed takes its workers along
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # stdout is the zygote's reply channel: no stray print there
            os.dup2(devnull, fd)
        for worker in self._workers.values():
            os.close(worker.fd)
            if not worker.retiring:
                os.close(worker.send)
        self._workers.clear()
        self._selector.close()
        with os.fdopen(requests, "rb") as lines:
            for line in lines:
                _write_line(out, self._run(json.loads(line)))
        return 0

    def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request in the worker: bounds itself for it, calls the function."""
        limits = DeepLimits(**request["limits"])
        _limit_self(limits)
        _reset_peak_rss()
        try:
            func = self._func(request["func"])
            result = func(Path(request["path"]), request["kind"], limits, **request["kwargs"])
            reply: dict[str, Any] = {"result": result, "peak_rss": _peak_rss()}
        except MemoryError:
            reply = {"error": f"needs more than {limits.max_memory // MiB} MB"}
        except Exception as exc:
            reply = {"error": _failed(exc)}
        reply["rss"] = _rss()
        return reply

    def _read(self, worker: _Worker) -> None:
        data = os.read(worker.fd, 64 * 1024)
        if not data:  # it ended: retired, or died in a check
            self._ended(worker)
            return
        *lines, rest = b"".join([*worker.chunks, data]).split(b"\n")
        worker.chunks = [rest] if rest else []
        for line in lines:
            try:
                reply = json.loads(line)
            except ValueError:
                reply = None
            job, worker.job = worker.job, None
            if job is None:
                continue  # a worker says nothing unasked: ignore it
            if not isinstance(reply, dict):
                reply = {"error": "deep check failed: a reply that is not JSON"}
            self._replied(worker, job, reply)

    def _replied(self, worker: _Worker, job: _Job, reply: dict[str, Any]) -> None:
        worker.served += 1
        rss = int(reply.get("rss", 0))
        if worker.served == 1:
            worker.rss = rss
        result = reply.get("result")
        settled = isinstance(result, dict) and result.get("verdict", "ok") == "ok"
        if (
            not settled
            or worker.served >= _WORKER_CHECKS
            or rss > worker.rss + _WORKER_GROWTH
            or sum(1 for w in self._workers.values() if w.job is None and not w.retiring) > CHILDREN
        ):
            self._retire(worker)
        if not settled and self._again(job):
            return
        if "error" in reply:
            self._reply(job, failure=str(reply["error"]))
        else:
            self._reply(job, result=result, peak_rss=int(reply.get("peak_rss", 0)))

    def _again(self, job: _Job) -> bool:
        """Whether a verdict that is not ``ok`` from a worker that served before goes to a
        fresh worker (once, within the job's own deadline) instead of to the parent."""
        if job.fresh or job.retried:
            return False
        job.retried = True
        self._dispatch(job, fresh=True)
        return True

    def _ended(self, worker: _Worker) -> None:
        """The worker closed its reply pipe: reaped; a check it was running is answered
        from its exit status (or checked again in a fresh worker, if it had served)."""
        self._forget(worker)
        status = os.waitpid(worker.pid, 0)[1]
        job = worker.job
        if job is None:
            return
        cpu = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU
        if not cpu and self._again(job):
            return
        if cpu:
            failure = f"over the time budget of {job.limits.seconds:g} s (CPU)"
        elif os.WIFSIGNALED(status):
            failure = f"the decoder died ({_signal_name(os.WTERMSIG(status))})"
        else:
            failure = f"deep check did not run: no reply, exit status {status >> 8}"
        self._reply(job, failure=failure)

    def _retire(self, worker: _Worker) -> None:
        """Closes its request pipe: it ends after the reply it is writing, if any."""
        if not worker.retiring:
            worker.retiring = True
            os.close(worker.send)

    def _kill(self, worker: _Worker) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)
        os.waitpid(worker.pid, 0)
        self._forget(worker)

    def _forget(self, worker: _Worker) -> None:
        """Closes both pipes of a worker that ended (the caller reaps it)."""
        self._retire(worker)
        if self._workers.pop(worker.fd, None) is not None:
            self._selector.unregister(worker.fd)
            os.close(worker.fd)

    def _reply(self, job: _Job, **fields: Any) -> None:
        self._write({"id": job.ident, **fields})

    def _write(self, message: dict[str, Any]) -> None:
        _write_line(1, message)


def _write_line(fd: int, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode() + b"\n"
    while data:
        data = data[os.write(fd, data) :]


def _failed(exc: BaseException) -> str:
    return f"deep check failed: {type(exc).__name__}: {exc}"


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _limit_self(limits: DeepLimits) -> None:
    """Lowers this process's own limits (never raises: on macOS RLIMIT_AS is advisory)."""
    try:
        import resource
    except ImportError:  # not POSIX: the wall-clock kill still applies
        return
    spent = os.times()  # a worker that served checks before has used CPU already
    wanted = {
        resource.RLIMIT_AS: limits.max_memory,
        resource.RLIMIT_CPU: math.ceil(spent.user + spent.system + limits.seconds) + 1,
    }
    for which, value in wanted.items():
        with contextlib.suppress(ValueError, OSError):
            _soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, hard))


def _reset_peak_rss() -> None:
    """Starts the peak RSS over from the current one (Linux), so that each check a
    worker serves reports its own."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _rss() -> int:
    """This process's resident set size in bytes (0 where /proc is missing)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _peak_rss() -> int:
    """This process's peak RSS in bytes. Linux's ``ru_maxrss`` starts from the parent's
    at fork, so the per-address-space high-water mark is read where there is one."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    try:
        import resource
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
