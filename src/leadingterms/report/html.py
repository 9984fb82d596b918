"""Self-contained HTML building blocks: one page, inline CSS, images as base64 data URIs.

Nothing here refers to anything outside the page (no external stylesheet, script, font or
image), so a report opens offline and can be mailed as one file.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0; color: #1d2329;
       background: #fafafa; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 1.2em 2em 4em; background: #fff; }
h1 { font-size: 1.7em; margin: 0.4em 0 0.2em; }
h2 { font-size: 1.3em; border-bottom: 2px solid #d0d7de; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.4em 0 0.4em; }
p.lead { color: #57606a; margin-top: 0; }
nav { font-size: 0.92em; background: #f3f5f7; padding: 0.5em 0.8em; border-radius: 6px; }
nav a { margin-right: 1em; color: #0b5cad; text-decoration: none; white-space: nowrap; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.86em; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.55em; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
th.group { text-align: center; border-bottom: 2px solid #d0d7de; }
td.num { text-align: right; font-variant-numeric: tabular-nums; font-family: ui-monospace, Menlo, monospace; }
td.hit { background: #dff3e4; }
td.miss { background: #fbe9e7; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.88em; }
pre { background: #f6f8fa; padding: 0.7em; overflow-x: auto; border-radius: 6px; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { font-size: 0.86em; color: #57606a; margin-top: 0.3em; }
.note { font-size: 0.88em; color: #57606a; }
.warn { background: #fff8e1; border-left: 4px solid #e6a700; padding: 0.4em 0.8em; }
.tokens { font-family: ui-monospace, Menlo, monospace; font-size: 0.95em; }
"""


def esc(x: Any) -> str:
    """HTML-escape ``str(x)``."""
    return html.escape(str(x), quote=True)


def fmt(x: Any, digits: int = 4) -> str:
    """Numbers compactly (ints as is, floats to ``digits`` significant digits); None as an en dash."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x != x:
            return "nan"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}"
    return str(x)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[bool] | None = None,
          cls: Sequence[Sequence[str]] | None = None, groups: Sequence[tuple[str, int]] | None = None) -> str:
    """A <table>; cells are escaped (numbers formatted by :func:`fmt`). ``cls[i][j]`` adds a class.
    ``groups``: a header row above ``header``, as (label, number of columns it spans)."""
    top = ("<tr>" + "".join(f'<th colspan="{n}" class="group">{esc(g)}</th>' if n > 1 else f"<th>{esc(g)}</th>"
                            for g, n in groups) + "</tr>") if groups else ""
    out = [f"<table><thead>{top}<tr>", *(f"<th>{esc(h)}</th>" for h in header), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        out.append("<tr>")
        for j, cell in enumerate(row):
            classes = []
            if (numeric is not None and j < len(numeric) and numeric[j]) or (
                    numeric is None and isinstance(cell, (int, float)) and not isinstance(cell, bool)):
                classes.append("num")
            if cls is not None and cls[i][j]:
                classes.append(cls[i][j])
            attr = f' class="{" ".join(classes)}"' if classes else ""
            text = fmt(cell) if isinstance(cell, (int, float)) or cell is None else esc(cell)
            out.append(f"<td{attr}>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def html_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A <table> whose cells are already HTML (the header is escaped)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def tokens_cell(top: Sequence[tuple[str, float]], common: set[str] | None = None) -> str:
    """Token strings of a readout, separated by middots; those in ``common`` in bold."""
    parts = [f"<b>{esc(t)}</b>" if common and t in common else esc(t) for t, _ in top]
    return '<span class="tokens">' + " · ".join(parts) + "</span>"


def kv_table(items: Iterable[tuple[str, Any]]) -> str:
    """Two-column key/value table."""
    return table(("setting", "value"), [(k, v if isinstance(v, (int, float)) or v is None else str(v))
                                        for k, v in items], numeric=(False, False))


def image(path: str | Path, caption: str = "", alt: str = "") -> str:
    """A <figure> with the PNG at ``path`` inlined as a base64 data URI."""
    p = Path(path)
    data = base64.b64encode(p.read_bytes()).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return (f'<figure><img alt="{esc(alt or p.stem)}" src="data:image/png;base64,{data}"/>{cap}</figure>')


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document with a table of contents; inline CSS only. ``sections``: (id, title, body HTML)."""
    nav = "".join(f'<a href="#{esc(sid)}">{esc(t)}</a>' for sid, t, _ in sections)
    body = "".join(section(sid, t, b) for sid, t, b in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{esc(title)}</h1><p class=\"lead\">{esc(subtitle)}</p><nav>{nav}</nav>{body}"
        "</main></body></html>\n"
    )
