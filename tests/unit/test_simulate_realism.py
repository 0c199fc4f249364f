"""The simulated shop looks like a real one: seasonality, local shopping hours, price tiers, countries, consent."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from martech.simulate.catalog import PRICE_TIERS, price_tiers
from martech.simulate.people import CONSENT_STATUSES
from martech.simulate.sources import build_world

AS_OF = dt.date(2026, 6, 1)


@pytest.fixture(scope="module")
def world():
    return build_world(as_of=AS_OF, customers=4000, seed=12)


def _days(ts: pd.Series) -> pd.Series:
    return pd.to_datetime(ts, unit="s", utc=True)


def test_weekly_pattern_peaks_on_sunday(world) -> None:
    weekday = _days(world.orders["order_ts"]).dt.dayofweek.value_counts(normalize=True).sort_index()
    assert weekday.idxmax() == 6 and weekday[6] > 1.15 * weekday[5]


def test_yearly_pattern_has_a_christmas_run_up(world) -> None:
    day = _days(world.orders["order_ts"]).dt.tz_convert(None).dt.normalize()
    per_day = day.value_counts()

    def rate(a: str, b: str) -> float:
        window = per_day[(per_day.index >= pd.Timestamp(a)) & (per_day.index < pd.Timestamp(b))]
        return window.sum() / (pd.Timestamp(b) - pd.Timestamp(a)).days

    peak = rate("2025-12-05", "2025-12-19")
    around = (rate("2025-10-20", "2025-11-20") + rate("2026-01-10", "2026-02-10")) / 2
    assert peak > 1.25 * around


def test_people_shop_at_local_daytime_and_evening_hours(world) -> None:
    o = world.orders.merge(world.customers[["customer_id", "utc_offset_h"]], on="customer_id")
    local_hour = ((o["order_ts"] // 3600) + o["utc_offset_h"]) % 24
    share = local_hour.value_counts(normalize=True).sort_index()
    assert share.loc[18:21].sum() > 5 * share.loc[2:5].sum()


def test_catalog_has_categories_with_three_price_tiers(world) -> None:
    p = world.products
    assert p["category"].nunique() == 8
    for _, g in p.groupby("category"):
        assert set(g["price_tier"]) == set(PRICE_TIERS)
        assert g["price"].max() >= 2 * g["price"].min()
        assert g.groupby("price_tier")["price"].max()["budget"] <= g.groupby("price_tier")["price"].min()["premium"]


@pytest.mark.parametrize(("prices", "tiers"), [
    ([1.0, 2.0, 3.0], ["budget", "standard", "premium"]),
    ([5.0, 5.0, 5.0, 9.0], ["budget", "budget", "budget", "premium"]),
])
def test_price_tiers_split_a_category_by_thirds(prices, tiers) -> None:
    assert list(price_tiers(np.asarray(prices))) == tiers


def test_contacts_span_countries_time_zones_and_consent_states(world) -> None:
    c = world.contacts
    assert c["country"].nunique() >= 8 and c["timezone"].nunique() >= 12
    assert c["utc_offset_h"].max() - c["utc_offset_h"].min() >= 9
    assert set(c["consent_status"]) == set(CONSENT_STATUSES)


def test_customers_differ_in_purchase_rate_and_some_drop_out(world) -> None:
    cust = world.customers
    rate = cust["purchase_rate"]
    assert rate.std() / rate.mean() > 0.8
    assert 0.2 < (~cust["alive"]).mean() < 0.8
    assert (cust["orders"] == 1).mean() > 0.15 and cust["orders"].max() >= 20
