"""Quiet hours: the send window of a campaign, in each contact's own time zone.

At snapshot time every member of a campaign with a ``send_window`` gets ``send_at`` (the window's start on
the run date, local time) and ``send_before`` (its end). At dispatch, :func:`scheduled_for` decides per
message: inside the window → now; before it → its start; after it → the next day's start (24 hours later;
on a daylight-saving change day that is off by the hour the clocks moved). Unknown or missing time zones
count as UTC. With send-time optimisation (``send_time: {optimise: true}``) the members of arm ``sto`` get
``send_at`` at their preferred local hour (``marts.contact_send_hours``) clamped into the window, the next
such hour at or after an hourly run's instant; both arms record ``planned_send_at`` / ``planned_hour``.
Transports that can schedule (SendGrid ``send_at``, up to 72 hours ahead) are handed the
time; the others hold the message until a later dispatch of the run (see docs/campaigns.md).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

# The window's day is the run date, or for an hourly run the contact's local date at the run's instant
# (a 23:00 UTC run is already tomorrow morning in Tokyo).
_APPLY = sa.text("""
update audiences.audience_members as m
set send_at = (coalesce((cast(:at as timestamptz) at time zone w.tz)::date, cast(:run_date as date))
               + cast(:start as time)) at time zone w.tz,
    send_before = (coalesce((cast(:at as timestamptz) at time zone w.tz)::date, cast(:run_date as date))
                   + cast(:end as time)) at time zone w.tz
from (
    select c.contact_id,
        coalesce((select z.name from pg_timezone_names as z where z.name = c.timezone), 'UTC') as tz
    from staging.contacts as c
) as w
where m.campaign_id = :campaign_id and m.run_id = :run_id and w.contact_id = m.contact_id
""")

_DEFAULT_UTC = sa.text("""
update audiences.audience_members
set send_at = (coalesce((cast(:at as timestamptz) at time zone 'UTC')::date, cast(:run_date as date))
               + cast(:start as time)) at time zone 'UTC',
    send_before = (coalesce((cast(:at as timestamptz) at time zone 'UTC')::date, cast(:run_date as date))
                   + cast(:end as time)) at time zone 'UTC'
where campaign_id = :campaign_id and run_id = :run_id and send_at is null
""")


# The hours mart is built with the customer models; before its first build every sto member falls back
# to the window's start (the fixed time).
_NO_HOURS = "(select null::text as contact_id, null::smallint as preferred_hour where false)"

_PLAN = """
with members as (
    select
        m.contact_id,
        m.send_time_arm,
        h.preferred_hour,
        coalesce((select z.name from pg_timezone_names as z where z.name = c.timezone), 'UTC') as tz
    from audiences.audience_members as m
    left join staging.contacts as c on m.contact_id = c.contact_id
    left join {hours} as h on m.contact_id = h.contact_id
    where m.campaign_id = :campaign_id and m.run_id = :run_id and m.send_time_arm is not null
),
local as (
    select
        contact_id,
        send_time_arm,
        preferred_hour,
        tz,
        coalesce((cast(:at as timestamptz) at time zone tz)::date, cast(:run_date as date)) as day,
        coalesce(cast(:at as timestamptz) at time zone tz, cast(:run_date as date) + cast(:start as time)) as now_local
    from members
),
first_slot as (
    select
        contact_id,
        send_time_arm,
        tz,
        day,
        now_local,
        case
            when send_time_arm = 'sto' then greatest(
                day + cast(:start as time),
                least(day + make_interval(hours => coalesce(preferred_hour, 0)),
                      day + cast(:end as time) - interval '1 hour'))
            else greatest(day + cast(:start as time), now_local)
        end as slot
    from local
),
final as (
    select
        contact_id,
        send_time_arm,
        tz,
        case
            -- today's preferred hour has passed at the run's instant: the same hour tomorrow
            when send_time_arm = 'sto' and slot < now_local then slot + interval '1 day'
            when send_time_arm = 'fixed' and slot >= day + cast(:end as time) then day + 1 + cast(:start as time)
            else slot
        end as planned_local
    from first_slot
)
update audiences.audience_members as m
set planned_send_at = f.planned_local at time zone f.tz,
    planned_hour = extract(hour from f.planned_local),
    send_at = case when f.send_time_arm = 'sto' then f.planned_local at time zone f.tz else m.send_at end,
    send_before = case
        when f.send_time_arm = 'sto' then (f.planned_local::date + cast(:end as time)) at time zone f.tz
        else m.send_before
    end
from final as f
where m.campaign_id = :campaign_id and m.run_id = :run_id and m.contact_id = f.contact_id
"""


def apply_send_window(conn: Any, spec: Any, run_id: str, run_date: date, *, at: datetime | None = None) -> None:
    """Fill send_at / send_before of the run's members (inside the snapshot's transaction).

    ``at``: an hourly run's instant; the window is then that of the contact's local day at ``at``.
    """
    window = getattr(spec, "send_window", None)
    if window is None:
        return
    params = {"campaign_id": spec.id, "run_id": run_id, "run_date": run_date, "start": window.start,
              "end": window.end, "at": at}
    conn.execute(_APPLY, params)
    conn.execute(_DEFAULT_UTC, params)
    send_time = getattr(spec, "send_time", None)
    if send_time is not None and send_time.optimise:
        exists = conn.execute(sa.text("select to_regclass('marts.contact_send_hours')")).scalar_one()
        conn.execute(sa.text(_PLAN.format(hours="marts.contact_send_hours" if exists else _NO_HOURS)), params)


def scheduled_for(send_at: datetime | None, send_before: datetime | None, now: datetime) -> datetime | None:
    """When a message may go out: None = now (no window, or inside it), else the next window start."""
    if send_at is None:
        return None
    if now < send_at:
        return send_at
    if send_before is None or now < send_before:
        return None
    # total_seconds: Airflow hands in pendulum instants, whose differences do not floor-divide by timedelta.
    days = int((now - send_at).total_seconds() // 86_400) + 1
    return send_at + timedelta(days=days)
