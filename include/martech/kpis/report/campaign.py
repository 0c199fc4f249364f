"""The data of one campaign's page, from the public campaign and KPI tables."""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

__all__ = ["tables"]

_SQL = {
    "runs": ("campaigns.campaign_runs",
             "select run_id, run_date, members, treatment, holdout, sent, transport from campaigns.campaign_runs"
             " where campaign_id = :c order by run_date desc, run_id desc"),
    "audience": ("kpis.campaign_daily",
                 "select send_date, step, arm, variant, members, sent, delivered, opened, clicked, converted"
                 " from kpis.campaign_daily where campaign_id = :c order by send_date desc, step, arm, variant"),
    "exclusions": ("kpis.campaign_exclusions",
                   "select send_date, step, reason, contacts from kpis.campaign_exclusions where campaign_id = :c"
                   " order by send_date desc, step, contacts desc, reason"),
    "uplift": ("kpis.campaign_uplift",
               "select step, treatment, control, treatment_n, control_n, treatment_rate, control_rate, uplift,"
               " uplift_low, uplift_high, p_value, prob_better, prob_best, window_complete"
               " from kpis.campaign_uplift where campaign_id = :c and period = 'all'"
               " order by step, treatment, control"),
}


def _read(conn: Any, key: str, campaign_id: str) -> pd.DataFrame:
    table, sql = _SQL[key]
    schema, _, bare = table.partition(".")
    if not sa.inspect(conn).has_table(bare, schema=schema):
        return pd.DataFrame()
    return pd.read_sql(sa.text(sql), conn, params={"c": campaign_id})


def tables(engine: Any, campaign_id: str) -> dict[str, Any]:
    """Template context: the four tables (as records), their sources and the campaign's forest plot."""
    from martech.kpis.report import figures

    with engine.connect() as conn:
        frames = {key: _read(conn, key, campaign_id) for key in _SQL}
    up = frames["uplift"]
    forest = pd.DataFrame(columns=["label", "uplift", "uplift_low", "uplift_high"])
    if not up.empty:
        forest = up.assign(label="step " + up["step"].astype(str) + ": " + up["treatment"] + " vs " + up["control"])
    return {"campaign_id": campaign_id,
            "tables": {key: {"source": _SQL[key][0], "columns": list(f.columns),
                             "rows": f.astype(object).where(f.notna(), None).to_dict("records")}
                       for key, f in frames.items()},
            "forest": figures.DRAW["uplift_forest"](forest)}
