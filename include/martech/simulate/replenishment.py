"""Regular buyers of consumables: each follows a habit with a true per-customer rate.

A share of the customers who ever ordered (``generate_sources(..., replenishment=...)``, 0 by default,
so existing seeds keep their rows) also re-buy one consumable product whenever it runs out. One unit of
product *p* lasts the customer ``unit_cycle_days`` on average: the product's own cycle (its category's
days per unit times the pack size, :func:`unit_days`) times a per-customer lognormal factor. After a
purchase of ``q`` units the next one comes ``q × unit_cycle_days × Gamma(k, 1/k)`` days later (the
gamma keeps some day-to-day irregularity), until the customer stops (a fixed chance after each
purchase) or the history ends. Each purchase is an order of one line. The truth per habit is
``sim_truth.replenishment``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from martech.simulate.catalog import CATEGORIES, preference_matrix
from martech.simulate.purchases import DAY, History, time_of_day

# Days one unit of the base pack lasts, per consumable category.
CATEGORY_UNIT_DAYS = {"Coffee": 16.0, "Tea": 24.0, "Snacks": 9.0}
# Pack sizes relative to the base pack (the catalog's name tails); any other tail counts as 1.
PACK_FACTOR = {"Whole Bean 1 kg": 4.0, "Tin 250 g": 2.5, "20 Tea Bags": 0.8, "Box of 12": 3.0,
               "Sharing Bag": 1.8}
CYCLE_SIGMA = 0.45  # lognormal spread of a customer's own cycle around the product's
INTERVAL_SHAPE = 10.0  # gamma shape of each interval around the customer's cycle (CV ≈ 0.32)
STOP_P = 0.05  # chance of stopping the habit after each purchase
QUANTITY_P = np.asarray([0.65, 0.27, 0.08])  # 1, 2 or 3 units per purchase
START_WITHIN_DAYS = 60  # the habit starts within this many days after the customer's first order


@dataclass(frozen=True)
class Habits:
    """The purchases the habits produced and the truth behind them."""

    orders: pd.DataFrame  # customer_idx, order_ts, product_id, quantity: one row per purchase
    truth: pd.DataFrame  # customer_idx, product_id, unit_cycle_days, first_ts, purchases, stopped


def unit_days(products: pd.DataFrame) -> np.ndarray:
    """Average days one unit of each product lasts (NaN for products that are not consumables)."""
    base = products["category"].map(CATEGORY_UNIT_DAYS).to_numpy(dtype=float)
    tail = products["name"].str.rsplit(" – ", n=1).str[-1]
    return base * tail.map(PACK_FACTOR).fillna(1.0).to_numpy(dtype=float)


def sample_habits(rng: np.random.Generator, history: History, *, share: float, primary_idx: np.ndarray,
                  first_order_ts: np.ndarray, utc_offset_h: np.ndarray, products: pd.DataFrame) -> Habits:
    """Draw which customers have a habit, its product and rate, and every purchase it makes.

    ``first_order_ts`` is each customer's first order (NaN: never ordered, so no habit).
    """
    n = len(primary_idx)
    days = unit_days(products)
    consumable = ~np.isnan(days)
    ordered = ~np.isnan(first_order_ts)
    who = np.flatnonzero(ordered & (rng.random(n) < share))
    # The habit's category follows the customer's preferences among consumable categories, the product
    # the catalog's popularity within it.
    cat_ok = np.asarray([c.name in CATEGORY_UNIT_DAYS for c in CATEGORIES])
    pref = preference_matrix()[primary_idx[who]] * cat_ok[None, :]
    pref = pref / pref.sum(axis=1, keepdims=True)
    cat = np.minimum((rng.random(len(who))[:, None] >= np.cumsum(pref, axis=1)).sum(axis=1), len(CATEGORIES) - 1)
    cat_idx = products["category_idx"].to_numpy()
    pop = products["popularity"].to_numpy(float)
    product_pos = np.empty(len(who), dtype=np.int64)
    for c in np.unique(cat):
        rows = np.flatnonzero((cat_idx == c) & consumable)
        mine = np.flatnonzero(cat == c)
        product_pos[mine] = rng.choice(rows, size=len(mine), p=pop[rows] / pop[rows].sum())
    cycle = days[product_pos] * np.exp(rng.normal(0.0, CYCLE_SIGMA, size=len(who)))

    start = first_order_ts[who].astype(np.int64) + rng.integers(DAY, START_WITHIN_DAYS * DAY, size=len(who))
    t = start.astype(float)
    active = t < history.end_s
    purchases = np.zeros(len(who), dtype=np.int64)
    stopped = np.zeros(len(who), dtype=bool)
    out_owner, out_ts, out_qty = [], [], []
    while active.any():
        idx = np.flatnonzero(active)
        q = 1 + np.searchsorted(np.cumsum(QUANTITY_P), rng.random(len(idx)), side="right")
        q = np.minimum(q, len(QUANTITY_P))
        day_start = (np.floor(t[idx] / DAY) * DAY).astype(np.int64)
        ts = day_start + time_of_day(rng, utc_offset_h[who[idx]])
        out_owner.append(idx)
        out_ts.append(ts)
        out_qty.append(q)
        purchases[idx] += 1
        gap = q * cycle[idx] * rng.gamma(INTERVAL_SHAPE, 1.0 / INTERVAL_SHAPE, size=len(idx))
        stop = rng.random(len(idx)) < STOP_P
        stopped[idx[stop]] = True
        t[idx] = day_start + np.maximum(np.round(gap), 1.0) * DAY
        active[idx] = ~stop & (t[idx] < history.end_s)
    owner = np.concatenate(out_owner) if out_owner else np.zeros(0, dtype=np.int64)
    orders = pd.DataFrame({
        "customer_idx": who[owner],
        "order_ts": np.concatenate(out_ts) if out_ts else np.zeros(0, dtype=np.int64),
        "product_id": products["product_id"].to_numpy()[product_pos[owner]],
        "quantity": np.concatenate(out_qty) if out_qty else np.zeros(0, dtype=np.int64),
    })
    # A purchase at the very end of the last day could fall after the history: keep it inside.
    orders["order_ts"] = np.minimum(orders["order_ts"].to_numpy(), history.end_s - 1)
    truth = pd.DataFrame({
        "customer_idx": who, "product_id": products["product_id"].to_numpy()[product_pos],
        "unit_cycle_days": cycle, "first_ts": start, "purchases": purchases, "stopped": stopped,
    })
    return Habits(orders=orders, truth=truth[truth["purchases"] > 0].reset_index(drop=True))
