"""The outbox's rendered previews (``<outbox>/previews/<campaign>/<run>/<variant>-<n>.eml``), read safely.

Names come from URLs, so each part is matched against a strict pattern and the resolved file must lie
inside the previews folder: no ``..``, no absolute paths, no symlink out. The HTML part is returned for
display in a sandboxed frame; the headers the server sends with it are in ``HEADERS``.
"""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

__all__ = ["HEADERS", "list_previews", "preview_html"]

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+-]{0,200}$")
_FILE = re.compile(r"^[A-Za-z0-9_-]{1,64}-[0-9]{1,4}\.eml$")

# No script, no plugin, no form, nothing fetched from elsewhere: the mail is shown, never run.
HEADERS = {"Content-Security-Policy": "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _resolve(root: Path, campaign_id: str, run_id: str, name: str) -> Path | None:
    if not (_PART.match(campaign_id) and _PART.match(run_id) and _FILE.match(name)) or ".." in run_id:
        return None
    base = root.resolve()
    path = (base / campaign_id / run_id / name).resolve()
    if base not in path.parents or not path.is_file():
        return None
    return path


def list_previews(root: Path, campaign_id: str) -> list[dict[str, str]]:
    """The campaign's previews, newest run first: run id, file name, subject."""
    folder = root / campaign_id
    if not _PART.match(campaign_id) or not folder.is_dir():
        return []
    out = []
    for run in sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True):
        for f in sorted(run.glob("*.eml")):
            if _resolve(root, campaign_id, run.name, f.name):
                msg = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
                out.append({"run_id": run.name, "name": f.name, "subject": str(msg.get("Subject", ""))})
    return out


def preview_html(root: Path, campaign_id: str, run_id: str, name: str) -> str | None:
    """The HTML body of one preview (the text body, escaped, when it has none); None when not found."""
    import html

    path = _resolve(root, campaign_id, run_id, name)
    if path is None:
        return None
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    part = msg.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
    if part is not None:
        return str(part.get_content())
    text = msg.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    return f"<pre>{html.escape(str(text.get_content()) if text is not None else '')}</pre>"
