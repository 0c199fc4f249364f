"""``campaigns.campaign_runs``: one row per campaign run and step, and the only module that writes it.

Two moments write a run's row. The send (:mod:`martech.campaigns.dispatch`) records what the ledger
says of the run as it ends (:func:`record_outcome`: sent, in doubt, retrying, given up, its state); the
runner (:mod:`martech.campaigns.runner`) then recounts every run it touched from the audience snapshot
and the ledger (:func:`record_counts`), which also settles an earlier hour a later run re-dispatched.
Both are upserts on (campaign_id, run_id), so a rerun of the run rewrites the same row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

__all__ = ["RunOutcome", "record_counts", "record_outcome"]

_UPSERT_OUTCOME = sa.text("""
insert into campaigns.campaign_runs (campaign_id, run_id, run_date, definition_hash, conversion_window_days,
    members, treatment, holdout, sent, transport, dispatch_state, in_doubt, retrying, abandoned,
    next_attempt_at)
values (:campaign_id, :run_id, :run_date, :definition_hash, :window, :members, :treatment, :holdout, :sent,
    :transport, :state, :in_doubt, :retrying, :abandoned, :next_attempt_at)
on conflict (campaign_id, run_id) do update set sent = excluded.sent, transport = excluded.transport,
    dispatch_state = excluded.dispatch_state, in_doubt = excluded.in_doubt, retrying = excluded.retrying,
    abandoned = excluded.abandoned, next_attempt_at = excluded.next_attempt_at
""")

# Counted in the statement itself, so the row agrees with the snapshot and the ledger as committed.
_UPSERT_COUNTS = sa.text("""
insert into campaigns.campaign_runs (campaign_id, run_id, run_date, definition_hash, conversion_window_days,
    members, treatment, holdout, sent, transport)
select :c, :r, :d, :h, :w,
    (select count(*) from audiences.audience_members where campaign_id = :c and run_id = :r),
    (select count(*) from audiences.audience_members where campaign_id = :c and run_id = :r and arm = 'treatment'),
    (select count(*) from audiences.audience_members where campaign_id = :c and run_id = :r and arm = 'holdout'),
    (select count(*) from campaigns.send_ledger where campaign_id = :c and run_id = :r and status = 'sent'),
    :tr
on conflict (campaign_id, run_id) do update set definition_hash = excluded.definition_hash,
    conversion_window_days = excluded.conversion_window_days, members = excluded.members,
    treatment = excluded.treatment, holdout = excluded.holdout, sent = excluded.sent,
    transport = excluded.transport
""")


@dataclass(frozen=True)
class RunOutcome:
    """What one send of a (campaign, run, step) ended with, as the ledger counts it."""

    members: int
    treatment: int
    holdout: int
    sent: int
    complete: bool
    in_doubt: int
    retrying: int
    abandoned: int
    next_attempt_at: dt.datetime | None


def record_outcome(conn: Any, spec: Any, run_id: str, run_date: dt.date, transport: str,
                   outcome: RunOutcome) -> None:
    """Upsert the run's row with the send's outcome (its counts and ``dispatch_state``)."""
    conn.execute(_UPSERT_OUTCOME, {
        "campaign_id": spec.id, "run_id": run_id, "run_date": run_date,
        "definition_hash": spec.definition_hash, "window": spec.conversion_window_days,
        "members": outcome.members, "treatment": outcome.treatment, "holdout": outcome.holdout,
        "sent": outcome.sent, "transport": transport,
        "state": "complete" if outcome.complete else "incomplete", "in_doubt": outcome.in_doubt,
        "retrying": outcome.retrying, "abandoned": outcome.abandoned,
        "next_attempt_at": outcome.next_attempt_at})


def record_counts(conn: Any, spec: Any, run_id: str, run_date: dt.date, transport: str) -> None:
    """Upsert the run's row with its members, arms and sends recounted from the snapshot and the ledger."""
    conn.execute(_UPSERT_COUNTS, {"c": spec.id, "r": run_id, "d": run_date, "h": spec.definition_hash,
                                  "w": spec.conversion_window_days, "tr": transport})
