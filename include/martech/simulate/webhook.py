"""The simulated ESP posts its events to the event webhook, signed, as SendGrid does.

:func:`webhook_poster` gives a ``post_events`` for :func:`martech.simulate.play_responses`: it runs the real
receiver (:func:`martech.events.webhook.create_app`) in process with a key pair of its own, signs each batch
over the timestamp and the exact body bytes, and fails loudly on any answer but 200 — the events take the
production path (signature, durable store, dedupe, suppressions), not a side door.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

__all__ = ["webhook_poster"]


def webhook_poster(engine: Engine, *, batch: int = 1000) -> Callable[[list[dict[str, Any]]], int]:
    """A function posting events in batches of ``batch``; it returns how many were newly stored."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from fastapi.testclient import TestClient

    from martech.events import signature
    from martech.events.webhook import EVENTS_PATH, WebhookSettings, create_app

    private = ec.generate_private_key(ec.SECP256R1())
    client = TestClient(create_app(engine, WebhookSettings(public_key=signature.public_key_text(private))))

    def post(events: list[dict[str, Any]]) -> int:
        stored = 0
        for start in range(0, len(events), batch):
            body = json.dumps(events[start:start + batch], ensure_ascii=False).encode("utf-8") + b"\r\n"
            stamp = str(int(time.time()))
            answer = client.post(EVENTS_PATH, content=body, headers={
                "Content-Type": "application/json", signature.TIMESTAMP_HEADER: stamp,
                signature.SIGNATURE_HEADER: signature.sign(private, stamp.encode("ascii"), body)})
            if answer.status_code != 200:
                raise RuntimeError(f"the event webhook answered {answer.status_code}: {answer.text[:200]}")
            stored += int(answer.json()["stored"])
        return stored

    return post
