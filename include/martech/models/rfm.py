"""RFM scoring and segmentation: pure pandas functions, plus one writer for ``marts.customer_rfm``.

Inputs
    One row per order: ``customer_id``, ``order_ts`` (timezone-aware), ``net_amount`` (already net of
    refunds, may be 0). The caller leaves cancelled orders out. ``as_of`` is exclusive: only orders
    placed before ``as_of`` (midnight UTC) count. With ``window_days`` only the orders of the
    ``window_days`` days before ``as_of`` count: ``as_of - window_days <= order_ts < as_of``.

Metrics (one row per customer with at least one counted order)
    recency_days  days from the UTC date of the customer's last order to ``as_of`` (>= 1)
    frequency     number of orders
    monetary      sum of ``net_amount``, rounded to cents

Scores (1..5, 5 best; fewer recency days is better)
    A percentile rank that never splits ties. With ``n`` customers and ``b`` of them having a strictly
    worse value than this customer::

        score = min(5, 1 + floor(5 * b / (n - 1)))

    Equal values always get equal scores; the worst value always scores 1 and a unique best value
    scores 5; with many distinct values each score holds about a fifth of the customers. When a metric
    has a single distinct value (a single customer, or everybody with one order) it carries no
    information and every customer scores 3 on it. Ties are common (most customers have one order),
    so some scores may be unused: that is the honest answer, not an error.

Segments: the R vs FM grid, with ``FM = floor((F + M) / 2)``::

    FM \\ R |  1               2            3                4                   5
    -------+-------------------------------------------------------------------------------------------
       5   |  Can't Lose Them At Risk      Loyal            Loyal               Champions
       4   |  Can't Lose Them At Risk      Loyal            Loyal               Champions
       3   |  At Risk         At Risk      Need Attention   Potential Loyalist  Potential Loyalist
       2   |  Hibernating     Hibernating  About To Sleep   Potential Loyalist  Potential Loyalist
       1   |  Lost            Hibernating  About To Sleep   Promising           New Customers

Every (r, f, m) in 1..5³ maps to exactly one of the 11 segments and all 11 occur. The table is the
single source of truth (:data:`_GRID`), documented again in ``docs/rfm-segments.md``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported lazily so that importing this module stays cheap
    import pandas as pd
    from sqlalchemy.engine import Engine

SEGMENTS: tuple[str, ...] = (
    "Champions",
    "Loyal",
    "Potential Loyalist",
    "New Customers",
    "Promising",
    "Need Attention",
    "About To Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
)

# Rows: FM from 5 (top) down to 1; columns: R from 1 to 5. Keep in step with the module docstring and
# docs/rfm-segments.md (a unit test compares them).
_GRID: tuple[tuple[str, str, str, str, str], ...] = (
    ("Can't Lose Them", "At Risk", "Loyal", "Loyal", "Champions"),  # FM 5
    ("Can't Lose Them", "At Risk", "Loyal", "Loyal", "Champions"),  # FM 4
    ("At Risk", "At Risk", "Need Attention", "Potential Loyalist", "Potential Loyalist"),  # FM 3
    ("Hibernating", "Hibernating", "About To Sleep", "Potential Loyalist", "Potential Loyalist"),  # FM 2
    ("Lost", "Hibernating", "About To Sleep", "Promising", "New Customers"),  # FM 1
)

OUTPUT_COLUMNS: tuple[str, ...] = (
    "customer_id", "recency_days", "frequency", "monetary", "first_order_at", "last_order_at",
    "r_score", "f_score", "m_score", "rfm_score", "segment",
)

TABLE = "marts.customer_rfm"
_TABLE_COLUMNS = ("as_of_date", *OUTPUT_COLUMNS)
_INT_COLUMNS = ["customer_id", "recency_days", "frequency", "r_score", "f_score", "m_score"]
NEUTRAL_SCORE = 3


def fm_score(f: int, m: int) -> int:
    """The grid's vertical axis: ``floor((f + m) / 2)``."""
    return (f + m) // 2


def segment_for(r: int, f: int, m: int) -> str:
    """The segment of one (r, f, m) score triple, each 1..5 (see the grid in the module docstring)."""
    for name, value in (("r", r), ("f", f), ("m", m)):
        if isinstance(value, bool) or int(value) != value or not 1 <= value <= 5:
            raise ValueError(f"{name} score must be an integer from 1 to 5, got {value!r}")
    return _GRID[5 - fm_score(int(f), int(m))][int(r) - 1]


def _utc_midnight(day: dt.date) -> pd.Timestamp:
    import pandas as pd

    return pd.Timestamp(day.year, day.month, day.day, tz="UTC")


def quintile_scores(values: pd.Series, *, higher_is_better: bool = True) -> pd.Series:
    """Tie-safe 1..5 scores of one metric (see "Scores" in the module docstring)."""
    import pandas as pd

    n = len(values)
    if n == 0:
        return pd.Series([], index=values.index, dtype="int64")
    if values.nunique(dropna=False) <= 1:
        return pd.Series(NEUTRAL_SCORE, index=values.index, dtype="int64")
    key = values if higher_is_better else -values
    # rank "min": 1 + the number of customers with a strictly worse value
    worse = key.rank(method="min").astype("int64") - 1
    return (1 + (5 * worse) // (n - 1)).clip(upper=5).astype("int64")


def _empty_scores() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({
        "customer_id": pd.Series([], dtype="int64"),
        "recency_days": pd.Series([], dtype="int64"),
        "frequency": pd.Series([], dtype="int64"),
        "monetary": pd.Series([], dtype="float64"),
        "first_order_at": pd.Series([], dtype="datetime64[us, UTC]"),
        "last_order_at": pd.Series([], dtype="datetime64[us, UTC]"),
        "r_score": pd.Series([], dtype="int64"),
        "f_score": pd.Series([], dtype="int64"),
        "m_score": pd.Series([], dtype="int64"),
        "rfm_score": pd.Series([], dtype="object"),
        "segment": pd.Series([], dtype="object"),
    })


def score_rfm(orders: pd.DataFrame, as_of: dt.date, window_days: int | None = None) -> pd.DataFrame:
    """One row per customer: recency/frequency/monetary, their 1..5 scores, ``rfm_score`` and segment.

    ``orders`` needs ``customer_id``, ``order_ts`` and ``net_amount``; rows at or after ``as_of``
    (midnight UTC) and, with ``window_days``, before ``as_of - window_days`` are ignored. The result
    is sorted by ``customer_id``.
    """
    import pandas as pd

    missing = {"customer_id", "order_ts", "net_amount"} - set(orders.columns)
    if missing:
        raise ValueError(f"orders lacks column(s) {', '.join(sorted(missing))}")
    if isinstance(as_of, dt.datetime):
        raise TypeError("as_of must be a date (it is exclusive: orders before its midnight UTC count)")
    if window_days is not None and (isinstance(window_days, bool) or int(window_days) != window_days
                                    or window_days < 1):
        raise ValueError(f"window_days must be a positive integer or None, got {window_days!r}")

    df = pd.DataFrame({
        "customer_id": orders["customer_id"],
        "order_ts": pd.to_datetime(orders["order_ts"], utc=True),
        "net_amount": pd.to_numeric(orders["net_amount"]).astype("float64").fillna(0.0),
    })
    end = _utc_midnight(as_of)
    keep = df["order_ts"] < end
    if window_days is not None:
        keep &= df["order_ts"] >= end - pd.Timedelta(days=int(window_days))
    df = df[keep & df["customer_id"].notna()]
    if df.empty:
        return _empty_scores()

    per = df.groupby("customer_id", sort=True).agg(
        frequency=("order_ts", "size"),
        monetary=("net_amount", "sum"),
        first_order_at=("order_ts", "min"),
        last_order_at=("order_ts", "max"),
    ).reset_index()
    # cents, so that float noise never makes equal spends unequal
    per["monetary"] = per["monetary"].round(2) + 0.0
    last_day = per["last_order_at"].dt.tz_convert("UTC").dt.normalize()
    per["recency_days"] = ((end - last_day) / pd.Timedelta(days=1)).astype("int64")
    per["frequency"] = per["frequency"].astype("int64")

    per["r_score"] = quintile_scores(per["recency_days"], higher_is_better=False)
    per["f_score"] = quintile_scores(per["frequency"])
    per["m_score"] = quintile_scores(per["monetary"])
    code = per["r_score"] * 100 + per["f_score"] * 10 + per["m_score"]
    per["rfm_score"] = code.astype(str).astype(object)
    # segment_for over the 125 possible triples, looked up by code (fast on millions of customers)
    lookup = {100 * r + 10 * f + m: segment_for(r, f, m)
              for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)}
    per["segment"] = code.map(lookup).astype(object)
    return per[list(OUTPUT_COLUMNS)].reset_index(drop=True)


def write_rfm(engine: Engine, scores: pd.DataFrame, as_of: dt.date) -> int:
    """Replace the rows of ``marts.customer_rfm`` for ``as_of`` with ``scores``, in one transaction.

    Returns the number of rows written. Rerunning with the same scores leaves the table unchanged.
    """
    import pandas as pd
    import sqlalchemy as sa

    from martech.db import copy_frame

    missing = set(OUTPUT_COLUMNS) - set(scores.columns)
    if missing:
        raise ValueError(f"scores lacks column(s) {', '.join(sorted(missing))}")

    out = scores[list(OUTPUT_COLUMNS)].assign(as_of_date=pd.Timestamp(as_of))
    out[_INT_COLUMNS] = out[_INT_COLUMNS].astype("int64")

    with engine.begin() as conn:
        conn.execute(sa.text(f"delete from {TABLE} where as_of_date = :d"), {"d": as_of})
        return copy_frame(conn, TABLE, out, _TABLE_COLUMNS, decimals={"monetary": 2})
