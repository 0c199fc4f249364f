"""Clusters, product pairs and recommendations on the simulator, written by the customer_models stage."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.models import recommend

pytestmark = pytest.mark.integration
AS_OF = dt.date(2026, 6, 1)


@pytest.fixture(scope="module")
def modelled(simulated_staging, warehouse):
    engine = simulated_staging(AS_OF, customers=2500, seed=31)
    return engine, pipeline.build_customer_models(warehouse, AS_OF)


def q(engine, sql, **params):
    with engine.connect() as conn:
        return pd.read_sql_query(sa.text(sql), conn, params=params)


def test_customer_models_fill_every_intelligence_table(modelled):
    engine, result = modelled
    rows = result["rows"]
    for table in ("marts.clv_predictions", "marts.lead_scores", "marts.recommendations",
                  "marts.customer_segments"):
        assert rows[table] > 0, table
    seg = q(engine, "select * from marts.customer_segments where as_of = :d", d=AS_OF)
    rfm = q(engine, "select customer_id, segment from marts.customer_rfm where as_of_date = :d", d=AS_OF)
    assert len(seg) == len(rfm) and (seg.set_index("customer_id")["rfm_segment"]
                                     == rfm.set_index("customer_id")["segment"]).all()


def test_clusters_are_chosen_by_silhouette_and_described(modelled):
    engine, _ = modelled
    prof = q(engine, "select * from marts.cluster_profiles where as_of = :d order by cluster_id", d=AS_OF)
    k = int(prof["k"].iloc[0])
    assert 3 <= k <= 8 and len(prof) == k
    assert prof["customers"].is_monotonic_decreasing  # ids by size
    assert prof["description"].str.contains("buyers").all() and prof["name"].nunique() >= 2
    seg = q(engine, "select cluster_id, count(*) n from marts.customer_segments where as_of = :d group by 1",
            d=AS_OF)
    assert dict(zip(seg["cluster_id"], seg["n"])) == dict(zip(prof["cluster_id"], prof["customers"]))
    # Clusters differ in behaviour: the highest-spend cluster spends far more than the lowest.
    assert prof["median_monetary"].max() > 2 * prof["median_monetary"].min()


def test_recommendations_are_new_products_with_reasons(modelled):
    engine, _ = modelled
    recs = q(engine, "select * from marts.recommendations where as_of = :d", d=AS_OF)
    bought = q(engine, "select distinct o.customer_id, i.product_id from staging.orders o join"
                       " staging.order_items i using (order_id) where o.status = 'completed' and o.order_ts < :d",
               d=AS_OF)
    overlap = recs.merge(bought, on=["customer_id", "product_id"])
    assert overlap.empty
    assert recs.groupby("customer_id")["rank"].max().max() == recommend.TOP_N
    together = recs[recs["because_product_id"].notna()]
    assert len(together) > 0.9 * len(recs) and together["reason"].str.startswith("bought ").all()
    pairs = q(engine, "select * from marts.product_affinity where level = 'product'")
    assert len(pairs) > 0 and (pairs["pair_count"] >= recommend.MIN_PAIR_CUSTOMERS).all()
    assert len(q(engine, "select 1 from marts.product_affinity where level = 'category'")) > 0


def test_hit_rate_at_5_beats_popularity_on_held_out_next_purchases(modelled):
    engine, _ = modelled
    lines = recommend.load_lines(engine, AS_OF)
    result = recommend.hit_rate(lines, dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc), k=5)
    print(f"\nhit rate@5: model {result['model_hit_rate']:.3f}, popularity {result['popularity_hit_rate']:.3f},"
          f" {result['customers']} customers")
    assert result["customers"] > 300
    assert result["model_hit_rate"] > result["popularity_hit_rate"] + 0.03
