"""Plain-text summaries of the warehouse, for the demo and the CLI."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from textwrap import shorten
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

PUBLIC_TABLES = (
    "raw.shop_customers", "raw.shop_products", "raw.shop_orders", "raw.shop_order_items",
    "raw.crm_contacts", "raw.email_events", "raw.webhook_events", "raw.quarantine",
    "staging.customers", "staging.products", "staging.orders", "staging.order_items", "staging.contacts",
    "staging.email_events",
    "marts.customer_rfm", "marts.customer_360", "marts.customer_lifecycle", "marts.segment_migration",
    "marts.product_affinity", "marts.clv_predictions", "marts.lead_scores", "marts.recommendations",
    "marts.cluster_profiles", "marts.customer_segments", "marts.replenishment_due", "marts.contact_send_hours",
    "audiences.audience_members", "campaigns.send_ledger", "campaigns.seed_sends", "campaigns.campaign_runs",
    "campaigns.suppressions", "kpis.data_quality", "kpis.model_metrics", "kpis.campaign_daily",
    "kpis.campaign_uplift", "kpis.campaign_exclusions", "kpis.engagement", "kpis.acquisition_monthly", "kpis.funnel",
    "kpis.cohorts_monthly", "kpis.revenue_daily", "kpis.cart_abandonment_daily", "kpis.rfm_segments",
    "kpis.campaign_goals", "kpis.send_time_comparison",
)


def table_counts(engine: Engine) -> dict[str, int | None]:
    """Rows per public table (None when the table does not exist yet)."""
    counts: dict[str, int | None] = {}
    with engine.connect() as conn:
        for name in PUBLIC_TABLES:
            exists = conn.execute(sa.text("select to_regclass(:n)"), {"n": name}).scalar()
            counts[name] = (
                int(conn.execute(sa.text(f"select count(*) from {name}")).scalar_one()) if exists else None
            )
    return counts


def summary_lines(engine: Engine) -> list[str]:
    lines = ["rows per table:"]
    for name, n in table_counts(engine).items():
        lines.append(f"  {name:<30} {'-' if n is None else format(n, ',')}")
    with engine.connect() as conn:
        lines.extend(quality_lines(conn))
        lines.extend(_intelligence_lines(conn))
        for table, what in (("audiences.audience_members", "audiences (campaign, run, arm: members):"),
                            ("campaigns.send_ledger", "sends (campaign, run, status: messages):")):
            column = "arm" if table.startswith("audiences") else "status"
            lines += _section(conn, table, what, f"select campaign_id, run_id, {column}, count(*) from {table}"
                              " group by 1, 2, 3 order by 1, 2, 3",
                              lambda rows: [f"  {r[0]:<12} {r[1]}  {r[2]:<9} {r[3]:>7,}" for r in rows],
                              when_empty=True)
        lines += _section(
            conn, "kpis.campaign_daily",
            ["kpis.campaign_daily:", "  campaign       send day   step var arm        members  sent opened clicked"
             " converted   revenue  conv.rate"],
            "select campaign_id, send_date, step, variant, arm, members, sent, opened, clicked, converted,"
            " revenue, conversion_rate from kpis.campaign_daily order by 1, 2, 3, 4, 5",
            lambda rows: [f"  {r[0]:<14} {r[1]} {r[2]:>4} {r[3]:<3} {r[4]:<9} {r[5]:>8,} {r[6]:>5,} {r[7]:>6,}"
                          f" {r[8]:>7,} {r[9]:>9,} {float(r[10]):>9,.2f} {float(r[11] or 0):>10.2%}" for r in rows],
            when_empty=True)
    return lines


def _section(conn: Any, table: str, heading: str | Sequence[str], sql: str,
             lines: Callable[[Sequence[Any]], list[str]], *, when_empty: bool = False) -> list[str]:
    """The heading and ``lines(rows)`` of ``sql``; nothing while ``table`` does not exist, nor when the query
    has no rows (unless ``when_empty``)."""
    if not conn.execute(sa.text("select to_regclass(:n)"), {"n": table}).scalar():
        return []
    rows = conn.execute(sa.text(sql)).all()
    if not rows and not when_empty:
        return []
    return [heading, *lines(rows)] if isinstance(heading, str) else [*heading, *lines(rows)]


def _joined(rows: Sequence[Any]) -> str:
    return ", ".join(f"{k} {n:,}" for k, n in rows)


def quality_lines(conn) -> list[str]:
    """Quarantine, corrections and merges of the latest staging run, and the quality gates' results."""
    return [
        *_section(conn, "staging.row_accounting", [
            "row accounting, latest staging run (received = staged + quarantined + merged + superseded):",
            f"  {'table':<24} {'received':>9} {'staged':>9} {'quarant.':>8} {'merged':>7} {'supers.':>7}"
            f" {'unreadable':>10}"],
            "select table_name, rows_received, rows_staged, rows_quarantined, rows_duplicate + rows_merged,"
            " rows_superseded, landing_quarantined from staging.row_accounting"
            " where run_date = (select max(run_date) from staging.row_accounting) order by table_name",
            lambda rows: [f"  {r[0]:<24} {r[1]:>9,} {r[2]:>9,} {r[3]:>8,} {r[4]:>7,} {r[5]:>7,} {r[6]:>10,}"
                          for r in rows]),
        *_section(conn, "raw.quarantine", "quarantine (table, reason: rows; first reason in words):",
                  "select table_name, coalesce(reason_code, '-'), count(*), min(reason) from raw.quarantine"
                  " group by 1, 2 order by 1, 3 desc",
                  lambda rows: [f"  {r[0]:<22} {r[1]:<20} {r[2]:>6,}  {shorten(r[3], 70)}" for r in rows]),
        *_section(conn, "staging.corrections", "corrections (kind: rows repaired and staged):",
                  "select kind, count(distinct (table_name, source_ref)) from staging.corrections"
                  " group by 1 order by 2 desc", lambda rows: ["  " + _joined(rows)]),
        *[f"merges (kind: rows folded into another): {line}" for line in _section(
            conn, "staging.merged_rows", [], "select kind, count(*) from staging.merged_rows group by 1 order by 1",
            lambda rows: [_joined(rows)])],
        *_section(conn, "kpis.data_quality",
                  "quality gates (run: expectations, warnings, critical failures; details in kpis.data_quality):",
                  "select run_id, count(*), count(*) filter (where not success and not critical),"
                  " count(*) filter (where not success and critical)"
                  " from kpis.data_quality group by 1 order by min(run_date), 1",
                  lambda rows: [f"  {r[0]:<40} {r[1]:>4} {r[2]:>4} {r[3]:>4}" for r in rows]),
    ]


def _intelligence_lines(conn) -> list[str]:
    """The latest as-of date's churn bands, lead tiers and clusters."""
    return [
        *_section(conn, "marts.clv_predictions",
                  "predicted CLV (latest as-of; churn risk: customers, mean P(alive), expected revenue 90d):",
                  "select churn_risk, count(*), round(avg(p_alive)::numeric, 3), round(sum(expected_revenue), 0)"
                  " from marts.clv_predictions where as_of = (select max(as_of) from marts.clv_predictions)"
                  " group by 1 order by 1",
                  lambda rows: [f"  {r[0]:<8} {r[1]:>8,}  {float(r[2]):.3f}  {float(r[3]):>12,.0f}" for r in rows]),
        *_section(conn, "marts.lead_scores", "lead scores (latest as-of; tier, method: leads, mean score):",
                  "select tier, method, count(*), round(avg(score)::numeric, 3) from marts.lead_scores"
                  " where as_of = (select max(as_of) from marts.lead_scores) group by 1, 2 order by 1, 2",
                  lambda rows: [f"  {r[0]}  {r[1]:<7} {r[2]:>7,}  {float(r[3]):.3f}" for r in rows]),
        *_section(conn, "marts.cluster_profiles", "behavioural clusters (latest as-of):",
                  "select cluster_id, customers, description from marts.cluster_profiles"
                  " where as_of = (select max(as_of) from marts.cluster_profiles) order by 1",
                  lambda rows: [f"  {r[0]:>2}  {r[2]}" for r in rows]),
    ]
