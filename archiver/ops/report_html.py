"""The HTML report: one self-contained static page, no server and no external assets.

Owns the page's markup, style and the small script behind its filters by state
and host (also set from the address: ``report.html#state=dead&host=example.org``).
Small archived images are embedded as thumbnails; every archived copy is linked
where it lies in the store. Reads the store only; never writes it.
"""

from __future__ import annotations

import base64
import os
from collections import Counter
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from archiver.db.sqlite import STATES
from archiver.redact import clean_text, shown_url
from archiver.store.directory import Store

if TYPE_CHECKING:
    from archiver.ops.report import ReportRow

__all__ = ["THUMB_MAX", "render_html"]

#: Images up to this size are embedded in the page; larger ones are linked from the store.
THUMB_MAX = 256 * 1024

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;background:#fff}
h1{font-size:1.5em;margin:0 0 .5em}
h2{font-size:1.1em;margin:1.5em 0 .3em;font-family:ui-monospace,monospace}
.summary{display:flex;gap:.6em;flex-wrap:wrap;margin:.5em 0 1em;padding:0;list-style:none}
.summary li{padding:.3em .7em;border-radius:4px;background:#eee}
.filters{margin:1em 0;display:flex;gap:1.5em;align-items:center}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;vertical-align:top}
td.url{word-break:break-all;font-family:ui-monospace,monospace;font-size:.9em}
.state{font-weight:600;padding:.1em .5em;border-radius:3px;color:#fff}
.s-ok{background:#2e7d32}.s-failing{background:#f9a825;color:#222}.s-dead{background:#c62828}
.s-invalid{background:#8e24aa}.s-error{background:#ef6c00}.s-blocked{background:#00838f}.s-pending{background:#9e9e9e}
img.thumb{max-width:96px;max-height:72px;border:1px solid #ccc;display:block;margin-bottom:.2em}
.none{color:#999}
[hidden]{display:none!important}
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


def _href(path: Path, output: Path | None) -> str:
    """A link to a local file: relative to the page when we know where it goes."""
    if output is not None:
        rel = os.path.relpath(path.resolve(), output.resolve().parent)
        return Path(rel).as_posix()
    return path.resolve().as_uri()


def _copy_cell(row: ReportRow, store: Store | None, output: Path | None) -> str:
    sha = row.copy_sha256
    if not sha or store is None:
        label = "damaged copy" if row.versions else "no copy"
        return f'<span class="none">{label}</span>'
    blob = store.path_for(sha)
    href = escape(_href(blob, output))
    thumb = ""
    ctype = (row.content_type or "").split(";")[0].strip().lower()
    if ctype.startswith("image/"):
        size = row.size or 0
        if 0 < size <= THUMB_MAX and row.sha256 == sha:
            data = base64.b64encode(blob.read_bytes()).decode("ascii")
            src = f"data:{escape(ctype)};base64,{data}"
        else:
            src = href
        thumb = f'<a href="{href}"><img class="thumb" alt="archived image" src="{src}"></a>'
    return f'{thumb}<a class="copy" href="{href}">archived copy</a> <code>{sha[:12]}</code>'


def _row(line: int, row: ReportRow, store: Store | None, output: Path | None) -> str:
    # Server-supplied text loses its control characters (a bidi override would reorder
    # the page), and a URL its password: the page is made to be shared.
    status = escape(clean_text(str(row.error or row.http_status or "")))
    url = escape(shown_url(row.url))
    state = escape(row.state)
    host = escape(clean_text(row.host or ""))
    remapped = row.remapped_url
    remap = (
        f'<br><small>fetched as <a href="{escape(shown_url(remapped))}">'
        f"{escape(shown_url(remapped))}</a></small>"
        if remapped
        else ""
    )
    return (
        f'<tr class="link" data-state="{state}" data-host="{host}">'
        f"<td>{line}</td>"
        f'<td class="url"><a href="{url}">{url}</a>{remap}</td>'
        f'<td><span class="state s-{state}">{state}</span></td>'
        f"<td>{status}</td>"
        f"<td>{escape(row.failing_since or '')}</td>"
        f"<td>{escape(row.last_ok or 'never')}</td>"
        f"<td>{_copy_cell(row, store, output)}</td></tr>"
    )


def _options(name: str, values: list[str]) -> str:
    opts = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return f'<option value="">all {name}s</option>{opts}'


def render_html(
    rows: list[ReportRow], *, store: Store | None = None, output: Path | None = None
) -> str:
    """The page for these report rows; ``output`` is where it will be saved (for links)."""
    counts = Counter(r.state for r in rows)
    restorable = sum(1 for r in rows if r.restorable)
    summary = "".join(
        f'<li class="count" data-state="{s}"><span class="state s-{s}">{s}</span> {counts[s]}</li>'
        for s in STATES
        if counts[s]
    )
    summary += f'<li class="count" data-state="restorable">restorable {restorable}</li>'
    from archiver.ops.report import uses

    groups = uses(rows)
    sections = []
    for path in sorted(groups):
        body = "".join(_row(p.line, r, store, output) for p, r in groups[path])
        sections.append(
            f'<section class="post" data-post="{escape(clean_text(path))}">'
            f"<h2>{escape(clean_text(path))}</h2>"
            "<table><thead><tr><th>line</th><th>URL</th><th>state</th><th>status</th>"
            "<th>failing since</th><th>last worked</th><th>copy</th></tr></thead>"
            f"<tbody>{body}</tbody></table></section>"
        )
    states = [s for s in STATES if counts[s]]
    hosts = sorted({clean_text(r.host or "") for r in rows} - {""})
    main = "\n".join(sections) or '<p class="empty">No links match.</p>'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<title>archiver: link report</title>"
        f"<style>{_CSS}</style></head><body>\n"
        f"<h1>Link report: {len(rows)} links</h1>\n"
        f'<ul class="summary">{summary}</ul>\n'
        '<div class="filters">'
        f'<label>State <select id="f-state">{_options("state", states)}</select></label>'
        f'<label>Host <select id="f-host">{_options("host", hosts)}</select></label>'
        f'<span><span id="visible-count">{sum(len(g) for g in groups.values())}</span>'
        " rows shown</span></div>\n"
        f"<main>\n{main}\n</main>\n"
        f"<script>{_JS}</script>\n"
        "</body></html>\n"
    )
