"""SendGrid v3 mail send, built for the exactly-once protocol in ``docs/exactly-once.md``.

SendGrid has no idempotency key, so a request whose answer was lost (crash, timeout, 5xx) may or may not
have been accepted. What it does have are *batch ids* and *scheduled sends*: every request here gets its
own fresh batch id and a ``send_at`` a few minutes ahead (``hold``), and SendGrid lets a scheduled batch be
cancelled until 10 minutes before that time. The dispatcher records the attempt
(``batch_id@first[~last]``: the batch and its earliest and latest send times) in the ledger before the
request. When the answer is in doubt, the attempt is settled from SendGrid's own records, not from a
cancel alone:

* no message of a request is ever scheduled earlier than ``now + hold`` (a quiet-hours send time that is
  already past, or inside the cut-off, is moved to that), so a fresh attempt can always be cancelled;
* :meth:`SendGridTransport.cancel_attempt` cancels a batch only while SendGrid accepts it (more than
  ``cancel_margin`` before its first send time) and while fewer than ``cancel_budget`` of SendGrid's 10
  paused/cancelled batches are live; a confirmed cancel means nothing of it is delivered;
* :meth:`SendGridTransport.lookup_attempt` asks the Email Activity API, after the batch's last send time
  plus ``settle``, which of its recipients SendGrid processed (the request's ``custom_args`` carry the
  batch id as ``attempt``); those are sent, the others proven not accepted.

Rules and their sources: https://www.twilio.com/docs/sendgrid/api-reference/cancel-scheduled-sends (10
minutes, 10 batches), https://www.twilio.com/docs/sendgrid/api-reference/email-activity/filter-all-messages
(the lookup, a paid add-on: without it the answer is 403 and rows wait for webhook events instead),
https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits (429 and
``X-RateLimit-Reset``).

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
import urllib.parse
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
                 settle: timedelta = timedelta(minutes=30), cancel_budget: int = 8,
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
        # settle: how long after a send time Email Activity is taken as complete. A message processed
        # but not yet listed would be resent, so this is generous against the feed's lag (minutes).
        self.hold, self.cancel_margin, self.settle = hold, cancel_margin, settle
        self.cancel_budget = cancel_budget  # of SendGrid's 10 live paused/cancelled batches; the rest for people
        self.timeout, self.max_retries, self.max_wait_s = timeout, max_retries, max_wait_s
        self.sleep, self.clock = sleep, clock
        self.requests = 0  # HTTP requests made (mail send, batch ids, cancellations), for the benchmark
        self.retry_after: float | None = None  # seconds SendGrid asked to wait with its last 5xx or 429
        self.activity: bool | None = None  # Email Activity add-on: unknown until asked

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

    def earliest_send_at(self) -> datetime:
        """No message is scheduled before this: far enough ahead for a cancel to be accepted."""
        return self.clock() + self.hold

    def begin_attempt(self, messages: Sequence[OutboundMessage] = ()) -> str:
        """A fresh batch id and the send times of the next request: ``<batch_id>@<first>[~<last>]``."""
        response = self._call("POST", "mail/batch", None)
        batch_id = json.loads(response.body)["batch_id"]
        first = int(self.earliest_send_at().timestamp())
        last = max([first, *(int(m.send_at.timestamp()) for m in messages if m.send_at is not None)])
        return f"{batch_id}@{first}" + (f"~{last}" if last > first else "")

    def cancel_attempt(self, attempt_ref: str) -> bool:
        """Cancel the attempt's scheduled batch; True only when nothing of it can be delivered any more.

        False (nothing asked) when SendGrid would refuse: inside the 10-minute cut-off of its first send
        time, or with ``cancel_budget`` batches already paused or cancelled on the account.
        """
        batch_id, send_at = parse_attempt(attempt_ref)
        if self.clock() >= send_at - self.cancel_margin:
            return False  # too close to (or past) the send time: SendGrid no longer accepts a cancel
        held = json.loads(self._call("GET", "user/scheduled_sends", None).body or "[]")
        if any(h.get("batch_id") == batch_id and h.get("status") == "cancel" for h in held):
            return True  # cancelled by an earlier run that died before recording it
        if len(held) >= self.cancel_budget:
            return False
        try:
            self._call("POST", "user/scheduled_sends", {"batch_id": batch_id, "status": "cancel"})
            return True
        except SendGridError:
            # 400: refused (limit reached by others, cut-off) or the batch already has a status.
            response = self._call("GET", f"user/scheduled_sends/{batch_id}", None)
            return any(s.get("status") == "cancel" for s in json.loads(response.body or "[]"))

    def lookup_ready_at(self, attempt_ref: str) -> datetime:
        """When SendGrid's records of the attempt are complete: its last send time plus ``settle``."""
        return attempt_times(attempt_ref)[1] + self.settle

    def lookup_attempt(self, attempt_ref: str) -> dict[str, str] | None:
        """Recipient address -> message id of every message of the attempt SendGrid processed.

        None when that cannot be known yet (before :meth:`lookup_ready_at`) or at all (no Email Activity
        access). After that time, an address missing from the answer was not accepted (or its batch was
        cancelled): it is safe to send again.
        """
        if self.activity is False or self.clock() < self.lookup_ready_at(attempt_ref):
            return None
        batch_id, _ = parse_attempt(attempt_ref)
        query = urllib.parse.urlencode({"query": f"unique_args['attempt']=\"{batch_id}\"",
                                        "limit": MAX_PERSONALIZATIONS})
        try:
            response = self._call("GET", f"messages?{query}", None)
        except SendGridError:
            self.activity = False  # 403: the account has no Email Activity add-on
            return None
        self.activity = True
        return {m["to_email"].lower(): m.get("msg_id", "") for m in json.loads(response.body).get("messages", [])}

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
            if attempt_ref:
                p["custom_args"]["attempt"] = parse_attempt(attempt_ref)[0]
            if m.send_at is not None:
                # Never earlier than the request's own send_at: a past time would send at once, and a
                # time inside the cut-off could not be cancelled.
                earliest = parse_attempt(attempt_ref)[1] if attempt_ref else m.send_at
                p["send_at"] = int(max(m.send_at, earliest).timestamp())
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
        route, _, query = path.partition("?")
        for part in route.split("/"):
            node = node._(part)
        params = dict(urllib.parse.parse_qsl(query)) or None
        for attempt in range(self.max_retries + 1):
            self.requests += 1
            try:
                response = (node.get(query_params=params, timeout=self.timeout) if method == "GET"
                            else node.post(request_body=body, timeout=self.timeout))
                self.retry_after = None
                return response
            except HTTPError as exc:
                status = int(getattr(exc, "status_code", 0) or 0)
                if status == 429 or status >= 500:
                    self.retry_after = self._rate_limit_wait(getattr(exc, "headers", None), attempt)
                if status == 429 and attempt < self.max_retries:
                    self.sleep(self.retry_after or 0.05)
                    continue
                if status >= 500:
                    if route != "mail/send" and attempt < self.max_retries:
                        self.sleep(max(_jitter(attempt), self.retry_after or 0))  # batch ids, cancels: safe
                        continue
                    raise _InDoubt(f"HTTP {status} from {path}") from None
                raise SendGridError(f"SendGrid {method} /v3/{path} answered {status}: "
                                    f"{_error_text(getattr(exc, 'body', b''))}") from None
            except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
                refused = isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)
                if (refused or route != "mail/send") and attempt < self.max_retries:
                    self.sleep(_jitter(attempt))  # refused: nothing reached SendGrid
                    continue
                if refused:
                    raise SendGridError(f"SendGrid unreachable: {exc}") from None
                raise _InDoubt(f"{type(exc).__name__} on {path}: {exc}") from None
        raise SendGridError(f"SendGrid {method} /v3/{path}: still rate limited after {self.max_retries} waits")

    def _rate_limit_wait(self, headers: Any, attempt: int) -> float:
        reset = _header(headers, "X-RateLimit-Reset")
        retry_after = _header(headers, "Retry-After")
        if reset:
            wait = float(reset) - self.clock().timestamp()
        elif retry_after:
            wait = float(retry_after)
        else:
            wait = _jitter(attempt)
        return min(max(wait, 0.05), self.max_wait_s)


class _InDoubt(Exception):
    """The request may or may not have been accepted."""


def parse_attempt(attempt_ref: str) -> tuple[str, datetime]:
    """(batch id, first send time) of ``batch_id@first[~last]``."""
    batch_id, _, times = attempt_ref.rpartition("@")
    first = times.partition("~")[0]
    if not batch_id or not first.isdigit():
        raise ValueError(f"not a SendGrid attempt reference (batch_id@unix_time): {attempt_ref!r}")
    return batch_id, datetime.fromtimestamp(int(first), tz=timezone.utc)


def attempt_times(attempt_ref: str) -> tuple[datetime, datetime]:
    """(first, last) send time of an attempt's messages."""
    _, first = parse_attempt(attempt_ref)
    last = attempt_ref.rpartition("@")[2].partition("~")[2]
    return first, datetime.fromtimestamp(int(last), tz=timezone.utc) if last.isdigit() else first


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
