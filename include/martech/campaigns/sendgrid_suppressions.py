"""Merge SendGrid's own suppression lists into ``campaigns.suppressions``.

SendGrid keeps addresses it will not deliver to: bounces, invalid addresses, spam reports, global
unsubscribes and the unsubscribes of an unsubscribe group (``asm``). When the SendGrid transport is
connected, the email-events stage pulls these lists (``start_time`` = the newest pull, ``limit`` / ``offset``
pages of 500) and adds every address with its reason, so a suppression made at SendGrid — for example an
unsubscribe through SendGrid's own footer link — also stops every other transport and campaign.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from martech.campaigns.suppressions import Suppression, add_suppressions

PAGE = 500
LISTS = (  # (path, martech reason)
    ("suppression/bounces", "bounce"),
    ("suppression/invalid_emails", "bounce"),
    ("suppression/spam_reports", "spamreport"),
    ("suppression/unsubscribes", "unsubscribe"),
)


def _pages(client: Any, path: str, start_time: int | None) -> Iterator[dict[str, Any]]:
    node = client
    for part in path.split("/"):
        node = node._(part)
    offset = 0
    while True:
        params: dict[str, Any] = {"limit": PAGE, "offset": offset}
        if start_time is not None:
            params["start_time"] = start_time
        response = node.get(query_params=params)
        rows = json.loads(response.body or b"[]")
        yield from rows
        if len(rows) < PAGE:
            return
        offset += PAGE


def fetch(client: Any, *, start_time: int | None = None, asm_group_id: int | None = None) -> list[Suppression]:
    """Every address on SendGrid's lists (added since ``start_time``, unix seconds), as Suppressions."""
    out: list[Suppression] = []
    for path, reason in LISTS:
        for row in _pages(client, path, start_time):
            created = datetime.fromtimestamp(int(row.get("created") or 0), tz=timezone.utc)
            out.append(Suppression(email=row["email"], contact_id=None, reason=reason,
                                   source=f"sendgrid:{path.split('/')[-1]}", created_at=created))
    if asm_group_id is not None:
        response = client.asm.groups._(str(asm_group_id)).suppressions.get()
        now = datetime.now(timezone.utc)
        for email in json.loads(response.body or b"[]"):
            out.append(Suppression(email=email, contact_id=None, reason="unsubscribe",
                                   source=f"sendgrid:asm_group_{asm_group_id}", created_at=now))
    return out


def merge(conn: Any, client: Any, *, asm_group_id: int | None = None) -> int:
    """Pull SendGrid's lists (incrementally from the newest SendGrid suppression known) and add them."""
    import sqlalchemy as sa

    newest = conn.execute(sa.text(
        "select extract(epoch from max(created_at))::bigint from campaigns.suppressions"
        " where source like 'sendgrid:%' and source not like 'sendgrid:asm_group_%'")).scalar()
    return add_suppressions(conn, fetch(client, start_time=newest, asm_group_id=asm_group_id))
