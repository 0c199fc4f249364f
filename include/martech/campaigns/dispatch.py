"""Send a campaign run to its treatment arm exactly once, through ``campaigns.send_ledger``.

The protocol, per (campaign, run, step):

1. Plan: one ledger row per treatment member of the snapshot, status ``pending``, inserted with
   ``on conflict do nothing`` and committed before anything is sent. The send id is deterministic
   (:func:`make_send_id`), so a rerun plans nothing new for members already planned.
2. Claim: for a batch of due rows, ``attempts`` is incremented and committed *before* the transport
   is called. A ``pending`` row with ``attempts > 0`` is therefore one whose send may or may not have
   happened (the process died in between).
3. Send the batch, then record each result: ``sent`` (message id, ``sent_at`` = the run's timestamp)
   or ``failed`` (error text).

On a rerun ``sent`` rows are left alone; ``failed`` rows are retried up to ``max_attempts``; rows in
doubt are resent only through an idempotent transport (the outbox rewrites the same file). For a
non-idempotent transport they stay ``pending`` and are reported as ``uncertain`` until reconciled
against email events (which carry the send id). Rows whose contact was suppressed, or left the
snapshot's treatment arm, after planning are marked ``skipped`` with the reason in ``error``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from martech.campaigns.audience import as_run_date
from martech.campaigns.render import Recipient, Renderer, RenderError
from martech.campaigns.spec import CampaignSpec
from martech.campaigns.transports import DEFAULT_SENDER, OutboundMessage, SendResult, Transport

__all__ = ["DispatchInProgressError", "DispatchSummary", "dispatch", "make_send_id"]

DEFAULT_MAX_ATTEMPTS = 3


class DispatchInProgressError(RuntimeError):
    """Another process is dispatching the same campaign run right now."""


@dataclass(frozen=True)
class DispatchSummary:
    campaign_id: str
    run_id: str
    step: int
    members: int
    treatment: int
    holdout: int
    ledger_rows_created: int
    sent_now: int
    already_sent: int
    failed: int
    skipped: int = 0
    uncertain: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_send_id(campaign_id: str, run_id: str, step: int, contact_id: str) -> str:
    """First 32 hex digits of sha256(``campaign_id|run_id|step|contact_id``).

    The plan step computes the same value in SQL; a test keeps the two in step.
    """
    return hashlib.sha256(f"{campaign_id}|{run_id}|{step}|{contact_id}".encode()).hexdigest()[:32]


_SEND_ID_SQL = (
    "left(encode(sha256(convert_to("
    "m.campaign_id || '|' || m.run_id || '|' || cast(:step as integer)::text || '|' || m.contact_id, "
    "'UTF8')), 'hex'), 32)"
)

_PLAN = sa.text(f"""
insert into campaigns.send_ledger
    (send_id, campaign_id, run_id, step, contact_id, email, variant, status, attempts, created_at)
select {_SEND_ID_SQL}, m.campaign_id, m.run_id, :step, m.contact_id, m.email, m.variant, 'pending', 0, :now
from audiences.audience_members as m
where m.campaign_id = :campaign_id and m.run_id = :run_id and m.arm = 'treatment'
order by m.contact_id
on conflict do nothing
""")

_COUNTS = sa.text("""
select
    count(*) as members,
    count(*) filter (where arm = 'treatment') as treatment,
    count(*) filter (where arm = 'holdout') as holdout
from audiences.audience_members
where campaign_id = :campaign_id and run_id = :run_id
""")

_ALREADY_SENT = sa.text("""
select count(*) from campaigns.send_ledger
where campaign_id = :campaign_id and run_id = :run_id and step = :step and status = 'sent'
""")

# Every row not yet sent, with what is needed to decide, render and send it.
_DUE = sa.text("""
select
    l.send_id, l.contact_id, l.email, l.variant, l.status, l.attempts,
    m.arm, m.first_name, m.attributes,
    (
        select s.reason from campaigns.suppressions as s
        where s.email = lower(btrim(l.email)) or s.contact_id = l.contact_id
        order by s.email limit 1
    ) as suppressed_reason
from campaigns.send_ledger as l
left join audiences.audience_members as m
    on l.campaign_id = m.campaign_id and l.run_id = m.run_id and l.contact_id = m.contact_id
where l.campaign_id = :campaign_id and l.run_id = :run_id and l.step = :step
  and l.status in ('pending', 'failed')
order by l.send_id
""")

_CLAIM = sa.text("""
update campaigns.send_ledger
set attempts = attempts + 1, transport = :transport
where send_id = any(cast(:ids as text[]))
""")

_MARK_SENT = sa.text("""
update campaigns.send_ledger as l
set status = 'sent', message_id = u.message_id, sent_at = :now, error = null
from unnest(cast(:ids as text[]), cast(:message_ids as text[])) as u(send_id, message_id)
where l.send_id = u.send_id
""")

_MARK = sa.text("""
update campaigns.send_ledger as l
set status = :status, error = u.error
from unnest(cast(:ids as text[]), cast(:errors as text[])) as u(send_id, error)
where l.send_id = u.send_id
""")

_MARK_RENDER_FAILED = sa.text("""
update campaigns.send_ledger as l
set status = 'failed', error = u.error, attempts = l.attempts + 1
from unnest(cast(:ids as text[]), cast(:errors as text[])) as u(send_id, error)
where l.send_id = u.send_id
""")


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + size]


def _mark(engine: Engine, status: str, pairs: list[tuple[str, str]]) -> None:
    if pairs:
        with engine.begin() as conn:
            conn.execute(_MARK, {"status": status, "ids": [p[0] for p in pairs],
                                 "errors": [p[1] for p in pairs]})


def _lock(conn: Connection, key: str) -> None:
    got = conn.execute(sa.text("select pg_try_advisory_lock(hashtext(:key))"), {"key": key}).scalar_one()
    conn.commit()
    if not got:
        raise DispatchInProgressError(f"{key} is being dispatched by another process; try again later")


def dispatch(engine: Engine, spec: CampaignSpec, run_date: date | str, transport: Transport, *,
             now: datetime, step: int = 1, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
             sender: str = DEFAULT_SENDER, renderer: Renderer | None = None) -> DispatchSummary:
    """Plan and send the treatment arm of the run's snapshot; safe to rerun at any point.

    ``now`` is the run's timestamp (timezone-aware): it becomes ``created_at`` of new ledger rows,
    ``sent_at`` of sent ones and the Date header, so a rerun reproduces the same messages.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware (the run's timestamp), got {now!r}")
    run_id = as_run_date(run_date).isoformat()
    renderer = renderer or Renderer()
    key = {"campaign_id": spec.id, "run_id": run_id, "step": step}
    lock_key = f"martech.dispatch:{spec.id}:{run_id}:{step}"

    # A session-level lock held on its own connection for the whole dispatch: two dispatchers of one
    # run would otherwise both claim and send the same pending rows.
    with engine.connect() as lock_conn:
        _lock(lock_conn, lock_key)
        try:
            with engine.begin() as conn:
                counts = conn.execute(_COUNTS, key).one()
                already_sent = int(conn.execute(_ALREADY_SENT, key).scalar_one())
                created = conn.execute(_PLAN, {**key, "now": now}).rowcount
            # The plan is committed: from here on every send has its ledger row.
            with engine.connect() as conn:
                due = conn.execute(_DUE, key).mappings().all()

            skipped: list[tuple[str, str]] = []
            retry: list[Any] = []
            uncertain = 0
            for row in due:
                if row["suppressed_reason"] is not None:
                    skipped.append((row["send_id"], f"suppressed: {row['suppressed_reason']}"))
                elif row["arm"] != "treatment":
                    why = "not in the audience snapshot any more" if row["arm"] is None else "now in holdout"
                    skipped.append((row["send_id"], why))
                elif row["status"] == "failed" and row["attempts"] >= max_attempts:
                    continue
                elif row["status"] == "pending" and row["attempts"] > 0 and not transport.idempotent:
                    uncertain += 1
                else:
                    retry.append(row)
            _mark(engine, "skipped", skipped)

            sent_now = failed = 0
            for batch in _chunks(retry, transport.batch_size):
                messages: list[OutboundMessage] = []
                render_failures: list[tuple[str, str]] = []
                for row in batch:
                    try:
                        messages.append(_message(spec, row, run_id, step, now, sender, renderer))
                    except (RenderError, KeyError) as exc:
                        render_failures.append((row["send_id"], str(exc)))
                if render_failures:
                    with engine.begin() as conn:
                        conn.execute(_MARK_RENDER_FAILED, {"ids": [p[0] for p in render_failures],
                                                           "errors": [p[1] for p in render_failures]})
                    failed += len(render_failures)
                if not messages:
                    continue
                with engine.begin() as conn:
                    conn.execute(_CLAIM, {"ids": [m.send_id for m in messages], "transport": transport.name})
                results = transport.send_batch(messages)
                sent, errors = _split_results(messages, results)
                if sent:
                    with engine.begin() as conn:
                        conn.execute(_MARK_SENT, {"ids": [s.send_id for s in sent],
                                                  "message_ids": [s.message_id for s in sent], "now": now})
                _mark(engine, "failed", errors)
                sent_now += len(sent)
                failed += len(errors)
            transport.finalize_run(spec.id, run_id)
        finally:
            lock_conn.execute(sa.text("select pg_advisory_unlock(hashtext(:key))"), {"key": lock_key})
            lock_conn.commit()

    return DispatchSummary(
        campaign_id=spec.id, run_id=run_id, step=step, members=int(counts.members),
        treatment=int(counts.treatment), holdout=int(counts.holdout), ledger_rows_created=int(created),
        sent_now=sent_now, already_sent=already_sent, failed=failed, skipped=len(skipped),
        uncertain=uncertain,
    )


def _message(spec: CampaignSpec, row: Any, run_id: str, step: int, now: datetime, sender: str,
             renderer: Renderer) -> OutboundMessage:
    attributes = row["attributes"]
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    recipient = Recipient(contact_id=row["contact_id"], email=row["email"], first_name=row["first_name"],
                          attributes=attributes or {}, send_id=row["send_id"])
    rendered = renderer.render(spec, row["variant"], recipient)
    return OutboundMessage(
        send_id=row["send_id"], to=row["email"], sender=sender, subject=rendered.subject,
        html=rendered.html, text=rendered.text, sent_at=now, headers=rendered.headers,
        custom_args={"send_id": row["send_id"], "campaign_id": spec.id, "run_id": run_id,
                     "contact_id": row["contact_id"], "variant": row["variant"], "step": str(step)},
    )


def _split_results(messages: Sequence[OutboundMessage], results: Sequence[SendResult]
                   ) -> tuple[list[SendResult], list[tuple[str, str]]]:
    by_id = {r.send_id: r for r in results}
    sent: list[SendResult] = []
    errors: list[tuple[str, str]] = []
    for message in messages:
        result = by_id.get(message.send_id)
        if result is None:
            # Claimed but unanswered: leave it pending (in doubt) rather than guess.
            continue
        if result.ok and result.message_id:
            sent.append(result)
        else:
            errors.append((message.send_id, result.error or "transport returned no message id"))
    return sent, errors
