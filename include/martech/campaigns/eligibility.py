"""Who of an audience may be mailed, and for everyone else the reason why not.

Every row the audience SQL returns is a *candidate*. :func:`evaluate` splits the candidates into the
eligible ones (they become ``audiences.audience_members``) and exclusions (``audiences.exclusions``, one
row per contact, campaign run and reason), in three stages:

1. Facts about the contact, all recorded when several apply:
   ``missing_email`` (null or blank), ``invalid_email`` (fails :data:`EMAIL_PATTERN`), ``no_consent``
   (consent status not opted_in / double_opt_in, or no row in ``staging.contacts``; the status in
   detail), ``suppressed`` (email or contact id in ``campaigns.suppressions``; its reason in detail).
2. ``duplicate_email``: among the contacts left, one message per address: the lowest contact id
   (binary order) is kept, the others name it in detail.
3. History, for the contacts left (both recorded when both apply):
   ``cooldown`` the campaign's ``cooldown_days``: the contact got this campaign within that many days
   before the run date; ``frequency_cap`` the contact already has ``max_emails`` marketing emails in
   the window of ``window_days`` days ending on the run date (``_settings.yml``). What counts:
   sends (``campaigns.send_ledger`` status ``sent``, matched by contact id or address) before the run
   date, plus the treatment members of campaigns of higher priority (lower ``priority``, ties by
   campaign id) snapshotted for the same run date, sent or not yet.

   For this campaign's own history a holdout membership counts as if it had been sent: otherwise only
   treatment contacts would ever be held back by cooldown and cap, the arms would drift apart from
   run to run and the uplift would be biased.

Before these, an audience may end a contact's flow itself: a row whose ``exit_reason`` column is set
(``converted``: the abandoned cart was bought) is excluded with that reason and ``exit_detail``, and the
other stages do not look at it (see :func:`audience_exits`).

Same-day mails of campaigns with a *lower* priority do not count (the higher-priority campaign wins
the day); snapshots should be built in priority order, which the schedules do. A rerun of a run sees
the same history (its own sends are not history), so it records the same exclusions.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy.engine import Connection

from martech.campaigns.spec import CampaignSettings, CampaignSpec
from martech.db import copy_rows

__all__ = [
    "ANNOTATION_PREFIX",
    "CONSENTED_STATUSES",
    "EMAIL_PATTERN",
    "REASONS",
    "Candidate",
    "Eligibility",
    "Exclusion",
    "Mail",
    "annotated_audience_sql",
    "audience_exits",
    "cap_exclusion",
    "check_contact",
    "cooldown_exclusion",
    "drop_duplicate_emails",
    "email_problem",
    "evaluate",
    "normalize_email",
]

CONSENTED_STATUSES = ("opted_in", "double_opt_in")

# In the order they are checked; the table's check constraint lists the same names.
REASONS: dict[str, str] = {
    # Stage 0, said by the audience SQL itself (its exit_reason column): the contact left the flow.
    "converted": "left the flow by buying (the order or converted cart in detail)",
    "missing_email": "no email address",
    "invalid_email": "the address does not look like an email address",
    "no_consent": "no marketing consent (consent status in detail)",
    "suppressed": "in campaigns.suppressions (its reason in detail)",
    "duplicate_email": "another contact with the same address gets the message (its contact id in detail)",
    "cooldown": "got this campaign within its cooldown_days",
    "frequency_cap": "has reached the cap of marketing emails in the window (the mails counted in detail)",
}

# Pragmatic, not RFC 5322: dot-atom local part, host names of letters, digits and inner hyphens, a
# top-level domain of letters. Quoted local parts and non-ASCII (unencoded IDN) addresses fail.
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
EMAIL_PATTERN = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[a-z]{{2,63}}$")
MAX_EMAIL_LENGTH = 254

ANNOTATION_PREFIX = "martech__"
_CONSENT = f"{ANNOTATION_PREFIX}consent"
_KNOWN = f"{ANNOTATION_PREFIX}known"
_SUPPRESSION = f"{ANNOTATION_PREFIX}suppression"
ANNOTATIONS = (_CONSENT, _KNOWN, _SUPPRESSION)


# -- stage 1: facts about the contact ----------------------------------------------------------------


def normalize_email(value: Any) -> str | None:
    """Trimmed and lower-cased; None when null or blank."""
    if value is None:
        return None
    text = str(value).strip().lower()
    return text or None


def email_problem(value: Any) -> tuple[str, str] | None:
    """``(reason, detail)`` when the address cannot be mailed, else None."""
    email = normalize_email(value)
    if email is None:
        return "missing_email", "null" if value is None else "blank"
    if len(email) > MAX_EMAIL_LENGTH:
        return "invalid_email", f"longer than {MAX_EMAIL_LENGTH} characters"
    if not EMAIL_PATTERN.match(email):
        return "invalid_email", "does not match the address pattern"
    return None


@dataclass(frozen=True)
class Exclusion:
    contact_id: str
    email: str | None
    reason: str
    detail: str | None = None

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown exclusion reason {self.reason!r}; known: {', '.join(REASONS)}")


@dataclass(frozen=True)
class Candidate:
    """One row of the audience SQL plus what the shared checks need to know about its contact."""

    contact_id: str
    raw_email: Any
    row: Mapping[str, Any]
    consent_status: str | None = None
    known: bool = True
    suppression: str | None = None
    email: str | None = field(init=False)  # raw_email trimmed and lower-cased

    def __post_init__(self) -> None:
        object.__setattr__(self, "email", normalize_email(self.raw_email))


EXIT_REASON = "exit_reason"
EXIT_DETAIL = "exit_detail"
EXIT_COLUMNS = (EXIT_REASON, EXIT_DETAIL)


def audience_exits(candidates: Iterable[Candidate]) -> tuple[list[Candidate], list[Exclusion]]:
    """Stage 0: rows whose audience SQL set ``exit_reason`` (e.g. ``converted``) leave with that reason."""
    kept, exits = [], []
    for c in candidates:
        reason = c.row.get(EXIT_REASON)
        if reason is None:
            kept.append(c)
            continue
        if reason not in REASONS:
            raise ValueError(f"exit_reason {reason!r} of contact {c.contact_id!r} is not a known reason; "
                             f"use one of: {', '.join(REASONS)}")
        detail = c.row.get(EXIT_DETAIL)
        exits.append(Exclusion(c.contact_id, c.email, str(reason), None if detail is None else str(detail)))
    return kept, exits


def check_contact(c: Candidate) -> list[Exclusion]:
    """Stage 1: every fact that rules the contact out (empty when none does)."""
    out = []
    problem = email_problem(c.raw_email)
    if problem:
        out.append(Exclusion(c.contact_id, c.email, *problem))
    if not c.known:
        out.append(Exclusion(c.contact_id, c.email, "no_consent", "no row in staging.contacts"))
    elif c.consent_status not in CONSENTED_STATUSES:
        out.append(Exclusion(c.contact_id, c.email, "no_consent", c.consent_status or "null"))
    if c.suppression is not None:
        out.append(Exclusion(c.contact_id, c.email, "suppressed", c.suppression))
    return out


def drop_duplicate_emails(candidates: Iterable[Candidate]) -> tuple[list[Candidate], list[Exclusion]]:
    """Stage 2: one contact per address, the lowest contact id (binary order) wins."""
    ordered = sorted(candidates, key=lambda c: c.contact_id.encode("utf-8"))
    keeper: dict[str, str] = {}
    kept, dropped = [], []
    for c in ordered:
        email = c.email
        assert email is not None  # stage 1 removed the others
        if email in keeper:
            dropped.append(Exclusion(c.contact_id, email, "duplicate_email", keeper[email]))
        else:
            keeper[email] = c.contact_id
            kept.append(c)
    return kept, dropped


# -- stage 3: history ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    """A marketing email a contact got (``sent``), would have got (``holdout`` of this campaign) or is
    about to get today from a campaign of higher priority (``planned``)."""

    campaign_id: str
    run_id: str
    day: date
    kind: str

    def describe(self) -> str:
        return f"{self.campaign_id} {self.day.isoformat()} {self.kind}"


def _latest_first(mails: Iterable[Mail]) -> list[Mail]:
    """One mail per (campaign, run), preferring ``sent`` over ``planned``; newest first."""
    best: dict[tuple[str, str], Mail] = {}
    for m in mails:
        key = (m.campaign_id, m.run_id)
        if key not in best or (best[key].kind != "sent" and m.kind == "sent"):
            best[key] = m
    return sorted(best.values(), key=lambda m: (m.day, m.campaign_id, m.run_id), reverse=True)


def cooldown_exclusion(c: Candidate, mails: Sequence[Mail], *, campaign_id: str, run_date: date,
                       cooldown_days: int) -> Exclusion | None:
    """Excluded when this campaign was sent (or held out) within ``cooldown_days`` before the run date."""
    if cooldown_days <= 0:
        return None
    start = run_date - timedelta(days=cooldown_days)
    recent = [m for m in _latest_first(mails) if m.campaign_id == campaign_id and m.kind in ("sent", "holdout")
              and start <= m.day < run_date]
    if not recent:
        return None
    last = recent[0]
    return Exclusion(c.contact_id, c.email, "cooldown",
                     f"{last.kind} {last.day.isoformat()} (run {last.run_id}), cooldown_days {cooldown_days}")


def cap_exclusion(c: Candidate, mails: Sequence[Mail], *, campaign_id: str, run_date: date,
                  max_emails: int | None, window_days: int) -> Exclusion | None:
    """Excluded when the mails counted in the window already reach ``max_emails``."""
    if max_emails is None:
        return None
    start = run_date - timedelta(days=window_days - 1)
    counted = [
        m for m in _latest_first(mails)
        if (m.kind == "planned" and m.day == run_date)
        or (m.kind == "sent" and start <= m.day < run_date)
        or (m.kind == "holdout" and m.campaign_id == campaign_id and start <= m.day < run_date)
    ]
    if len(counted) < max_emails:
        return None
    listed = ", ".join(m.describe() for m in counted[:10]) + (", ..." if len(counted) > 10 else "")
    return Exclusion(c.contact_id, c.email, "frequency_cap",
                     f"{len(counted)} of max {max_emails} in {window_days} days: {listed}")


_CANDIDATES_TABLE = "martech_eligibility_candidates"

_HISTORY = f"""
with

history as (
    -- mails that reached a mailbox before the run date, from any campaign
    select
        l.campaign_id,
        l.run_id,
        l.contact_id,
        lower(btrim(l.email)) as email,
        (l.sent_at at time zone 'UTC')::date as day,
        'sent' as kind
    from campaigns.send_ledger as l
    where
        l.status = 'sent'
        and l.sent_at >= %(history_start)s
        and l.sent_at < %(run_start)s
        and not (l.campaign_id = %(campaign_id)s and l.run_id = %(run_id)s)

    union all

    -- this campaign's holdout members of earlier runs: would have been sent
    select m.campaign_id, m.run_id, m.contact_id, m.email, m.run_date, 'holdout'
    from audiences.audience_members as m
    where
        m.campaign_id = %(campaign_id)s
        and m.arm = 'holdout'
        and m.run_date >= %(history_start_date)s
        and m.run_date < %(run_date)s

    union all

    -- today's treatment members of campaigns with a higher priority
    select m.campaign_id, m.run_id, m.contact_id, m.email, m.run_date, 'planned'
    from audiences.audience_members as m
    inner join audiences.snapshots as s on m.campaign_id = s.campaign_id and m.run_id = s.run_id
    where
        m.run_date = %(run_date)s
        and m.arm = 'treatment'
        and m.campaign_id <> %(campaign_id)s
        and (
            s.priority < %(priority)s
            or (s.priority = %(priority)s and s.campaign_id collate "C" < %(campaign_id)s collate "C")
        )
)

select c.contact_id, h.campaign_id, h.run_id, h.day, h.kind
from pg_temp.{_CANDIDATES_TABLE} as c
inner join history as h on c.contact_id = h.contact_id
union
select c.contact_id, h.campaign_id, h.run_id, h.day, h.kind
from pg_temp.{_CANDIDATES_TABLE} as c
inner join history as h on c.email = h.email
"""


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def load_history(conn: Connection, candidates: Sequence[Candidate], *, spec: CampaignSpec, run_id: str,
                 run_date: date, settings: CampaignSettings) -> dict[str, list[Mail]]:
    """The mails that count for cooldown and cap, per candidate contact id."""
    cap = settings.frequency_cap
    days_back = max(spec.cooldown_days, cap.window_days if cap.max_emails is not None else 0)
    if not candidates or days_back == 0:
        return {}
    history_start = run_date - timedelta(days=days_back)
    conn.exec_driver_sql(f"drop table if exists pg_temp.{_CANDIDATES_TABLE}")
    conn.exec_driver_sql(f"create temp table {_CANDIDATES_TABLE} (contact_id text primary key, email text not null)"
                         " on commit drop")
    copy_rows(conn, f"pg_temp.{_CANDIDATES_TABLE}", ("contact_id", "email"),
              ((c.contact_id, c.email) for c in candidates))
    conn.exec_driver_sql(f"analyze pg_temp.{_CANDIDATES_TABLE}")
    params = {
        "campaign_id": spec.id, "run_id": run_id, "run_date": run_date, "priority": spec.priority,
        "history_start": _midnight(history_start), "history_start_date": history_start,
        "run_start": _midnight(run_date),
    }
    out: dict[str, list[Mail]] = defaultdict(list)
    for contact_id, campaign_id, hist_run_id, day, kind in conn.exec_driver_sql(_HISTORY, params):
        out[contact_id].append(Mail(campaign_id, hist_run_id, day, kind))
    conn.exec_driver_sql(f"drop table if exists pg_temp.{_CANDIDATES_TABLE}")
    return dict(out)


# -- all stages ----------------------------------------------------------------------------------------


@dataclass
class Eligibility:
    eligible: list[Candidate] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Excluded contacts per reason (a contact with two reasons counts under both)."""
        out = dict.fromkeys(REASONS, 0)
        for e in self.exclusions:
            out[e.reason] += 1
        return {k: v for k, v in out.items() if v}

    @property
    def excluded_contacts(self) -> int:
        return len({e.contact_id for e in self.exclusions})


def evaluate(conn: Connection, candidates: Sequence[Candidate], *, spec: CampaignSpec, run_id: str,
             run_date: date, settings: CampaignSettings) -> Eligibility:
    """Apply the stages; eligible candidates keep their input order."""
    candidates, exclusions = audience_exits(candidates)
    passed = []
    for c in candidates:
        facts = check_contact(c)
        exclusions.extend(facts)
        if not facts:
            passed.append(c)
    kept, duplicates = drop_duplicate_emails(passed)
    exclusions.extend(duplicates)

    history = load_history(conn, kept, spec=spec, run_id=run_id, run_date=run_date, settings=settings)
    held_back: set[str] = set()
    cap = settings.frequency_cap
    for c in kept:
        mails = history.get(c.contact_id)
        if not mails:
            continue
        for history_reason in (
            cooldown_exclusion(c, mails, campaign_id=spec.id, run_date=run_date, cooldown_days=spec.cooldown_days),
            cap_exclusion(c, mails, campaign_id=spec.id, run_date=run_date, max_emails=cap.max_emails,
                          window_days=cap.window_days),
        ):
            if history_reason is not None:
                exclusions.append(history_reason)
                held_back.add(c.contact_id)

    kept_ids = {c.contact_id for c in kept} - held_back
    order = list(REASONS)
    exclusions.sort(key=lambda e: (e.contact_id.encode("utf-8"), order.index(e.reason)))
    return Eligibility(eligible=[c for c in candidates if c.contact_id in kept_ids], exclusions=exclusions)


# -- the audience query with what stage 1 needs ------------------------------------------------------


def annotated_audience_sql(audience_sql: str) -> str:
    """The audience query wrapped so each row also carries its contact's consent and suppression.

    Keeps every row and the audience's own columns in order; appends the ``martech__*`` columns.
    """
    body = audience_sql.strip().rstrip(";").rstrip()
    # The closing parenthesis sits on its own line so a trailing "-- comment" cannot swallow it.
    return f"""with audience as (
{body}
)
select
    audience.*,
    contact.consent_status as {_CONSENT},
    (contact.contact_id is not null) as {_KNOWN},
    coalesce(by_email.reason, by_contact.reason) as {_SUPPRESSION}
from audience
left join staging.contacts as contact on contact.contact_id = audience.contact_id::text
left join campaigns.suppressions as by_email on by_email.email = lower(btrim(audience.email::text))
left join lateral (
    select s.reason from campaigns.suppressions as s
    where s.contact_id = audience.contact_id::text
    order by s.created_at, s.email
    limit 1
) as by_contact on true
order by audience.contact_id::text collate "C"
"""
