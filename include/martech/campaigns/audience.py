"""Audience snapshots: who a campaign run targets, in which arm and with which variant.

Assignment is a pure function of ``campaign_id:salt:contact_id``: its sha256 digest gives two
independent uniform numbers in [0, 1), the first 8 bytes for the arm and the next 8 for the variant, so
reruns, backfills and analysts (in SQL) all get the same answer. Holdout members carry the variant they
would have got; it is never sent, and it lets per-variant uplift use the matching slice of the holdout.

:func:`build_snapshot` runs the campaign's audience SQL wrapped in the shared eligibility filter
(consent given, not suppressed, has an email) and replaces the run's rows of
``audiences.audience_members`` in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from martech.campaigns.render import RESERVED_NAMES
from martech.campaigns.spec import CampaignSpec, Variant
from martech.db import copy_rows

__all__ = [
    "CONSENTED_STATUSES",
    "AudienceSqlError",
    "SnapshotSummary",
    "as_run_date",
    "assign_arm",
    "assign_variant",
    "build_snapshot",
    "eligible_audience_sql",
]

Arm = Literal["treatment", "holdout"]
CONSENTED_STATUSES = ("opted_in", "double_opt_in")
REQUIRED_COLUMNS = ("contact_id", "email", "first_name")
MEMBER_COLUMNS = (
    "campaign_id", "run_id", "run_date", "contact_id", "email", "first_name", "arm", "variant",
    "definition_hash", "attributes",
)
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id, "run_id": self.run_id, "run_date": self.run_date.isoformat(),
            "definition_hash": self.definition_hash, "members": self.members,
            "treatment": self.treatment, "holdout": self.holdout, "variants": dict(self.variants),
            "duplicate_emails_dropped": self.duplicate_emails_dropped,
        }


def as_run_date(value: date | str) -> date:
    """A run date from a ``date`` or an ISO ``YYYY-MM-DD`` string (Airflow's ``ds``)."""
    if isinstance(value, datetime):
        raise TypeError(f"run_date must be a date, not a datetime ({value!r}); pass value.date()")
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def eligible_audience_sql(audience_sql: str) -> str:
    """The audience query wrapped in the filter every campaign shares.

    Keeps rows whose contact has given consent, has a non-empty email and is not in
    ``campaigns.suppressions`` by email or by contact id. Column order of the audience is kept.
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


def build_snapshot(engine: Engine, spec: CampaignSpec, run_date: date | str) -> SnapshotSummary:
    """Snapshot the audience of ``spec`` for ``run_date`` into ``audiences.audience_members``.

    The run's previous rows are deleted and the new ones copied in the same transaction, so a rerun
    with the same inputs leaves identical rows. Two contacts sharing an email address would get the
    message twice: only the lowest contact id per address is kept.
    """
    run_date = as_run_date(run_date)
    run_id = run_date.isoformat()
    sql = eligible_audience_sql(spec.audience_sql_text())
    where = spec.audience_sql_path
    with engine.begin() as conn:
        # Two runs of the same snapshot (a manual rerun beside a retry) must not interleave.
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:key))"),
                     {"key": f"martech.audience:{spec.id}:{run_id}"})
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            cur.execute(sql, {"run_date": run_date})
            columns = [d[0] for d in cur.description]
            rows = cur.fetchall()
        except Exception as exc:
            raise AudienceSqlError(f"{where}: the audience query failed: {exc}".strip()) from exc
        finally:
            cur.close()
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise AudienceSqlError(f"{where}: the query must return {', '.join(REQUIRED_COLUMNS)}; "
                                   f"it lacks {', '.join(missing)} (columns: {', '.join(columns)})")
        extra = [c for c in columns if c not in REQUIRED_COLUMNS]
        clashes = sorted(RESERVED_NAMES.intersection(extra))
        if clashes or len(set(columns)) != len(columns):
            raise AudienceSqlError(f"{where}: rename the personalization columns {clashes or columns}: "
                                   "they repeat or clash with names the templates get anyway")

        members = []
        seen_contacts: set[str] = set()
        seen_emails: set[str] = set()
        dropped = 0
        counts: Counter[str] = Counter()
        variants: Counter[str] = Counter()
        for values in rows:
            row = dict(zip(columns, values, strict=True))
            contact_id = str(row["contact_id"])
            if contact_id in seen_contacts:
                raise AudienceSqlError(f"{where}: contact_id {contact_id!r} is returned more than once; "
                                       "the audience must have one row per contact")
            seen_contacts.add(contact_id)
            email = str(row["email"]).strip().lower()
            if email in seen_emails:
                dropped += 1
                continue
            seen_emails.add(email)
            arm = assign_arm(spec.id, spec.salt, contact_id, spec.holdout_share)
            variant = assign_variant(spec.id, spec.salt, contact_id, spec.variants)
            counts[arm] += 1
            variants[variant] += 1
            attributes = {c: _json_value(row[c]) for c in extra}
            members.append((
                spec.id, run_id, run_id, contact_id, email, row["first_name"], arm, variant,
                spec.definition_hash, json.dumps(attributes, sort_keys=True, ensure_ascii=False),
            ))

        conn.execute(sa.text("delete from audiences.audience_members where campaign_id = :c and run_id = :r"),
                     {"c": spec.id, "r": run_id})
        copy_rows(conn, "audiences.audience_members", MEMBER_COLUMNS, members)

    return SnapshotSummary(
        campaign_id=spec.id, run_id=run_id, run_date=run_date, definition_hash=spec.definition_hash,
        members=len(members), treatment=counts["treatment"], holdout=counts["holdout"],
        variants=dict(sorted(variants.items())), duplicate_emails_dropped=dropped,
    )
