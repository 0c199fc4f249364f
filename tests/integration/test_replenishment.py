"""Replenishment on a simulated shop whose regular buyers have a true per-customer rate.

The check: fit marts.replenishment_due on the orders before a cutoff, then compare the predicted next
purchase of every customer and consumable product with the first purchase after the cutoff (held out),
against the population-interval baseline (the same formula with the customer's own intervals left out).
Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from martech.campaigns.audience import build_snapshot
from martech.campaigns.render import Recipient, render_message
from martech.campaigns.spec import load_campaigns
from martech.models import replenishment as rp

pytestmark = pytest.mark.integration

AS_OF = dt.date(2026, 6, 1)
CUTOFF = dt.date(2026, 2, 1)  # four months of held-out purchases after it
CUSTOMERS, SEED, SHARE = 1500, 21, 0.3


@pytest.fixture(scope="module")
def shop(simulated_staging):
    return simulated_staging(AS_OF, customers=CUSTOMERS, seed=SEED, replenishment=SHARE)


def _frame(eng, sql: str, **params) -> pd.DataFrame:
    with eng.connect() as conn:
        return pd.read_sql_query(sa.text(sql), conn, params=params)


def test_predicted_next_purchases_beat_the_population_interval(shop):
    days = rp.purchase_days(rp.read_lines(shop, CUTOFF))
    pred = rp.predict(days, rp.fit(days), CUTOFF)
    later = rp.read_lines(shop, AS_OF)
    later = later[pd.to_datetime(later["order_date"]) >= pd.Timestamp(CUTOFF)]
    every = rp.holdout_errors(pred, later, CUTOFF)
    habits = _frame(shop, "select customer_id, product_id from sim_truth.replenishment")
    regular = rp.holdout_errors(pred.merge(habits, on=["customer_id", "product_id"]), later, CUTOFF)
    # Without an own interval both predictions are the population's: the pairs where they can differ.
    repeat = rp.holdout_errors(pred[pred["intervals"] > 0], later, CUTOFF)
    print(f"\nreplenishment check ({CUSTOMERS} customers, seed {SEED}, habit share {SHARE}, cutoff {CUTOFF}):"
          f"\n  every customer x product with a later purchase: {every['pairs']} pairs, model MAE"
          f" {every['model_mae_days']:.2f} days, population baseline {every['baseline_mae_days']:.2f} days"
          f"\n  of them with an own interval before the cutoff:  {repeat['pairs']} pairs, model MAE"
          f" {repeat['model_mae_days']:.2f} days, population baseline {repeat['baseline_mae_days']:.2f} days"
          f"\n  regular buyers (sim_truth.replenishment):       {regular['pairs']} pairs, model MAE"
          f" {regular['model_mae_days']:.2f} days, population baseline {regular['baseline_mae_days']:.2f} days")
    assert every["pairs"] > 300 and regular["pairs"] > 100
    for errors in (every, repeat, regular):
        assert errors["model_mae_days"] < errors["baseline_mae_days"], errors


def test_the_mart_holds_every_buyer_of_a_consumable_and_a_rerun_is_identical(shop):
    first = rp.build_replenishment(shop, AS_OF)
    rows = _frame(shop, "select * from marts.replenishment_due where as_of = :d order by customer_id, product_id",
                  d=AS_OF)
    assert first["rows"] == len(rows) > 0
    assert set(rows["category"]) == set(rp.CONSUMABLE_CATEGORIES)
    pairs = _frame(shop, """
        select count(distinct (o.customer_id, i.product_id)) as n from staging.orders as o
        join staging.order_items as i using (order_id) join staging.products as p using (product_id)
        where o.status = 'completed' and o.order_ts < :d and i.quantity > 0 and p.category = any(:c)""",
                   d=AS_OF, c=list(rp.CONSUMABLE_CATEGORIES))
    assert len(rows) == int(pairs["n"].iloc[0])
    assert (rows.loc[rows["intervals"] == 0, "shrinkage_weight"] == 0).all()
    assert (rows["intervals"] == rows["purchases"] - 1).all()
    assert (pd.to_datetime(rows["remind_on"]) == pd.to_datetime(rows["predicted_next_date"])
            - pd.to_timedelta(rows["remind_days_before"], unit="D")).all()
    assert rows["contact_id"].notna().mean() > 0.95
    rp.build_replenishment(shop, AS_OF)
    again = _frame(shop, "select * from marts.replenishment_due where as_of = :d order by customer_id, product_id",
                   d=AS_OF)
    pd.testing.assert_frame_equal(rows, again)
    comments = _frame(shop, "select count(*) as n from pg_description d join pg_class c on d.objoid = c.oid"
                            " where c.relname = 'replenishment_due' and d.objsubid > 0")
    assert int(comments["n"].iloc[0]) == len(rows.columns)


def test_the_campaign_reminds_due_customers_who_did_not_buy_again(shop):
    built = dt.date(2026, 5, 22)  # the latest mart before the run date: purchases since then must count
    rp.build_replenishment(shop, built)
    with shop.begin() as conn:
        conn.execute(sa.text("delete from marts.replenishment_due where as_of > :d"), {"d": built})
    spec = {s.id: s for s in load_campaigns()}["replenishment"]
    summary = build_snapshot(shop, spec, AS_OF)
    members = _frame(shop, "select contact_id, email, first_name, variant, attributes from audiences.audience_members"
                           " where campaign_id = 'replenishment' and run_id = :r", r=AS_OF.isoformat())
    assert summary.members == len(members) > 10
    due = _frame(shop, """
        select r.customer_id, r.product_id, r.last_purchase_date,
            exists (select 1 from staging.orders o join staging.order_items i using (order_id)
                    where o.customer_id = r.customer_id and i.product_id = r.product_id and o.status <> 'cancelled'
                      and o.order_ts >= r.last_purchase_date + 1 and o.order_ts < :run) as bought_again
        from marts.replenishment_due r where r.as_of = :built and :run between r.remind_on and r.remind_on + 6""",
                 built=built, run=AS_OF)
    assert due["bought_again"].any(), "the fixture must hold customers who bought again meanwhile"
    contacts = _frame(shop, "select contact_id, customer_id from staging.contacts where customer_id is not null")
    offered = [(cid, p["product_id"]) for cid, a in zip(members["contact_id"], members["attributes"])
               for p in a["products"]]
    offered_df = pd.DataFrame(offered, columns=["contact_id", "product_id"]).merge(contacts, on="contact_id")
    check = offered_df.merge(due, on=["customer_id", "product_id"], how="left")
    assert check["last_purchase_date"].notna().all()  # every offered product is due
    assert not check["bought_again"].any()  # and none was bought again
    for r in members.itertuples():
        attrs = dict(r.attributes)
        assert attrs["product_id"] == attrs["products"][0]["product_id"] and len(attrs["products"]) <= 3
        message = render_message(spec, r.variant, Recipient(contact_id=r.contact_id, email=r.email,
                                                            first_name=r.first_name, attributes=attrs,
                                                            send_id="test"))
        assert attrs["product_name"] in message.html and "sid=test" in message.html
