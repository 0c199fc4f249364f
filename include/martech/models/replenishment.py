"""When does a customer run out of a consumable? ``marts.replenishment_due``.

For each customer and consumable product the customer bought, the purchase days before the as-of date
give intervals; each interval is divided by the units bought at its start (two bags last twice as long)
and taken on the log scale, ``y = log(days / units)``. The estimate of the customer's days per unit is

    log u_i = w_i * mean(y_i) + (1 - w_i) * mu_p,     w_i = n_i / (n_i + k)

where ``n_i`` is the number of the customer's own intervals, ``mu_p`` the mean of ``y`` over everyone's
intervals of the product (its category, or all consumables, when the product has fewer than
``MIN_POPULATION_INTERVALS``), and ``k`` the prior strength, one per count of own intervals (1, 2, 3+),
chosen on the training data by predicting each customer's latest interval from the ones before it (see
:func:`prior_strength` and docs/models.md). A customer with one purchase gets the population interval;
one with many regular intervals gets mostly their own. The next need is ``last day + last units * u_i``, the
reminder is due ``REMIND_DAYS_BEFORE`` days before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from martech.models.customers import contact_of_customer, nothing_to_model

__all__ = ["CONSUMABLE_CATEGORIES", "MIN_POPULATION_INTERVALS", "REMIND_DAYS_BEFORE", "Fit", "build_replenishment",
           "fit", "holdout_errors", "predict", "prior_strength", "purchase_days", "read_lines"]

TABLE = "marts.replenishment_due"
MODEL = "replenishment-2"
# Categories whose products are used up and bought again (the shop's coffee, tea and snacks).
CONSUMABLE_CATEGORIES: tuple[str, ...] = ("Coffee", "Tea", "Snacks")
REMIND_DAYS_BEFORE = 3
# Fewer intervals than this for a product: its category's population interval stands in (then all consumables).
MIN_POPULATION_INTERVALS = 20
# The prior strength k (in pseudo-intervals) is chosen from this grid per bucket of own-interval counts;
# K_DEFAULT when a bucket has fewer than MIN_BACKTEST_PAIRS pairs to choose it by.
K_GRID = np.asarray([0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 35, 50, 100], dtype=float)
K_BUCKETS = (1, 2, 3)  # 3 = three or more own intervals
K_DEFAULT = 3.0
MIN_BACKTEST_PAIRS = 10
MIN_GAP_DAYS = 1  # a second purchase on the same day is the same purchase day

_COLUMNS = ("as_of", "customer_id", "contact_id", "product_id", "category", "purchases", "intervals",
            "last_purchase_date", "last_quantity", "own_unit_interval_days", "population_unit_interval_days",
            "population_level", "shrinkage_weight", "unit_interval_days", "predicted_next_date", "remind_on",
            "remind_days_before", "days_until_next", "model_version")
# written as integers (the fit may leave them float)
_INT_COLUMNS = ["customer_id", "product_id", "purchases", "intervals", "last_quantity", "remind_days_before",
                "days_until_next"]

_LINES = """
select o.customer_id, i.product_id, p.category, (o.order_ts at time zone 'UTC')::date as order_date,
    i.quantity
from staging.orders as o
inner join staging.order_items as i on o.order_id = i.order_id
inner join staging.products as p on i.product_id = p.product_id
where o.status = 'completed' and o.order_ts < :d and i.quantity > 0 and p.category = any(:categories)
"""


def read_lines(engine, as_of: dt.date, categories: Sequence[str] = CONSUMABLE_CATEGORIES) -> pd.DataFrame:
    """Completed order lines of consumable products before ``as_of``: customer, product, category, day, units."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return pd.read_sql_query(sa.text(_LINES), conn, params={"d": as_of, "categories": list(categories)})


def purchase_days(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per customer, product and purchase day (units summed), in time order, with the interval
    to the next purchase day (NaN for the last) and ``y = log(interval / units)``."""
    days = (lines.assign(order_date=pd.to_datetime(lines["order_date"]))
            .groupby(["customer_id", "product_id", "category", "order_date"], as_index=False)["quantity"].sum()
            .sort_values(["customer_id", "product_id", "order_date"], ignore_index=True))
    following = days.groupby(["customer_id", "product_id"])["order_date"].shift(-1)
    days["gap_days"] = (following - days["order_date"]).dt.days
    days["y"] = np.log(np.maximum(days["gap_days"], MIN_GAP_DAYS) / days["quantity"])
    return days


@dataclass(frozen=True)
class Fit:
    """Population log intervals by product, category and overall, and the prior strength per own count."""

    by_product: pd.DataFrame  # product_id -> mu, n
    by_category: pd.DataFrame  # category -> mu, n
    overall: float
    k: Mapping[int, float]  # own-interval bucket (1, 2, 3 = three or more) -> k

    def k_for(self, intervals: np.ndarray) -> np.ndarray:
        """The prior strength for each count of own intervals."""
        bucket = np.minimum(np.asarray(intervals), max(K_BUCKETS))
        return np.asarray([self.k.get(int(b), K_DEFAULT) for b in bucket], dtype=float)

    @property
    def version(self) -> str:
        return f"{MODEL} k=" + ",".join(f"{b}{'+' if b == max(K_BUCKETS) else ''}:{self.k[b]:g}" for b in K_BUCKETS)


def prior_strength(days: pd.DataFrame, mu: Callable[[pd.DataFrame], np.ndarray]) -> dict[int, float]:
    """k per bucket of own-interval counts, chosen by predicting each pair's latest interval from the ones
    before it (training data only).

    For every customer and product with at least two intervals, the earlier ones give the shrunk unit
    interval for each k of ``K_GRID``, times the units bought at the start of the latest interval; the k
    with the smallest mean absolute error in days against the latest interval wins its bucket (the number
    of earlier intervals: 1, 2, or 3 and more). A bucket with fewer than ``MIN_BACKTEST_PAIRS`` pairs gets
    ``K_DEFAULT``. ``mu`` gives the population log mean for rows (product, category).
    """
    iv = days.dropna(subset=["gap_days"])
    pair = [iv["customer_id"], iv["product_id"]]
    position = iv.groupby(pair).cumcount()
    count = iv.groupby(pair)["y"].transform("size")
    latest = iv[(position == count - 1) & (count >= 2)]
    earlier = iv[position < count - 1].groupby(["customer_id", "product_id"])["y"].agg(m="mean", n="size")
    latest = latest.join(earlier, on=["customer_id", "product_id"])
    pop = mu(latest)
    out = {}
    for b in K_BUCKETS:
        sel = (np.minimum(latest["n"], max(K_BUCKETS)) == b).to_numpy()
        if sel.sum() < MIN_BACKTEST_PAIRS:
            out[b] = K_DEFAULT
            continue
        n, m, q = latest["n"].to_numpy()[sel], latest["m"].to_numpy()[sel], latest["quantity"].to_numpy()[sel]
        gap, p = latest["gap_days"].to_numpy()[sel], pop[sel]
        losses = [np.mean(np.abs(q * np.exp((n * m + k * p) / (n + k)) - gap)) for k in K_GRID]
        out[b] = float(K_GRID[int(np.argmin(losses))])
    return out


def fit(days: pd.DataFrame) -> Fit:
    """Population means of ``y`` and the prior strengths from every interval of ``days``."""
    iv = days.dropna(subset=["gap_days"])
    if iv.empty:
        empty = pd.DataFrame({"mu": [], "n": []})
        return Fit(by_product=empty, by_category=empty, overall=float("nan"), k=dict.fromkeys(K_BUCKETS, K_DEFAULT))
    by_product = iv.groupby("product_id")["y"].agg(mu="mean", n="size")
    by_category = iv.groupby("category")["y"].agg(mu="mean", n="size")
    overall = float(iv["y"].mean())
    k = prior_strength(days, lambda rows: _population(rows, by_product, by_category, overall)[0])
    return Fit(by_product=by_product, by_category=by_category, overall=overall, k=k)


def _population(rows: pd.DataFrame, by_product: pd.DataFrame, by_category: pd.DataFrame,
                overall: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the population mean of y and the level it comes from (product, category or all)."""
    p_mu = rows["product_id"].map(by_product["mu"]).to_numpy(dtype=float)
    p_n = rows["product_id"].map(by_product["n"]).fillna(0).to_numpy()
    c_mu = rows["category"].map(by_category["mu"]).to_numpy(dtype=float)
    c_n = rows["category"].map(by_category["n"]).fillna(0).to_numpy()
    use_p = p_n >= MIN_POPULATION_INTERVALS
    use_c = ~use_p & (c_n >= MIN_POPULATION_INTERVALS)
    mu = np.where(use_p, p_mu, np.where(use_c, c_mu, overall))
    level = np.where(use_p, "product", np.where(use_c, "category", "all")).astype(object)
    return mu, level


def predict(days: pd.DataFrame, model: Fit, as_of: dt.date, *,
            remind_days_before: int = REMIND_DAYS_BEFORE) -> pd.DataFrame:
    """One row per customer and product: the shrunk unit interval, the predicted next need and the
    population-interval baseline (``baseline_next_date``, not stored: the check compares against it)."""
    iv = days.dropna(subset=["gap_days"])
    own = iv.groupby(["customer_id", "product_id"])["y"].agg(own_y="mean", intervals="size")
    last = days.groupby(["customer_id", "product_id"], as_index=False).agg(
        category=("category", "last"), purchases=("order_date", "size"), last_purchase_date=("order_date", "max"),
        last_quantity=("quantity", "last"))
    out = last.join(own, on=["customer_id", "product_id"])
    out["intervals"] = out["intervals"].fillna(0).astype(int)
    overall = model.overall if np.isfinite(model.overall) else 0.0
    mu, level = _population(out, model.by_product, model.by_category, overall)
    if not np.isfinite(model.overall):
        # Nobody bought any product twice: a month per unit, until the data says otherwise.
        mu, level = np.full(len(out), np.log(30.0)), np.full(len(out), "all", dtype=object)
    n = out["intervals"].to_numpy()
    w = n / (n + model.k_for(n))
    own_y = out["own_y"].fillna(0.0).to_numpy()
    unit = np.exp(w * own_y + (1 - w) * mu)
    qty = out["last_quantity"].to_numpy()
    last_day = pd.to_datetime(out["last_purchase_date"])
    out["own_unit_interval_days"] = np.where(out["intervals"] > 0, np.exp(own_y), np.nan)
    out["population_unit_interval_days"] = np.exp(mu)
    out["population_level"] = level
    out["shrinkage_weight"] = w
    out["unit_interval_days"] = unit
    out["predicted_next_date"] = last_day + pd.to_timedelta(np.maximum(np.round(qty * unit), 1), unit="D")
    out["baseline_next_date"] = last_day + pd.to_timedelta(np.maximum(np.round(qty * np.exp(mu)), 1), unit="D")
    out["remind_on"] = out["predicted_next_date"] - pd.Timedelta(days=remind_days_before)
    out["remind_days_before"] = remind_days_before
    out["days_until_next"] = (out["predicted_next_date"] - pd.Timestamp(as_of)).dt.days
    return out.drop(columns=["own_y"])


def holdout_errors(pred: pd.DataFrame, later: pd.DataFrame, as_of: dt.date) -> dict[str, float]:
    """Mean absolute error in days of the predicted and the baseline next dates against the first purchase
    of the same product by the same customer on or after ``as_of`` (``later``: customer_id, product_id,
    order_date). Pairs without a later purchase are left out; both predictions are floored at ``as_of``
    (a date already past means "now", and nobody can buy before the as-of date)."""
    first = (later.assign(order_date=pd.to_datetime(later["order_date"]))
             .groupby(["customer_id", "product_id"])["order_date"].min().rename("actual"))
    rows = pred.join(first, on=["customer_id", "product_id"], how="inner")
    floor = pd.Timestamp(as_of)
    model = (np.maximum(rows["predicted_next_date"], floor) - rows["actual"]).dt.days.abs()
    base = (np.maximum(rows["baseline_next_date"], floor) - rows["actual"]).dt.days.abs()
    return {"pairs": len(rows), "model_mae_days": float(model.mean()), "baseline_mae_days": float(base.mean())}


def build_replenishment(engine, as_of: dt.date, *, remind_days_before: int = REMIND_DAYS_BEFORE,
                        categories: Sequence[str] = CONSUMABLE_CATEGORIES) -> dict[str, object]:
    """Fit on completed orders before ``as_of`` and replace that as_of in ``marts.replenishment_due``."""
    import sqlalchemy as sa

    from martech.db import copy_frame

    if remind_days_before < 0:
        raise ValueError(f"remind_days_before must be 0 or more days, got {remind_days_before}")
    lines = read_lines(engine, as_of, categories)
    with engine.connect() as conn:
        contacts = contact_of_customer(conn)
    if lines.empty:
        return nothing_to_model(engine, TABLE, as_of)
    days = purchase_days(lines)
    model = fit(days)
    pred = predict(days, model, as_of, remind_days_before=remind_days_before)
    link = contacts.set_index("customer_id")["contact_id"]
    pred["contact_id"] = pred["customer_id"].map(link)

    out = pred.assign(as_of=pd.Timestamp(as_of), model_version=model.version)
    out[_INT_COLUMNS] = out[_INT_COLUMNS].astype("int64")

    with engine.begin() as conn:
        conn.execute(sa.text(f"delete from {TABLE} where as_of = :d"), {"d": as_of})
        n = copy_frame(conn, TABLE, out, _COLUMNS)
    due = int(((pred["remind_on"] <= pd.Timestamp(as_of)) & (pred["days_until_next"] >= 0)).sum())
    return {"rows": n, "model_version": model.version, "due": due}
