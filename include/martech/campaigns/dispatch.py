"""Send a campaign run to its treatment arm exactly once, through ``campaigns.send_ledger``.

The protocol, per (campaign, run, step) — the full argument, crash point by crash point, is in
``docs/exactly-once.md``:

1. Plan: one ledger row per treatment member of the snapshot, status ``pending``, inserted with
   ``on conflict do nothing`` and committed before anything is sent. The send id is deterministic
   (:func:`make_send_id`), so a rerun plans nothing new for members already planned.
2. Claim: for each request, ``attempts`` is incremented and the transport's attempt reference
   (SendGrid: a fresh batch id and the scheduled send time) is committed *before* the request. A
   ``pending`` row with ``attempts > 0`` is one whose send may or may not have happened.
3. Send, then record each result: ``sent`` (message id, ``sent_at`` = the run's timestamp) or
   ``failed`` (definite error: the provider did not accept it). No answer leaves the rows in doubt.
4. Rows in doubt (from a crash, a timeout or a 5xx) are resolved before anything else: an idempotent
   transport (outbox) simply sends again; email events that carry the send id prove a send happened
   (``sent``); SendGrid's own records (Email Activity, once the attempt's send times have passed) say
   which were processed (``sent``) and which were not (sent again); a confirmed cancel of the attempt's
   scheduled batch releases the rows to be sent again. Anything else stays ``pending`` and is reported
   as ``uncertain`` — never resent blindly — with the time at which SendGrid's records will tell.

``failed`` rows are retried by later runs with exponential back-off (``next_attempt_at``; SendGrid's
``Retry-After`` when longer) until ``retry_deadline`` after their first attempt; after that they are
reported as given up. A run that ends with rows in doubt, waiting for a retry or newly given up records
that in ``campaigns.campaign_runs`` (through :mod:`martech.campaigns.run_ledger`) and raises
:class:`DispatchIncompleteError` (the Airflow task fails; its retry, or the next run, settles them).
Rows whose contact was suppressed, or left the snapshot's treatment arm, after planning are marked
``skipped`` with the reason in ``error``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from martech.campaigns.faults import checkpoint
from martech.campaigns.partitions import Partition
from martech.campaigns.render import Recipient, Renderer, RenderError
from martech.campaigns.run_ids import make_send_id, run_id_for
from martech.campaigns.run_ledger import RunOutcome, record_outcome
from martech.campaigns.spec import CampaignSpec
from martech.campaigns.transports import DEFAULT_SENDER, OutboundMessage, SendResult, Transport, build_email
from martech.campaigns.window import scheduled_for

__all__ = ["DispatchInProgressError", "DispatchIncompleteError", "DispatchSummary", "dispatch", "dry_run",
           "make_send_id", "record_run", "write_previews"]

log = logging.getLogger(__name__)

RETRY_DEADLINE = timedelta(hours=24)  # after its first attempt, a row that still fails is given up (reported)
BACKOFF_BASE_S = 30.0  # between runs: 30 s, 1, 2, 4 … minutes, at most BACKOFF_CAP_S
BACKOFF_CAP_S = 1800.0
WHOLE = Partition()  # every contact of the run
IN_RUN_WAIT_S = 120.0  # seconds one run may spend waiting out a provider's failures before leaving them
GAVE_UP = "gave up: "


class DispatchInProgressError(RuntimeError):
    """Another process is dispatching the same campaign run right now."""


class DispatchIncompleteError(RuntimeError):
    """The run ended with rows in doubt, waiting for a retry, or newly given up (recorded, not lost)."""

    def __init__(self, summary: DispatchSummary) -> None:
        super().__init__(summary.describe())
        self.summary = summary


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
    deferred: int = 0  # outside the send window and the transport cannot schedule: sent by a later dispatch
    retrying: int = 0  # not sent yet, to be retried (failed before the deadline, or held back by back-off)
    abandoned: int = 0  # failed past the retry deadline: reported, never resent automatically
    newly_abandoned: int = 0
    next_attempt_at: str | None = None  # when a rerun can settle the earliest of them

    @property
    def incomplete(self) -> bool:
        return bool(self.uncertain or self.retrying or self.newly_abandoned)

    def describe(self) -> str:
        return (f"{self.campaign_id} {self.run_id} step {self.step}: {self.uncertain} in doubt, {self.retrying}"
                f" to retry, {self.abandoned} given up ({self.newly_abandoned} now); next attempt"
                f" {self.next_attempt_at or 'on the next run'}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_SEND_ID_SQL = (
    "left(encode(sha256(convert_to("
    "m.campaign_id || '|' || m.run_id || '|' || cast(:step as integer)::text || '|' || m.contact_id, "
    "'UTF8')), 'hex'), 32)"
)

_PLAN = f"""
insert into campaigns.send_ledger
    (send_id, campaign_id, run_id, step, contact_id, email, variant, status, attempts, created_at)
select {_SEND_ID_SQL}, m.campaign_id, m.run_id, :step, m.contact_id, m.email, m.variant, 'pending', 0, :now
from audiences.audience_members as m
where m.campaign_id = :campaign_id and m.run_id = :run_id and m.arm = 'treatment'{{m}}
order by m.contact_id
on conflict do nothing
"""

_COUNTS = """
select
    count(*) as members,
    count(*) filter (where arm = 'treatment') as treatment,
    count(*) filter (where arm = 'holdout') as holdout
from audiences.audience_members as m
where m.campaign_id = :campaign_id and m.run_id = :run_id{m}
"""

_ALREADY_SENT = """
select count(*) from campaigns.send_ledger as l
where l.campaign_id = :campaign_id and l.run_id = :run_id and l.step = :step and l.status = 'sent'{l}
"""

# Every row not yet sent, with what is needed to decide, render and send it.
_DUE = """
select
    l.send_id, l.contact_id, l.email, l.variant, l.status, l.attempts, l.attempt_ref, l.error,
    l.next_attempt_at, l.first_attempt_at, m.arm, m.first_name, m.attributes, m.send_at, m.send_before,
    (
        select s.reason from campaigns.suppressions as s
        where s.email = lower(btrim(l.email)) or s.contact_id = l.contact_id
        order by s.email limit 1
    ) as suppressed_reason
from campaigns.send_ledger as l
left join audiences.audience_members as m
    on l.campaign_id = m.campaign_id and l.run_id = m.run_id and l.contact_id = m.contact_id
where l.campaign_id = :campaign_id and l.run_id = :run_id and l.step = :step
  and l.status in ('pending', 'failed'){l}
order by l.send_id
"""

_CLAIM = sa.text("""
update campaigns.send_ledger
set attempts = attempts + 1, transport = :transport, attempt_ref = :attempt_ref, status = 'pending',
    first_attempt_at = coalesce(first_attempt_at, :clock), next_attempt_at = null
where send_id = any(cast(:ids as text[]))
""")

# After the provider confirmed the attempt's cancellation: nothing of it can be delivered, resend.
# Rows in doubt that the provider's events prove were sent (the events carry the send id).
def reconcile_from_events(ledger: str, where: str = "") -> sa.TextClause:
    """The statement that settles a run step's rows in doubt in ``ledger`` (the send ledger or the seed
    ledger) that the provider's events prove were sent: the events carry the send id. ``where``: a further
    filter on the ledger rows (alias ``l``)."""
    return sa.text(f"""
update {ledger} as l
set status = 'sent', message_id = coalesce(l.message_id, e.message_id), sent_at = coalesce(l.sent_at, :now),
    error = 'in doubt; confirmed sent by a ' || e.event || ' event'
from (
    select distinct on (send_id) send_id, message_id, event from staging.email_events
    where send_id is not null and event in ('processed', 'delivered', 'deferred', 'bounce', 'dropped', 'open',
                                            'click', 'unsubscribe', 'spamreport', 'group_unsubscribe')
    order by send_id, event_ts
) as e
where l.send_id = e.send_id and l.campaign_id = :campaign_id and l.run_id = :run_id and l.step = :step
  and l.status = 'pending' and l.attempts > 0{where}
""")


_RELEASE = sa.text("""
update campaigns.send_ledger
set status = 'failed', attempt_ref = null, next_attempt_at = null,
    error = 'attempt ' || :attempt_ref || ' ' || :why || '; to be resent'
where send_id = any(cast(:ids as text[])) and attempt_ref = :attempt_ref and status = 'pending'
""")

# In doubt until the provider's records of the attempt are complete.
_WAIT = sa.text("""
update campaigns.send_ledger set next_attempt_at = :at
where send_id = any(cast(:ids as text[])) and status = 'pending'
""")

_GIVE_UP = sa.text("""
update campaigns.send_ledger set error = :prefix || coalesce(error, ''), next_attempt_at = null
where send_id = any(cast(:ids as text[])) and status = 'failed'
""")

_OUTCOME = """
select
    count(*) filter (where l.status = 'sent') as sent,
    count(*) filter (where l.status = 'pending' and l.attempts > 0) as in_doubt,
    count(*) filter (where l.status = 'failed' and coalesce(l.error, '') not like :gave_up) as retrying,
    count(*) filter (where l.status = 'failed' and l.error like :gave_up) as abandoned,
    min(l.next_attempt_at) filter (where l.status in ('pending', 'failed')) as next_attempt_at
from campaigns.send_ledger as l
where l.campaign_id = :campaign_id and l.run_id = :run_id and l.step = :step{l}
"""

# Planned, never claimed: held back (a provider outage, the run's time budget) or outside the send window.
_UNCLAIMED = """
select m.send_at, m.send_before
from campaigns.send_ledger as l
left join audiences.audience_members as m
    on l.campaign_id = m.campaign_id and l.run_id = m.run_id and l.contact_id = m.contact_id
where l.campaign_id = :campaign_id and l.run_id = :run_id and l.step = :step
  and l.status = 'pending' and l.attempts = 0{l}
"""


# Treatment members without a ledger row: a partition that failed before it planned them.
_UNPLANNED = """
select count(*) from audiences.audience_members as m
where m.campaign_id = :campaign_id and m.run_id = :run_id and m.arm = 'treatment'{m}
  and not exists (
      select 1 from campaigns.send_ledger as l
      where l.campaign_id = m.campaign_id and l.run_id = m.run_id and l.step = :step and l.contact_id = m.contact_id
  )
"""


def _sql(template: str, partition: Partition) -> sa.TextClause:
    """A statement of this module restricted to ``partition`` (its members ``m``, its ledger rows ``l``)."""
    return sa.text(template.format(m=partition.where("m.contact_id"), l=partition.where("l.contact_id")))

_MARK_SENT = sa.text("""
update campaigns.send_ledger as l
set status = 'sent', message_id = u.message_id, sent_at = :now, error = null
from unnest(cast(:ids as text[]), cast(:message_ids as text[])) as u(send_id, message_id)
where l.send_id = u.send_id
""")

# Failed rows wait before the next run retries them: exponential in their attempts, or what the
# provider asked for (Retry-After) when that is longer.
_MARK = sa.text("""
update campaigns.send_ledger as l
set status = :status, error = u.error,
    next_attempt_at = case when :status = 'failed' then cast(:clock as timestamptz) + make_interval(secs => greatest(
        cast(:retry_after as double precision),
        least(cast(:cap as double precision),
              cast(:base as double precision) * power(2, greatest(l.attempts - 1, 0))))) end
from unnest(cast(:ids as text[]), cast(:errors as text[])) as u(send_id, error)
where l.send_id = u.send_id
""")

_MARK_RENDER_FAILED = sa.text("""
update campaigns.send_ledger as l
set status = 'failed', error = u.error, attempts = l.attempts + 1,
    first_attempt_at = coalesce(l.first_attempt_at, :clock)
from unnest(cast(:ids as text[]), cast(:errors as text[])) as u(send_id, error)
where l.send_id = u.send_id
""")


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start:start + size]


def _mark(engine: Engine, status: str, pairs: list[tuple[str, str]], *, clock: datetime | None = None,
          retry_after: float | None = None) -> None:
    if pairs:
        with engine.begin() as conn:
            conn.execute(_MARK, {"status": status, "ids": [p[0] for p in pairs], "errors": [p[1] for p in pairs],
                                 "clock": clock or datetime.now(timezone.utc), "retry_after": retry_after or 0.0,
                                 "base": BACKOFF_BASE_S, "cap": BACKOFF_CAP_S})


def _lock(conn: Connection, key: str) -> None:
    got = conn.execute(sa.text("select pg_try_advisory_lock(hashtext(:key))"), {"key": key}).scalar_one()
    conn.commit()
    if not got:
        raise DispatchInProgressError(f"{key} is being dispatched by another process; try again later")


def dispatch(engine: Engine, spec: CampaignSpec, run_date: date | str | datetime, transport: Transport, *,
             now: datetime, step: int = 1, sender: str = DEFAULT_SENDER, renderer: Renderer | None = None,
             clock: Callable[[], datetime] | None = None, retry_deadline: timedelta = RETRY_DEADLINE,
             in_run_wait_s: float = IN_RUN_WAIT_S, strict: bool = True, partition: Partition = WHOLE,
             record: bool = True) -> DispatchSummary:
    """Plan and send the treatment arm of the run's snapshot; safe to rerun at any point.

    ``run_date`` is the run's date, or for an hourly series its instant (see ``audience.run_id_for``).
    ``now`` is the run's timestamp (timezone-aware): it becomes ``created_at`` of new ledger rows,
    ``sent_at`` of sent ones and the Date header, so a rerun reproduces the same messages. ``clock`` is
    the wall clock (default: the transport's, else UTC now): back-off, deadlines and send times.
    ``strict``: raise :class:`DispatchIncompleteError` when the run ends incomplete (after recording it).
    ``partition``: plan, send and count only the contacts of that customer hash partition, under a lock of
    its own, so the partitions of a run can be sent by separate processes at once; ``record=False`` leaves
    ``campaigns.campaign_runs`` and the transport's ``finalize_run`` (the outbox's index) to the caller
    (:func:`record_run`, once all partitions are done), so the run's index is built once, not per partition.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware (the run's timestamp), got {now!r}")
    clock = clock or getattr(transport, "clock", None) or (lambda: datetime.now(timezone.utc))
    sleep: Callable[[float], None] = getattr(transport, "sleep", time.sleep)
    run_id = run_id_for(spec, run_date, step)
    spec = spec.for_step(step)
    renderer = renderer or Renderer()
    key = {"campaign_id": spec.id, "run_id": run_id, "step": step, **partition.params()}
    lock_key = f"martech.dispatch:{spec.id}:{run_id}:{step}" + ("" if partition.whole else f":{partition}")

    # A session-level lock held on its own connection for the whole dispatch: two dispatchers of one
    # run would otherwise both claim and send the same pending rows.
    with engine.connect() as lock_conn:
        _lock(lock_conn, lock_key)
        try:
            with engine.begin() as conn:
                counts = conn.execute(_sql(_COUNTS, partition), key).one()
                already_sent = int(conn.execute(_sql(_ALREADY_SENT, partition), key).scalar_one())
                created = conn.execute(_sql(_PLAN, partition), {**key, "now": now}).rowcount
            checkpoint("after_plan")
            if created:
                # Fresh statistics, or the planner may join 100k-row tables with nested seq scans.
                with engine.begin() as conn:
                    conn.execute(sa.text("analyze campaigns.send_ledger"))
                    conn.execute(sa.text("analyze audiences.audience_members"))
            if not transport.idempotent:
                with engine.begin() as conn:
                    if conn.execute(sa.text("select to_regclass('staging.email_events')")).scalar_one():
                        conn.execute(reconcile_from_events("campaigns.send_ledger", partition.where("l.contact_id")),
                                     {**key, "now": now})
            # The plan is committed: from here on every send has its ledger row.
            with engine.connect() as conn:
                due = conn.execute(_sql(_DUE, partition), key).mappings().all()

            at = clock()
            skipped: list[tuple[str, str]] = []
            retry: list[Any] = []
            in_doubt: list[Any] = []
            give_up: list[str] = []
            deferred = 0
            for row in due:
                if row["suppressed_reason"] is not None:
                    skipped.append((row["send_id"], f"suppressed: {row['suppressed_reason']}"))
                elif row["arm"] != "treatment":
                    why = "not in the audience snapshot any more" if row["arm"] is None else "now in holdout"
                    skipped.append((row["send_id"], why))
                elif row["status"] == "failed" and (row["error"] or "").startswith(GAVE_UP):
                    continue  # reported by every run (campaign_runs.abandoned), resent only by a person
                elif row["status"] == "failed" and (row["first_attempt_at"] or at) + retry_deadline < at:
                    give_up.append(row["send_id"])
                elif row["next_attempt_at"] is not None and row["next_attempt_at"] > at:
                    continue  # backing off (failed) or waiting for the provider's records (in doubt)
                elif row["status"] == "pending" and row["attempts"] > 0 and not transport.idempotent:
                    in_doubt.append(row)
                elif (not getattr(transport, "supports_send_at", False)
                      and scheduled_for(row["send_at"], row["send_before"], now) is not None):
                    deferred += 1  # outside the contact's send window: a later dispatch of the run sends it
                else:
                    retry.append(row)
            _mark(engine, "skipped", skipped)
            if give_up:
                with engine.begin() as conn:
                    conn.execute(_GIVE_UP, {"ids": give_up,
                                            "prefix": f"{GAVE_UP}still failing {retry_deadline} after the first"
                                                      " attempt; last error: "})
            released = _resolve_in_doubt(engine, transport, in_doubt, clock)
            retry.extend(released)
            retry.sort(key=lambda r: r["send_id"])

            sent_now = failed = 0
            waited = 0.0
            bad_in_a_row = 0
            while retry:
                doubtful: list[Any] = []
                out_of_time = False
                for batch in _chunks(retry, transport.batch_size):
                    if bad_in_a_row:
                        # The provider is failing (a burst of 5xx, an outage): wait before the next request,
                        # as long as it asks (Retry-After) or exponentially, within the run's budget.
                        pause = max(min(60.0, 2.0 ** bad_in_a_row), getattr(transport, "retry_after", None) or 0)
                        if waited + pause > in_run_wait_s:
                            out_of_time = True  # the rest stays as it is (unclaimed or released): the next run
                            break
                        sleep(pause)
                        waited += pause
                    n_sent, n_failed, unanswered = _send_batch(engine, spec, transport, batch, run_id, step,
                                                               now, sender, renderer, clock)
                    sent_now += n_sent
                    failed += n_failed
                    doubtful.extend(unanswered)
                    bad_in_a_row = bad_in_a_row + 1 if (unanswered or n_failed) else 0
                if out_of_time:
                    break
                # Unanswered requests (timeouts, 5xx): settle them (lookup or cancel), then send again.
                retry = _resolve_in_doubt(engine, transport, doubtful, clock)
                retry.sort(key=lambda r: r["send_id"])
            if record:  # a partition's run is finalized once, by record_run after all partitions
                transport.finalize_run(spec.id, run_id)
            summary, sent = _outcome(engine, spec, transport, key, partition, counts, now, dict(
                ledger_rows_created=int(created), sent_now=sent_now, already_sent=already_sent, failed=failed,
                skipped=len(skipped), deferred=deferred, newly_abandoned=len(give_up)))
            if record:
                with engine.begin() as conn:
                    _record(conn, spec, run_date, transport.name, summary, sent)
        finally:
            lock_conn.execute(sa.text("select pg_advisory_unlock(hashtext(:key))"), {"key": lock_key})
            lock_conn.commit()

    if summary.incomplete:
        log.warning("dispatch incomplete: %s", summary.describe())
        if strict:
            raise DispatchIncompleteError(summary)
    return summary


def _outcome(engine: Engine, spec: CampaignSpec, transport: Transport, key: dict[str, Any],
             partition: Partition, counts: Any, now: datetime, figures: dict[str, int]
             ) -> tuple[DispatchSummary, int]:
    """What the ledger says of the run step (of ``partition``), with this dispatch's own ``figures``, and
    how many of its rows are sent."""
    with engine.connect() as conn:
        outcome = conn.execute(_sql(_OUTCOME, partition), {**key, "gave_up": GAVE_UP + "%"}).one()
        unclaimed = conn.execute(_sql(_UNCLAIMED, partition), key).all()
        unplanned = int(conn.execute(_sql(_UNPLANNED, partition), key).scalar_one())
    # Never claimed: outside the contact's send window (a later dispatch sends it), else held back.
    can_schedule = getattr(transport, "supports_send_at", False)
    deferred = figures.pop("deferred", None)
    if deferred is None:
        deferred = sum(1 for r in unclaimed if not can_schedule and scheduled_for(r.send_at, r.send_before, now))
    summary = DispatchSummary(
        campaign_id=spec.id, run_id=key["run_id"], step=key["step"], members=int(counts.members),
        treatment=int(counts.treatment), holdout=int(counts.holdout), uncertain=int(outcome.in_doubt),
        retrying=int(outcome.retrying) + max(0, len(unclaimed) - deferred) + unplanned,
        abandoned=int(outcome.abandoned),
        next_attempt_at=outcome.next_attempt_at.isoformat() if outcome.next_attempt_at else None,
        deferred=deferred, **figures)
    return summary, int(outcome.sent)


def _record(conn: Connection, spec: CampaignSpec, run_date: date | str | datetime, transport_name: str,
            summary: DispatchSummary, sent: int) -> None:
    day = run_date if isinstance(run_date, date) else date.fromisoformat(str(run_date)[:10])
    record_outcome(conn, spec, summary.run_id, day.date() if isinstance(day, datetime) else day,
                   transport_name, RunOutcome(
                       members=summary.members, treatment=summary.treatment, holdout=summary.holdout,
                       sent=sent, complete=not summary.incomplete, in_doubt=summary.uncertain,
                       retrying=summary.retrying, abandoned=summary.abandoned,
                       next_attempt_at=datetime.fromisoformat(summary.next_attempt_at)
                       if summary.next_attempt_at else None))


def record_run(engine: Engine, spec: CampaignSpec, run_date: date | str | datetime, transport: Transport, *,
               now: datetime, step: int = 1, newly_abandoned: int = 0) -> DispatchSummary:
    """Count a run step from the snapshot and the ledger, after all its partitions were dispatched, and
    write its ``campaigns.campaign_runs`` row; the summary says whether the run is complete.

    ``newly_abandoned``: rows the partitions gave up in this run (the ledger does not tell them apart
    from rows given up earlier).
    """
    run_id = run_id_for(spec, run_date, step)
    spec = spec.for_step(step)
    transport.finalize_run(spec.id, run_id)
    key = {"campaign_id": spec.id, "run_id": run_id, "step": step, **WHOLE.params()}
    with engine.connect() as conn:
        counts = conn.execute(_sql(_COUNTS, WHOLE), key).one()
    summary, sent = _outcome(engine, spec, transport, key, WHOLE, counts, now, dict(
        ledger_rows_created=0, sent_now=0, already_sent=0, failed=0, newly_abandoned=newly_abandoned))
    with engine.begin() as conn:
        _record(conn, spec, run_date, transport.name, summary, sent)
    return summary


def _send_batch(engine: Engine, spec: CampaignSpec, transport: Transport, batch: Sequence[Any], run_id: str,
                step: int, now: datetime, sender: str, renderer: Renderer,
                clock: Callable[[], datetime]) -> tuple[int, int, list[Any]]:
    """Render, claim, send and record one batch; returns (sent, failed, rows left in doubt)."""
    messages: list[OutboundMessage] = []
    rows_by_id = {row["send_id"]: row for row in batch}
    render_failures: list[tuple[str, str]] = []
    earliest = getattr(transport, "earliest_send_at", None)
    schedule_from = earliest() if earliest else now
    for row in batch:
        try:
            messages.append(_message(spec, row, run_id, step, now, sender, renderer, schedule_from))
        except (RenderError, KeyError) as exc:
            render_failures.append((row["send_id"], str(exc)))
    if render_failures:
        with engine.begin() as conn:
            conn.execute(_MARK_RENDER_FAILED, {"ids": [p[0] for p in render_failures], "clock": clock(),
                                               "errors": [p[1] for p in render_failures]})
        _mark(engine, "failed", render_failures, clock=clock())
    n_sent, n_failed = 0, len(render_failures)
    doubtful: list[Any] = []
    grouping = getattr(transport, "group", None)
    begin = getattr(transport, "begin_attempt", None)
    for group in (grouping(messages) if grouping and messages else [messages] if messages else []):
        attempt_ref = begin(group) if begin else None
        with engine.begin() as conn:
            conn.execute(_CLAIM, {"ids": [m.send_id for m in group], "transport": transport.name,
                                  "attempt_ref": attempt_ref, "clock": clock()})
        checkpoint("after_claim")
        results = (transport.send_batch(group, attempt_ref=attempt_ref) if begin  # type: ignore[call-arg]
                   else transport.send_batch(group))
        checkpoint("after_request")
        sent, errors = _split_results(group, results)
        if sent:
            with engine.begin() as conn:
                conn.execute(_MARK_SENT, {"ids": [r.send_id for r in sent],
                                          "message_ids": [r.message_id for r in sent], "now": now})
        _mark(engine, "failed", errors, clock=clock(), retry_after=getattr(transport, "retry_after", None))
        checkpoint("after_mark_sent")
        answered = {r.send_id for r in sent} | {e[0] for e in errors}
        doubtful.extend({**rows_by_id[m.send_id], "attempt_ref": attempt_ref}
                        for m in group if m.send_id not in answered)
        n_sent += len(sent)
        n_failed += len(errors)
    return n_sent, n_failed, doubtful


def _resolve_in_doubt(engine: Engine, transport: Transport, rows: Sequence[Any],
                      clock: Callable[[], datetime]) -> list[Any]:
    """Rows whose last attempt may have gone out: returns those now safe to send again.

    Safe means the transport rewrites idempotently (outbox), or the provider's records show the attempt
    did not deliver them (SendGrid's Email Activity after the attempt's send times), or it confirmed
    that the attempt was cancelled before delivery. Rows the records show as processed are ``sent``.
    Anything else stays pending (in doubt), with ``next_attempt_at`` set to when the records will tell.
    """
    if not rows:
        return []
    if transport.idempotent:
        return list(rows)
    cancel = getattr(transport, "cancel_attempt", None)
    lookup = getattr(transport, "lookup_attempt", None)
    ready_at = getattr(transport, "lookup_ready_at", None)
    released: list[Any] = []
    by_ref: dict[str | None, list[Any]] = {}
    for row in rows:
        by_ref.setdefault(row["attempt_ref"], []).append(row)
    for ref, group in sorted(by_ref.items(), key=lambda kv: kv[0] or ""):
        if ref is None:
            continue  # no way to ask the provider: in doubt until an event proves it (see _RECONCILE)
        processed = lookup(ref) if lookup else None
        if processed is not None:
            done = [r for r in group if r["email"].lower() in processed]
            again = [r for r in group if r["email"].lower() not in processed]
            with engine.begin() as conn:
                if done:
                    conn.execute(_MARK_SENT, {"ids": [r["send_id"] for r in done], "now": clock(),
                                              "message_ids": [processed[r["email"].lower()] for r in done]})
                if again:
                    conn.execute(_RELEASE, {"ids": [r["send_id"] for r in again], "attempt_ref": ref,
                                            "why": "not found in the provider's records after its send time"})
            released.extend(again)
        elif cancel is not None and cancel(ref):
            checkpoint("after_cancel")
            with engine.begin() as conn:
                conn.execute(_RELEASE, {"ids": [r["send_id"] for r in group], "attempt_ref": ref,
                                        "why": "cancelled at the provider before delivery"})
            released.extend(group)
        elif ready_at is not None and getattr(transport, "activity", None) is not False:
            with engine.begin() as conn:
                conn.execute(_WAIT, {"ids": [r["send_id"] for r in group], "at": ready_at(ref)})
    return released


PREVIEW_SAMPLES = 2  # contacts per variant rendered into the preview folder before a real send

_TREATMENT = sa.text("""
select m.contact_id, m.email, m.variant, m.first_name, m.attributes, m.send_at, m.send_before,
    (
        select s.reason from campaigns.suppressions as s
        where s.email = lower(btrim(m.email)) or s.contact_id = m.contact_id
        order by s.email limit 1
    ) as suppressed_reason
from audiences.audience_members as m
where m.campaign_id = :campaign_id and m.run_id = :run_id and m.arm = 'treatment'
order by m.variant, m.contact_id
""")


def write_previews(engine: Engine, spec: CampaignSpec, run_date: date | str | datetime, folder: Path, *,
                   now: datetime,
                   step: int = 1, sender: str = DEFAULT_SENDER, renderer: Renderer | None = None,
                   samples: int = PREVIEW_SAMPLES) -> list[Path]:
    """Render the first ``samples`` treatment members of each variant to ``<folder>/<campaign>/<run>/``.

    Written before each real send so a person can open exactly what goes out, per variant, with real
    data. Idempotent (same bytes for the same run). Returns the files written.
    """
    run_id = run_id_for(spec, run_date, step)
    spec = spec.for_step(step)
    renderer = renderer or Renderer()
    with engine.connect() as conn:
        rows = conn.execute(_TREATMENT, {"campaign_id": spec.id, "run_id": run_id}).mappings().all()
    out: list[Path] = []
    per_variant: dict[str, int] = {}
    target = Path(folder) / spec.id / run_id
    for row in rows:
        n = per_variant.get(row["variant"], 0)
        if n >= samples:
            continue
        per_variant[row["variant"]] = n + 1
        send_id = make_send_id(spec.id, run_id, step, row["contact_id"])
        message = _message(spec, {**row, "send_id": send_id}, run_id, step, now, sender, renderer, now)
        path = target / f"{row['variant']}-{n + 1}.eml"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = build_email(message).as_bytes()
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        out.append(path)
    return out


def dry_run(engine: Engine, spec: CampaignSpec, run_date: date | str | datetime, *, now: datetime, step: int = 1,
            sender: str = DEFAULT_SENDER, renderer: Renderer | None = None) -> dict[str, Any]:
    """Render every treatment member and record what a real send would do, sending nothing.

    Rows go to ``campaigns.dry_runs``; no ledger rows are planned. The summary compares the run's audience
    with the campaign's previous run (members added and removed).
    """
    run_id = run_id_for(spec, run_date, step)
    spec = spec.for_step(step)
    renderer = renderer or Renderer()
    key = {"campaign_id": spec.id, "run_id": run_id}
    with engine.connect() as conn:
        rows = conn.execute(_TREATMENT, key).mappings().all()
        previous_run = conn.execute(sa.text(
            "select max(run_id) from audiences.audience_members where campaign_id = :campaign_id"
            " and run_id < :run_id"), key).scalar()
        previous = {r for (r,) in conn.execute(sa.text(
            "select contact_id from audiences.audience_members where campaign_id = :campaign_id"
            " and run_id = :p"), {**key, "p": previous_run})} if previous_run else set()
        current_all = {r for (r,) in conn.execute(sa.text(
            "select contact_id from audiences.audience_members where campaign_id = :campaign_id"
            " and run_id = :run_id"), key)}
    records = []
    outcomes: dict[str, int] = {}
    for row in rows:
        send_id = make_send_id(spec.id, run_id, step, row["contact_id"])
        subject, detail = None, None
        if row["suppressed_reason"] is not None:
            outcome, detail = "suppressed", str(row["suppressed_reason"])
        else:
            try:
                subject = _message(spec, {**row, "send_id": send_id}, run_id, step, now, sender, renderer,
                                   now).subject
                outcome = "would_send"
            except (RenderError, KeyError) as exc:
                outcome, detail = "render_failed", str(exc)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        records.append((spec.id, run_id, step, row["contact_id"], row["email"], row["variant"], outcome, subject,
                        detail, "kept" if row["contact_id"] in previous else "added", now.isoformat()))
    from martech.db import copy_rows

    with engine.begin() as conn:
        conn.execute(sa.text("delete from campaigns.dry_runs where campaign_id = :campaign_id and run_id = :run_id"
                             " and step = :step"), {**key, "step": step})
        copy_rows(conn, "campaigns.dry_runs",
                  ("campaign_id", "run_id", "step", "contact_id", "email", "variant", "outcome", "subject", "detail",
                   "change", "created_at"), records)
    return {"campaign_id": spec.id, "run_id": run_id, "step": step, "dry_run": True, "treatment": len(rows),
            "outcomes": outcomes, "previous_run": previous_run,
            "added": len(current_all - previous), "removed": len(previous - current_all)}


def _message(spec: CampaignSpec, row: Any, run_id: str, step: int, now: datetime, sender: str,
             renderer: Renderer, schedule_from: datetime) -> OutboundMessage:
    """``schedule_from``: the earliest time the transport may send (SendGrid: now + hold); a send window
    already open then sends at that time, one already closed waits for its next opening."""
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
        send_at=scheduled_for(row.get("send_at"), row.get("send_before"), schedule_from),
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
