"""Seed lists: internal test addresses that receive every variant of every real send.

The addresses are configured once for all campaigns, in ``include/campaigns/_settings.yml``::

    seed_list:
      addresses: [qa@shop.example, brand@shop.example]

or, replacing that list, in ``MARTECH_SEED_ADDRESSES`` (comma-separated). Before each real dispatch of a
run and step, :func:`send_seeds` sends each seed one message per variant of the run's treatment arm: the
message a real member of that variant gets (the first by contact id), with the member's first name left
out and any coupon code replaced by a code that redeems nothing, so the inbox shows exactly what went out
without handing a customer's name or code to staff.

Seed sends have a ledger of their own, ``campaigns.seed_sends`` (one row per campaign, run, step, variant
and address), with the send ledger's protocol: a row is planned and committed before its message is
handed over, ``attempts`` is committed before each hand-over, and a rerun sends only rows not yet sent; a
row whose hand-over may have gone out is sent again only by an idempotent transport (the outbox) or when
the provider's events prove it went (then it is marked sent). The messages carry the custom arg
``seed=true`` (header ``X-Martech-Seed``) and no contact id. Seeds are not contacts: they are never in an
audience, a cap, a cooldown, the send ledger or a KPI. A suppressed seed address (a bounce, say) is
skipped, with the reason in ``error``.

A campaign with ``require_seeds_on_first_run: true`` sends nothing real on its first run (no earlier run of
it has a sent ledger row) unless every seed message of the run went out: :class:`SeedListError` fails the
task, whose retry sends only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from martech.campaigns.dispatch import reconcile_from_events
from martech.campaigns.eligibility import email_problem, normalize_email
from martech.campaigns.render import Recipient, Renderer, RenderError
from martech.campaigns.run_ids import run_id_for
from martech.campaigns.spec import SETTINGS_FILE, CampaignSettings, CampaignSpec
from martech.campaigns.transports import DEFAULT_SENDER, OutboundMessage, SendResult, Transport

__all__ = ["ENV_VAR", "SEED_COUPON_CODE", "SeedListError", "SeedSummary", "is_first_run", "seed_addresses",
           "seed_send_id", "send_seeds"]

log = logging.getLogger(__name__)

ENV_VAR = "MARTECH_SEED_ADDRESSES"
SEED_COUPON_CODE = "SEED-NOT-VALID"  # what a seed sees in place of the sample member's coupon code
SEED_CONTACT = "seed"  # the contact id the unsubscribe token of a seed message names


class SeedListError(RuntimeError):
    """A seed list that cannot be used, or a first run whose required seed sends did not all go out."""


def seed_addresses(settings: CampaignSettings, *, env: Mapping[str, str] | None = None,
                   where: str = f"include/campaigns/{SETTINGS_FILE}") -> tuple[str, ...]:
    """The seed addresses, trimmed and lower-cased: ``MARTECH_SEED_ADDRESSES`` when set, else the settings'.

    Raises :class:`SeedListError` naming the setting and the entry when an address cannot be mailed.
    """
    env = os.environ if env is None else env
    raw = env.get(ENV_VAR, "")
    if raw.strip():
        source, entries = ENV_VAR, [a for a in raw.split(",") if a.strip()]
    else:
        source, entries = f"{where}: seed_list.addresses", list(settings.seed_list.addresses)
    out: list[str] = []
    for i, entry in enumerate(entries):
        problem = email_problem(entry)
        if problem is not None:
            raise SeedListError(f"{source}[{i}] {entry.strip()!r} cannot be mailed ({problem[1]}); "
                                "fix the address or remove it")
        address = normalize_email(entry)
        if address is not None and address not in out:
            out.append(address)
    return tuple(out)


def seed_send_id(campaign_id: str, run_id: str, step: int, variant: str, email: str) -> str:
    """Deterministic: the same seed message of a run always has the same id (and outbox file)."""
    key = "|".join(("seed", campaign_id, run_id, str(step), variant, email))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class SeedSummary:
    campaign_id: str
    run_id: str
    step: int
    addresses: int
    variants: int
    first_run: bool
    planned: int  # rows created by this call
    sent_now: int
    already_sent: int
    failed: int
    skipped: int  # suppressed seed addresses
    uncertain: int  # handed over before with no known outcome: never resent blindly

    @property
    def complete(self) -> bool:
        return self.sent_now + self.already_sent + self.skipped == self.addresses * self.variants

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIRST_RUN = sa.text("""
select not exists (
    select 1 from campaigns.send_ledger
    where campaign_id = :campaign_id and run_id <> :run_id and status = 'sent'
)
""")

_SAMPLES = sa.text("""
select distinct on (m.variant) m.variant, m.contact_id, m.attributes
from audiences.audience_members as m
where m.campaign_id = :campaign_id and m.run_id = :run_id and m.arm = 'treatment'
order by m.variant, m.contact_id
""")

_PLAN = sa.text("""
insert into campaigns.seed_sends (send_id, campaign_id, run_id, step, variant, email, status, attempts,
    created_at)
select u.send_id, :campaign_id, :run_id, :step, u.variant, u.email, 'pending', 0, :now
from unnest(cast(:ids as text[]), cast(:variants as text[]), cast(:emails as text[])) as u(send_id, variant, email)
on conflict do nothing
""")

# In doubt, but the provider's events carry the send id: it went out.
_RECONCILE = reconcile_from_events("campaigns.seed_sends")

_ROWS = sa.text("""
select s.send_id, s.variant, s.email, s.status, s.attempts,
    exists (select 1 from campaigns.suppressions as x where x.email = s.email) as suppressed
from campaigns.seed_sends as s
where s.campaign_id = :campaign_id and s.run_id = :run_id and s.step = :step
order by s.variant, s.email
""")

_CLAIM = sa.text("""
update campaigns.seed_sends set attempts = attempts + 1, transport = :transport, attempt_ref = :attempt_ref,
    status = 'pending'
where send_id = any(cast(:ids as text[]))
""")

_MARK = sa.text("""
update campaigns.seed_sends as s
set status = u.status, message_id = u.message_id, error = u.error,
    sent_at = case when u.status = 'sent' then cast(:now as timestamptz) end
from unnest(cast(:ids as text[]), cast(:statuses as text[]), cast(:message_ids as text[]),
            cast(:errors as text[])) as u(send_id, status, message_id, error)
where s.send_id = u.send_id
""")


def is_first_run(engine: Engine, campaign_id: str, run_id: str) -> bool:
    """No other run of the campaign has a sent ledger row (a retry of the first run is still the first)."""
    with engine.connect() as conn:
        return bool(conn.execute(_FIRST_RUN, {"campaign_id": campaign_id, "run_id": run_id}).scalar_one())


def _attributes(raw: Any) -> dict[str, Any]:
    attributes = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    if isinstance(attributes.get("coupon"), Mapping):
        attributes["coupon"] = {**attributes["coupon"], "code": SEED_COUPON_CODE}
    return attributes


def _message(spec: CampaignSpec, renderer: Renderer, row: Mapping[str, Any], sample: Mapping[str, Any],
             run_id: str, step: int, now: datetime, sender: str) -> OutboundMessage:
    recipient = Recipient(contact_id=SEED_CONTACT, email=row["email"], first_name=None,
                          attributes=_attributes(sample["attributes"]), send_id=row["send_id"])
    rendered = renderer.render(spec, row["variant"], recipient)
    return OutboundMessage(
        send_id=row["send_id"], to=row["email"], sender=sender, subject=rendered.subject, html=rendered.html,
        text=rendered.text, sent_at=now, headers=rendered.headers,
        custom_args={"send_id": row["send_id"], "campaign_id": spec.id, "run_id": run_id,
                     "variant": row["variant"], "step": str(step), "seed": "true"})


def _lock(engine: Engine, key: str) -> Any:
    conn = engine.connect()
    got = conn.execute(sa.text("select pg_try_advisory_lock(hashtext(:key))"), {"key": key}).scalar_one()
    conn.commit()
    if not got:
        conn.close()
        raise SeedListError(f"{key} is being sent by another process; try again later")
    return conn


def send_seeds(engine: Engine, spec: CampaignSpec, run_date: date | str | datetime, transport: Transport, *,
               now: datetime, addresses: Sequence[str], step: int = 1, sender: str = DEFAULT_SENDER,
               renderer: Renderer | None = None) -> SeedSummary:
    """Send every seed address one message per variant of the run's treatment arm, once; safe to rerun.

    Call it before the real dispatch of the run and step. Raises :class:`SeedListError` when the campaign
    requires seeds on its first run and this is its first run, but no seed addresses are configured or
    not every seed message of the run went out.
    """
    run_id = run_id_for(spec, run_date, step)
    spec = spec.for_step(step)
    renderer = renderer or Renderer()
    key = {"campaign_id": spec.id, "run_id": run_id, "step": step}
    first_run = is_first_run(engine, spec.id, run_id)
    required = spec.require_seeds_on_first_run and first_run
    if required and not addresses:
        raise SeedListError(
            f"{spec.id}: require_seeds_on_first_run is set and this is the campaign's first run, but no seed "
            f"addresses are configured: add them under seed_list.addresses in include/campaigns/{SETTINGS_FILE}"
            f" or set {ENV_VAR}; nothing was sent")
    lock = _lock(engine, f"martech.seeds:{spec.id}:{run_id}:{step}")
    try:
        with engine.begin() as conn:
            samples = {r["variant"]: dict(r) for r in conn.execute(_SAMPLES, key).mappings()}
            plan = [(seed_send_id(spec.id, run_id, step, v, a), v, a) for v in sorted(samples) for a in addresses]
            planned = conn.execute(_PLAN, {**key, "now": now, "ids": [p[0] for p in plan],
                                           "variants": [p[1] for p in plan],
                                           "emails": [p[2] for p in plan]}).rowcount if plan else 0
            if not transport.idempotent and conn.execute(
                    sa.text("select to_regclass('staging.email_events')")).scalar_one():
                conn.execute(_RECONCILE, {**key, "now": now})
            rows = [dict(r) for r in conn.execute(_ROWS, key).mappings()
                    if r["variant"] in samples and r["email"] in addresses]
        already = sum(r["status"] == "sent" for r in rows)
        skipped = [r for r in rows if r["status"] != "sent" and r["suppressed"]]
        uncertain = [r for r in rows if r["status"] == "pending" and r["attempts"] > 0 and not r["suppressed"]
                     and not transport.idempotent]
        due = [r for r in rows if r["status"] in ("pending", "failed") and not r["suppressed"]
               and r not in uncertain]
        outcome: dict[str, tuple[str, str | None, str | None]] = {
            r["send_id"]: ("skipped", None, "suppressed seed address") for r in skipped}
        messages: list[OutboundMessage] = []
        for r in due:
            try:
                messages.append(_message(spec, renderer, r, samples[r["variant"]], run_id, step, now, sender))
            except (RenderError, KeyError) as exc:
                outcome[r["send_id"]] = ("failed", None, f"render failed: {exc}")
        grouping = getattr(transport, "group", None)
        begin = getattr(transport, "begin_attempt", None)
        in_doubt = 0  # handed over in this call without an answer
        for group in (grouping(messages) if grouping and messages else [messages] if messages else []):
            for start in range(0, len(group), transport.batch_size):
                batch = group[start:start + transport.batch_size]
                attempt_ref = begin(batch) if begin else None
                with engine.begin() as conn:
                    conn.execute(_CLAIM, {"ids": [m.send_id for m in batch], "transport": transport.name,
                                          "attempt_ref": attempt_ref})
                try:
                    results: list[SendResult] = (
                        transport.send_batch(batch, attempt_ref=attempt_ref)  # type: ignore[call-arg]
                        if begin else transport.send_batch(batch))
                except Exception as exc:  # the real send must not depend on the test inboxes
                    log.warning("%s %s step %d: seed messages unanswered, left in doubt: %s",
                                spec.id, run_id, step, exc)
                    results = []
                for result in results:
                    if result.ok and result.message_id:
                        outcome[result.send_id] = ("sent", result.message_id, None)
                    else:
                        outcome[result.send_id] = ("failed", None, result.error or "no message id")
                answered = {r.send_id for r in results}
                in_doubt += sum(m.send_id not in answered for m in batch)
        if outcome:
            with engine.begin() as conn:
                ids = sorted(outcome)
                conn.execute(_MARK, {"now": now, "ids": ids, "statuses": [outcome[i][0] for i in ids],
                                     "message_ids": [outcome[i][1] for i in ids],
                                     "errors": [outcome[i][2] for i in ids]})
    finally:
        lock.execute(sa.text("select pg_advisory_unlock(hashtext(:key))"),
                     {"key": f"martech.seeds:{spec.id}:{run_id}:{step}"})
        lock.commit()
        lock.close()
    statuses = [v[0] for v in outcome.values()]
    summary = SeedSummary(
        campaign_id=spec.id, run_id=run_id, step=step, addresses=len(addresses), variants=len(samples),
        first_run=first_run, planned=int(planned), sent_now=statuses.count("sent"), already_sent=already,
        failed=statuses.count("failed"), skipped=len(skipped), uncertain=len(uncertain) + in_doubt)
    log.info("%s %s step %d seeds: %s", spec.id, run_id, step, summary.as_dict())
    if required and not summary.complete:
        raise SeedListError(
            f"{spec.id}: require_seeds_on_first_run is set and this is the campaign's first run, but "
            f"{summary.failed} seed message(s) failed and {summary.uncertain} are in doubt "
            "(campaigns.seed_sends); nothing real was sent: fix the cause and rerun the task, which sends only "
            "the seed messages still missing")
    return summary
