"""The report's data: one small query per figure, each reading public tables only.

Every figure has a ``load_*`` function (plain SQL on the public tables named in ``SOURCES``) and a pure
shaping function that turns those rows into what is drawn. The shaping functions take and return pandas
frames so they can be checked on small inline data; the SQL stays a plain select an analyst can rerun.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import sqlalchemy as sa

__all__ = ["FUNNEL_STAGES", "SOURCES", "ab_variants", "calibration", "clv_distribution", "data_quality_trend",
           "engagement_trend", "exclusions_by_reason", "funnel", "load", "migration_matrix",
           "revenue_by_arm", "rfm_sizes", "uplift_forest"]

FUNNEL_STAGES = ("audience", "sent", "delivered", "opened", "clicked", "converted")

# The public tables each figure reads, and the query it runs (bound :run_date).
_QUERIES: dict[str, dict[str, str]] = {
    "campaign_daily": {"kpis.campaign_daily": (
        "select campaign_id, step, send_date, arm, variant, members, sent, delivered, opened, clicked,"
        " converted, revenue, attributed_revenue from kpis.campaign_daily")},
    "campaign_exclusions": {"kpis.campaign_exclusions": (
        "select campaign_id, step, send_date, reason, contacts, excluded, audience from kpis.campaign_exclusions")},
    "campaign_uplift": {"kpis.campaign_uplift": (
        "select campaign_id, step, treatment, control, treatment_n, control_n, treatment_rate, control_rate,"
        " uplift, uplift_low, uplift_high, p_value, prob_better, prob_best, revenue_uplift_per_member,"
        " revenue_uplift_low, revenue_uplift_high, window_complete from kpis.campaign_uplift where period = 'all'")},
    "rfm_segments": {"kpis.rfm_segments": "select as_of, segment, customers from kpis.rfm_segments"},
    "segment_migration": {"marts.segment_migration": (
        "select from_segment, to_segment, customers, as_of_date, previous_as_of_date from marts.segment_migration"
        " where as_of_date = (select max(as_of_date) from marts.segment_migration"
        " where as_of_date <= :run_date)")},
    "data_quality": {"kpis.data_quality": (
        "select run_date, table_name, success, critical from kpis.data_quality where run_date <= :run_date")},
    "model_metrics": {"kpis.model_metrics": (
        "select model_version, trained_at, metric, slice, value from kpis.model_metrics"
        " where model = 'lead_score' and metric like 'calibration_%'")},
    "campaign_goals": {"kpis.campaign_goals": (
        "select campaign_id, kpi, kpi_description, target, deadline, value, progress, days_left, status"
        " from kpis.campaign_goals where as_of_date = (select max(as_of_date) from kpis.campaign_goals"
        " where as_of_date <= :run_date) order by deadline, campaign_id")},
    "send_time_comparison": {"kpis.send_time_comparison": (
        "select campaign_id, arm, sends, human_opens, clicks, conversions, open_rate, click_rate, conversion_rate,"
        " open_rate_diff, open_rate_diff_low, open_rate_diff_high, conversion_rate_diff, conversion_rate_diff_low,"
        " conversion_rate_diff_high from kpis.send_time_comparison where as_of_date <= :run_date"
        " order by campaign_id, arm desc")},
    "clv_predictions": {"marts.clv_predictions": (
        "select as_of, expected_revenue from marts.clv_predictions"
        " where as_of = (select max(as_of) from marts.clv_predictions where as_of <= :run_date)")},
}

SOURCES: dict[str, tuple[str, ...]] = {name: tuple(q) for name, q in _QUERIES.items()}


def load(conn: Any, name: str, run_date: dt.date) -> pd.DataFrame:
    """Rows of the query ``name`` (a key of ``SOURCES``); an empty frame while its table does not exist yet."""
    (table, sql), = _QUERIES[name].items()
    schema, _, bare = table.partition(".")
    if not sa.inspect(conn).has_table(bare, schema=schema):
        return pd.DataFrame()
    return pd.read_sql(sa.text(sql), conn, params={"run_date": run_date})


def _label(frame: pd.DataFrame) -> pd.Series:
    """``campaign`` for single messages, ``campaign · step n`` for the steps of a series."""
    multi = frame.groupby("campaign_id")["step"].transform("nunique") > 1
    return frame["campaign_id"].where(~multi, frame["campaign_id"] + " · step " + frame["step"].astype(str))


def funnel(daily: pd.DataFrame, exclusions: pd.DataFrame) -> pd.DataFrame:
    """Per campaign: audience (members of both arms + excluded contacts), then the treatment arm's stages."""
    if daily.empty:
        return pd.DataFrame(columns=list(FUNNEL_STAGES))
    members = daily.groupby("campaign_id")["members"].sum()
    treated = daily[daily["arm"] == "treatment"].groupby("campaign_id")[list(FUNNEL_STAGES[1:])].sum()
    excluded = (exclusions.drop_duplicates(["campaign_id", "step", "send_date"]).groupby("campaign_id")["excluded"]
                .sum() if not exclusions.empty else pd.Series(dtype="int64"))
    out = treated.reindex(members.index, fill_value=0)
    out.insert(0, "audience", members.add(excluded.reindex(members.index, fill_value=0)))
    return out.astype("int64").sort_index()


def uplift_forest(uplift: pd.DataFrame) -> pd.DataFrame:
    """Each campaign's (and step's) effect: every treatment variant pooled against the holdout."""
    if uplift.empty:
        return pd.DataFrame(columns=["label", "uplift", "uplift_low", "uplift_high", "p_value"])
    rows = uplift[(uplift["treatment"] == "*") & (uplift["control"] == "holdout")].copy()
    rows["label"] = _label(rows)
    return (rows.sort_values(["campaign_id", "step"])[["label", "uplift", "uplift_low", "uplift_high", "p_value"]]
            .reset_index(drop=True))


def revenue_by_arm(daily: pd.DataFrame) -> pd.DataFrame:
    """Window revenue per member of each arm (campaigns as rows, arms as columns)."""
    if daily.empty:
        return pd.DataFrame()
    sums = daily.groupby(["campaign_id", "arm"])[["revenue", "members"]].sum()
    per = (sums["revenue"].astype(float) / sums["members"].where(sums["members"] > 0)).rename("revenue_per_member")
    return per.unstack("arm").sort_index()


def ab_variants(uplift: pd.DataFrame) -> pd.DataFrame:
    """Variants of campaigns that test more than one: rate, uplift over the holdout, probability to be best."""
    cols = ["label", "variant", "treatment_rate", "uplift", "prob_best"]
    if uplift.empty:
        return pd.DataFrame(columns=cols)
    rows = uplift[(uplift["treatment"] != "*") & (uplift["control"] == "holdout") & uplift["prob_best"].notna()]
    rows = rows[rows.groupby(["campaign_id", "step"])["treatment"].transform("nunique") > 1].copy()
    rows["label"] = _label(rows)
    rows["variant"] = rows["treatment"]
    return rows.sort_values(["campaign_id", "step", "variant"])[cols].reset_index(drop=True)


def rfm_sizes(segments: pd.DataFrame) -> pd.DataFrame:
    """Customers per segment (columns) and RFM as-of date (rows)."""
    if segments.empty:
        return pd.DataFrame()
    return segments.pivot_table(index="as_of", columns="segment", values="customers", aggfunc="sum",
                                fill_value=0).sort_index()


def migration_matrix(migration: pd.DataFrame) -> pd.DataFrame:
    """Customers moving from a segment (rows) to a segment (columns) since the previous snapshot."""
    if migration.empty:
        return pd.DataFrame()
    return migration.pivot_table(index="from_segment", columns="to_segment", values="customers", aggfunc="sum",
                                 fill_value=0)


def engagement_trend(daily: pd.DataFrame) -> pd.DataFrame:
    """Per send day, all campaigns together: human open rate and click rate over delivered, conversion rate."""
    cols = ["open_rate", "click_rate", "conversion_rate"]
    treated = daily[daily["arm"] == "treatment"] if not daily.empty else daily
    if treated.empty:
        return pd.DataFrame(columns=cols)
    s = treated.groupby("send_date")[["delivered", "opened", "clicked", "converted", "members"]].sum()
    delivered = s["delivered"].where(s["delivered"] > 0)
    return pd.DataFrame({"open_rate": s["opened"] / delivered, "click_rate": s["clicked"] / delivered,
                         "conversion_rate": s["converted"] / s["members"].where(s["members"] > 0)}).sort_index()


def data_quality_trend(results: pd.DataFrame) -> pd.DataFrame:
    """Per run date: expectations passed, failed (not critical) and failed critical."""
    cols = ["passed", "failed", "failed_critical"]
    if results.empty:
        return pd.DataFrame(columns=cols)
    r = results.assign(passed=results["success"], failed=~results["success"] & ~results["critical"],
                       failed_critical=~results["success"] & results["critical"])
    return r.groupby("run_date")[cols].sum().astype("int64").sort_index()


def calibration(metrics: pd.DataFrame) -> pd.DataFrame:
    """The latest lead-score version's calibration by decile: mean predicted score against observed rate."""
    if metrics.empty:
        return pd.DataFrame(columns=["mean_predicted", "observed"])
    latest = metrics.sort_values(["trained_at", "model_version"])["model_version"].iloc[-1]
    m = metrics[metrics["model_version"] == latest]
    out = m.pivot_table(index="slice", columns="metric", values="value").sort_index()
    out = out.rename(columns={"calibration_mean_predicted": "mean_predicted", "calibration_observed": "observed"})
    out.attrs["model_version"] = latest
    return out[["mean_predicted", "observed"]]


def clv_distribution(clv: pd.DataFrame, bins: int = 20) -> pd.DataFrame:
    """Histogram of expected revenue per customer at the latest CLV as-of date (bin edges and counts)."""
    import numpy as np

    if clv.empty:
        return pd.DataFrame(columns=["low", "high", "customers"])
    values = clv["expected_revenue"].astype(float).to_numpy()
    counts, edges = np.histogram(values, bins=bins)
    return pd.DataFrame({"low": edges[:-1], "high": edges[1:], "customers": counts.astype("int64")})


def exclusions_by_reason(exclusions: pd.DataFrame) -> pd.DataFrame:
    """Contacts left out of each campaign's latest run, by reason (reasons as rows, campaigns as columns)."""
    if exclusions.empty:
        return pd.DataFrame()
    latest = exclusions.groupby(["campaign_id", "step"])["send_date"].transform("max")
    run = exclusions[exclusions["send_date"] == latest]
    return run.pivot_table(index="reason", columns="campaign_id", values="contacts", aggfunc="sum",
                           fill_value=0).astype("int64")
