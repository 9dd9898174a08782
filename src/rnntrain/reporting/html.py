"""Self-contained HTML pages: a run's ``report.html`` and ``rnntrain compare``'s report.

A page carries everything it shows: images as ``data:`` URIs, its style and a few lines of
script inline, so it opens from a file, an e-mail or an artifact store with no network and no
files beside it. Written by hand (string templates, ``html.escape``) rather than with a
template engine: the pages are a handful of tables and images, and a dependency would cost
every user an install for that.

The script does two things: sorts a table by a clicked header, and checks on ``load`` that
every image decoded (``data-images="ok"`` on ``<body>``, else a console error), which the
browser test reads.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th.sortable { cursor: pointer; background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.3em 0; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.muted { color: #777; }
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.classList.add("sortable");
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var up = th.dataset.order !== "up"; th.dataset.order = up ? "up" : "down";
      var key = function (r) { var c = r.cells[col]; var v = c.dataset.v;
        return v === undefined ? c.textContent : parseFloat(v); };
      rows.sort(function (a, b) { var x = key(a), y = key(b);
        var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
        return up ? c : -c; });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
window.addEventListener("load", function () {
  var bad = Array.from(document.images).filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  if (bad.length) { console.error(bad.length + " image(s) did not decode: " + bad.map(function (i) { return i.alt; }).join(", ")); }
  document.body.dataset.images = bad.length ? "broken" : "ok";
});
"""


class Link(str):
    """A table cell that links to ``href`` (a relative path: a page beside it, never fetched)."""

    def __new__(cls, text: str, href: str) -> "Link":
        out = super().__new__(cls, text)
        out.href = href
        return out


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any) -> str:
    """A number as a table shows it: 4 significant digits, thousands as 12.3k / 4.5M."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "" if value is None else str(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    a = abs(value)
    if isinstance(value, int) and a < 100_000:
        return str(value)
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= scale * 10:
            return f"{value / scale:.4g}{suffix}"
    return f"{value:.4g}"


def image(path: Path, alt: str = "") -> str:
    """``<img>`` with the PNG at ``path`` inside it."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{esc(alt or Path(path).name)}" src="data:image/png;base64,{data}">'


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, sortable: bool = True) -> str:
    """An HTML table; numeric cells are right-aligned and sort by their value."""
    out = [f'<table class="{"sortable" if sortable else "plain"}"><thead><tr>']
    out += [f"<th>{esc(h)}</th>" for h in header]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for v in row:
            if isinstance(v, Link):
                out.append(f'<td><a href="{esc(v.href)}">{esc(v)}</a></td>')
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and v == v:
                out.append(f'<td class="n" data-v="{v!r}">{esc(number(v))}</td>')
            else:
                out.append(f"<td>{esc('' if v is None else number(v))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The same table as GitHub-flavoured Markdown."""
    cell = lambda v: ("" if v is None else number(v)).replace("|", "\\|")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def page(title: str, sections: List[str], subtitle: Optional[str] = None) -> str:
    """A whole HTML document of ``sections`` (HTML fragments)."""
    sub = f'<p class="muted">{esc(subtitle)}</p>' if subtitle else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>"
            f"<h1>{esc(title)}</h1>{sub}\n" + "\n".join(sections) + f"\n<script>{SCRIPT}</script></body></html>\n")
