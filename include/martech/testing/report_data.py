"""A few rows in every table the report reads, and an outbox preview: the report tests' warehouse."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = ["D1", "D2", "RUN_DATE", "seed", "write_data_docs", "write_preview"]

RUN_DATE = dt.date(2026, 6, 2)
D1, D2 = dt.date(2026, 5, 30), dt.date(2026, 6, 1)
# Model tables the report reads (landing tables are created by migrate).
_MODELS = ("kpis.campaign_daily", "kpis.campaign_exclusions", "kpis.rfm_segments", "marts.segment_migration")
_FILL = {"integer": 0, "bigint": 0, "numeric": 0, "double precision": 0.0, "boolean": False, "text": "",
         "date": RUN_DATE, "jsonb": "{}", "timestamp with time zone": dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)}


def _insert(conn: Any, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows, giving every required column the rows leave out a neutral value (0, '', false)."""
    schema, name = table.split(".")
    required = conn.execute(sa.text(
        "select column_name, data_type from information_schema.columns where table_schema = :s"
        " and table_name = :t and is_nullable = 'NO' and column_default is null"), {"s": schema, "t": name}).all()
    for row in rows:
        full = {**{c: _FILL[t] for c, t in required}, **row}
        conn.execute(sa.text(f"insert into {table} ({', '.join(full)}) values ({', '.join(':' + c for c in full)})"),
                     full)


def _campaign_rows() -> dict[str, list[dict[str, Any]]]:
    daily, excl, uplift, runs = [], [], [], []
    for cid, variants in (("winback", ("a", "b")), ("welcome", ("",))):
        for day in (D1, D2):
            for v in variants:
                daily.append({"campaign_id": cid, "send_date": day, "arm": "treatment", "variant": v, "members": 80,
                              "sent": 78, "delivered": 75, "opened": 30, "clicked": 9, "converted": 6,
                              "revenue": 300, "machine_opened": 12, "window_days": 7})
            daily.append({"campaign_id": cid, "send_date": day, "arm": "holdout", "members": 20, "converted": 1,
                          "revenue": 40, "window_days": 7})
            excl += [{"campaign_id": cid, "step": 1, "send_date": day, "reason": r, "contacts": n, "excluded": 7,
                      "audience": 80 * len(variants) + 27} for r, n in (("unsubscribed", 4), ("bounced", 3))]
            runs.append({"campaign_id": cid, "run_id": f"{cid}-{day}", "run_date": day, "definition_hash": "h",
                         "conversion_window_days": 7, "members": 80 * len(variants) + 20,
                         "treatment": 80 * len(variants), "holdout": 20, "sent": 78 * len(variants),
                         "transport": "outbox"})
        tested = [("*", "holdout", None)] + [(v, "holdout", p) for v, p in zip(variants, (0.8, 0.2))
                                             if len(variants) > 1]
        for i, (t, c, p) in enumerate(tested):
            uplift.append({"campaign_id": cid, "step": 1, "period": "all", "period_start": D1, "period_end": D2,
                           "treatment": t, "control": c, "treatment_n": 160, "control_n": 40,
                           "treatment_rate": 0.075, "control_rate": 0.05, "uplift": 0.025 + 0.01 * i,
                           "uplift_low": -0.04, "uplift_high": 0.09, "prob_better": 0.7, "prob_best": p})
    return {"kpis.campaign_daily": daily, "kpis.campaign_exclusions": excl, "kpis.campaign_uplift": uplift,
            "campaigns.campaign_runs": runs}


def _other_rows() -> dict[str, list[dict[str, Any]]]:
    segments = ("champions", "loyal", "at_risk", "lost")
    trained = dt.datetime(2026, 5, 31, tzinfo=dt.timezone.utc)
    return {
        "kpis.rfm_segments": [{"as_of": day, "segment": s, "customers": 10 + i + k, "share": 0.25, "monetary": 100}
                              for k, day in enumerate((D1, D2)) for i, s in enumerate(segments)],
        "marts.segment_migration": [{"as_of_date": D2, "previous_as_of_date": D1, "from_segment": f, "to_segment": t,
                                     "customers": 1 + (i * 3 + j) % 5}
                                    for i, f in enumerate(segments) for j, t in enumerate(segments)],
        "kpis.data_quality": [{"run_id": f"r{day}", "run_date": day, "table_name": "raw.shop_orders",
                               "expectation": f"e{i}", "kwargs": "{}", "success": i != 2, "critical": i == 0}
                              for day in (D1, D2) for i in range(4)],
        "kpis.model_metrics": [{"model": "lead_score", "model_version": "v1", "trained_at": trained,
                                "metric": f"calibration_{m}", "slice": f"decile_{d:02d}",
                                "value": d / 10 - (0.02 if m == "observed" else 0.05)}
                               for d in range(1, 11) for m in ("mean_predicted", "observed")],
        "marts.clv_predictions": [{"as_of": D2, "customer_id": i, "frequency": 1, "recency_days": 1, "t_days": 10,
                                   "monetary_avg": 10, "p_alive": 0.5, "churn_risk": "medium",
                                   "expected_purchases": 1.0, "expected_revenue": (i * 7) % 90, "horizon_days": 90,
                                   "model_version": "m"} for i in range(60)],
        "kpis.send_time_comparison": [
            {"as_of_date": RUN_DATE, "campaign_id": "abandoned_cart", "arm": "sto", "period_start": D1,
             "period_end": D2, "members": 210, "sends": 200, "human_opens": 90, "clicks": 20, "conversions": 12,
             "open_rate": 0.45, "click_rate": 0.1, "conversion_rate": 0.06, "open_rate_diff": 0.15,
             "open_rate_diff_low": 0.06, "open_rate_diff_high": 0.24, "conversion_rate_diff": 0.01,
             "conversion_rate_diff_low": -0.03, "conversion_rate_diff_high": 0.05},
            {"as_of_date": RUN_DATE, "campaign_id": "abandoned_cart", "arm": "fixed", "period_start": D1,
             "period_end": D2, "members": 205, "sends": 200, "human_opens": 60, "clicks": 12, "conversions": 10,
             "open_rate": 0.3, "click_rate": 0.06, "conversion_rate": 0.05}],
        "kpis.campaign_goals": [
            {"as_of_date": RUN_DATE, "campaign_id": "welcome", "kpi": "repeat_rate_new_customers",
             "kpi_description": "repeat rate", "target": 0.25, "deadline": dt.date(2027, 3, 31), "value": 0.2,
             "progress": 0.8, "days_left": 302, "status": "on_the_way"},
            {"as_of_date": RUN_DATE, "campaign_id": "winback", "kpi": "conversion_rate", "kpi_description": "conv",
             "target": 0.1, "deadline": dt.date(2027, 1, 31), "value": None, "progress": None, "days_left": 243,
             "status": "no_data"}],
    }


def seed(engine: Any) -> None:
    """Create the model tables the report reads and insert the rows above (on a migrated warehouse)."""
    from martech.db import sql_file

    with engine.begin() as conn:
        for name in _MODELS:
            conn.execute(sa.text(sql_file(name).statements()[0]))
        for table, rows in {**_campaign_rows(), **_other_rows()}.items():
            _insert(conn, table, rows)


def write_preview(folder: Path) -> Path:
    """``<folder>/winback/<run>/a-1.eml``: an HTML mail; returns ``folder``."""
    msg = EmailMessage()
    msg["Subject"] = "We miss you"
    msg["From"], msg["To"] = "shop@example.com", "someone@example.com"
    msg.set_content("plain body")
    msg.add_alternative("<html><body><h1>Come back</h1><p>Ten percent off this week.</p></body></html>",
                        subtype="html")
    run = folder / "winback" / f"winback-{D2}"
    run.mkdir(parents=True)
    (run / "a-1.eml").write_bytes(msg.as_bytes())
    return folder


def write_data_docs(run_date: dt.date = RUN_DATE) -> Path:
    """Great Expectations Data Docs of two tiny validations (one passing, one failing on ``not-an-address``)
    built the way every gate builds them, into ``MARTECH_HOME``'s Data Docs folder; returns its index.html."""
    import pandas as pd

    from martech import paths
    from martech.quality import expectations as ex
    from martech.quality.gx_runner import validate_frames

    frames = {"demo.contacts": pd.DataFrame({"contact_id": ["1", "2", "3"],
                                             "email": ["a@example.com", "not-an-address", "c@example.com"]}),
              "demo.orders": pd.DataFrame({"order_id": ["o1", "o2"], "total_amount": ["12.50", "3"]})}
    declared = {"demo.contacts": [ex.not_null("contact_id"), ex.email()],
                "demo.orders": [ex.not_null("order_id"), ex.non_negative_number("total_amount")]}
    validate_frames(frames, declared, run_id=f"demo:{run_date.isoformat()}", run_date=run_date)
    return paths.data_docs_dir() / "index.html"
