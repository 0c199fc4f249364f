"""The KPI families on a small simulated shop: filled, and consistent with the staging tables they summarise."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.campaigns.spec import load_campaigns
from martech.kpis.build import SQL_MODELS, build_kpis

pytestmark = pytest.mark.integration

AS_OF = dt.date(2026, 6, 1)


@pytest.fixture(scope="module")
def kpis(simulated_staging, warehouse):
    eng = simulated_staging(AS_OF, customers=600, seed=9)
    pipeline.build_customer_models(warehouse, AS_OF)
    counts = build_kpis(eng, AS_OF)
    return eng, counts


def _all(eng, sql: str):
    with eng.connect() as conn:
        return conn.execute(sa.text(sql)).all()


def test_every_family_is_filled(kpis):
    _, counts = kpis
    empty_without_campaigns = {"campaigns.member_outcomes", "kpis.campaign_daily", "kpis.campaign_exclusions",
                               "kpis.engagement", "kpis.campaign_uplift", "kpis.send_time_comparison"}
    assert set(counts) == set(SQL_MODELS) | {"kpis.campaign_uplift", "kpis.campaign_goals", "kpis.send_time_comparison"}
    assert all(n > 0 for name, n in counts.items() if name not in empty_without_campaigns), counts


def test_revenue_days_add_up_to_staged_revenue(kpis):
    eng, _ = kpis
    (total, orders), = _all(eng, "select sum(revenue), sum(orders) from kpis.revenue_daily")
    (staged, n), = _all(eng, "select sum(net_amount), count(*) from staging.orders"
                             f" where status = 'completed' and order_ts < '{AS_OF}'")
    assert (total, orders) == (staged, n)
    assert _all(eng, "select count(*) from kpis.revenue_daily where new_customer_revenue + returning_customer_revenue"
                     " <> revenue or aov * orders - revenue > 0.01 * orders") == [(0,)]


def test_cohorts_start_at_full_retention_and_ltv_grows(kpis):
    eng, _ = kpis
    assert _all(eng, "select distinct retention_rate from kpis.cohorts_monthly where months_since = 0") == [
        (Decimal("1.000000"),)]
    shrinking = _all(eng, "select count(*) from (select ltv_per_customer - lag(ltv_per_customer) over"
                          " (partition by cohort_month order by months_since) as d from kpis.cohorts_monthly) x"
                          " where d < 0")
    assert shrinking == [(0,)]


def test_funnel_narrows_and_shares_are_proportions(kpis):
    eng, _ = kpis
    stages = [r[0] for r in _all(eng, "select contacts from kpis.funnel order by stage_order")]
    assert len(stages) == 3 and stages[0] >= stages[1] >= stages[2] > 0
    assert all(abs(float(s) - 1) < 1e-4 for (s,) in _all(eng, "select sum(share) from kpis.rfm_segments group by as_of"))
    rates = _all(eng, "select min(abandonment_rate), max(abandonment_rate) from kpis.cart_abandonment_daily")
    assert 0 <= rates[0][0] <= rates[0][1] <= 1


def test_campaign_goals_show_progress_towards_their_targets(kpis):
    eng, _ = kpis
    goals = {r.campaign_id: r for r in _all(eng, "select * from kpis.campaign_goals")}
    specs = {s.id: s for s in load_campaigns() if s.goal is not None}
    assert set(goals) == set(specs) and "welcome" in goals
    for cid, row in goals.items():
        goal = specs[cid].goal
        assert (row.kpi, row.target, row.deadline, row.as_of_date) == (goal.kpi, goal.target, goal.deadline, AS_OF)
        assert row.days_left == (goal.deadline - AS_OF).days
    # No campaign has sent in this warehouse: the campaign's own KPI has nothing to measure yet.
    assert (goals["replenishment"].value, goals["replenishment"].status) == (None, "no_data")
    # The shop's repeat rate of new customers, recounted from the staged orders.
    orders = pd.DataFrame(_all(eng, f"select customer_id, order_ts from staging.orders where status = 'completed'"
                                    f" and order_ts < '{AS_OF}'"), columns=["customer_id", "order_ts"])
    orders = orders.sort_values("order_ts")
    first = orders.groupby("customer_id")["order_ts"].min()
    cut = pd.Timestamp(AS_OF, tz="UTC")
    cohort = first[(first >= cut - pd.Timedelta(days=455)) & (first < cut - pd.Timedelta(days=90))]
    later = orders.merge(cohort.rename("first_ts"), left_on="customer_id", right_index=True)
    again = later[(later["order_ts"] > later["first_ts"]) & (later["order_ts"] < later["first_ts"] + pd.Timedelta(days=90))]
    rate = again["customer_id"].nunique() / len(cohort)
    welcome = goals["welcome"]
    target = specs["welcome"].goal.target
    assert welcome.value == pytest.approx(rate) and welcome.progress == pytest.approx(rate / target)
    assert welcome.status == ("achieved" if rate >= target else "on_the_way")


def test_acquisition_totals_never_shrink(kpis):
    eng, _ = kpis
    totals = [r[0] for r in _all(eng, "select total_contacts from kpis.acquisition_monthly order by month")]
    assert totals == sorted(totals) and totals[-1] > 0
    assert _all(eng, "select count(*) from kpis.acquisition_monthly where active_contacts > total_contacts") == [(0,)]


# -- the public contract (BRIEF.md): analysts and the report depend on these names ------------------------

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "public_tables.json"
PUBLIC_SCHEMAS = ("marts", "kpis")
PUBLIC_TABLES = ("audiences.audience_members", "campaigns.send_ledger", "campaigns.suppressions")


def _public_columns(eng) -> dict[str, list[str]]:
    with eng.connect() as conn:
        rows = conn.execute(sa.text(
            "select table_schema || '.' || table_name, column_name from information_schema.columns"
            " where (table_schema = any(:schemas) or table_schema || '.' || table_name = any(:tables))"
            " and table_name not like 'pg_%' order by 1, ordinal_position"),
            {"schemas": list(PUBLIC_SCHEMAS), "tables": list(PUBLIC_TABLES)}).all()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return {t: sorted(c) for t, c in out.items()}


def test_public_tables_keep_their_names_and_columns(kpis):
    eng, _ = kpis
    actual = _public_columns(eng)
    if os.environ.get("MARTECH_FREEZE_CONTRACT") == "1":  # after a reviewed change, with its migration note
        CONTRACT.write_text(json.dumps({"note": "columns of the public tables, sorted; see BRIEF.md", "tables": actual},
                                       indent=1) + "\n", encoding="utf-8")
    frozen = json.loads(CONTRACT.read_text(encoding="utf-8"))["tables"]
    missing = {t: sorted(set(c) - set(actual.get(t, []))) for t, c in frozen.items() if set(c) - set(actual.get(t, []))}
    added = {t: sorted(set(c) - set(frozen.get(t, []))) for t, c in actual.items() if set(c) - set(frozen.get(t, []))}
    assert not missing and not added, (
        f"public tables changed (removed: {missing}, added: {added}). Analysts depend on these names: update "
        f"{CONTRACT.name} and write a migration note in docs/data-model.md (section 'Changes to public tables')")
