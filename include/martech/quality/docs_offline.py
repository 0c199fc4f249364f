"""Great Expectations Data Docs that load nothing from elsewhere.

GX 1.x writes pages whose ``<head>`` loads Bootstrap 4, bootstrap-table, jQuery, popper, bootstrap-datepicker,
Font Awesome and vega from CDNs, whose logo comes from an S3 bucket, and whose inline scripts all call jQuery;
the index page's two tables are not in the HTML at all but in a ``bootstrapTable({...})`` call. Without the
internet such a site shows unstyled, with an empty index and console errors.

:func:`make_offline` rewrites the built pages in place (the quality runner calls it right after GX builds):

- every ``<link>``, ``<script>`` and ``<img>`` that points off the machine is dropped; the logo points at the
  copy GX itself ships in ``static/images/``; remote ``url(...)`` in inline styles become ``none``;
- the index tables' rows (Python literals GX writes into the script) become static HTML rows, sorted as GX
  asked, each linking to its page;
- the inline scripts written for jQuery and their ``onclick`` handlers are removed, and so is GX's newsletter
  footer;
- every page links the project's own ``docs.css`` (the part of Bootstrap 4's layout these pages use, and
  glyphs for the Font Awesome icons) and ``docs.js`` (tabs, "Show more info" collapses, the "Failed Only"
  filter, sorting, searching and filtering the index tables), copied to ``static/martech/``.

A rewritten page carries :data:`MARKER`, so a later build rewrites only the pages GX wrote again.
:func:`remote_references` lists what a page would still load from elsewhere (the tests' check).
"""

from __future__ import annotations

import ast
import html
import logging
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["ASSETS", "MARKER", "asset", "make_offline", "remote_references", "rewrite_page"]

log = logging.getLogger(__name__)

MARKER = '<meta name="martech-offline" content="1">'
_STATIC = Path(__file__).resolve().parent / "docs_static"
ASSETS = ("docs.css", "docs.js")
_ASSET_DIR = "static/martech/"  # inside the site, next to GX's own static/images, static/fonts

_REMOTE = r"""(?:https?:)?//"""
# Elements whose URL attribute makes the browser fetch something (an <a href> is only followed when clicked).
_LOADING_TAGS = "script|link|img|iframe|frame|embed|object|source|track|audio|video|input|image|use"
_LOADING_ATTRS = "src|href|srcset|data|poster|xlink:href"
_LOADING_REF = re.compile(
    rf"""<(?:{_LOADING_TAGS})\b[^>]*?\s(?:{_LOADING_ATTRS})\s*=\s*["']?\s*({_REMOTE}[^"'\s>]*)""", re.I)
_CSS_REF = re.compile(rf"""(?:url\(\s*["']?\s*|@import\s+["'])({_REMOTE}[^"')\s]*)""", re.I)

_REMOTE_LINK = re.compile(rf"""<link\b[^>]*?\shref\s*=\s*["']?\s*{_REMOTE}[^>]*>\s*""", re.I)
_REMOTE_SCRIPT = re.compile(rf"""<script\b[^>]*?\ssrc\s*=\s*["']?\s*{_REMOTE}[^>]*>\s*</script>\s*""", re.I)
_IMG = re.compile(r"<img\b[^>]*>", re.I)
# GX counts the favicon's "../" one short on validation pages; every page gets it from the site's root.
_FAVICON = re.compile(r"""(<link\b[^>]*\shref\s*=\s*")[^"]*?static/images/(favicon\.ico")""", re.I)
_IMG_SRC = re.compile(rf"""\ssrc\s*=\s*(["'])\s*({_REMOTE}[^"']*)\1""", re.I)
_ALT = re.compile(r"""\salt\s*=\s*(["'])(.*?)\1""", re.I | re.S)
_STYLE_BLOCK = re.compile(r"(<style\b[^>]*>)(.*?)(</style>)", re.I | re.S)
_CSS_REMOTE_URL = re.compile(rf"""url\(\s*["']?\s*{_REMOTE}[^)]*\)""", re.I)
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\ssrc\s*=)[^>]*>.*?</script>\s*", re.I | re.S)
_TABLE_SCRIPT = re.compile(r"""<script>\s*\$\(\s*'#([^']+)'\s*\)\.bootstrapTable\(.*?</script>""", re.S)
_EMPTY_TABLE = r"""<table\s+id="{id}"([^>]*?)\s*data-toggle="table"\s*>\s*</table>"""
_CLEAR_BUTTON = re.compile(r"""<button\b[^>]*onclick="clearTableFilters\([^)]*\)"[^>]*>.*?</button>\s*""", re.S)
_HANDLERS = {'onclick="showAllValidations()"': 'data-martech-show="all"',
             'onclick="hideSucceededValidations()"': 'data-martech-show="failed"'}
_FOOTER = re.compile(r"<footer>.*?</footer>\s*", re.S)  # GX's newsletter form, not about the data
_VEGA = re.compile(r"vegaEmbed\(\s*'#([^']+)'")


def make_offline(site: Path) -> int:
    """Rewrite the site's pages that still load from elsewhere; returns how many were rewritten."""
    site = Path(site)
    if not site.is_dir():
        return 0
    _copy_assets(site / _ASSET_DIR)
    images = {p.name for p in (site / "static" / "images").glob("*") if p.is_file()}
    rewritten = 0
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site)
        if rel.parts[0] == "static":
            continue
        text = page.read_text(encoding="utf-8")
        if MARKER in text:
            continue
        new = rewrite_page(text, "../" * (len(rel.parts) - 1), images=images)
        tmp = page.with_name(f".{page.name}.tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, page)
        rewritten += 1
        left = remote_references(new)
        if left:
            log.warning("data docs: %s still refers to %s", rel, ", ".join(sorted(set(left))))
    return rewritten


def rewrite_page(page: str, root: str = "", *, images: set[str] | frozenset[str] = frozenset()) -> str:
    """One built page with nothing loaded from elsewhere; ``root`` is the relative path to the site's root."""
    if MARKER in page:
        return page
    page = _REMOTE_LINK.sub("", page)
    page = _REMOTE_SCRIPT.sub("", page)
    page = _IMG.sub(lambda m: _local_image(m.group(0), root, images), page)
    page = _FAVICON.sub(lambda m: f"{m.group(1)}{root}static/images/{m.group(2)}", page)
    page = _STYLE_BLOCK.sub(lambda m: m.group(1) + _CSS_REMOTE_URL.sub("none", m.group(2)) + m.group(3), page)
    page = _static_tables(page)
    page = _CLEAR_BUTTON.sub("", page)
    for handler, attribute in _HANDLERS.items():
        page = page.replace(handler, attribute)
    page = _INLINE_SCRIPT.sub(_drop_script, page)
    page = _FOOTER.sub("", page)
    head = (f'{MARKER}\n    <link rel="stylesheet" href="{root}{_ASSET_DIR}docs.css">\n'
            f'    <script src="{root}{_ASSET_DIR}docs.js" defer></script>\n  </head>')
    return page.replace("</head>", head, 1)


def remote_references(page: str) -> list[str]:
    """The URLs off the machine a page would load: script, stylesheet, image, frame and font references,
    CSS ``url()`` and ``@import`` (links a reader may click are not loads and are not listed)."""
    found = [m.group(1) for m in _LOADING_REF.finditer(page)]
    return found + [m.group(1) for m in _CSS_REF.finditer(page)]


def asset(name: str) -> bytes:
    """One of the project's own files the rewritten pages link (a name in ``ASSETS``)."""
    if name not in ASSETS:
        raise KeyError(name)
    return (_STATIC / name).read_bytes()


# -- pieces ------------------------------------------------------------------------------------------------

def _copy_assets(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        body = asset(name)
        dest = target / name
        if not dest.is_file() or dest.read_bytes() != body:
            tmp = dest.with_name(f".{name}.tmp")
            tmp.write_bytes(body)
            os.replace(tmp, dest)


def _local_image(tag: str, root: str, images: set[str] | frozenset[str]) -> str:
    src = _IMG_SRC.search(tag)
    if src is None:
        return tag
    name = src.group(2).split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    if name in images:
        return tag[:src.start()] + f' src="{root}static/images/{html.escape(name)}"' + tag[src.end():]
    alt = _ALT.search(tag)
    return f'<span class="martech-no-image">{alt.group(2) if alt else ""}</span>'


def _drop_script(match: re.Match[str]) -> str:
    """Inline scripts left after the tables are GX's jQuery helpers (replaced by docs.js) or vega charts."""
    chart = _VEGA.search(match.group(0))
    if chart:
        return (f'<p class="martech-offline-note" data-chart="{html.escape(chart.group(1))}">This chart needs the'
                " vega libraries, which these offline Data Docs do not load; the values are in the tables.</p>\n")
    return ""


def _static_tables(page: str) -> str:
    """Each ``bootstrapTable`` call becomes the rows of its (empty) ``<table>``; the call is removed."""
    calls: list[tuple[str, str]] = []

    def take(match: re.Match[str]) -> str:
        calls.append((match.group(1), match.group(0)))
        return ""

    page = _TABLE_SCRIPT.sub(take, page)
    for table_id, script in calls:
        try:
            columns, rows, options = _parse_table_call(script)
        except (ValueError, SyntaxError) as exc:
            log.warning("data docs: the rows of table %s could not be read (%s); it stays empty", table_id, exc)
            continue
        found = re.search(_EMPTY_TABLE.format(id=re.escape(table_id)), page)
        if found is None:
            log.warning("data docs: no empty table %s for its rows", table_id)
            continue
        table = _render_table(table_id, found.group(1), columns, rows, options)
        page = page[:found.start()] + table + page[found.end():]
    return page


def _parse_table_call(script: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """GX renders ``columns``, ``data`` and the options as Python literals inside the JavaScript call."""
    columns = _literal_after(script, "columns:")
    data = _literal_after(script, "data:")
    start = script.index("Object.assign(") + len("Object.assign(")
    first_end = _literal_end(script, script.index("{", start))
    options: Any = {}
    rest = script[first_end:].lstrip()
    if rest.startswith(","):
        brace = script.index("{", first_end)
        options = ast.literal_eval(script[brace:_literal_end(script, brace)])
    if not (isinstance(columns, list) and isinstance(data, list) and isinstance(options, dict)):
        raise ValueError("unexpected shape of the table's columns, data or options")
    return columns, data, options


def _literal_after(text: str, label: str) -> Any:
    at = text.index(label) + len(label)
    while text[at].isspace():
        at += 1
    return ast.literal_eval(text[at:_literal_end(text, at)])


def _literal_end(text: str, start: int) -> int:
    """The index after the bracketed literal starting at ``start`` (quotes and escapes respected)."""
    closing = {"[": "]", "{": "}", "(": ")"}
    stack: list[str] = []
    quote = ""
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in closing:
            stack.append(closing[ch])
        elif ch in "]})":
            if not stack or stack.pop() != ch:
                raise ValueError(f"unbalanced {ch!r} at {i}")
            if not stack:
                return i + 1
        i += 1
    raise ValueError("literal not closed")


def _text(cell: Any) -> str:
    """A cell's visible text (GX's cells are HTML snippets)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", str(cell))).split())


def _sort_key(value: Any) -> tuple[int, float, str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, _text(value).lower())


def _true(value: Any) -> bool:
    return str(value).lower() == "true"


def _render_table(table_id: str, attributes: str, columns: list[dict[str, Any]], rows: list[dict[str, Any]],
                  options: dict[str, Any]) -> str:
    """The table bootstrap-table would have drawn, as static HTML; docs.js adds sorting and filtering."""
    esc = html.escape
    by_field = {c.get("field"): c for c in columns}
    sort_field = str(options.get("sortName", ""))
    if sort_field in by_field:
        key = by_field[sort_field].get("sortName") or sort_field
        rows = sorted(rows, key=lambda r: _sort_key(r.get(key, "")),
                      reverse=str(options.get("sortOrder", "asc")).lower() == "desc")
    attributes = re.sub(r'class="([^"]*)"', lambda m: f'class="table table-hover {m.group(1)}"', attributes, count=1) \
        if "class=" in attributes else f'{attributes} class="table table-sm table-hover"'
    flags = "".join(f' data-{name}="true"' for name in ("search", "filter-control")
                    if _true(options.get(re.sub(r"-(\w)", lambda m: m.group(1).upper(), name))))
    head = []
    for c in columns:
        attrs = f' data-field="{esc(str(c.get("field", "")))}"'
        if _true(c.get("sortable")):
            attrs += ' data-sortable="true"'
            if c.get("field") == sort_field:
                attrs += f' aria-sort="{"descending" if options.get("sortOrder") == "desc" else "ascending"}"'
        if c.get("filterControl"):
            attrs += f' data-filter="{esc(str(c["filterControl"]))}"'
        if c.get("align"):
            attrs += f' style="text-align: {esc(str(c["align"]))}"'
        head.append(f"<th{attrs}>{esc(str(c.get('title', '')))}</th>")
    body = []
    for r in rows:
        link = r.get("_table_row_link_path")
        cells = []
        for k, c in enumerate(columns):
            field = c.get("field", "")
            value = r.get(field, "")
            sort = r.get(c.get("sortName") or field, value)
            # What a filter compares: GX's own text for the column when it gives one, else what is shown.
            shown = next((v for v in (r.get(f"_{field}_text"), r.get(f"_{field}_sort")) if isinstance(v, str)), value)
            shown = _text(shown)
            cell = str(value)
            if k == 0 and link and "<a " not in cell:
                cell = f'<a href="{esc(str(link))}">{cell}</a>'
            align = f' style="text-align: {esc(str(c["align"]))}"' if c.get("align") else ""
            cells.append(f'<td data-sort="{esc(str(sort if isinstance(sort, (int, float)) else _text(sort)))}"'
                         f' data-value="{esc(shown)}"{align}>{cell}</td>')
        href = f' data-href="{esc(str(link))}" class="clickable-row"' if link else ""
        body.append(f"<tr{href}>{''.join(cells)}</tr>")
    return (f'<table id="{esc(table_id)}"{attributes} data-martech-table="true"{flags}>\n'
            f"<thead><tr>{''.join(head)}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>")
