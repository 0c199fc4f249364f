"""Campaign goals: each YAML may state ``goal: {kpi, target, deadline}``; this computes the progress.

``build_goals`` writes one ``kpis.campaign_goals`` row per campaign with a goal and run date: the KPI's
value on the data before the run date, ``progress = value / target`` and a status (``achieved`` once the
value reaches the target, ``missed`` when the deadline passed without, ``on_the_way`` before it, ``no_data``
while there is nothing to measure). The KPIs and their SQL (bound ``:campaign_id`` and ``:run_date``) are
in :data:`KPI_SQL`; their descriptions in :data:`martech.campaigns.spec.GOAL_KPIS`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["KPI_SQL", "build_goals", "goal_status"]

TABLE = "kpis.campaign_goals"

# A campaign's own KPIs come from kpis.campaign_daily (treatment arm, every step, variant and send day);
# the shop's repeat rate of new customers from staging.orders.
KPI_SQL: dict[str, str] = {
    "conversion_rate": (
        "select sum(converted)::float / nullif(sum(members), 0) from kpis.campaign_daily"
        " where campaign_id = :campaign_id and arm = 'treatment' and as_of_date = :run_date"),
    "click_rate": (
        "select sum(clicked)::float / nullif(sum(delivered), 0) from kpis.campaign_daily"
        " where campaign_id = :campaign_id and arm = 'treatment' and as_of_date = :run_date"),
    "revenue_per_member": (
        "select sum(revenue)::float / nullif(sum(members), 0) from kpis.campaign_daily"
        " where campaign_id = :campaign_id and arm = 'treatment' and as_of_date = :run_date"),
    # Customers whose first completed order was 90 to 455 days before the run date (a whole 90-day window
    # seen, the last year of cohorts): the share with a second completed order within 90 days of the first.
    "repeat_rate_new_customers": """
        with firsts as (
            select customer_id, min(order_ts) as first_ts
            from staging.orders where status = 'completed' and order_ts < :run_date
            group by customer_id
        )
        select avg(case when exists (
            select 1 from staging.orders as o
            where o.customer_id = f.customer_id and o.status = 'completed' and o.order_ts > f.first_ts
              and o.order_ts < f.first_ts + interval '90 days'
        ) then 1.0 else 0.0 end)::float
        from firsts as f
        where f.first_ts >= cast(:run_date as date) - 455 and f.first_ts < cast(:run_date as date) - 90
    """,
}


def goal_status(value: float | None, target: float, deadline: dt.date, as_of: dt.date) -> str:
    if value is None:
        return "no_data"
    if value >= target:
        return "achieved"
    return "missed" if as_of > deadline else "on_the_way"


def build_goals(engine: Engine, run_date: dt.date, specs: Sequence[Any] | None = None) -> int:
    """Replace ``run_date``'s rows of kpis.campaign_goals; ``specs`` default to the campaign folder's files
    (a broken file is skipped here: its DAG's import error reports it)."""
    from martech import paths
    from martech.campaigns.spec import GOAL_KPIS, scan_campaigns

    if specs is None:
        specs, _ = scan_campaigns(paths.campaigns_dir())
    rows = []
    with engine.connect() as conn:
        for spec in specs:
            goal = spec.goal
            if goal is None:
                continue
            value = conn.execute(sa.text(KPI_SQL[goal.kpi]), {"campaign_id": spec.id, "run_date": run_date}).scalar()
            value = None if value is None else float(value)
            rows.append({"as_of_date": run_date, "campaign_id": spec.id, "kpi": goal.kpi,
                         "kpi_description": GOAL_KPIS[goal.kpi], "target": goal.target, "deadline": goal.deadline,
                         "value": value, "progress": None if value is None else value / goal.target,
                         "days_left": (goal.deadline - run_date).days,
                         "status": goal_status(value, goal.target, goal.deadline, run_date)})
    with engine.begin() as conn:
        conn.execute(sa.text(f"delete from {TABLE} where as_of_date = :d"), {"d": run_date})
        if rows:
            conn.execute(sa.text(
                f"insert into {TABLE} (as_of_date, campaign_id, kpi, kpi_description, target, deadline, value,"
                " progress, days_left, status) values (:as_of_date, :campaign_id, :kpi, :kpi_description, :target,"
                " :deadline, :value, :progress, :days_left, :status)"), rows)
    return len(rows)
