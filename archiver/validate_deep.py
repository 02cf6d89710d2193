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
file, and libjpeg, zlib and libwebp allocate in C. So by default the check runs in a
child interpreter that lowers its own address-space limit (``RLIMIT_AS``, which caps
RSS too) to ``max_memory`` before it reads the file and is killed after ``seconds``
of wall clock; the pixel and page limits keep honest large files from reaching those
hard limits. A child costs ~0.2 s (images) to ~0.4 s (PDF) of start-up, paid once per
new blob. ``isolate=False`` runs in-process (tests, batch tools): same verdicts, but
only the pixel, page, size and (checked between pages/frames) time limits apply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import math
import os
import re
import signal
import stat
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

__all__ = [
    "ChildRun",
    "DeepCheck",
    "DeepLimits",
    "DeepVerdict",
    "Kind",
    "deep_check",
    "deep_kind",
    "run_bounded",
]

Kind = Literal["pdf", "image", "svg"]
DeepVerdict = Literal["ok", "corrupt", "skipped"]

MiB = 1024 * 1024
SVG_NS = "http://www.w3.org/2000/svg"
_REASON_MAX = 200


@dataclass(frozen=True, slots=True)
class DeepLimits:
    """What one deep check may cost; a file that needs more is ``skipped``, not corrupt."""

    #: Pixels actually decoded (a JPEG decodes at 1/2, 1/4 or 1/8 when that fits).
    #: Pillow holds 4 bytes a pixel for RGB(A): 20 M px is 80 MB, which with the
    #: interpreter and the libraries (~55 MB of address space) fits ``max_memory``.
    #: A 20 MP PNG or a 48 MP camera JPEG (at 1/4) is checked.
    max_pixels: int = 20_000_000
    #: PDF pages walked, or animation frames decoded. A deck past it is ``skipped``
    #: with its declared page count recorded: the part not walked is not vouched for.
    max_pages: int = 2_000
    #: Wall clock for one file, the child's start-up included (~0.2-0.4 s).
    seconds: float = 20.0
    #: Files larger are not opened (repairing a PDF reads it whole).
    max_bytes: int = 256 * MiB
    #: Address space of the child process (``RLIMIT_AS``, Linux; RSS stays below it).
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
    #: The child's peak resident set size in bytes (0 when it did not report).
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
    """The check itself, in this process (the child runs exactly this)."""
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


# -- The bounded child ------------------------------------------------------------------


def run_bounded(
    func: Callable[..., dict[str, Any]],
    path: Path,
    kind: Kind,
    limits: DeepLimits,
    **kwargs: Any,
) -> ChildRun:
    """Calls module-level ``func(path, kind, limits, **kwargs)`` in a child interpreter
    under ``limits.max_memory`` and ``limits.seconds``; JSON in, JSON out."""
    request = json.dumps(
        {
            "func": f"{func.__module__}:{func.__qualname__}",
            "path": os.fspath(path),
            "kind": kind,
            "limits": dataclasses.asdict(limits),
            "kwargs": kwargs,
        }
    )
    # The child must import this very code, also from a checkout that is not installed.
    package_root = str(Path(__file__).resolve().parents[len(__name__.split(".")) - 1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-c", f"import {__name__} as m; m._child_main()"]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            command,
            input=request.encode(),
            capture_output=True,
            timeout=limits.seconds,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ChildRun(None, f"over the time budget of {limits.seconds:g} s", 0, limits.seconds)
    except OSError as exc:
        return ChildRun(None, one_line(f"deep check did not start: {exc}"), 0, 0.0)
    elapsed = time.monotonic() - started
    if proc.returncode < 0:
        sig = -proc.returncode
        if sig == signal.SIGXCPU:
            why = f"over the time budget of {limits.seconds:g} s (CPU)"
        else:
            why = f"the decoder died ({signal.Signals(sig).name})"
        return ChildRun(None, why, 0, elapsed)
    try:
        reply = json.loads(proc.stdout)
    except ValueError:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        return ChildRun(None, one_line(f"deep check did not run: {last}"), 0, elapsed)
    if "error" in reply:
        return ChildRun(None, one_line(str(reply["error"])), 0, elapsed)
    return ChildRun(reply["result"], "", int(reply.get("peak_rss", 0)), elapsed)


def _limit_self(limits: DeepLimits) -> None:
    """Lowers this process's own limits (never raises: on macOS RLIMIT_AS is advisory)."""
    try:
        import resource
    except ImportError:  # not POSIX: the wall-clock kill still applies
        return
    wanted = {
        resource.RLIMIT_AS: limits.max_memory,
        resource.RLIMIT_CPU: math.ceil(limits.seconds) + 1,
    }
    for which, value in wanted.items():
        with contextlib.suppress(ValueError, OSError):
            _soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, hard))


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


def _child_main() -> None:
    """The child's side of ``run_bounded``: one request on stdin, one reply on stdout."""
    request = json.loads(sys.stdin.buffer.read())
    limits = DeepLimits(**request["limits"])
    _limit_self(limits)
    try:
        module, _, name = request["func"].partition(":")
        func = getattr(importlib.import_module(module), name)
        result = func(Path(request["path"]), request["kind"], limits, **request["kwargs"])
        reply: dict[str, Any] = {"result": result, "peak_rss": _peak_rss()}
    except MemoryError:
        reply = {"error": f"needs more than {limits.max_memory // MiB} MB"}
    except Exception as exc:
        reply = {"error": f"deep check failed: {type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(reply))
    sys.stdout.flush()
