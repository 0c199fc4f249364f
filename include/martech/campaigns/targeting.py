"""A campaign's ``targeting`` conditions applied around its audience query.

:func:`targeted_audience_sql` wraps the audience SQL so only the rows whose contact (staging.contacts)
meets every condition remain, keeping the query's own columns in their order. Local days: an event
counts for "the last N days" when its date in the contact's time zone (staging.contacts.timezone, UTC
when unknown) is one of the N days before the run date and it happened before the run's cutoff (the
data the run sees). A season is on when the contact's country is in the calendar on the run date.

The query parameters the wrapper needs are returned beside it, named ``martech_target_*`` so they
cannot clash with ``run_date`` / ``run_ts``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from martech.campaigns.calendars import CALENDARS_DIR_NAME, load_calendars
from martech.campaigns.spec import CampaignSpec

__all__ = ["season_countries", "targeted_audience_sql"]

_LOCAL_DAY = "(({ts}) at time zone coalesce(target_contact.timezone, 'UTC'))::date"


def season_countries(spec: CampaignSpec, run_date: date) -> tuple[str, ...]:
    """The countries where the campaign's ``in_season`` calendar is on ``run_date`` (empty without one)."""
    if spec.targeting is None or spec.targeting.in_season is None:
        return ()
    calendars = load_calendars(spec.campaigns_dir / CALENDARS_DIR_NAME)
    return calendars[spec.targeting.in_season].countries_on(run_date)


def targeted_audience_sql(spec: CampaignSpec, audience_sql: str, run_date: date) -> tuple[str, dict[str, Any]]:
    """(SQL, extra parameters): the audience query with the campaign's targeting applied.

    Without targeting the query comes back unchanged and the parameters are empty.
    """
    t = spec.targeting
    if t is None:
        return audience_sql, {}
    conditions: list[str] = []
    params: dict[str, Any] = {}
    for field in ("country", "region", "language"):
        values = getattr(t, field)
        if values is not None:
            conditions.append(f"target_contact.{field} = any(%(martech_target_{field})s)")
            params[f"martech_target_{field}"] = list(values)
    if t.in_season is not None:
        conditions.append("target_contact.country = any(%(martech_target_season)s)")
        params["martech_target_season"] = list(season_countries(spec, run_date))
    if t.signed_up_within_days is not None:
        day = _LOCAL_DAY.format(ts="target_contact.consent_updated_at")
        conditions.append(
            "target_contact.consent_status in ('opted_in', 'double_opt_in')"
            f" and {day} >= %(run_date)s::date - %(martech_target_signup_days)s::integer"
            f" and {day} < %(run_date)s::date and target_contact.consent_updated_at < %(run_ts)s")
        params["martech_target_signup_days"] = t.signed_up_within_days
    if t.purchased_within_days is not None:
        day = _LOCAL_DAY.format(ts="target_order.order_ts")
        conditions.append(
            "exists (select 1 from staging.orders as target_order"
            " where target_order.customer_id = target_contact.customer_id and target_order.status <> 'cancelled'"
            f" and {day} >= %(run_date)s::date - %(martech_target_purchase_days)s::integer"
            f" and {day} < %(run_date)s::date and target_order.order_ts < %(run_ts)s)")
        params["martech_target_purchase_days"] = t.purchased_within_days
    body = audience_sql.strip().rstrip(";").rstrip()
    where = "\n  and ".join(f"({c})" for c in conditions)
    # The closing parenthesis sits on its own line so a trailing "-- comment" cannot swallow it.
    sql = f"""with targeted as (
{body}
)
select targeted.*
from targeted
inner join staging.contacts as target_contact on target_contact.contact_id = targeted.contact_id::text
where {where}"""
    return sql, params
