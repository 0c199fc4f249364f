"""Each SQL model on a small hand-made dataset whose right answers are known."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from martech.db import copy_rows, run_model
from martech.kpis.build import KpiSettings

pytestmark = pytest.mark.integration

RUN = dt.date(2026, 4, 1)
RUN_TS = dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc)
LATE_TS = RUN_TS + dt.timedelta(days=1)
META = ("_batch_id", "_source", "_loaded_at")


def _raw(conn, table, cols, rows, loaded_at=RUN_TS):
    copy_rows(conn, table, (*cols, *META), [(*r, "b1", "test", loaded_at) for r in rows])


@pytest.fixture()
def shop(clean_warehouse):
    eng = clean_warehouse
    ts = "2026-01-01T00:00:00+00:00"
    with eng.begin() as conn:
        # Orders need their customers: staging quarantines an order whose customer never arrived.
        _raw(conn, "raw.shop_customers", ("customer_id", "email", "created_at", "updated_at"),
             [(str(i), f"c{i}@example.com", ts, ts) for i in (1, 2, 3)])
        _raw(conn, "raw.shop_products", ("product_id", "sku", "name", "category", "price", "updated_at"),
             [("1", "A1", "Beans", "Coffee", "10.00", ts), ("2", "B1", "Mug", "Mugs", "5.50", ts),
              ("3", "C1", "Kettle", "Gear", "40.00", ts)])
        _raw(conn, "raw.shop_orders", ("order_id", "customer_id", "order_ts", "status", "currency",
                                       "total_amount", "updated_at"),
             [("10", "1", "2026-02-01T10:00:00+00:00", "completed", "EUR", "15.50", ts),
              # a newer version of order 10 arrives later in the same load: it wins
              ("10", "1", "2026-02-01T10:00:00+00:00", "completed", "eur", "15.50", "2026-02-02T00:00:00+00:00"),
              ("11", "2", "2026-03-01T10:00:00+00:00", "refunded", "EUR", "10.00", ts),
              ("12", "2", "2026-03-05T10:00:00+00:00", "completed", "EUR", "50.00", ts),
              ("13", "3", "2026-03-06T10:00:00+00:00", "completed", "EUR", "10.00", ts)])
        _raw(conn, "raw.shop_orders", ("order_id", "customer_id", "order_ts", "status", "currency",
                                       "total_amount", "updated_at"),
             [("14", "3", "2026-04-01T10:00:00+00:00", "completed", "EUR", "99.00", ts)], loaded_at=LATE_TS)
        _raw(conn, "raw.shop_order_items", ("order_id", "line_no", "product_id", "quantity", "unit_price",
                                            "updated_at"),
             [("10", "1", "1", "1", "10.00", ts), ("10", "2", "2", "1", "5.50", ts),
              ("11", "1", "1", "1", "10.00", ts), ("12", "1", "3", "1", "40.00", ts),
              ("12", "2", "1", "1", "10.00", ts), ("13", "1", "1", "1", "10.00", ts)])
        crm_cols = ("contact_id", "email", "first_name", "birthday", "consent_status", "shop_customer_id",
                    "updated_at", "_source_file", "_line_no")
        copy_rows(conn, "raw.crm_contacts", (*crm_cols, *META), [
            ("C1", " Ana@Example.COM ", "Ana", "1990-04-01", "opted_in", "1", ts, "f.csv", 2, "b1", "t", RUN_TS),
            ("C2", "bo@example.com", "Bo", None, "OPTED_OUT", "2", ts, "f.csv", 3, "b1", "t", RUN_TS),
            ("C2", "bo@example.com", "Bo", None, "opted_in", "2", "2026-02-01T00:00:00+00:00", "g.csv", 2,
             "b2", "t", RUN_TS),
            ("C3", "cy@example.com", "Cy", None, None, "3", ts, "f.csv", 4, "b1", "t", RUN_TS),
            ("C4", "lead@example.com", "Di", None, "opted_in", None, ts, "f.csv", 5, "b1", "t", RUN_TS),
        ])
    params = {"run_date": RUN, "run_ts": RUN_TS}
    counts = {m: run_model(eng, m, params) for m in
              ("staging.customers", "staging.products", "staging.orders", "staging.order_items",
               "staging.contacts")}
    return eng, counts


def _q(eng, sql, **params):
    with eng.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def test_staging_dedups_types_and_respects_the_run_cutoff(shop):
    eng, counts = shop
    assert counts["staging.orders"] == 4  # order 14 was loaded after the run
    assert _q(eng, "select currency, net_amount from staging.orders where order_id = 10") == [
        ("EUR", Decimal("15.50"))]
    assert _q(eng, "select net_amount from staging.orders where order_id = 11") == [(Decimal("0.00"),)]
    assert _q(eng, "select line_amount from staging.order_items where order_id = 12 order by line_no") == [
        (Decimal("40.00"),), (Decimal("10.00"),)]
    contacts = dict(_q(eng, "select contact_id, email || '|' || consent_status from staging.contacts"))
    assert contacts == {"C1": "ana@example.com|opted_in", "C2": "bo@example.com|opted_in",
                        "C3": "cy@example.com|unknown", "C4": "lead@example.com|opted_in"}


def test_category_affinity_measures(shop):
    eng, _ = shop
    run_model(eng, "marts.product_affinity", {"run_date": RUN})
    rows = {(a, c): (n, s, conf, lift) for a, c, n, s, conf, lift in _q(
        eng, "select antecedent, consequent, pair_count, support, confidence, lift from marts.product_affinity")}
    # Baskets (completed orders only): customer 1 {Coffee, Mugs}, 2 {Gear, Coffee}, 3 {Coffee}.
    assert rows[("Mugs", "Coffee")] == (1, Decimal("0.333333"), Decimal("1.000000"), Decimal("1.0000"))
    assert rows[("Coffee", "Gear")] == (1, Decimal("0.333333"), Decimal("0.333333"), Decimal("1.0000"))
    assert ("Mugs", "Gear") not in rows and len(rows) == 4


def test_customer_360_joins_contacts_orders_and_suppressions(shop):
    eng, _ = shop
    with eng.begin() as conn:
        conn.execute(sa.text("insert into campaigns.suppressions (email, contact_id, reason, source, created_at)"
                             " values ('bo@example.com', 'C2', 'unsubscribe', 'test', :t)"), {"t": RUN_TS})
    run_model(eng, "marts.customer_360", {"run_date": RUN})
    rows = {r[0]: r[1:] for r in _q(eng, "select contact_id, orders_count, net_revenue, is_contactable,"
                                         " favourite_category from marts.customer_360")}
    assert rows["C1"] == (1, Decimal("15.50"), True, "Coffee")
    assert rows["C2"] == (1, Decimal("50.00"), False, "Gear")      # suppressed; refund excluded
    assert rows["C3"] == (1, Decimal("10.00"), False, "Coffee")    # consent unknown
    assert rows["C4"] == (0, Decimal("0"), True, None)             # a lead without orders


def _campaign_daily(eng) -> None:
    params = {"run_date": RUN, **dataclasses.asdict(KpiSettings())}
    for model in ("campaigns.member_outcomes", "kpis.campaign_daily"):
        run_model(eng, model, params)


def test_campaign_daily_counts_arms_within_the_window(shop):
    eng, _ = shop
    send = dt.date(2026, 3, 1)
    run_model(eng, "staging.email_events", {"run_date": RUN, "run_ts": RUN_TS})  # empty: no feed files
    with eng.begin() as conn:
        conn.execute(sa.text(
            "insert into campaigns.campaign_runs values ('promo', '2026-03-01', :d, 'h', 7, 3, 2, 1, 2, 'outbox')"),
            {"d": send})
        conn.execute(sa.text(
            "insert into audiences.audience_members (campaign_id, run_id, run_date, contact_id, email, first_name,"
            " arm, variant, definition_hash, attributes) values"
            " ('promo', '2026-03-01', :d, 'C1', 'ana@example.com', 'Ana', 'treatment', 'a', 'h', '{}'),"
            " ('promo', '2026-03-01', :d, 'C2', 'bo@example.com', 'Bo', 'treatment', 'a', 'h', '{}'),"
            " ('promo', '2026-03-01', :d, 'C3', 'cy@example.com', 'Cy', 'holdout', 'a', 'h', '{}')"), {"d": send})
        conn.execute(sa.text(
            "insert into campaigns.send_ledger (send_id, campaign_id, run_id, step, contact_id, email, variant,"
            " status, transport, attempts, created_at, sent_at) values"
            " ('s1', 'promo', '2026-03-01', 1, 'C1', 'ana@example.com', 'a', 'sent', 'outbox', 1, :t, :t),"
            " ('s2', 'promo', '2026-03-01', 1, 'C2', 'bo@example.com', 'a', 'sent', 'outbox', 1, :t, :t)"),
            {"t": RUN_TS - dt.timedelta(days=31)})
        conn.execute(sa.text(
            "insert into staging.email_events (event_id, event, event_ts, send_id) values"
            " ('e1', 'delivered', '2026-03-01T09:00:00Z', 's1'), ('e2', 'open', '2026-03-01T10:00:00Z', 's1'),"
            " ('e3', 'open', '2026-03-01T11:00:00Z', 's1'), ('e4', 'delivered', '2026-03-01T09:00:00Z', 's2')"))
    _campaign_daily(eng)
    rows = {r[0]: r[1:] for r in _q(
        eng, "select arm, members, sent, delivered, opened, converted, revenue, window_complete"
             " from kpis.campaign_daily where campaign_id = 'promo'")}
    # C2 bought on 03-05 (inside 7 days); C3 (holdout) on 03-06; C1 only before the send.
    assert rows["treatment"] == (2, 2, 2, 1, 1, Decimal("50.00"), True)
    assert rows["holdout"] == (1, 0, 0, 0, 1, Decimal("10.00"), True)


def test_tables_and_columns_carry_comments(shop):
    eng, _ = shop
    run_model(eng, "staging.email_events", {"run_date": RUN, "run_ts": RUN_TS})
    _campaign_daily(eng)
    with eng.connect() as conn:
        table = conn.execute(sa.text("select obj_description('kpis.campaign_daily'::regclass)")).scalar_one()
        column = conn.execute(sa.text(
            "select col_description('kpis.campaign_daily'::regclass, attnum) from pg_attribute"
            " where attrelid = 'kpis.campaign_daily'::regclass and attname = 'window_complete'")).scalar_one()
    assert table.startswith("Grain: one row per campaign, step, variant, arm (treatment / holdout) and send day")
    assert column == "True once the whole window lies before the as-of date"


def test_lifecycle_stages_follow_the_documented_rules(clean_warehouse):
    from martech.models.lifecycle import build_lifecycle

    eng = clean_warehouse
    as_of = dt.date(2026, 1, 1)
    days = {  # customer: order dates as days before as_of
        1: [10],            # new (first order 10 days ago)
        2: [100, 50, 20],   # active
        3: [500, 400, 90],  # at_risk
        4: [600, 200],      # lapsed
        5: [800, 500],      # churned
        6: [700, 400, 5],   # reactivated: 395-day gap before the last order
    }
    ts = "2024-01-01T00:00:00+00:00"
    with eng.begin() as conn:
        orders, n = [], 0
        for cust, ago in days.items():
            for d in ago:
                n += 1
                when = dt.datetime.combine(as_of - dt.timedelta(days=d), dt.time(12), tzinfo=dt.timezone.utc)
                orders.append((str(n), str(cust), when.isoformat(), "completed", "EUR", "10.00", ts))
        _raw(conn, "raw.shop_orders", ("order_id", "customer_id", "order_ts", "status", "currency",
                                       "total_amount", "updated_at"), orders)
        _raw(conn, "raw.shop_customers", ("customer_id", "email", "created_at", "updated_at"),
             [(str(c), f"c{c}@example.com", ts, ts) for c in [*days, 7]])
        crm_cols = ("contact_id", "email", "consent_status", "shop_customer_id", "updated_at", "_source_file",
                    "_line_no")
        copy_rows(conn, "raw.crm_contacts", (*crm_cols, *META),
                  [(f"C{c}", f"c{c}@example.com", "opted_in", str(c), ts, "f.csv", c, "b", "t", RUN_TS)
                   for c in [*days, 7]] + [("L1", "l@example.com", "opted_in", None, ts, "f.csv", 9, "b", "t", RUN_TS)])
    for model in ("staging.customers", "staging.orders", "staging.contacts"):
        run_model(eng, model, {"run_date": as_of, "run_ts": RUN_TS})
    assert build_lifecycle(eng, as_of) == 8
    assert build_lifecycle(eng, as_of) == 8  # rerun replaces the partition
    stages = dict(_q(eng, "select contact_id, lifecycle_stage from marts.customer_lifecycle"))
    assert stages == {"C1": "new", "C2": "active", "C3": "at_risk", "C4": "lapsed", "C5": "churned",
                      "C6": "reactivated", "C7": "prospect", "L1": "prospect"}
    with pytest.raises(ValueError, match="must increase"):
        build_lifecycle(eng, as_of, {"active_days": 10})


def test_segment_migration_counts_moves_between_snapshots(clean_warehouse):
    import pandas as pd

    from martech.models import rfm
    eng = clean_warehouse
    day = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    early = pd.DataFrame({"customer_id": [1, 2, 2, 3], "net_amount": [10.0, 50.0, 60.0, 5.0],
                          "order_ts": [day("2026-01-05"), day("2026-01-02"), day("2026-01-20"), day("2026-01-25")]})
    later = pd.concat([early, pd.DataFrame({"customer_id": [4], "net_amount": [20.0],
                                            "order_ts": [day("2026-02-10")]})])
    d1, d2 = dt.date(2026, 2, 1), dt.date(2026, 3, 1)
    rfm.write_rfm(eng, rfm.score_rfm(early, as_of=d1), d1)
    assert run_model(eng, "marts.segment_migration", {"run_date": d1}) == 0  # nothing to compare with
    rfm.write_rfm(eng, rfm.score_rfm(later, as_of=d2), d2)
    run_model(eng, "marts.segment_migration", {"run_date": d2})
    rows = _q(eng, "select from_segment, to_segment, customers, previous_as_of_date from marts.segment_migration")
    assert sum(r[2] for r in rows) == 4
    assert next(r for r in rows if r[0] == "(none)")[2] == 1  # customer 4 is new since the previous snapshot
    assert {r[3] for r in rows} == {d1}
