"""The replenishment model on tiny inline purchase histories: intervals per unit, shrinkage, fallbacks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from martech.models import replenishment as rp

AS_OF = dt.date(2026, 6, 1)


def lines(rows):
    return pd.DataFrame(rows, columns=["customer_id", "product_id", "category", "order_date", "quantity"])


def population(product_id: int, category: str, days: int, customers: int, start: int = 1000) -> list[tuple]:
    """``customers`` customers who each bought the product twice, ``days`` apart, one unit each."""
    out = []
    for c in range(start, start + customers):
        out += [(c, product_id, category, dt.date(2026, 1, 1), 1),
                (c, product_id, category, dt.date(2026, 1, 1) + dt.timedelta(days=days), 1)]
    return out


def test_purchase_days_merge_a_day_and_divide_intervals_by_units():
    days = rp.purchase_days(lines([
        (1, 7, "Coffee", dt.date(2026, 1, 1), 1), (1, 7, "Coffee", dt.date(2026, 1, 1), 1),  # one day, 2 units
        (1, 7, "Coffee", dt.date(2026, 2, 10), 1),
    ]))
    assert days["quantity"].tolist() == [2, 1]
    assert days["gap_days"].iloc[0] == 40 and np.isnan(days["gap_days"].iloc[1])
    assert days["y"].iloc[0] == pytest.approx(np.log(20.0))  # 40 days for 2 units: 20 days per unit


def test_one_purchase_gets_the_population_interval_and_many_get_mostly_their_own():
    rows = population(7, "Coffee", 20, customers=30)
    rows += [(1, 7, "Coffee", dt.date(2026, 5, 20), 1)]  # one purchase only
    regular = [dt.date(2026, 1, 1) + dt.timedelta(days=10 * i) for i in range(12)]  # every 10 days
    rows += [(2, 7, "Coffee", d, 1) for d in regular]
    days = rp.purchase_days(lines(rows))
    model = rp.fit(days)
    pred = rp.predict(days, model, AS_OF).set_index("customer_id")
    one, many = pred.loc[1], pred.loc[2]
    assert one["shrinkage_weight"] == 0 and one["population_level"] == "product"
    assert one["unit_interval_days"] == pytest.approx(np.exp(model.by_product.loc[7, "mu"]))
    assert one["predicted_next_date"] == pd.Timestamp(2026, 5, 20) + pd.Timedelta(days=round(one["unit_interval_days"]))
    # The formula of the module docstring, with this fit's k for three or more own intervals.
    w = 11 / (11 + model.k[3])
    assert many["shrinkage_weight"] == pytest.approx(w)
    assert many["unit_interval_days"] == pytest.approx(np.exp(w * np.log(10) + (1 - w) * model.by_product.loc[7, "mu"]))
    assert 10 < many["unit_interval_days"] < one["unit_interval_days"]
    assert many["remind_on"] == many["predicted_next_date"] - pd.Timedelta(days=rp.REMIND_DAYS_BEFORE)


def test_the_next_need_scales_with_the_units_bought_last():
    rows = population(7, "Coffee", 20, customers=30)
    rows += [(1, 7, "Coffee", dt.date(2026, 5, 1), 3)]
    days = rp.purchase_days(lines(rows))
    row = rp.predict(days, rp.fit(days), AS_OF).set_index("customer_id").loc[1]
    assert row["predicted_next_date"] == pd.Timestamp(2026, 5, 1) + pd.Timedelta(days=60)
    assert row["days_until_next"] == (dt.date(2026, 6, 30) - AS_OF).days


def test_a_rare_product_borrows_its_category_then_all_consumables():
    rows = population(7, "Coffee", 20, customers=rp.MIN_POPULATION_INTERVALS)
    rows += population(8, "Coffee", 40, customers=2, start=5000)  # too few intervals of its own
    rows += population(9, "Tea", 30, customers=2, start=6000)  # too few in the whole category
    days = rp.purchase_days(lines(rows))
    pred = rp.predict(days, rp.fit(days), AS_OF)
    level = pred.groupby("product_id")["population_level"].first().to_dict()
    assert level == {7: "product", 8: "category", 9: "all"}


def _histories(rng, customers: int, purchases: int, noise: float, start: int = 0) -> list[tuple]:
    """Customers with their own cycle (lognormal around 20 days), each interval ``noise`` (log sd) around it;
    ``purchases`` to ``purchases + 3`` purchases each, so every bucket of own-interval counts is filled."""
    rows = []
    for c in range(start, start + customers):
        cycle, day = 20 * np.exp(rng.normal(0, 0.5)), dt.date(2025, 1, 1)
        for _ in range(purchases + c % 4):
            rows.append((c, 7, "Coffee", day, 1))
            day += dt.timedelta(days=max(1, round(cycle * np.exp(rng.normal(0, noise)))))
    return rows


def test_prior_strength_trusts_regular_customers_and_not_erratic_ones():
    rng = np.random.default_rng(1)
    regular = rp.fit(rp.purchase_days(lines(_histories(rng, 200, 3, noise=0.1))))
    erratic = rp.fit(rp.purchase_days(lines(_histories(rng, 200, 3, noise=1.5))))
    assert all(regular.k[b] <= 1 for b in rp.K_BUCKETS), regular.k
    assert all(erratic.k[b] >= 5 and erratic.k[b] > 4 * regular.k[b] for b in rp.K_BUCKETS), erratic.k
    assert regular.version.startswith("replenishment-2 k=1:") and "3+:" in regular.version
    # Too few customers with two intervals or more to choose by: the default.
    few = rp.fit(rp.purchase_days(lines(_histories(rng, 5, 2, noise=0.1))))
    assert few.k == dict.fromkeys(rp.K_BUCKETS, rp.K_DEFAULT)


def test_holdout_errors_compare_both_predictions_with_the_first_later_purchase():
    pred = pd.DataFrame({"customer_id": [1, 2, 3], "product_id": [7, 7, 7],
                         "predicted_next_date": pd.to_datetime(["2026-06-05", "2026-05-20", "2026-06-10"]),
                         "baseline_next_date": pd.to_datetime(["2026-06-15", "2026-06-20", "2026-06-10"])})
    later = pd.DataFrame({"customer_id": [1, 1, 2], "product_id": [7, 7, 7],
                          "order_date": pd.to_datetime(["2026-06-07", "2026-06-30", "2026-06-03"])})
    out = rp.holdout_errors(pred, later, AS_OF)
    # customer 3 never bought again; customer 2's past prediction counts from the as-of date.
    assert out == {"pairs": 2, "model_mae_days": (2 + 2) / 2, "baseline_mae_days": (8 + 17) / 2}
