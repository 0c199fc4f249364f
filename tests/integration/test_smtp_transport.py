"""The SMTP transport against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import email
import socket
from datetime import datetime, timezone
from email import policy

import pytest
from aiosmtpd.controller import Controller

from martech.campaigns.smtp_transport import SmtpTransport
from martech.campaigns.transports import OutboundMessage

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
UNSUB = "<https://shop.example/unsubscribe?sid=" + "a" * 32 + "&token=v1." + "Z" * 120 + ">"


class Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("refused"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def sink():
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def msg(i: int, to: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        send_id=f"{i:032x}", to=to or f"user{i}@example.com", sender="Shop Example <hello@shop.example>",
        subject=f"Grüße {i}", html=f"<p>Hi {i}</p>", text=f"Hi {i}", sent_at=NOW,
        headers={"List-Unsubscribe": UNSUB, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        custom_args={"send_id": f"{i:032x}", "campaign_id": "winback", "run_id": "2026-03-01"})


def test_one_message_per_recipient_with_headers_intact(sink) -> None:
    handler, port = sink
    t = SmtpTransport("127.0.0.1", port, batch_size=10)
    results = t.send_batch([msg(1), msg(2, to="refused@example.com"), msg(3)])
    assert [r.ok for r in results] == [True, False, True]
    assert "refused" in (results[1].error or "")
    assert [(frm, rcpt) for frm, rcpt, _ in handler.messages] == [
        ("hello@shop.example", ["user1@example.com"]), ("hello@shop.example", ["user3@example.com"])]
    raw = handler.messages[0][2]
    assert b"List-Unsubscribe: " + UNSUB.encode() + b"\r\n" in raw  # not folded into RFC 2047 words
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["Message-ID"] == results[0].message_id == f"<{1:032x}@shop.example>"
    assert parsed["Subject"] == "Grüße 1" and parsed["X-Martech-Send-Id"] == f"{1:032x}"
    assert parsed.get_body(("plain",)).get_content().strip() == "Hi 1"


def test_unreachable_server_fails_definitely_so_the_rows_are_retried() -> None:
    t = SmtpTransport("127.0.0.1", _free_port(), timeout=2)
    results = t.send_batch([msg(1), msg(2)])
    assert [r.ok for r in results] == [False, False]
    assert all("connect" in (r.error or "") for r in results)


def test_bad_security_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="starttls"):
        SmtpTransport("127.0.0.1", 25, security="tls-please")

