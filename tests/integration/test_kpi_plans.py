"""The KPI build plans on fresh statistics: on a shop of ~100k customers whose tables were just filled
(autovacuum off, so only the build's own ANALYZE can inform the planner), every join input of every KPI
query is estimated within 10× of the rows it really produced.

Without fresh statistics the planner guesses (e.g. 23 rows for a join input that returns 7,390) and picks
nested loops that run for many minutes at this scale. The bound is generous on purpose: it catches a
planner working from no statistics, not ordinary estimation error. ``MARTECH_PLAN_TEST_CUSTOMERS`` sets
the scale (default 100,000).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.db import sql_file
from martech.kpis.build import SQL_MODELS, input_tables
from martech.warehouse import Warehouse

pytestmark = pytest.mark.integration

RUN_DATE = dt.date(2026, 6, 1)
CUSTOMERS = int(os.environ.get("MARTECH_PLAN_TEST_CUSTOMERS", "100000"))
CAMPAIGNS, RUNS_PER_CAMPAIGN = 3, 5
MAX_RATIO = 10
# Inputs this small are cheap whatever the plan; below it a ratio only measures noise.
MIN_ROWS = 100
JOINS = {"Nested Loop", "Hash Join", "Merge Join"}
SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"}
WRAPPERS = {"Hash", "Sort", "Incremental Sort", "Materialize", "Memoize", "Gather", "Gather Merge"}

# Every statement fills one table from generate_series; :n is the number of customers.
_FILL = [
    """insert into staging.contacts (contact_id, email, consent_status, customer_id, created_at, updated_at,
           country, timezone)
       select 'c' || i, 'person' || i || '@example.com', case when i % 10 = 0 then 'unsubscribed' else 'subscribed'
           end, case when i % 20 = 0 then null else i end, timestamptz '2024-01-01' + i * interval '5 minutes',
           timestamptz '2026-01-01', 'DE', 'Europe/Berlin'
       from generate_series(1, :n) as i""",
    """insert into staging.orders (order_id, customer_id, order_ts, order_date, status, currency, total_amount,
           net_amount)
       select g, 1 + (g * 7919) % :n, ts, ts::date,
           case when g % 25 = 0 then 'cancelled' else 'completed' end, 'EUR', 20 + g % 80, 18 + g % 70
       from generate_series(1::bigint, 2 * :n) as g,
           lateral (select timestamptz '2026-06-01' - (g % 700) * interval '1 day' - (g % 24) * interval '1 hour'
           as ts) as t""",
    """insert into staging.carts (cart_id, customer_id, created_at, updated_at, status, cart_value)
       select g, 1 + (g * 104729) % :n, timestamptz '2026-06-01' - (g % 120) * interval '1 day',
           timestamptz '2026-06-01' - (g % 120) * interval '1 day',
           case when g % 3 = 0 then 'abandoned' else 'converted' end, 10 + g % 90
       from generate_series(1::bigint, :n / 2) as g""",
    """insert into campaigns.campaign_runs (campaign_id, run_id, run_date, definition_hash,
           conversion_window_days, members, treatment, holdout, sent, transport)
       select 'plan_c' || c, (date '2026-05-01' + r)::text, date '2026-05-01' + r, 'h', 7, 0, 0, 0, 0, 'outbox'
       from generate_series(1, :campaigns) as c, generate_series(0, :runs - 1) as r""",
    # Each run's audience: a slice of the contacts, 1 in 10 held out, two variants.
    """insert into audiences.audience_members (campaign_id, run_id, run_date, contact_id, email, arm, variant,
           definition_hash, step)
       select runs.campaign_id, runs.run_id, runs.run_date, 'c' || i, 'person' || i || '@example.com',
           case when i % 10 = 3 then 'holdout' else 'treatment' end, case when i % 2 = 0 then 'a' else 'b' end,
           'h', 1
       from campaigns.campaign_runs as runs,
           lateral generate_series(1 + (hashtext(runs.run_id || runs.campaign_id) & 65535) % (:n / 2),
                                   (hashtext(runs.run_id || runs.campaign_id) & 65535) % (:n / 2) + :n / 25) as i""",
    """insert into audiences.exclusions (campaign_id, run_id, run_date, contact_id, reason, step)
       select runs.campaign_id, runs.run_id, runs.run_date, 'c' || i,
           case when i % 2 = 0 then 'no_consent' else 'frequency_cap' end, 1
       from campaigns.campaign_runs as runs, lateral generate_series(1, :n / 100) as i""",
    """insert into audiences.snapshots (campaign_id, run_id, run_date, definition_hash, priority, cooldown_days,
           frequency_cap_window_days, candidates, members, treatment, holdout, excluded, holdout_share,
           baseline_conversion, power_warning)
       select campaign_id, run_id, run_date, 'h', 1, 7, 7, 0, 0, 0, 0, 0, 0.1, 0.02, false
       from campaigns.campaign_runs""",
    """insert into campaigns.send_ledger (send_id, campaign_id, run_id, step, contact_id, email, variant, status,
           transport, attempts, created_at, sent_at)
       select md5(campaign_id || run_id || contact_id), campaign_id, run_id, 1, contact_id, email, variant,
           'sent', 'outbox', 1, run_date::timestamptz, run_date::timestamptz
       from audiences.audience_members where arm = 'treatment'""",
    # Delivered for every send, an open for 1 in 3, a click for 1 in 12, a bounce for 1 in 50.
    """insert into staging.email_events (event_id, event, event_ts, email, send_id, campaign_id, run_id,
           contact_id, machine_open)
       select l.send_id || ':' || e.event, e.event, l.sent_at + e.lag, l.email, l.send_id, l.campaign_id,
           l.run_id, l.contact_id, e.event = 'open' and h % 7 = 0
       from campaigns.send_ledger as l,
           lateral (select abs(hashtext(l.send_id)) as h) as x,
           lateral (values ('delivered', interval '1 minute', true), ('open', interval '3 hours', h % 3 = 0),
                           ('click', interval '4 hours', h % 12 = 0), ('bounce', interval '2 minutes', h % 50 = 0))
               as e (event, lag, keep)
       where e.keep""",
    """insert into marts.customer_rfm (as_of_date, customer_id, recency_days, frequency, monetary, first_order_at,
           last_order_at, r_score, f_score, m_score, rfm_score, segment)
       select d, i, i % 365, 1 + i % 9, 10 + i % 500, timestamptz '2024-06-01', timestamptz '2026-05-01',
           1 + i % 5, 1 + i % 4, 1 + i % 3, '111', (array['champions', 'loyal', 'at_risk', 'lost'])[1 + i % 4]
       from generate_series(1, :n) as i, (values (date '2026-05-01'), (date '2026-06-01')) as s (d)""",
]


def _without_comments(stmt: str) -> str:
    return "\n".join(line for line in stmt.splitlines() if not line.lstrip().startswith("--")).lstrip()


def _create_tables(conn: Any, names: list[str]) -> None:
    """The tables' DDL only (create, alter, index): a model file's refresh is left out, the test fills them."""
    for name in names:
        for stmt in sql_file(name).statements():
            body = _without_comments(stmt)
            if body.lower().startswith(("create table", "create index", "create unique index", "alter table")):
                conn.exec_driver_sql(body)


@pytest.fixture(scope="module")
def shop(module_warehouse):
    eng = module_warehouse.engine
    tables = sorted(input_tables())
    with eng.begin() as conn:
        _create_tables(conn, tables)
        for name in tables:
            # Only the code under test may bring statistics: no autovacuum run between fill and build.
            conn.exec_driver_sql(f"alter table {name} set (autovacuum_enabled = false)")
        for stmt in _FILL:
            conn.execute(sa.text(stmt), {"n": CUSTOMERS, "campaigns": CAMPAIGNS, "runs": RUNS_PER_CAMPAIGN})
        conn.exec_driver_sql("update campaigns.campaign_runs as r set members = m.n from (select campaign_id,"
                             " run_id, count(*) as n from audiences.audience_members group by 1, 2) as m"
                             " where r.campaign_id = m.campaign_id and r.run_id = m.run_id")
    with Warehouse(module_warehouse.url) as wh:
        summary = pipeline.build_kpis(wh, RUN_DATE)
    return eng, summary


def _from_tables_only(node: dict) -> bool:
    """Whether a plan node's rows come from table scans through joins alone: its estimate then rests on
    the tables' statistics only. Below a CTE, a function or an aggregate the planner works from fixed
    guesses (1000 rows for generate_series, 200 groups for an expression) that no statistics improve."""
    kind = node["Node Type"]
    if kind in SCANS:
        return all(_from_tables_only(c) for c in node.get("Plans", []))
    return kind in JOINS | WRAPPERS and all(_from_tables_only(c) for c in node.get("Plans", []))


def _join_inputs(node: dict, path: str = "") -> list[tuple[str, float, float]]:
    """(where, estimated rows, actual rows) of every executed join input that is built from tables alone.

    Wrappers (a hash join's Hash, Sort, Materialize, ...) pass their child's rows on and are looked
    through; estimates and actual rows are per loop on both sides.
    """
    here = f"{path}/{node['Node Type']}"
    found = []
    for child in node.get("Plans", []):
        if node["Node Type"] in JOINS and child.get("Actual Loops", 0) > 0 and _from_tables_only(child):
            source = child
            while source["Node Type"] in WRAPPERS and source.get("Plans"):
                source = source["Plans"][0]
            where = f"{here}/{source['Node Type']}" + (f" on {source['Relation Name']}"
                                                      if "Relation Name" in source else "")
            found.append((where, float(source["Plan Rows"]), float(source["Actual Rows"])))
        found += _join_inputs(child, here)
    return found


def _explain(eng: Any, name: str) -> list[tuple[str, float, float]]:
    """EXPLAIN ANALYZE of each insert of the model's refresh (in a transaction rolled back afterwards)."""
    params = {"run_date": RUN_DATE, "cost_per_send": 0.001, "click_window_days": 7, "open_window_days": 1}
    inputs = []
    with eng.connect() as conn:
        cur = conn.connection.dbapi_connection.cursor()
        try:
            for stmt in sql_file(name).statements():
                body = _without_comments(stmt)
                if not body.lower().startswith("insert"):
                    cur.execute(stmt, params)
                    continue
                cur.execute("explain (analyze, format json) " + stmt, params)
                plan = cur.fetchone()[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                inputs += _join_inputs(plan[0]["Plan"])
        finally:
            conn.connection.dbapi_connection.rollback()
            cur.close()
    return inputs


def test_the_build_ran_on_the_generated_shop(shop):
    eng, summary = shop
    rows = summary["rows"]
    members = CAMPAIGNS * RUNS_PER_CAMPAIGN * (CUSTOMERS // 25)
    assert rows["campaigns.member_outcomes"] == members
    assert rows["kpis.campaign_daily"] >= CAMPAIGNS * RUNS_PER_CAMPAIGN * 2  # both arms of every run
    with eng.connect() as conn:
        converted = conn.execute(sa.text("select count(*) filter (where converted), count(*) filter"
                                         " (where clicked) from campaigns.member_outcomes")).one()
    assert converted[0] > 0 and converted[1] > 0


@pytest.mark.parametrize("name", SQL_MODELS)
def test_join_estimates_are_within_10x_of_actual_rows(shop, name):
    eng, _ = shop
    off = [(where, est, act) for where, est, act in _explain(eng, name)
           if max(est, act) >= MIN_ROWS and max(est, act) / max(min(est, act), 1) > MAX_RATIO]
    assert not off, (f"{sql_file(name).path}: join inputs estimated more than {MAX_RATIO}x off the rows they"
                     " produced (stale or missing statistics? run martech.db.analyze after loading): "
                     + "; ".join(f"{w}: estimated {e:.0f}, actual {a:.0f}" for w, e, a in off))
