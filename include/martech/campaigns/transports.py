"""Where rendered messages go.

A transport takes :class:`OutboundMessage` objects and returns one :class:`SendResult` per message.
The dispatcher hands it at most ``batch_size`` messages at a time (SendGrid takes up to 1000
personalizations per request; SMTP would reuse one connection per batch), calls
:meth:`Transport.finalize_run` once a run is through and :meth:`Transport.close` when done.

``idempotent`` says whether sending the same message twice has the effect of sending it once. The
outbox is (a message is a file named after its send id); SendGrid is not (no idempotency key), so the
dispatcher never blindly resends a message whose earlier attempt may have gone out.

``custom_args`` carry ids only (send_id, campaign_id, run_id, contact_id), never personal data, so
email events can be joined back to the send ledger. The outbox writes them as ``X-Martech-*`` headers.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = [
    "DEFAULT_SENDER",
    "BaseTransport",
    "OutboundMessage",
    "OutboxTransport",
    "SendResult",
    "Transport",
    "build_email",
    "custom_arg_header",
]

DEFAULT_SENDER = "Shop Example <hello@shop.example>"


@dataclass(frozen=True)
class OutboundMessage:
    """One fully rendered email for one recipient."""

    send_id: str
    to: str
    sender: str
    subject: str
    html: str
    text: str
    sent_at: datetime
    headers: Mapping[str, str] = field(default_factory=dict)
    custom_args: Mapping[str, str] = field(default_factory=dict)
    send_at: datetime | None = None  # earliest delivery (send window in the contact's timezone); None = now

    @property
    def campaign_id(self) -> str:
        return self.custom_args.get("campaign_id", "")

    @property
    def run_id(self) -> str:
        return self.custom_args.get("run_id", "")


@dataclass(frozen=True)
class SendResult:
    send_id: str
    message_id: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Transport(Protocol):
    name: str
    batch_size: int
    idempotent: bool

    def send(self, message: OutboundMessage) -> str:
        """Send one message; return the provider's message id; raise on failure."""
        ...

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """Send up to ``batch_size`` messages; one result per message, in order."""
        ...

    def finalize_run(self, campaign_id: str, run_id: str) -> None:
        """Called once after every message of a run was handed over (also when there were none)."""
        ...

    def close(self) -> None:
        ...


class BaseTransport:
    """Defaults for transports that send one message at a time."""

    name = "base"
    batch_size = 100
    idempotent = False

    def send(self, message: OutboundMessage) -> str:
        raise NotImplementedError

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        results = []
        for message in messages:
            try:
                results.append(SendResult(message.send_id, message_id=self.send(message)))
            except Exception as exc:  # one bad recipient must not fail the batch
                results.append(SendResult(message.send_id, error=f"{type(exc).__name__}: {exc}"))
        return results

    def finalize_run(self, campaign_id: str, run_id: str) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> BaseTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- RFC 5322 messages ---------------------------------------------------------------------------------


def custom_arg_header(name: str) -> str:
    """``send_id`` -> ``X-Martech-Send-Id``."""
    return "X-Martech-" + "-".join(part.capitalize() for part in name.split("_"))


def _domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "martech.invalid"


def message_id_for(send_id: str, sender: str) -> str:
    return f"<{send_id}@{_domain(sender)}>"


# RFC 5322 allows 998 characters per line; folding at 78 would RFC 2047-encode long unbreakable values such
# as the signed List-Unsubscribe URLs, which mail clients then no longer recognise.
_POLICY = policy.SMTP.clone(max_line_length=998)


def build_email(message: OutboundMessage) -> EmailMessage:
    """A multipart/alternative (text, then HTML) message whose bytes depend only on ``message``.

    The Message-ID and the MIME boundary derive from the send id and the Date is the run's timestamp,
    so writing the same send again produces the same bytes.
    """
    msg = EmailMessage(policy=_POLICY)
    name, address = parseaddr(message.sender)
    msg["From"] = Address(display_name=name, addr_spec=address) if name else address
    msg["To"] = message.to
    msg["Subject"] = message.subject
    msg["Date"] = format_datetime(message.sent_at)
    msg["Message-ID"] = message_id_for(message.send_id, message.sender)
    msg["MIME-Version"] = "1.0"
    for key, value in message.headers.items():
        msg[key] = value
    for key, value in sorted(message.custom_args.items()):
        msg[custom_arg_header(key)] = value
    if message.send_at is not None:
        msg["X-Martech-Send-At"] = format_datetime(message.send_at)
    msg.set_content(message.text)
    msg.add_alternative(message.html, subtype="html")
    msg.set_boundary(f"==martech-{message.send_id}==")
    return msg


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically write ``data`` unless the file already holds exactly it; True when written."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


# -- outbox --------------------------------------------------------------------------------------------


class OutboxTransport(BaseTransport):
    """Writes each message as ``<root>/<campaign_id>/<run_id>/<send_id>.eml`` plus an ``index.html``.

    The default transport of a local run: nothing leaves the machine, and the files can be opened in
    any mail client. Writing is idempotent: same send, same file name, same bytes.
    """

    name = "outbox"
    idempotent = True
    supports_send_at = True  # a local file: the scheduled time is written as X-Martech-Send-At

    def __init__(self, root: Path | str, *, batch_size: int = 500) -> None:
        self.root = Path(root)
        self.batch_size = batch_size

    def run_dir(self, campaign_id: str, run_id: str) -> Path:
        for part in (campaign_id, run_id):
            if not part or "/" in part or "\\" in part or part in {".", ".."}:
                raise ValueError(f"unusable outbox folder name {part!r}")
        return self.root / campaign_id / run_id

    def send(self, message: OutboundMessage) -> str:
        email = build_email(message)
        path = self.run_dir(message.campaign_id, message.run_id) / f"{message.send_id}.eml"
        _write_if_changed(path, email.as_bytes())
        return str(email["Message-ID"])

    def finalize_run(self, campaign_id: str, run_id: str) -> None:
        """(Re)write the run's ``index.html`` from the ``.eml`` files present, sorted by file name."""
        folder = self.run_dir(campaign_id, run_id)
        parser = BytesHeaderParser(policy=policy.default)
        rows = []
        for path in sorted(folder.glob("*.eml")):
            with path.open("rb") as fh:
                headers = parser.parse(fh)
            rows.append(
                "<tr><td>{to}</td><td>{subject}</td><td>{variant}</td>"
                '<td><a href="{href}">{name}</a></td></tr>'.format(
                    to=html.escape(str(headers.get("To", ""))),
                    subject=html.escape(str(headers.get("Subject", ""))),
                    variant=html.escape(str(headers.get(custom_arg_header("variant"), ""))),
                    href=html.escape(path.name, quote=True),
                    name=html.escape(path.name),
                )
            )
        title = html.escape(f"{campaign_id} — run {run_id}")
        page = "\n".join([
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{title}</title>",
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}</style>",
            "</head><body>",
            f"<h1>{title}</h1>",
            f"<p>{len(rows)} message(s)</p>",
            "<table><thead><tr><th>recipient</th><th>subject</th><th>variant</th><th>file</th></tr></thead>",
            "<tbody>",
            *rows,
            "</tbody></table></body></html>",
            "",
        ])
        _write_if_changed(folder / "index.html", page.encode("utf-8"))
