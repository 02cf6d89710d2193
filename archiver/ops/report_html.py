"""The HTML report: one self-contained static page, no server and no external assets.

Owns the page's markup, style and the small script behind its filters by state
and host (also set from the address: ``report.html#state=dead&host=example.org``),
the legend of the states and the next step shown for each broken link.

Archived images show as thumbnails that ``verify`` or the crawl made beside the
store (``archiver.thumbs``): at most ``EMBED_MAX`` are embedded, broken links
first, so 400 URLs make a page of a few hundred KB, not the 37 MB that embedding
the images themselves made. Every other copy is a plain link to where it lies in
the store. Reads the store only; never writes it, never decodes an image.
"""

from __future__ import annotations

import base64
import io
import os
import shlex
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from html import escape
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from archiver.clock import iso, parse_iso
from archiver.db.sqlite import STATES
from archiver.ops.report_rows import NO_POST, ListRows, media_label
from archiver.redact import clean_text, shown_url
from archiver.store.base import BlobStore as Store
from archiver.text import plural
from archiver.thumbs import find_thumbnail

if TYPE_CHECKING:  # the row types, named in annotations only
    from archiver.ops.report_rows import Confirmation, PostUse, ReportRow, Rows

__all__ = ["EMBED_MAX", "LEGEND", "next_step", "render_html", "write_html"]

_T = TypeVar("_T")

#: Thumbnails embedded in one page, broken links first; the rest are linked. A
#: thumbnail is at most 6 KB (8 KB in base64), so they add at most ~2.4 MB.
EMBED_MAX = 300

#: Link texts longer than this are cut (an alt text can be a paragraph).
TEXT_MAX = 160

#: What each state means, in the words of README's States section.
LEGEND = {
    "ok": "the last check got the PDF or image the link promises",
    "failing": "failed, but not yet confirmed dead: it may come back",
    "dead": "confirmed gone: failed on enough runs in a row, far enough apart",
    "invalid": "answers, but not with the file promised (an HTML page, a file that does not open)",
    "error": "a temporary failure (timeout, 5xx, refused): checked again next run, never confirms",
    "blocked": "never asked: the address guard or a rule refused it",
    "pending": "found in a post, not checked yet",
}

#: States that call for someone to act (or wait): the broken links, embedded first.
BROKEN = frozenset({"failing", "dead", "invalid"})

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;background:#fff}
h1{font-size:1.5em;margin:0 0 .2em}
h2{font-size:1.1em;margin:1.5em 0 .3em;font-family:ui-monospace,monospace;word-break:break-all}
.meta{color:#666;margin:0 0 .8em}
.summary{display:flex;gap:.6em;flex-wrap:wrap;margin:.5em 0 1em;padding:0;list-style:none}
.summary li{padding:.3em .7em;border-radius:4px;background:#eee}
.legend{margin:.5em 0 1em}
.legend summary{cursor:pointer;color:#444}
.legend dl{display:grid;grid-template-columns:max-content 1fr;gap:.3em .8em;margin:.6em 0}
.legend dd{margin:0}
.filters{margin:1em 0;display:flex;gap:.6em 1.5em;align-items:center;flex-wrap:wrap}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3em .6em;vertical-align:top}
thead tr,tr.link{border-bottom:1px solid #ddd}
td.url{word-break:break-all;font-family:ui-monospace,monospace;font-size:.9em}
td.url .text{font-family:system-ui,sans-serif;font-size:1.1em;word-break:normal;color:#111}
td.next{max-width:24em}
td.next code{overflow-wrap:anywhere}
.state{font-weight:600;padding:.1em .5em;border-radius:3px;color:#fff;white-space:nowrap}
.s-ok{background:#2e7d32}.s-failing{background:#f9a825;color:#222}.s-dead{background:#c62828}
.s-invalid{background:#8e24aa}.s-error{background:#ef6c00}.s-blocked{background:#00838f}.s-pending{background:#9e9e9e}
img.thumb{max-width:96px;max-height:72px;border:1px solid #ccc;display:block;margin-bottom:.2em}
.none{color:#999}
[hidden]{display:none!important}
@media (max-width:700px){
body{margin:1em}
table,tbody,tr,td{display:block}
thead{display:none}
tr.link{border-bottom:1px solid #ccc;padding:.5em 0}
td{border:0;padding:.15em 0}
td.next{max-width:none}
td:empty{display:none}
td:nth-child(1)::before{content:"line "}
td:nth-child(4)::before{content:"status: "}
td:nth-child(5)::before{content:"failing since "}
td:nth-child(6)::before{content:"last worked "}
td:nth-child(8)::before{content:"next step: "}
td::before{color:#666}
}
"""

_JS = """
(function(){
  var st=document.getElementById('f-state'), ho=document.getElementById('f-host');
  function apply(){
    var n=0;
    document.querySelectorAll('tr.link').forEach(function(tr){
      var show=(!st.value||tr.dataset.state===st.value)&&(!ho.value||tr.dataset.host===ho.value);
      tr.hidden=!show; if(show) n++;
    });
    document.querySelectorAll('section.post').forEach(function(s){
      s.hidden=!s.querySelector('tr.link:not([hidden])');
    });
    document.getElementById('visible-count').textContent=n;
    var h=[];
    if(st.value) h.push('state='+encodeURIComponent(st.value));
    if(ho.value) h.push('host='+encodeURIComponent(ho.value));
    history.replaceState(null,'',h.length?'#'+h.join('&'):location.pathname+location.search);
  }
  function fromHash(){
    location.hash.replace(/^#/,'').split('&').forEach(function(kv){
      var p=kv.split('='), v=decodeURIComponent(p[1]||'');
      if(p[0]==='state') st.value=v; if(p[0]==='host') ho.value=v;
    });
  }
  st.addEventListener('change',apply); ho.addEventListener('change',apply);
  fromHash(); apply();
})();
"""


def _href(path: Path | str, output: Path | None) -> str:
    """A link to a local file: relative to the page when we know where it goes."""
    if isinstance(path, str):
        return path  # an object's URL
    if output is not None:
        rel = os.path.relpath(path.resolve(), output.resolve().parent)
        return Path(rel).as_posix()
    return path.resolve().as_uri()


def _is_raster(row: ReportRow) -> bool:
    """Only raster images have thumbnails (an SVG or a PDF never gets one)."""
    ctype = (row.content_type or "").split(";")[0].strip().lower()
    return ctype.startswith("image/") and ctype != "image/svg+xml"


class _Thumbs:
    """Embeds at most ``limit`` thumbnails, broken links first, chosen as the rows pass.

    Fed every row in report order (``add``), it keeps at most ``limit`` uses of broken
    links and ``limit`` of others, so a million rows cost the memory of a few hundred;
    ``done`` then tops the broken ones up with the others, as a sort would have.
    """

    #: Blobs remembered as having no thumbnail, so a shared one is looked for once.
    MISSES = 4096

    def __init__(self, store: Store | None, limit: int) -> None:
        self.store = store
        self.limit = limit
        self.chosen: dict[tuple[str, int, str], str] = {}
        self._others: dict[tuple[str, int, str], str] = {}
        self._uris: dict[str, str] = {}
        self._misses: set[str] = set()

    def add(self, r: ReportRow) -> None:
        if self.store is None or self.limit <= 0 or not r.copy_sha256 or not _is_raster(r):
            return
        into = self.chosen if r.state in BROKEN else self._others
        if len(into) >= self.limit:
            return
        uri = self._uri(self.store, r.copy_sha256)
        if uri is None:
            return
        for p in r.posts or (NO_POST,):
            if len(into) >= self.limit:
                return
            into[(p.path, p.line, r.url)] = uri

    def _uri(self, store: Store, sha: str) -> str | None:
        uri = self._uris.get(sha)
        if uri is None and sha not in self._misses:
            uri = _data_uri(store, sha)
            if uri is not None:
                self._uris[sha] = uri  # at most 2 x limit of them: each adds a use
            elif len(self._misses) < self.MISSES:
                self._misses.add(sha)
        return uri

    def done(self) -> None:
        for key, uri in self._others.items():
            if len(self.chosen) >= self.limit:
                break
            self.chosen[key] = uri
        self._others.clear()
        self._uris.clear()

    def get(self, use: PostUse, row: ReportRow) -> str | None:
        if not self.chosen:
            return None
        return self.chosen.get((use.path, use.line, row.url))


def _data_uri(store: Store, sha: str) -> str | None:
    """The thumbnail as a data URI, or None when none was made (the report never makes one)."""
    try:
        path = find_thumbnail(store.thumbs_dir, sha)
        if path is None:
            return None
        data = path.read_bytes()
    except (OSError, ValueError):
        return None
    mime = "image/webp" if path.suffix == ".webp" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _copy_cell(row: ReportRow, thumb: str | None, store: Store | None, output: Path | None) -> str:
    sha = row.copy_sha256
    if not sha or store is None:
        label = "damaged copy" if row.versions else "no copy"
        return f'<span class="none">{label}</span>'
    href = escape(_href(store.link_target(sha), output))
    img = (
        f'<a href="{href}"><img class="thumb" alt="archived image" src="{thumb}"></a>'
        if thumb
        else ""
    )
    media = media_label(row)  # what the deep check learnt: pages or dimensions
    about = f' <small class="media">{escape(media)}</small>' if media else ""
    return f'{img}<a class="copy" href="{href}">archived copy</a> <code>{sha[:12]}</code>{about}'


def _duration(seconds: float) -> str:
    """``1 h``, ``30 min``, ``2 d``: a confirm_after as a reader says it."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def next_step(row: ReportRow, confirm: Confirmation | None = None) -> str:
    """What to do about a link in this state, as HTML (escaped); "" for one that works."""
    if row.state == "failing":
        if confirm is None:
            return (
                "Wait for confirmation: more failing runs (<code>confirm_runs</code>, at least"
                " <code>confirm_after</code> apart) confirm it dead; it may come back."
            )
        more = max(confirm.runs - row.confirm_count, 1)
        last = parse_iso(row.confirm_last)
        when = ""
        if last is not None and confirm.after > 0:
            when = f", the next from {escape(iso(last + timedelta(seconds=confirm.after)))}"
        return (
            f"Wait for confirmation: {plural(more, 'more failing run')}"
            f" {'confirms' if more == 1 else 'confirm'} it dead"
            f" (runs count {_duration(confirm.after)} apart{when}); it may come back."
        )
    if row.state in ("dead", "invalid"):
        if row.restorable:
            url = escape(shlex.quote(shown_url(row.url)))
            return (
                f"Restore the copy: <code>archiver restore {url} -o FILE</code>, or"
                " point the post at a mirror of it:"
                " <code>archiver restore --mirror DIR --rewrite --mirror-url URL</code>."
            )
        held = "Only a damaged copy is held" if row.versions else "No copy is held"
        return f"{held}. The web archive may have one (a later archiver will look it up)."
    if row.state == "blocked":
        return "Refused, never asked: to fetch it anyway, use <code>--allow-address</code>."
    if row.state == "error":
        return "Nothing yet: the next run checks it again."
    if row.state == "pending":
        return "The next crawl checks it."
    return ""


def _text(use: PostUse) -> str:
    if not use.text:
        return ""
    text = clean_text(use.text).strip()
    if len(text) > TEXT_MAX:
        text = text[: TEXT_MAX - 1] + "…"
    return f'<div class="text">{escape(text)}</div>' if text else ""


def _row(
    use: PostUse,
    row: ReportRow,
    thumb: str | None,
    store: Store | None,
    output: Path | None,
    confirm: Confirmation | None,
) -> str:
    # Server-supplied text loses its control characters (a bidi override would reorder
    # the page), and a URL its password: the page is made to be shared.
    status = _status(row.error, row.http_status)
    url = escape(shown_url(row.url))
    state = escape(row.state)
    host = _host(row.host)
    remapped = row.remapped_url
    remap = (
        f'<br><small>fetched as <a href="{escape(shown_url(remapped))}">'
        f"{escape(shown_url(remapped))}</a></small>"
        if remapped
        else ""
    )
    step = next_step(row, confirm) if row.state != "ok" else ""
    next_cell = f'<td class="next">{step}</td>' if step else ""
    # A link that works has no next step, and no cell for one (100,000 rows: 2 MB less).
    return (
        f'<tr class="link" data-state="{state}" data-host="{host}">'
        f"<td>{use.line}</td>"
        f'<td class="url">{_text(use)}<a href="{url}">{url}</a>{remap}</td>'
        f'<td><span class="state s-{state}">{state}</span></td>'
        f"<td>{status}</td>"
        f"<td>{escape(row.failing_since or '')}</td>"
        f"<td>{escape(row.last_ok or 'never')}</td>"
        f"<td>{_copy_cell(row, thumb, store, output)}</td>"
        f"{next_cell}</tr>"
    )


@lru_cache(maxsize=4096)
def _status(error: str | None, http_status: int | None) -> str:
    """The error (server-supplied: cleaned, escaped) else the status; many rows share one."""
    return escape(clean_text(str(error or http_status or "")))


@lru_cache(maxsize=4096)
def _host(host: str | None) -> str:
    return escape(clean_text(host or ""))


def _options(name: str, values: list[str]) -> str:
    opts = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return f'<option value="">all {name}s</option>{opts}'


def _legend() -> str:
    items = "".join(
        f'<dt><span class="state s-{s}">{s}</span></dt><dd>{escape(LEGEND[s])}</dd>' for s in STATES
    )
    return (
        '<details class="legend" open><summary>What the states mean</summary>'
        f"<dl>{items}</dl></details>"
    )


def render_html(
    rows: Sequence[ReportRow] | Rows,
    *,
    store: Store | None = None,
    output: Path | None = None,
    confirm: Confirmation | None = None,
    generated: str | None = None,
    embed: int = EMBED_MAX,
) -> str:
    """The page for these report rows, as text; see ``write_html``."""
    buf = io.StringIO()
    source: Rows = ListRows(rows) if isinstance(rows, list | tuple) else rows  # type: ignore[assignment]
    write_html(
        source, buf, store=store, output=output, confirm=confirm, generated=generated, embed=embed
    )
    return buf.getvalue()


_SECTION_HEAD = (
    "<table><thead><tr><th>line</th><th>link</th><th>state</th><th>status</th>"
    "<th>failing since</th><th>last worked</th><th>copy</th><th>next step</th>"
    "</tr></thead><tbody>"
)


def write_html(
    rows: Rows,
    out: TextIO,
    *,
    store: Store | None = None,
    output: Path | None = None,
    confirm: Confirmation | None = None,
    generated: str | None = None,
    embed: int = EMBED_MAX,
) -> int:
    """Writes the page for these report rows; returns how many URLs it shows.

    ``output`` is where it will be saved (for links); ``confirm`` (the config's rule)
    lets a failing link say how many runs are left; ``generated`` is the time shown
    (default: now); ``embed`` caps embedded thumbnails. Two passes over the rows: the
    first for the totals, the hosts and the thumbnails the head announces, the second,
    post by post, for the sections.
    """
    generated = generated or iso(datetime.now(UTC))
    counts: Counter[str] = Counter()
    restorable = shown = 0
    hosts: set[str] = set()
    thumbs = _Thumbs(store, embed)
    for r in rows.by_url():
        counts[r.state] += 1
        restorable += r.restorable
        shown += len(r.posts) or 1
        if r.host:
            hosts.add(clean_text(r.host))
        thumbs.add(r)
    thumbs.done()
    total = sum(counts.values())
    summary = "".join(
        f'<li class="count" data-state="{s}"><span class="state s-{s}">{s}</span> {counts[s]}</li>'
        for s in STATES
        if counts[s]
    )
    summary += f'<li class="count" data-state="restorable">restorable {restorable}</li>'
    states = [s for s in STATES if counts[s]]
    embedded = len(thumbs.chosen)
    out.write(
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<title>archiver: link report</title>"
        f"<style>{_CSS}</style></head><body>\n"
        f"<h1>Link report: {total} links</h1>\n"
        f'<p class="meta">Generated <time datetime="{escape(generated)}">{escape(generated)}'
        f"</time> by archiver; {plural(embedded, 'thumbnail')} shown"
        f" (at most {embed}, broken links first).</p>\n"
        f'<ul class="summary">{summary}</ul>\n'
        f"{_legend()}\n"
        '<div class="filters">'
        f'<label>State <select id="f-state">{_options("state", states)}</select></label>'
        f'<label>Host <select id="f-host">{_options("host", sorted(hosts - {""}))}</select></label>'
        f'<span><span id="visible-count">{shown}</span>'
        " rows shown</span></div>\n"
        "<main>\n"
    )
    path: str | None = None
    for batch in _batches(rows.by_post()):
        parts = []
        for p, r in batch:
            if p.path != path:
                name = escape(clean_text(p.path))
                parts.append(
                    ("</tbody></table></section>\n" if path is not None else "")
                    + f'<section class="post" data-post="{name}"><h2>{name}</h2>{_SECTION_HEAD}'
                )
                path = p.path
            parts.append(_row(p, r, thumbs.get(p, r), store, output, confirm))
        out.write("".join(parts))
    end = '<p class="empty">No links match.</p>' if path is None else "</tbody></table></section>"
    out.write(f"{end}\n</main>\n<script>{_JS}</script>\n</body></html>\n")
    return total


def _batches(items: Iterable[_T], size: int = 512) -> Iterator[list[_T]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
