"""Store webhook events durably, once each, and suppress the addresses that must not be mailed again.

:func:`store_events` runs in one transaction: the events go into ``raw.webhook_events`` (a duplicate on
either the composite ``event_key`` or ``sg_event_id`` is skipped), and bounces, drops, spam reports,
unsubscribes and group unsubscribes add their address to ``campaigns.suppressions`` at once. The caller
acknowledges only after the commit, so an acknowledged event is never lost; a retry of the same batch
stores nothing twice.

Concurrent batches (the receiver's workers, a one-click unsubscribe, a replay) may share events on
either key. Each batch first takes a transaction lock per key it holds, all in one order (of their
hashes), and inserts its rows sorted: two batches naming the same events in different orders wait
for each other instead of deadlocking on the two unique indexes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["SUPPRESSING_EVENTS", "StoredBatch", "event_key", "lock_keys", "normalise", "store_events"]

# event type -> suppression reason (campaigns.suppressions allows a fixed set of reasons)
SUPPRESSING_EVENTS = {"bounce": "bounce", "dropped": "bounce", "spamreport": "spamreport",
                      "unsubscribe": "unsubscribe", "group_unsubscribe": "unsubscribe"}
_CUSTOM_ARGS = ("send_id", "campaign_id", "run_id", "contact_id")
_MAX_TEXT = 2048  # longer identifying fields are cut (the payload keeps them whole)
_EPOCH_MIN, _EPOCH_MAX = 0.0, 253402300799.0  # 1970 .. 9999-12-31


@dataclass(frozen=True)
class StoredBatch:
    received: int
    stored: int  # new rows; received - stored were duplicates
    suppressed: int  # addresses new to campaigns.suppressions


def _clean(value: Any) -> Any:
    """JSON jsonb can hold: no NUL characters, lone surrogates or infinite numbers (legal to Python, not to jsonb)."""
    if isinstance(value, str):
        if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
            value = value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text[:_MAX_TEXT] if text else None


def _timestamp(value: Any) -> dt.datetime | None:
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(seconds) or not _EPOCH_MIN <= seconds <= _EPOCH_MAX:
        return None
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


def event_key(event: Mapping[str, Any]) -> str:
    """The composite key: the same event reported again (with or without its sg_event_id) gets the same key."""
    parts = [_text(event.get("event")), _text(event.get("sg_message_id")) or _text(event.get("send_id")),
             (_text(event.get("email")) or "").lower(), _text(event.get("timestamp")), _text(event.get("url"))]
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode("utf-8")).hexdigest()


def normalise(event: Mapping[str, Any], *, received_at: dt.datetime, source: str = "webhook") -> dict[str, Any]:
    """One ``raw.webhook_events`` row for an event object (any type, any extra fields)."""
    clean = _clean(dict(event))
    kind = _text(clean.get("event"))
    email = _text(clean.get("email"))
    return {
        "event_key": event_key(clean),
        "sg_event_id": _text(clean.get("sg_event_id")),
        "event": kind.lower() if kind else None,
        "event_ts": _timestamp(clean.get("timestamp")),
        "email": email.lower() if email else None,
        "sg_message_id": _text(clean.get("sg_message_id")),
        "url": _text(clean.get("url")),
        "machine_open": _truthy(clean.get("sg_machine_open")),
        **{name: _text(clean.get(name)) for name in _CUSTOM_ARGS},
        "payload": clean,
        "received_at": received_at,
        "source": source,
    }


_COLUMNS = ("event_key", "sg_event_id", "event", "event_ts", "email", "sg_message_id", "url", "machine_open",
            "send_id", "campaign_id", "run_id", "contact_id", "payload", "received_at", "source")

# Rows new on both keys are inserted; the returned rows feed the suppressions of the same transaction.
_INSERT = sa.text(f"""
insert into raw.webhook_events ({", ".join(_COLUMNS)})
select {", ".join(f"r.{c}" for c in _COLUMNS)}
from jsonb_to_recordset(cast(:rows as jsonb)) as r (
    event_key text, sg_event_id text, event text, event_ts timestamptz, email text, sg_message_id text,
    url text, machine_open boolean, send_id text, campaign_id text, run_id text, contact_id text,
    payload jsonb, received_at timestamptz, source text
)
on conflict do nothing
returning event_key
""")

# The ledger supplies the contact when an event lacks it (custom_args carry the send id).
_SUPPRESS = sa.text("""
insert into campaigns.suppressions (email, contact_id, reason, source, created_at)
select distinct on (e.email)
    e.email,
    coalesce(e.contact_id, l.contact_id),
    case e.event when 'spamreport' then 'spamreport'
        when 'unsubscribe' then 'unsubscribe' when 'group_unsubscribe' then 'unsubscribe'
        else 'bounce' end,
    e.source,
    coalesce(e.event_ts, e.received_at)
from raw.webhook_events as e
left join campaigns.send_ledger as l on e.send_id = l.send_id
where e.event_key = any(cast(:keys as text[]))
    and e.event in ('bounce', 'dropped', 'spamreport', 'unsubscribe', 'group_unsubscribe')
    and coalesce(e.email, '') <> ''
order by e.email, coalesce(e.event_ts, e.received_at), e.event_key
on conflict (email) do nothing
""")


# One advisory lock per key, taken in the order of their 64-bit hashes (a collision only serialises
# two batches that needed no serialising).
_LOCK_KEYS = sa.text("""
select count(pg_advisory_xact_lock(k.h))
from (
    select distinct hashtextextended(x.key, 0) as h
    from unnest(cast(:keys as text[])) as x (key)
    order by h
) as k
""")


def lock_keys(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """The lock names a batch of normalised rows needs: each event_key and each sg_event_id."""
    names = {f"raw.webhook_events.event_key:{r['event_key']}" for r in rows}
    names |= {f"raw.webhook_events.sg_event_id:{r['sg_event_id']}" for r in rows if r.get("sg_event_id")}
    return sorted(names)


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def store_events(conn: Connection, events: Iterable[Mapping[str, Any]], *, received_at: dt.datetime,
                 source: str = "webhook") -> StoredBatch:
    """Insert in the caller's transaction (commit before acknowledging)."""
    rows = [normalise(e, received_at=received_at, source=source) for e in events]
    if not rows:
        return StoredBatch(0, 0, 0)
    conn.execute(_LOCK_KEYS, {"keys": lock_keys(rows)})
    rows.sort(key=lambda r: (r["event_key"], r["sg_event_id"] or ""))
    data = json.dumps(rows, ensure_ascii=False, default=_iso)
    new: Sequence[str] = conn.execute(_INSERT, {"rows": data}).scalars().all()
    suppressed = 0
    if new:
        suppressed = int(conn.execute(_SUPPRESS, {"keys": list(new)}).rowcount or 0)
    return StoredBatch(received=len(rows), stored=len(new), suppressed=suppressed)
