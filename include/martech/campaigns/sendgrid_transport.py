"""SendGrid v3 mail send, built for the exactly-once protocol in ``docs/exactly-once.md``.

SendGrid has no idempotency key, so a request whose answer was lost (crash, timeout, 5xx) may or may not
have been accepted. What it does have are *batch ids* and *scheduled sends*: every request here gets its
own fresh batch id and a ``send_at`` a few minutes ahead (``hold``), and SendGrid lets a scheduled batch be
cancelled until shortly before that time. The dispatcher records the attempt (``batch_id@send_at``) in
the ledger before the request; when the answer is in doubt, :meth:`SendGridTransport.cancel_attempt`
cancels that batch and the recipients are sent again under a new one. Whatever SendGrid had accepted
under the cancelled batch is never delivered.

Per request: up to 1000 personalizations (one per recipient). The message is rendered per recipient;
bodies that are identical for the whole request go inline once, otherwise each personalization carries
its subject, text and HTML as substitutions (``-martech_subject-`` …; SendGrid allows 10,000 bytes of
substitutions per personalization — larger messages get a request of their own, see :meth:`group`).
``custom_args`` carry ids only; per-recipient ``List-Unsubscribe`` headers go in the personalization.

Responses: 202 → sent (``X-Message-Id``); 429 → wait until ``X-RateLimit-Reset`` (or ``Retry-After``)
and repeat the same request (a 429 was not accepted); other 4xx → failed with SendGrid's error text;
5xx, timeouts and broken connections → no result (in doubt) for the dispatcher to resolve.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from email.utils import parseaddr
from typing import Any

from martech.campaigns.faults import checkpoint
from martech.campaigns.transports import BaseTransport, OutboundMessage, SendResult

DEFAULT_HOST = "https://api.sendgrid.com"
SUBSTITUTION_LIMIT = 10_000  # bytes of substitutions per personalization (SendGrid's documented limit)
MAX_PERSONALIZATIONS = 1000
_SUBJECT, _TEXT, _HTML = "-martech_subject-", "-martech_text-", "-martech_html-"
# Headers SendGrid lets a personalization set (it refuses To/From/Subject/Content-* and a few others).
_PERSONAL_HEADERS = ("List-Unsubscribe", "List-Unsubscribe-Post")


class SendGridError(RuntimeError):
    """A request SendGrid answered with an error that retrying will not fix."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SendGridTransport(BaseTransport):
    name = "sendgrid"
    idempotent = False
    supports_cancel = True
    supports_send_at = True  # per-personalization send_at (quiet hours), up to 72 hours ahead

    def __init__(self, api_key: str, *, host: str = DEFAULT_HOST, batch_size: int = MAX_PERSONALIZATIONS,
                 sandbox: bool = False, asm_group_id: int | None = None, categories: Sequence[str] = (),
                 hold: timedelta = timedelta(minutes=20), cancel_margin: timedelta = timedelta(minutes=10),
                 timeout: float = 30.0, max_retries: int = 6, max_wait_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], datetime] = _utcnow,
                 client: Any = None) -> None:
        if not api_key:
            raise ValueError("SendGrid needs an API key: set the password of the Airflow connection 'sendgrid'"
                             " (or MARTECH_SENDGRID_API_KEY)")
        if not 1 <= batch_size <= MAX_PERSONALIZATIONS:
            raise ValueError(f"batch_size must be 1..{MAX_PERSONALIZATIONS}, got {batch_size}")
        if hold <= cancel_margin:
            raise ValueError("hold must be longer than cancel_margin, or no attempt could ever be cancelled")
        if client is None:
            from sendgrid import SendGridAPIClient

            client = SendGridAPIClient(api_key=api_key, host=host.rstrip("/")).client
        self._client = client
        self.batch_size = batch_size
        self.sandbox = sandbox
        self.asm_group_id = asm_group_id
        self.categories = tuple(categories)
        self.hold, self.cancel_margin = hold, cancel_margin
        self.timeout, self.max_retries, self.max_wait_s = timeout, max_retries, max_wait_s
        self._sleep, self._clock = sleep, clock
        self.requests = 0  # HTTP requests made (mail send, batch ids, cancellations), for the benchmark

    # -- the dispatcher's hooks ------------------------------------------------------------------------

    def group(self, messages: Sequence[OutboundMessage]) -> list[list[OutboundMessage]]:
        """Split a batch into requests: messages too big for substitutions each get their own."""
        shared: list[OutboundMessage] = []
        alone: list[list[OutboundMessage]] = []
        uniform = len({(m.subject, m.text, m.html) for m in messages}) == 1
        for m in messages:
            if uniform or _substitution_bytes(m) <= SUBSTITUTION_LIMIT:
                shared.append(m)
            else:
                alone.append([m])
        return ([shared] if shared else []) + alone

    def begin_attempt(self) -> str:
        """A fresh batch id and the send time of the next request: ``<batch_id>@<unix send_at>``."""
        response = self._call("POST", "mail/batch", None)
        batch_id = json.loads(response.body)["batch_id"]
        send_at = int((self._clock() + self.hold).timestamp())
        return f"{batch_id}@{send_at}"

    def cancel_attempt(self, attempt_ref: str) -> bool:
        """Cancel the attempt's scheduled batch; True only when nothing of it can be delivered any more."""
        batch_id, send_at = parse_attempt(attempt_ref)
        if self._clock() >= send_at - self.cancel_margin:
            return False  # too close to (or past) the send time: SendGrid no longer guarantees a cancel
        try:
            self._call("POST", "user/scheduled_sends", {"batch_id": batch_id, "status": "cancel"})
            return True
        except SendGridError:
            # 400 when the batch is already cancelled or paused (a crash after an earlier cancel).
            response = self._call("GET", f"user/scheduled_sends/{batch_id}", None)
            return any(s.get("status") == "cancel" for s in json.loads(response.body or "[]"))

    def send_batch(self, messages: Sequence[OutboundMessage], attempt_ref: str | None = None) -> list[SendResult]:
        if not messages:
            return []
        body = self.request_body(messages, attempt_ref)
        checkpoint("before_request")
        try:
            response = self._call("POST", "mail/send", body)
        except SendGridError as exc:
            return [SendResult(m.send_id, error=str(exc)) for m in messages]
        except _InDoubt:
            return []  # the dispatcher resolves these (cancel the attempt, then resend)
        message_id = _header(response.headers, "X-Message-Id") or (parse_attempt(attempt_ref)[0]
                                                                    if attempt_ref else "")
        return [SendResult(m.send_id, message_id=message_id) for m in messages]

    def send(self, message: OutboundMessage) -> str:
        raise SendGridError("the SendGrid transport sends batches through the dispatcher (send_batch)")

    # -- request body ----------------------------------------------------------------------------------

    def request_body(self, messages: Sequence[OutboundMessage], attempt_ref: str | None) -> dict[str, Any]:
        first = messages[0]
        name, address = parseaddr(first.sender)
        uniform = len({(m.subject, m.text, m.html) for m in messages}) == 1
        personalizations = []
        for m in messages:
            p: dict[str, Any] = {"to": [{"email": m.to}],
                                 "custom_args": {k: str(v) for k, v in m.custom_args.items()}}
            headers = {k: v for k, v in m.headers.items() if k in _PERSONAL_HEADERS}
            if headers:
                p["headers"] = headers
            if not uniform:
                p["substitutions"] = {_SUBJECT: m.subject, _TEXT: m.text, _HTML: m.html}
            if m.send_at is not None:
                p["send_at"] = int(m.send_at.timestamp())
            personalizations.append(p)
        body: dict[str, Any] = {
            "personalizations": personalizations,
            "from": {"email": address, **({"name": name} if name else {})},
            "subject": first.subject if uniform else _SUBJECT,
            "content": [{"type": "text/plain", "value": first.text if uniform else _TEXT},
                        {"type": "text/html", "value": first.html if uniform else _HTML}],
            "categories": list(dict.fromkeys([*self.categories, first.campaign_id]))[:10],
            "mail_settings": {"sandbox_mode": {"enable": self.sandbox}},
        }
        if attempt_ref:
            batch_id, send_at = parse_attempt(attempt_ref)
            body["batch_id"] = batch_id
            body["send_at"] = int(send_at.timestamp())
        if self.asm_group_id is not None:
            body["asm"] = {"group_id": self.asm_group_id}
        return body

    # -- HTTP --------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        """One API call with waits on 429; raises SendGridError (definite) or _InDoubt (maybe accepted)."""
        from python_http_client.exceptions import HTTPError

        node = self._client
        for part in path.split("/"):
            node = node._(part)
        for attempt in range(self.max_retries + 1):
            self.requests += 1
            try:
                if method == "GET":
                    return node.get(timeout=self.timeout)
                return node.post(request_body=body, timeout=self.timeout)
            except HTTPError as exc:
                status = int(getattr(exc, "status_code", 0) or 0)
                if status == 429 and attempt < self.max_retries:
                    self._sleep(self._rate_limit_wait(getattr(exc, "headers", None), attempt))
                    continue
                if status >= 500:
                    if path != "mail/send" and attempt < self.max_retries:
                        self._sleep(_jitter(attempt))  # batch ids, cancels: safe to repeat
                        continue
                    raise _InDoubt(f"HTTP {status} from {path}") from None
                raise SendGridError(f"SendGrid {method} /v3/{path} answered {status}: "
                                    f"{_error_text(getattr(exc, 'body', b''))}") from None
            except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
                refused = isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)
                if (refused or path != "mail/send") and attempt < self.max_retries:
                    self._sleep(_jitter(attempt))  # refused: nothing reached SendGrid
                    continue
                if refused:
                    raise SendGridError(f"SendGrid unreachable: {exc}") from None
                raise _InDoubt(f"{type(exc).__name__} on {path}: {exc}") from None
        raise SendGridError(f"SendGrid {method} /v3/{path}: still rate limited after {self.max_retries} waits")

    def _rate_limit_wait(self, headers: Any, attempt: int) -> float:
        reset = _header(headers, "X-RateLimit-Reset")
        retry_after = _header(headers, "Retry-After")
        if reset:
            wait = float(reset) - self._clock().timestamp()
        elif retry_after:
            wait = float(retry_after)
        else:
            wait = _jitter(attempt)
        return min(max(wait, 0.05), self.max_wait_s)


class _InDoubt(Exception):
    """The request may or may not have been accepted."""


def parse_attempt(attempt_ref: str) -> tuple[str, datetime]:
    batch_id, _, send_at = attempt_ref.rpartition("@")
    if not batch_id or not send_at.isdigit():
        raise ValueError(f"not a SendGrid attempt reference (batch_id@unix_time): {attempt_ref!r}")
    return batch_id, datetime.fromtimestamp(int(send_at), tz=timezone.utc)


def _substitution_bytes(m: OutboundMessage) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in
               ((_SUBJECT, m.subject), (_TEXT, m.text), (_HTML, m.html)))


def _jitter(attempt: int) -> float:
    return min(30.0, 0.2 * 2 ** attempt) * (0.5 + random.random())


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    value = getter(name) or getter(name.lower())
    return str(value) if value is not None else None


def _error_text(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        errors = json.loads(body).get("errors", [])
        return "; ".join(f"{e.get('field') or '-'}: {e.get('message')}" for e in errors) or str(body)[:500]
    except (ValueError, AttributeError):
        return str(body)[:500]
