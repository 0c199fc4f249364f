"""``kpis.send_time_comparison``: send-time optimisation against the fixed time, per campaign.

Members of a campaign with ``send_time: {optimise: true}`` are split at random into arm ``sto`` (their
preferred hour) and ``fixed`` (audiences.audience_members.send_time_arm). Per arm: sends, human opens,
clicks and conversions (campaigns.member_outcomes) and their rates per send; the ``sto`` row carries the
difference sto − fixed of each rate with Newcombe's hybrid score interval (:mod:`martech.kpis.uplift`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from martech.kpis.uplift import newcombe_interval

__all__ = ["build_send_time_comparison", "comparison_rows"]

TABLE = "kpis.send_time_comparison"
_COUNTS = ("human_opens", "clicks", "conversions")
_RATES = ("open_rate", "click_rate", "conversion_rate")

_ARMS = sa.text("""
select o.campaign_id, m.send_time_arm as arm, min(o.run_date) as period_start, max(o.run_date) as period_end,
    count(*) as members, count(*) filter (where o.sent) as sends,
    count(*) filter (where o.sent and o.opened) as human_opens,
    count(*) filter (where o.sent and o.clicked) as clicks,
    count(*) filter (where o.sent and o.converted) as conversions
from campaigns.member_outcomes as o
inner join audiences.audience_members as m
    on o.campaign_id = m.campaign_id and o.run_id = m.run_id and o.contact_id = m.contact_id
where o.as_of_date = :d and o.arm = 'treatment' and m.send_time_arm is not null
group by o.campaign_id, m.send_time_arm
order by o.campaign_id, m.send_time_arm
""")


def comparison_rows(arms: list[dict[str, Any]], as_of: dt.date) -> list[dict[str, Any]]:
    """Rates per arm and, on each campaign's sto row, the differences sto − fixed with 95 % intervals."""
    rows = []
    by_campaign: dict[str, dict[str, dict[str, Any]]] = {}
    for a in arms:
        by_campaign.setdefault(a["campaign_id"], {})[a["arm"]] = a
    for _, pair in sorted(by_campaign.items()):
        for arm in ("sto", "fixed"):
            if arm not in pair:
                continue
            a = pair[arm]
            sends = int(a["sends"])
            row: dict[str, Any] = {**a, "as_of_date": as_of}
            for count, rate in zip(_COUNTS, _RATES, strict=True):
                row[rate] = int(a[count]) / sends if sends else None
                row[f"{rate}_diff"] = row[f"{rate}_diff_low"] = row[f"{rate}_diff_high"] = None
            other = pair.get("fixed")
            if arm == "sto" and other is not None and sends and int(other["sends"]):
                for count, rate in zip(_COUNTS, _RATES, strict=True):
                    d, low, high = newcombe_interval(int(a[count]), sends, int(other[count]), int(other["sends"]))
                    row[f"{rate}_diff"], row[f"{rate}_diff_low"], row[f"{rate}_diff_high"] = d, low, high
            rows.append(row)
    return rows


def build_send_time_comparison(engine: Engine, run_date: dt.date) -> int:
    """Rebuild kpis.send_time_comparison from campaigns.member_outcomes as of ``run_date``; returns its rows."""
    from martech.db import copy_rows, sql_file

    with engine.connect() as conn:
        arms = [dict(r) for r in conn.execute(_ARMS, {"d": run_date}).mappings()]
    rows = comparison_rows(arms, run_date)
    columns = list(sql_file(TABLE).column_comments())  # the table is created by migrate
    with engine.begin() as conn:
        conn.execute(sa.text(f"truncate {TABLE}"))
        copy_rows(conn, TABLE, columns, ([r.get(c) for c in columns] for r in rows))
    return len(rows)
