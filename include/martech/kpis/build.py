"""Rebuild every ``kpis`` table for a run date, in dependency order, one transaction per table."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from sqlalchemy.engine import Engine

__all__ = ["SQL_MODELS", "KpiSettings", "build_kpis", "input_tables"]

# campaigns.member_outcomes is the per-person base the campaign KPIs aggregate.
SQL_MODELS = ("campaigns.member_outcomes", "kpis.campaign_daily", "kpis.campaign_exclusions", "kpis.engagement",
              "kpis.acquisition_monthly", "kpis.funnel", "kpis.cohorts_monthly", "kpis.revenue_daily",
              "kpis.cart_abandonment_daily", "kpis.rfm_segments")

_TABLE_REF = re.compile(r"\b(?:from|join)\s+((?:raw|staging|marts|audiences|campaigns|kpis)\.[a-z_][a-z0-9_]*)\b",
                        re.IGNORECASE)
# Read by kpis.campaign_uplift and kpis.campaign_goals (Python) besides what the SQL models read.
_PYTHON_INPUTS = ("audiences.snapshots", "campaigns.campaign_runs")


def input_tables() -> list[str]:
    """The tables the KPI build reads that it does not itself rebuild (the send ledger, campaign runs,
    audiences, staging, marts), from the models' SQL."""
    from martech.db import sql_file

    found: dict[str, None] = {}
    for name in SQL_MODELS:
        found.update(dict.fromkeys(m.lower() for m in _TABLE_REF.findall(sql_file(name).text)))
    found.update(dict.fromkeys(_PYTHON_INPUTS))
    return [t for t in found if t not in SQL_MODELS]


@dataclass(frozen=True)
class KpiSettings:
    cost_per_send: float = 0.001  # currency units per message sent (ESP price plus overhead)
    click_window_days: int = 7  # an order this long after a click is attributed to the mail
    open_window_days: int = 1  # ... and after a human open

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KpiSettings:
        env = os.environ if environ is None else environ
        return cls(cost_per_send=float(env.get("MARTECH_KPI_COST_PER_SEND", cls.cost_per_send)),
                   click_window_days=int(env.get("MARTECH_KPI_CLICK_WINDOW_DAYS", cls.click_window_days)),
                   open_window_days=int(env.get("MARTECH_KPI_OPEN_WINDOW_DAYS", cls.open_window_days)))


def build_kpis(engine: Engine, run_date: dt.date, settings: KpiSettings | None = None, *,
               seed: int = 0) -> dict[str, int]:
    """Row counts per rebuilt table. ``seed`` fixes the Monte Carlo and bootstrap draws (a rerun is identical)."""
    from martech.db import analyze, run_model
    from martech.kpis.goals import build_goals
    from martech.kpis.send_time import build_send_time_comparison
    from martech.kpis.uplift import build_uplift

    params = {"run_date": run_date, **asdict(settings or KpiSettings.from_env())}
    # The ledger and campaign runs grow with every dispatch and staging was just rebuilt: plan on fresh
    # statistics (run_model analyzes each KPI table it rebuilds, for the models that read it next).
    analyze(engine, input_tables())
    counts = {name: run_model(engine, name, params) for name in SQL_MODELS}
    counts["kpis.campaign_uplift"] = build_uplift(engine, run_date, seed=seed)
    counts["kpis.campaign_goals"] = build_goals(engine, run_date)  # reads campaign_daily: after it
    counts["kpis.send_time_comparison"] = build_send_time_comparison(engine, run_date)
    return counts
