"""The Great Expectations Data Docs (``martech.paths.data_docs_dir()``), read safely for the report app.

Paths come from URLs: every part must be a plain name (no ``..``, no hidden files, no backslash), the
resolved file must lie inside the Data Docs folder (no symlink out) and have one of the suffixes the site is
made of. A page GX wrote before ``martech.quality.docs_offline`` existed is rewritten on the way out (not on
disk), and the headers in ``HEADERS`` let the browser load nothing but the site's own files.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["HEADERS", "MEDIA_TYPES", "read"]

MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".js": "text/javascript; charset=utf-8", ".png": "image/png", ".gif": "image/gif",
               ".svg": "image/svg+xml", ".ico": "image/x-icon", ".otf": "font/otf"}

HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline';"
                                      " img-src 'self' data:; font-src 'self'; frame-ancestors 'self';"
                                      " base-uri 'none'; form-action 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _resolve(root: Path, path: str) -> Path | None:
    parts = path.split("/")
    if not path or any(not p or p in (".", "..") or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
        return None
    base = root.resolve()
    target = (base / path).resolve()
    if base not in target.parents or target.suffix.lower() not in MEDIA_TYPES or not target.is_file():
        return None
    return target


def read(root: Path, path: str) -> tuple[bytes, str] | None:
    """The file at ``path`` (relative to ``root``) and its media type; None when there is no such file."""
    from martech.quality import docs_offline

    asset = path.removeprefix("static/martech/")
    if asset != path and asset in docs_offline.ASSETS and _resolve(root, path) is None:
        # A site built before its pages were rewritten has no copy yet: the package's own serves.
        return docs_offline.asset(asset), MEDIA_TYPES[Path(asset).suffix]
    target = _resolve(root, path)
    if target is None:
        return None
    media = MEDIA_TYPES[target.suffix.lower()]
    body = target.read_bytes()
    if target.suffix.lower() == ".html":
        text = body.decode("utf-8", errors="replace")
        if docs_offline.MARKER not in text:
            images = {p.name for p in (root / "static" / "images").glob("*")}
            text = docs_offline.rewrite_page(text, "../" * path.count("/"), images=images)
            body = text.encode("utf-8")
    return body, media
