"""Lifecycle stages per contact: the thresholds, kept in one place, and the model that applies them.

The rules themselves are documented in ``include/sql/marts/customer_lifecycle.sql``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy.engine import Engine

from martech.db import run_model

STAGES = ("prospect", "new", "active", "reactivated", "at_risk", "lapsed", "churned")

# Days; at_risk_days < lapsed_days keeps "lapsed" reachable, churned_days ends it.
THRESHOLDS: Mapping[str, int] = {
    "new_days": 30,
    "active_days": 60,
    "at_risk_days": 120,
    "lapsed_days": 180,
    "churned_days": 365,
}


def build_lifecycle(engine: Engine, as_of: dt.date, thresholds: Mapping[str, int] | None = None) -> int:
    """Replace the as-of partition of marts.customer_lifecycle; returns the table's row count."""
    values = {**THRESHOLDS, **(thresholds or {})}
    if not values["new_days"] < values["active_days"] < values["at_risk_days"] < values["churned_days"]:
        raise ValueError(f"lifecycle thresholds must increase new < active < at_risk < churned, got {values}")
    return run_model(engine, "marts.customer_lifecycle", {"run_date": as_of, **values})
