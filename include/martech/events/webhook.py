"""``martech webhook``: the HTTP receiver of SendGrid's signed Event Webhook and of one-click unsubscribes.

``POST /sendgrid/events``
    Checks, in this order: both signature headers present (else 401), the timestamp readable and within
    ``max_skew_seconds`` of the clock (else 403), the body within ``max_body_bytes`` (else 413), the ECDSA
    signature over the timestamp header bytes and the raw body (else 403), the body a JSON array of
    objects (else 400). Then the events are committed to ``raw.webhook_events`` (suppressions included)
    and only then answered 200, so SendGrid's retry covers every event not stored. A retried batch is
    answered 200 again and stores nothing twice.

``GET /unsubscribe/<token>`` (or ``/unsubscribe?token=<token>``, the form the templates link to)
    A confirmation page whose button POSTs; a GET never unsubscribes, because link scanners follow GETs.

``POST /unsubscribe/<token>`` with the form body ``List-Unsubscribe=One-Click`` (RFC 8058)
    Verifies the HMAC token (:mod:`martech.campaigns.unsubscribe`), records an ``unsubscribe`` event for
    the send and suppresses its address in the same transaction.

Configuration (:meth:`WebhookSettings.from_env`): ``MARTECH_SENDGRID_WEBHOOK_KEY`` (the verification key
as SendGrid shows it), ``MARTECH_WEBHOOK_MAX_SKEW`` (seconds, default 300), ``MARTECH_WEBHOOK_MAX_BODY``
(bytes, default 8 MiB) and ``MARTECH_UNSUBSCRIBE_SECRET`` (comma-separated while rotating).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from martech.campaigns import unsubscribe
from martech.events import signature
from martech.events.store import StoredBatch, store_events

__all__ = ["KEY_ENV", "WebhookSettings", "app_from_env", "create_app"]

log = logging.getLogger("martech.events.webhook")

KEY_ENV = "MARTECH_SENDGRID_WEBHOOK_KEY"
EVENTS_PATH = "/sendgrid/events"
_FORM_LIMIT = 8192  # an RFC 8058 body is 26 bytes


@dataclass(frozen=True)
class WebhookSettings:
    public_key: str
    max_skew_seconds: int = 300
    max_body_bytes: int = 8 * 1024 * 1024
    unsubscribe_secrets: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if environ is None else environ
        key = (env.get(KEY_ENV) or "").strip()
        if not key:
            raise ValueError(f"{KEY_ENV} is not set: paste the Event Webhook's verification key from SendGrid "
                             "(Settings → Mail Settings → Event Webhook → Signature verification)")
        secrets = tuple(s.strip() for s in (env.get(unsubscribe.SECRET_ENV) or "").split(",") if s.strip())
        return cls(public_key=key, max_skew_seconds=int(env.get("MARTECH_WEBHOOK_MAX_SKEW", "300")),
                   max_body_bytes=int(env.get("MARTECH_WEBHOOK_MAX_BODY", str(8 * 1024 * 1024))),
                   unsubscribe_secrets=secrets or (unsubscribe.secret_from_env(env),))


class _Reject(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _Reject(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise _Reject(413, f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Reject(413, f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_events(body: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Reject(400, f"the body is not JSON: {str(exc)[:100]}") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise _Reject(400, "the body must be a JSON array of event objects")
    return data


def _check_timestamp(raw: str, now: float, skew: int) -> None:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise _Reject(403, f"{signature.TIMESTAMP_HEADER} is not a Unix time in seconds")
    if abs(now - int(raw)) > skew:
        raise _Reject(403, f"{signature.TIMESTAMP_HEADER} is more than {skew} s from the receiver's clock")


_CONFIRM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>Unsubscribe</title></head>
<body><h1>Unsubscribe</h1><p>{text}</p>{form}</body></html>"""


def _page(text: str, status: int = 200, form: str = "") -> HTMLResponse:
    return HTMLResponse(_CONFIRM.format(text=html.escape(text), form=form), status_code=status)


def create_app(engine: Engine, settings: WebhookSettings, *,
               clock: Callable[[], float] = time.time) -> FastAPI:
    """The receiver; ``clock`` gives the time in seconds (injected by tests and the simulator's replay)."""
    key = signature.load_public_key(settings.public_key)
    secrets = settings.unsubscribe_secrets or (unsubscribe.secret_from_env(),)
    app = FastAPI(title="martech event webhook", docs_url=None, redoc_url=None)

    def _store(events: list[dict[str, Any]], source: str) -> StoredBatch:
        received = dt.datetime.fromtimestamp(clock(), tz=dt.timezone.utc)
        with engine.begin() as conn:
            return store_events(conn, events, received_at=received, source=source)

    @app.exception_handler(_Reject)
    async def _rejected(_request: Request, exc: _Reject) -> Response:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(EVENTS_PATH)
    async def receive_events(request: Request) -> Response:
        sig = request.headers.get(signature.SIGNATURE_HEADER)
        stamp = request.headers.get(signature.TIMESTAMP_HEADER)
        if not sig or not stamp:
            raise _Reject(401, f"{signature.SIGNATURE_HEADER} and {signature.TIMESTAMP_HEADER} are required")
        _check_timestamp(stamp, clock(), settings.max_skew_seconds)
        body = await _read_body(request, settings.max_body_bytes)
        # Headers are latin-1 on the wire: these are the bytes SendGrid signed.
        if not signature.verify(key, sig, stamp.encode("latin-1"), body):
            raise _Reject(403, "the signature does not match the body and timestamp")
        events = _parse_events(body)
        try:
            stored = await run_in_threadpool(_store, events, "webhook")
        except sa.exc.OperationalError:
            log.exception("the warehouse is unavailable; SendGrid will retry the batch")
            return JSONResponse({"detail": "the warehouse is unavailable, retry later"}, status_code=503)
        return JSONResponse({"received": stored.received, "stored": stored.stored, "suppressed": stored.suppressed})

    def _payload(token: str) -> unsubscribe.UnsubscribePayload:
        try:
            return unsubscribe.verify(token, secrets)
        except unsubscribe.InvalidToken as exc:
            raise _Reject(400, f"this unsubscribe link is not valid ({exc})") from None

    def _one_click(payload: unsubscribe.UnsubscribePayload) -> bool:
        with engine.connect() as conn:
            row = conn.execute(sa.text("select email, run_id from campaigns.send_ledger where send_id = :s"),
                               {"s": payload.send_id}).one_or_none()
        if row is None:
            return False
        event = {"event": "unsubscribe", "email": row.email, "timestamp": int(clock()),
                 "sg_event_id": f"one_click:{payload.send_id}", "send_id": payload.send_id,
                 "campaign_id": payload.campaign_id, "run_id": row.run_id, "contact_id": payload.contact_id}
        _store([event], "one_click")
        return True

    async def confirm(request: Request, token: str) -> HTMLResponse:
        _payload(token)
        action = html.escape(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        form = (f'<form method="post" action="{action}">'
                '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
                '<button type="submit">Unsubscribe me</button></form>')
        return _page("Press the button to stop receiving these emails.", form=form)

    async def one_click(request: Request, token: str) -> HTMLResponse:
        body = await _read_body(request, _FORM_LIMIT)
        form = parse_qs(body.decode("utf-8", "replace"))
        multipart = b'name="List-Unsubscribe"' in body and b"One-Click" in body
        if form.get("List-Unsubscribe") != ["One-Click"] and not multipart:
            raise _Reject(400, "a one-click unsubscribe posts List-Unsubscribe=One-Click")
        payload = _payload(token)
        if not await run_in_threadpool(_one_click, payload):
            return _page("We could not find the email this link came from.", status=404)
        return _page("You are unsubscribed. You will not receive these emails any more.")

    @app.get("/unsubscribe/{token}", response_class=HTMLResponse)
    async def confirm_path(request: Request, token: str) -> HTMLResponse:
        return await confirm(request, token)

    @app.post("/unsubscribe/{token}", response_class=HTMLResponse)
    async def one_click_path(request: Request, token: str) -> HTMLResponse:
        return await one_click(request, token)

    @app.get("/unsubscribe", response_class=HTMLResponse)
    async def confirm_query(request: Request, token: str = "") -> HTMLResponse:
        return await confirm(request, token)

    @app.post("/unsubscribe", response_class=HTMLResponse)
    async def one_click_query(request: Request, token: str = "") -> HTMLResponse:
        return await one_click(request, token)

    return app


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory`` / ``martech webhook``: warehouse and settings from the environment."""
    from martech.db import make_engine, migrate
    from martech.warehouse import resolve_url

    engine = make_engine(resolve_url(), pool_size=10, max_overflow=10)
    migrate(engine)
    return create_app(engine, WebhookSettings.from_env())
