"""Add addresses to ``campaigns.suppressions`` (one row per email address never to be mailed again).

Emails are stored trimmed and lower-cased (the table checks it). The first reason recorded for an
address wins: a later bounce does not overwrite an unsubscribe.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["REASONS", "Suppression", "add_suppressions", "normalize_email"]

REASONS = ("unsubscribe", "bounce", "spamreport", "manual", "sunset")

_INSERT = sa.text("""
insert into campaigns.suppressions (email, contact_id, reason, source, created_at)
select * from unnest(
    cast(:emails as text[]), cast(:contact_ids as text[]), cast(:reasons as text[]),
    cast(:sources as text[]), cast(:created_ats as timestamptz[])
)
on conflict (email) do nothing
""")


@dataclass(frozen=True)
class Suppression:
    email: str
    reason: str
    created_at: datetime
    contact_id: str | None = None
    source: str | None = None


def normalize_email(email: str) -> str:
    return email.strip().lower()


def add_suppressions(conn: Connection, suppressions: Iterable[Suppression]) -> int:
    """Insert in the caller's transaction; returns how many addresses were new."""
    rows: dict[str, Suppression] = {}
    for s in suppressions:
        if s.reason not in REASONS:
            raise ValueError(f"suppression reason must be one of {', '.join(REASONS)}, got {s.reason!r}")
        email = normalize_email(s.email)
        if not email:
            raise ValueError(f"suppression needs an email address, got {s.email!r}")
        rows.setdefault(email, s)  # the first reason per address wins here as in the table
    if not rows:
        return 0
    # In address order: concurrent writers (sunset, events, operators) then take the row locks of
    # the addresses they share in one order and cannot deadlock.
    values = sorted(rows.items())
    result = conn.execute(_INSERT, {
        "emails": [e for e, _ in values],
        "contact_ids": [s.contact_id for _, s in values],
        "reasons": [s.reason for _, s in values],
        "sources": [s.source for _, s in values],
        "created_ats": [s.created_at for _, s in values],
    })
    return int(result.rowcount)
