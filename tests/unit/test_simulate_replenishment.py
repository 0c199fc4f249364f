"""The simulator's consumable habits: off by default, added beside the other orders, true rates recorded."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from martech.simulate.replenishment import CATEGORY_UNIT_DAYS, unit_days
from martech.simulate.sources import build_world

AS_OF = dt.date(2026, 6, 1)


def _orders(world) -> pd.DataFrame:
    lines = world.orders.merge(world.items, on="order_id", suffixes=("", "_line"))
    return lines[["customer_id", "order_ts", "status", "product_id", "quantity", "unit_price_cents"]]


def test_habits_add_orders_and_leave_every_other_order_as_it_was():
    plain = build_world(as_of=AS_OF, customers=600, seed=4)
    assert plain.habits.empty
    world = build_world(as_of=AS_OF, customers=600, seed=4, replenishment=0.3)
    habits = world.habits
    assert len(habits) > 100 and len(world.orders) > len(plain.orders)
    # Order ids still rise with time, and the orders without the habits' one-line orders are the same rows.
    assert world.orders["order_id"].tolist() == list(range(1, len(world.orders) + 1))
    assert world.orders["order_ts"].is_monotonic_increasing
    key = ["customer_id", "order_ts", "product_id", "quantity", "unit_price_cents"]
    before = _orders(plain).sort_values(key, ignore_index=True)
    merged = _orders(world).merge(before[key].drop_duplicates(), on=key, how="left", indicator=True)
    extra = merged[merged["_merge"] == "left_only"]
    assert len(_orders(world)) - len(extra) == len(before)
    assert set(zip(extra["customer_id"], extra["product_id"])) <= set(zip(habits["customer_id"], habits["product_id"]))
    assert habits["purchases"].sum() == len(extra)
    # Customers and the catalogue do not change.
    pd.testing.assert_frame_equal(plain.products, world.products)
    assert plain.customers["customer_id"].tolist() == world.customers["customer_id"].tolist()


def test_habit_intervals_follow_each_customers_true_cycle():
    world = build_world(as_of=AS_OF, customers=1500, seed=8, replenishment=0.3)
    cycle = pd.Series(unit_days(world.products), index=world.products["product_id"])
    habits = world.habits
    assert set(world.products.set_index("product_id").loc[habits["product_id"], "category"]) <= set(CATEGORY_UNIT_DAYS)
    lines = _orders(world).merge(habits[["customer_id", "product_id", "unit_cycle_days"]],
                                 on=["customer_id", "product_id"])
    lines = lines.sort_values(["customer_id", "product_id", "order_ts"])
    gap = lines.groupby(["customer_id", "product_id"])["order_ts"].diff() / 86_400
    per_unit = gap / lines.groupby(["customer_id", "product_id"])["quantity"].shift(1)
    ratio = (per_unit / lines["unit_cycle_days"]).dropna()
    # Other orders of the same product by chance make a few gaps shorter; the habit's own are near its cycle.
    assert 0.85 < float(ratio.median()) < 1.1
    # Customers differ: their cycles spread around the product's own.
    spread = np.log(habits["unit_cycle_days"].to_numpy() / cycle.loc[habits["product_id"]].to_numpy())
    assert 0.3 < float(spread.std()) < 0.6 and abs(float(spread.mean())) < 0.1
