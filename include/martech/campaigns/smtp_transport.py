"""SMTP transport: any mail server (a relay, Postfix, Mailpit, an ESP's SMTP endpoint).

One connection per batch, one message (and one envelope recipient) per contact, the same RFC 5322 bytes
as the outbox writes. SMTP has no idempotency key and no cancel, so the send protocol can only be
at-most-once for a message whose answer was lost: it stays in doubt (``pending``) until an email event
carrying its send id proves it was sent, and is never resent blindly (docs/exactly-once.md). Messages
after a broken connection were not attempted: they come back as failures and are retried.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.utils import parseaddr

from martech.campaigns.faults import checkpoint
from martech.campaigns.transports import BaseTransport, OutboundMessage, SendResult, build_email


class SmtpTransport(BaseTransport):
    name = "smtp"
    idempotent = False

    def __init__(self, host: str, port: int = 25, *, username: str | None = None, password: str | None = None,
                 security: str = "none", timeout: float = 30.0, batch_size: int = 100,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if security not in ("none", "starttls", "ssl"):
            raise ValueError(f"SMTP security must be none, starttls or ssl, got {security!r}")
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.security, self.timeout, self.batch_size = security, timeout, batch_size
        self.ssl_context = ssl_context

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                  context=self.ssl_context or ssl.create_default_context())
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.security == "starttls":
                conn.starttls(context=self.ssl_context or ssl.create_default_context())
        if self.username:
            conn.login(self.username, self.password or "")
        return conn

    def send(self, message: OutboundMessage) -> str:
        (result,) = self.send_batch([message])
        if not result.ok or not result.message_id:
            raise RuntimeError(result.error or "no answer from the SMTP server")
        return result.message_id

    def send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        if not messages:
            return []
        try:
            conn = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            # Nothing was handed over: a definite failure for every message, retried later.
            return [SendResult(m.send_id, error=f"SMTP connect to {self.host}:{self.port} failed: {exc}")
                    for m in messages]
        results: list[SendResult] = []
        try:
            for i, message in enumerate(messages):
                email = build_email(message)
                checkpoint("before_request")
                try:
                    conn.send_message(email, from_addr=parseaddr(message.sender)[1], to_addrs=[message.to])
                except smtplib.SMTPRecipientsRefused as exc:
                    results.append(SendResult(message.send_id, error=f"recipient refused: {exc.recipients}"))
                except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                    results.append(SendResult(message.send_id, error=f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"))
                except (TimeoutError, smtplib.SMTPServerDisconnected, OSError):
                    # The server may have taken this one: no result (in doubt). The rest were not tried.
                    results.extend(SendResult(m.send_id, error="not attempted: SMTP connection lost")
                                   for m in messages[i + 1:])
                    return results
                else:
                    results.append(SendResult(message.send_id, message_id=str(email["Message-ID"])))
        finally:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()
        return results
