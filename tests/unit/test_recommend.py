"""Product pairs and recommendations on hand-made baskets with known answers."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from martech.models import recommend


def lines(baskets: dict[int, list[int]]) -> pd.DataFrame:
    return pd.DataFrame([(c, p) for c, ps in baskets.items() for p in ps], columns=["customer_id", "product_id"])


# Ten customers: 1 and 2 always together (6 customers), 3 mostly alone, 4 popular with everyone.
BASKETS = {**{c: [1, 2, 4] for c in range(1, 7)}, 7: [3, 4], 8: [3, 4], 9: [1, 4], 10: [3, 4, 4]}


def test_pairs_support_confidence_lift() -> None:
    b = recommend.Baskets.from_lines(lines(BASKETS))
    pairs = recommend.product_pairs(b, min_customers=2).set_index(["antecedent", "consequent"])
    row = pairs.loc[(2, 1)]
    assert row["pair_count"] == 6 and row["support"] == pytest.approx(0.6)
    assert row["confidence"] == pytest.approx(1.0)  # everyone who bought 2 bought 1
    assert row["lift"] == pytest.approx(1.0 / 0.7)  # P(1) = 7/10
    assert pairs.loc[(1, 2), "confidence"] == pytest.approx(6 / 7)
    assert (3, 1) not in pairs.index  # never bought together
    assert (1, 1) not in pairs.index  # no self pairs
    # Duplicate lines of one customer count once.
    assert pairs.loc[(3, 4), "pair_count"] == 3


def test_recommendations_exclude_bought_and_explain_themselves() -> None:
    b = recommend.Baskets.from_lines(lines(BASKETS))
    recs = recommend.recommend(b, n=2, min_customers=2)
    nine = recs[recs["customer_id"] == 9].sort_values("rank")
    best = nine.iloc[0]
    assert best["product_id"] == 2  # bought 1 → 2 (6 of 7 buyers of 1 bought 2)
    assert best["because_product_id"] == 1 and best["reason"] == "bought_together"
    for cust, products in BASKETS.items():
        mine = set(recs.loc[recs["customer_id"] == cust, "product_id"])
        assert not mine & set(products)  # never something already bought
    assert recs.groupby("customer_id")["rank"].apply(list).map(lambda r: r == sorted(r)).all()


def test_hit_rate_against_popularity() -> None:
    ts = lambda d: dt.datetime(2026, 1, d, tzinfo=dt.timezone.utc)  # noqa: E731
    rows = []
    for c in range(1, 31):  # history: 1 goes with 2; 3 is the most popular product
        rows += [(c, 100 + c, ts(1), 3)]
        if c <= 20:
            rows += [(c, 200 + c, ts(2), 1)]
        if c <= 10:
            rows += [(c, 300 + c, ts(3), 2)]
    for c in range(21, 46):  # product 5 is the most bought product overall, but not with 1
        rows += [(c, 500 + c, ts(4), 5)]
    for c in range(11, 21):  # after the cutoff, buyers of 1 buy 2
        rows += [(c, 400 + c, ts(20), 2)]
    frame = pd.DataFrame(rows, columns=["customer_id", "order_id", "order_ts", "product_id"])
    result = recommend.hit_rate(frame, dt.datetime(2026, 1, 10, tzinfo=dt.timezone.utc), k=1)
    assert result["customers"] == 10
    assert result["model_hit_rate"] == 1.0
    # Popularity offers them product 5 (25 buyers against 2's 10): it misses every time.
    assert result["popularity_hit_rate"] == 0.0
