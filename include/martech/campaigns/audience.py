"""Audience snapshots: who a campaign run targets, in which arm and with which variant.

Assignment is a pure function of ``campaign_id:salt:contact_id``: its sha256 digest gives two
independent uniform numbers in [0, 1), the first 8 bytes for the arm and the next 8 for the variant, so
reruns, backfills and analysts (in SQL) all get the same answer. Holdout members carry the variant they
would have got; it is never sent, and it lets per-variant uplift use the matching slice of the holdout.

:func:`build_snapshot` runs the campaign's audience SQL, splits its rows into eligible members and
exclusions with their reasons (:mod:`martech.campaigns.eligibility`), issues coupons when the campaign
has them (:mod:`martech.campaigns.coupons`), checks whether the holdout can detect the uplift the
campaign hopes for (:func:`minimum_detectable_effect`) and replaces the run's rows of
``audiences.audience_members``, ``audiences.exclusions`` and ``audiences.snapshots`` in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from statistics import NormalDist
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from martech.campaigns import eligibility
from martech.campaigns.eligibility import CONSENTED_STATUSES, Candidate
from martech.campaigns.render import RESERVED_NAMES
from martech.campaigns.run_ids import (
    as_run_date,
    make_send_id,
    run_hour,
    run_id_for,
    run_instant,
    run_of,
    step_run_id,
)
from martech.campaigns.spec import CampaignSettings, CampaignSpec, Variant, load_settings
from martech.campaigns.sunset import apply_sunset
from martech.campaigns.targeting import targeted_audience_sql
from martech.campaigns.window import apply_send_window
from martech.db import copy_rows
from martech.privacy.erase import do_not_contact
from martech.runs import Run

__all__ = [
    "CONSENTED_STATUSES",
    "AudienceSqlError",
    "SnapshotSummary",
    "as_run_date",
    "assign_arm",
    "assign_send_time_arm",
    "assign_variant",
    "build_snapshot",
    "eligible_audience_sql",
    "minimum_detectable_effect",
    "run_hour",
    "run_id_for",
    "run_instant",
    "step_run_id",
]

log = logging.getLogger("martech.campaigns.audience")

Arm = Literal["treatment", "holdout"]
SendTimeArm = Literal["sto", "fixed"]
REQUIRED_COLUMNS = ("contact_id", "email", "first_name")
MEMBER_COLUMNS = (
    "campaign_id", "run_id", "run_date", "contact_id", "email", "first_name", "arm", "variant",
    "definition_hash", "attributes", "step", "series_key", "send_time_arm",
)
EXCLUSION_COLUMNS = ("campaign_id", "run_id", "run_date", "contact_id", "email", "reason", "detail", "step",
                     "series_key")
POWER_ALPHA = 0.05
POWER = 0.8
_SCALE = float(1 << 64)


class AudienceSqlError(RuntimeError):
    """The audience SQL failed or returned rows that break its contract."""


# -- assignment --------------------------------------------------------------------------------------


def _digest(campaign_id: str, salt: str, contact_id: str) -> bytes:
    return hashlib.sha256(f"{campaign_id}:{salt}:{contact_id}".encode()).digest()


def _unit(digest: bytes, part: int) -> float:
    """The ``part``-th 8 bytes of a digest as a number in [0, 1)."""
    return int.from_bytes(digest[8 * part: 8 * part + 8], "big") / _SCALE


def assign_arm(campaign_id: str, salt: str, contact_id: str, holdout_share: float) -> Arm:
    """``'holdout'`` for about ``holdout_share`` of contacts, else ``'treatment'``; stable forever."""
    if not 0 <= holdout_share <= 1:
        raise ValueError(f"holdout_share must be between 0 and 1, got {holdout_share}")
    u = _unit(_digest(campaign_id, salt, contact_id), 0)
    return "holdout" if u < holdout_share else "treatment"


def assign_variant(campaign_id: str, salt: str, contact_id: str,
                   variants: Sequence[Variant] | Mapping[str, float]) -> str:
    """A variant id, chosen with probability proportional to its weight (in the order given)."""
    pairs = list(variants.items()) if isinstance(variants, Mapping) else [(v.id, v.weight) for v in variants]
    total = sum(w for _, w in pairs)
    if not pairs or total <= 0:
        raise ValueError("assign_variant needs at least one variant with a positive weight")
    x = _unit(_digest(campaign_id, salt, contact_id), 1) * total
    cumulative = 0.0
    for variant_id, weight in pairs:
        cumulative += weight
        if x < cumulative:
            return variant_id
    return pairs[-1][0]  # float rounding at the very top of the range


def assign_send_time_arm(campaign_id: str, contact_id: str, comparison_share: float) -> SendTimeArm:
    """``'fixed'`` for about ``comparison_share`` of members, else ``'sto'``; stable across reruns.

    Its own hash (not the holdout's), so the comparison is independent of arm and variant.
    """
    if not 0 <= comparison_share <= 1:
        raise ValueError(f"comparison_share must be between 0 and 1, got {comparison_share}")
    digest = hashlib.sha256(f"{campaign_id}:send_time:{contact_id}".encode()).digest()
    return "fixed" if _unit(digest, 0) < comparison_share else "sto"


# -- power -------------------------------------------------------------------------------------------


def minimum_detectable_effect(n_treatment: int, n_holdout: int, baseline: float, *,
                              alpha: float = POWER_ALPHA, power: float = POWER) -> float | None:
    """The smallest absolute uplift over ``baseline`` that the holdout comparison can detect.

    Two-sided two-proportion z-test (pooled variance under the null, unpooled under the alternative,
    no continuity correction): the smallest ``d`` with
    ``d >= z(1 - alpha/2) * se_pooled(d) + z(power) * se(d)``. None when an arm is empty or not even an
    uplift to a conversion rate of 1 would be detectable.
    """
    if not 0 < baseline < 1:
        raise ValueError(f"baseline must be between 0 and 1, got {baseline}")
    if n_treatment < 1 or n_holdout < 1:
        return None
    z_alpha = NormalDist().inv_cdf(1 - alpha / 2)
    z_power = NormalDist().inv_cdf(power)
    inv = 1 / n_treatment + 1 / n_holdout

    def shortfall(d: float) -> float:
        p1 = baseline + d
        pooled = (n_holdout * baseline + n_treatment * p1) / (n_treatment + n_holdout)
        se_null = math.sqrt(pooled * (1 - pooled) * inv)
        se_alt = math.sqrt(baseline * (1 - baseline) / n_holdout + p1 * (1 - p1) / n_treatment)
        return d - (z_alpha * se_null + z_power * se_alt)

    lo, hi = 0.0, 1.0 - baseline
    if shortfall(hi) < 0:
        return None
    for _ in range(100):
        mid = (lo + hi) / 2
        if shortfall(mid) >= 0:
            hi = mid
        else:
            lo = mid
    return hi


# -- snapshot ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotSummary:
    campaign_id: str
    run_id: str
    run_date: date
    definition_hash: str
    members: int
    treatment: int
    holdout: int
    variants: dict[str, int] = field(default_factory=dict)
    duplicate_emails_dropped: int = 0
    candidates: int = 0
    excluded: int = 0
    exclusions: dict[str, int] = field(default_factory=dict)
    coupons: int = 0
    mde: float | None = None
    mde_relative: float | None = None
    min_detectable_effect: float | None = None
    power_warning: bool = False
    # Hourly series: due candidates whose step was already decided for their series key by another run.
    already_decided: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id, "run_id": self.run_id, "run_date": self.run_date.isoformat(),
            "definition_hash": self.definition_hash, "members": self.members,
            "treatment": self.treatment, "holdout": self.holdout, "variants": dict(self.variants),
            "duplicate_emails_dropped": self.duplicate_emails_dropped,
            "candidates": self.candidates, "excluded": self.excluded, "exclusions": dict(self.exclusions),
            "coupons": self.coupons, "mde": self.mde, "mde_relative": self.mde_relative,
            "min_detectable_effect": self.min_detectable_effect, "power_warning": self.power_warning,
            "already_decided": self.already_decided,
        }


def eligible_audience_sql(audience_sql: str) -> str:
    """The audience query filtered by the contact rules alone (consent, a non-empty email, not suppressed).

    For previews and analysts in plain SQL; it does not apply the email pattern, duplicates, cooldowns
    or caps. :func:`build_snapshot` uses :func:`~martech.campaigns.eligibility.annotated_audience_sql`
    instead, which keeps every row and says why one is excluded.
    """
    body = audience_sql.strip().rstrip(";").rstrip()
    statuses = ", ".join(f"'{s}'" for s in CONSENTED_STATUSES)
    # The closing parenthesis sits on its own line so a trailing "-- comment" cannot swallow it.
    return f"""with audience as (
{body}
)
select audience.*
from audience
inner join staging.contacts as contact on audience.contact_id = contact.contact_id
where contact.consent_status in ({statuses})
  and nullif(btrim(audience.email), '') is not null
  and not exists (
      select 1 from campaigns.suppressions as s
      where s.email = lower(btrim(audience.email)) or s.contact_id = audience.contact_id
  )
order by audience.contact_id"""


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def _read_candidates(conn: Connection, spec: CampaignSpec, run_date: date,
                     run_at: datetime) -> tuple[list[str], list[Candidate]]:
    """Run the annotated audience query; returns the audience's own columns and one candidate per row."""
    where = spec.audience_sql_path
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cur = raw.cursor()
    try:
        sql, targeting_params = targeted_audience_sql(spec, spec.audience_sql_text(), run_date)
        cur.execute(eligibility.annotated_audience_sql(sql),
                    {"run_date": run_date, "run_ts": run_at, **targeting_params})
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
    except Exception as exc:
        raise AudienceSqlError(f"{where}: the audience query failed: {exc}".strip()) from exc
    finally:
        cur.close()
    n = len(eligibility.ANNOTATIONS)
    own, annotations = columns[:-n], columns[-n:]
    assert tuple(annotations) == eligibility.ANNOTATIONS, annotations
    missing = [c for c in REQUIRED_COLUMNS if c not in own]
    if missing:
        raise AudienceSqlError(f"{where}: the query must return {', '.join(REQUIRED_COLUMNS)}; "
                               f"it lacks {', '.join(missing)} (columns: {', '.join(own)})")
    extra = [c for c in own if c not in REQUIRED_COLUMNS]
    clashes = sorted(RESERVED_NAMES.intersection(extra)
                     | {c for c in extra if c.startswith(eligibility.ANNOTATION_PREFIX)})
    if clashes or len(set(own)) != len(own):
        raise AudienceSqlError(f"{where}: rename the personalization columns {clashes or own}: "
                               "they repeat or clash with names the templates get anyway")

    candidates = []
    seen: set[str] = set()
    erased = do_not_contact(conn)
    for values in rows:
        row = dict(zip(own, values[:-n], strict=True))
        consent, known, suppression = values[-n:]
        if row["email"] and erased(str(row["email"])):
            suppression = suppression or "erased: on the do-not-contact list"
        if row["contact_id"] is None:
            raise AudienceSqlError(f"{where}: contact_id must not be null")
        contact_id = str(row["contact_id"])
        if contact_id in seen:
            raise AudienceSqlError(f"{where}: contact_id {contact_id!r} is returned more than once; "
                                   "the audience must have one row per contact")
        seen.add(contact_id)
        candidates.append(Candidate(contact_id=contact_id, raw_email=row["email"], row=row,
                                    consent_status=consent, known=bool(known), suppression=suppression))
    return own, candidates


def _discount(spec: CampaignSpec, c: Candidate) -> int:
    assert spec.coupon is not None
    attribute = spec.coupon.discount_attribute
    if attribute is None or c.row.get(attribute) is None:
        return spec.coupon.discount_percent
    value = c.row[attribute]
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        number = Decimal("NaN")
    if not number.is_finite() or number != number.to_integral_value() or not 1 <= number <= 100:
        raise AudienceSqlError(f"{spec.audience_sql_path}: {attribute} (the coupon's discount_attribute) must be "
                               f"a whole percentage between 1 and 100, got {value!r} for contact {c.contact_id!r}")
    return int(number)


_WATERMARK = sa.text("""
select
    max(b.loaded_at) as loaded_at,
    coalesce(jsonb_object_agg(b.table_name, b.batch_id order by b.table_name), '{}'::jsonb)::text as batch_ids
from (
    select distinct on (i.table_name) i.table_name, i.batch_id, i.loaded_at
    from raw.ingest_batches as i
    where i.loaded_at <= :cutoff
    order by i.table_name, i.loaded_at desc, i.batch_id desc
) as b
""")


def _input_watermark(conn: Connection, cutoff: datetime) -> tuple[datetime | None, str]:
    """The newest landing batch per table loaded by the run's instant (the run date's start for daily runs)."""
    if conn.execute(sa.text("select to_regclass('raw.ingest_batches')")).scalar_one() is None:
        return None, "{}"
    row = conn.execute(_WATERMARK, {"cutoff": cutoff}).one()
    return row.loaded_at, row.batch_ids


_INSERT_SNAPSHOT = sa.text("""
insert into audiences.snapshots (
    campaign_id, run_id, run_date, definition_hash, priority, cooldown_days, frequency_cap,
    frequency_cap_window_days, candidates, members, treatment, holdout, excluded, exclusions, coupons,
    holdout_share, baseline_conversion, min_detectable_effect, mde, power_warning, input_loaded_at,
    input_batch_ids
) values (
    :campaign_id, :run_id, :run_date, :definition_hash, :priority, :cooldown_days, :frequency_cap,
    :frequency_cap_window_days, :candidates, :members, :treatment, :holdout, :excluded,
    cast(:exclusions as jsonb), :coupons, :holdout_share, :baseline_conversion, :min_detectable_effect,
    :mde, :power_warning, :input_loaded_at, cast(:input_batch_ids as jsonb)
)
""")


def _power_check(spec: CampaignSpec, treatment: int, holdout: int) -> tuple[float | None, bool]:
    mde = minimum_detectable_effect(treatment, holdout, spec.baseline_conversion)
    wanted = spec.min_detectable_effect
    warn = wanted is not None and (mde is None or wanted < mde)
    if warn:
        achievable = "no uplift at all" if mde is None else f"an uplift of {mde:.4f} (absolute) or more"
        log.warning(
            "%s: the holdout cannot detect the min_detectable_effect of %.4f: with %d treatment and %d holdout "
            "members and a baseline conversion of %.4f, it detects %s (alpha %.2f, power %.2f). Raise "
            "holdout_share, widen the audience or accept a larger effect.",
            spec.id, wanted, treatment, holdout, spec.baseline_conversion, achievable, POWER_ALPHA, POWER)
    return mde, warn


def _trigger_instant(c: Candidate) -> datetime | None:
    trigger = c.row.get("trigger_at")
    if trigger is None:
        return None
    if isinstance(trigger, datetime):
        return trigger if trigger.tzinfo is not None else trigger.replace(tzinfo=timezone.utc)
    if isinstance(trigger, date):
        return datetime.combine(trigger, time(0), tzinfo=timezone.utc)
    parsed = datetime.fromisoformat(str(trigger))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _in_step(spec: CampaignSpec, step: int, run_date: date, c: Candidate) -> bool:
    """Daily series: did the contact's trigger fall on the day this step is due (delay + 1 days ago)?"""
    trigger = _trigger_instant(c)
    if trigger is None:
        return False
    return trigger.astimezone(timezone.utc).date() == run_date - spec.steps[step - 1].delay - timedelta(days=1)


def _due_this_hour(spec: CampaignSpec, step: int, run_at: datetime, c: Candidate) -> bool:
    """Hourly series: is the step due at ``run_at`` and not yet stale?

    Due from the first hourly run after trigger + delay (a trigger at 10:05 with delay 0: the 11:00 run)
    for ``catch_up_hours`` runs, so the run after a missed hour still sends it; which of those runs sends it
    is settled by :func:`_decided_elsewhere`.
    """
    trigger = _trigger_instant(c)
    if trigger is None:
        return False
    due_before = run_at - spec.steps[step - 1].delay
    return due_before - timedelta(hours=spec.catch_up_hours) <= trigger < due_before


_DECIDED = sa.text("""
select c.contact_id, d.how
from unnest(cast(:contacts as text[]), cast(:keys as text[]), cast(:triggers as timestamptz[]))
    as c (contact_id, series_key, trigger_at)
cross join lateral (
    select m.run_id || ' (' || m.arm || ')' as how
    from audiences.audience_members as m
    where m.campaign_id = :campaign_id and m.step = :step and m.series_key = c.series_key and m.run_id <> :run_id
    union all
    select e.run_id || ' (excluded: ' || e.reason || ')'
    from audiences.exclusions as e
    where e.campaign_id = :campaign_id and e.step = :step and e.series_key = c.series_key and e.run_id <> :run_id
    union all
    -- The ledger too: a send of this step to the contact since the trigger belongs to this pass, even if
    -- the snapshot that planned it was rebuilt without the key since.
    select l.run_id || ' (ledger: ' || l.status || ')'
    from campaigns.send_ledger as l
    where l.campaign_id = :campaign_id and l.step = :step and l.contact_id = c.contact_id and l.run_id <> :run_id
      and l.status <> 'skipped' and l.created_at >= c.trigger_at
    limit 1
) as d
""")


def _decided_elsewhere(conn: Connection, spec: CampaignSpec, step: int, run_id: str,
                       due: Sequence[tuple[Candidate, str, datetime]]) -> dict[str, str]:
    """Contact id -> the other run that already decided this step for the candidate's series key.

    The natural key of a step send is (campaign, step, series key): the first run that finds the step due
    decides it (member in either arm, or excluded with reasons) and later runs, reruns of other hours
    included, leave the key alone. The unique index on audience_members backs this up for members.
    """
    if not due:
        return {}
    rows = conn.execute(_DECIDED, {
        "campaign_id": spec.id, "step": step, "run_id": run_id, "contacts": [c.contact_id for c, _, _ in due],
        "keys": [k for _, k, _ in due], "triggers": [t for _, _, t in due]})
    return {contact_id: how for contact_id, how in rows}


def build_snapshot(engine: Engine, spec: CampaignSpec, run_date: Run | date | str | datetime, *,
                   settings: CampaignSettings | None = None, coupon_secret: str | None = None,
                   step: int = 1) -> SnapshotSummary:
    """Snapshot the audience of ``spec`` for ``run_date``; returns what it holds.

    Writes, in one transaction and replacing the run's previous rows: ``audiences.audience_members``
    (eligible contacts with arm and variant), ``audiences.exclusions`` (everyone else, with reasons),
    ``campaigns.coupons`` (when the campaign has a coupon) and the run's ``audiences.snapshots`` row. A
    rerun with the same inputs leaves identical rows.

    ``settings`` default to the ``_settings.yml`` beside the campaign file; ``coupon_secret`` to
    ``MARTECH_COUPON_SECRET``.

    An hourly series (``spec.hourly``) takes the run's instant (an aware datetime, truncated to the hour;
    a date means its 00:00 run): the audience SQL gets it as ``%(run_ts)s``, the run id is
    ``<date>T<HH>[.step<n>]``, and each step is decided once per series key across all runs.
    """
    from martech.campaigns import coupons

    run = run_of(spec, run_date)
    run_at, day = run.cutoff, run.date
    run_id = run.run_id(step)
    spec.for_step(step)  # validates the step number
    settings = settings or load_settings(spec.campaigns_dir)
    already_decided = 0
    keys: dict[str, str] = {}
    with engine.begin() as conn:
        # Two runs of the same snapshot (a manual rerun beside a retry) must not interleave; for an hourly
        # series neither may two runs of the same step, which decide the same series keys.
        lock = f"martech.series:{spec.id}:{step}" if spec.hourly else f"martech.audience:{spec.id}:{run_id}"
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:key))"), {"key": lock})
        apply_sunset(conn, spec, day)
        columns, candidates = _read_candidates(conn, spec, day, run_at)
        if spec.steps:
            if "trigger_at" not in columns:
                raise AudienceSqlError(f"{spec.audience_sql_path}: a campaign with steps needs a trigger_at column"
                                       f" (when the series started for the contact); columns: {', '.join(columns)}")
            if spec.hourly:
                candidates, keys, already_decided = _hourly_step(conn, spec, step, run_id, run_at, columns,
                                                                 candidates)
            else:
                candidates = [c for c in candidates if _in_step(spec, step, day, c)]
        lacking = [c for c in ("country", "language") if spec.content and c not in columns]
        if lacking:
            raise AudienceSqlError(f"{spec.audience_sql_path}: the campaign's content varies by country and "
                                   f"language, so the query must return {' and '.join(lacking)} (from "
                                   f"staging.contacts); columns: {', '.join(columns)}")
        if spec.coupon and spec.coupon.discount_attribute and spec.coupon.discount_attribute not in columns:
            raise AudienceSqlError(f"{spec.audience_sql_path}: the coupon's discount_attribute "
                                   f"{spec.coupon.discount_attribute!r} is not a column of the query "
                                   f"(columns: {', '.join(columns)})")
        extra = [c for c in columns if c not in REQUIRED_COLUMNS and c not in eligibility.EXIT_COLUMNS]
        try:
            result = eligibility.evaluate(conn, candidates, spec=spec, run_id=run_id, run_date=day,
                                          settings=settings)
        except ValueError as exc:
            raise AudienceSqlError(f"{spec.audience_sql_path}: {exc}") from exc

        assigned = []
        counts: Counter[str] = Counter()
        variants: Counter[str] = Counter()
        for c in result.eligible:
            arm = assign_arm(spec.id, spec.salt, c.contact_id, spec.holdout_share)
            variant = assign_variant(spec.id, spec.salt, c.contact_id, spec.variants)
            counts[arm] += 1
            variants[variant] += 1
            assigned.append((c, arm, variant))

        issued: dict[str, coupons.Coupon] = {}
        if spec.coupon is not None:
            requests = [coupons.CouponRequest(c.contact_id, make_send_id(spec.id, run_id, step, c.contact_id),
                                              _discount(spec, c)) for c, _, _ in assigned]
            issued = coupons.issue_coupons(
                conn, campaign_id=spec.id, run_id=run_id, run_date=day, prefix=spec.coupon.prefix,
                validity_days=spec.coupon.validity_days, requests=requests,
                secret=coupon_secret or coupons.secret_from_env())
        cards: dict[str, coupons.Coupon] = {}
        if spec.loyalty_card is not None:
            card = spec.loyalty_card
            cards = coupons.issue_coupons(
                conn, campaign_id=spec.id, run_id=run_id, run_date=day, prefix=card.prefix,
                validity_days=card.validity_days, kind="loyalty_card",
                requests=[coupons.CouponRequest(c.contact_id, make_send_id(spec.id, run_id, step, c.contact_id),
                                                card.discount_percent) for c, _, _ in assigned],
                secret=coupon_secret or coupons.secret_from_env())

        members = []
        definition_hash = spec.definition_hash
        optimise = spec.send_time is not None and spec.send_time.optimise
        for c, arm, variant in assigned:
            send_time_arm = (assign_send_time_arm(spec.id, c.contact_id, spec.send_time.comparison_share)
                             if optimise and spec.send_time is not None and arm == "treatment" else None)
            attributes = {k: _json_value(c.row[k]) for k in extra}
            if c.contact_id in issued:
                attributes["coupon"] = issued[c.contact_id].as_attribute()
            if c.contact_id in cards:
                attributes["loyalty_card"] = cards[c.contact_id].as_attribute()
            members.append((
                spec.id, run_id, day.isoformat(), c.contact_id, c.email, c.row["first_name"], arm, variant,
                definition_hash, json.dumps(attributes, sort_keys=True, ensure_ascii=False), step,
                keys.get(c.contact_id), send_time_arm,
            ))

        run_key = {"c": spec.id, "r": run_id}
        conn.execute(sa.text("delete from audiences.audience_members where campaign_id = :c and run_id = :r"),
                     run_key)
        copy_rows(conn, "audiences.audience_members", MEMBER_COLUMNS, members)
        apply_send_window(conn, spec, run_id, day, at=run_at if spec.hourly else None)
        conn.execute(sa.text("delete from audiences.exclusions where campaign_id = :c and run_id = :r"), run_key)
        copy_rows(conn, "audiences.exclusions", EXCLUSION_COLUMNS,
                  ((spec.id, run_id, day, e.contact_id, e.email, e.reason, e.detail, step,
                    keys.get(e.contact_id)) for e in result.exclusions))

        mde, power_warning = _power_check(spec, counts["treatment"], counts["holdout"])
        reason_counts = result.counts()
        loaded_at, batch_ids = _input_watermark(conn, run_at)
        cap = settings.frequency_cap
        conn.execute(sa.text("delete from audiences.snapshots where campaign_id = :c and run_id = :r"), run_key)
        conn.execute(_INSERT_SNAPSHOT, {
            "campaign_id": spec.id, "run_id": run_id, "run_date": day,
            "definition_hash": spec.definition_hash, "priority": spec.priority,
            "cooldown_days": spec.cooldown_days, "frequency_cap": cap.max_emails,
            "frequency_cap_window_days": cap.window_days, "candidates": len(candidates),
            "members": len(members), "treatment": counts["treatment"], "holdout": counts["holdout"],
            "excluded": result.excluded_contacts, "exclusions": json.dumps(reason_counts, sort_keys=True),
            "coupons": len(issued), "holdout_share": spec.holdout_share,
            "baseline_conversion": spec.baseline_conversion, "min_detectable_effect": spec.min_detectable_effect,
            "mde": None if mde is None else round(mde, 6), "power_warning": power_warning,
            "input_loaded_at": loaded_at, "input_batch_ids": batch_ids,
        })

    summary = SnapshotSummary(
        campaign_id=spec.id, run_id=run_id, run_date=day, definition_hash=spec.definition_hash,
        members=len(members), treatment=counts["treatment"], holdout=counts["holdout"],
        variants=dict(sorted(variants.items())), duplicate_emails_dropped=reason_counts.get("duplicate_email", 0),
        candidates=len(candidates), excluded=result.excluded_contacts, exclusions=reason_counts,
        coupons=len(issued), mde=mde, mde_relative=None if mde is None else mde / spec.baseline_conversion,
        min_detectable_effect=spec.min_detectable_effect, power_warning=power_warning,
        already_decided=already_decided,
    )
    log.info("%s run %s: %d candidates, %d members (%d treatment, %d holdout), %d excluded %s, mde %s%s",
             spec.id, run_id, summary.candidates, summary.members, summary.treatment, summary.holdout,
             summary.excluded, reason_counts, "n/a" if mde is None else f"{mde:.4f}",
             f", {already_decided} already decided by other runs" if spec.hourly else "")
    return summary


def _hourly_step(conn: Connection, spec: CampaignSpec, step: int, run_id: str, run_at: datetime,
                 columns: Sequence[str], candidates: list[Candidate]
                 ) -> tuple[list[Candidate], dict[str, str], int]:
    """The candidates this hourly run decides for ``step``: due now, and not decided by another run.

    Returns them, their series keys by contact id, and how many due candidates another run had decided.
    """
    key_column = spec.series_key
    assert key_column is not None  # the spec requires it for hourly series
    if key_column not in columns:
        raise AudienceSqlError(f"{spec.audience_sql_path}: series_key {key_column!r} is not a column of the query "
                               f"(columns: {', '.join(columns)})")
    due: list[tuple[Candidate, str, datetime]] = []
    for c in candidates:
        if not _due_this_hour(spec, step, run_at, c):
            continue
        value = c.row.get(key_column)
        if value is None:
            raise AudienceSqlError(f"{spec.audience_sql_path}: series_key column {key_column!r} is null for contact "
                                   f"{c.contact_id!r}; every row of an hourly series needs one")
        trigger = _trigger_instant(c)
        assert trigger is not None  # _due_this_hour checked it
        due.append((c, str(value), trigger))
    decided = _decided_elsewhere(conn, spec, step, run_id, due)
    kept = [(c, k) for c, k, _ in due if c.contact_id not in decided]
    if decided:
        log.info("%s run %s: step %d already decided for %d due contacts (e.g. %s)", spec.id, run_id, step,
                 len(decided), "; ".join(f"{k}: {v}" for k, v in sorted(decided.items())[:3]))
    return [c for c, _ in kept], {c.contact_id: k for c, k in kept}, len(decided)

