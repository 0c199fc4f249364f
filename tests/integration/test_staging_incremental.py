"""An incremental staging day gives the tables a full rebuild of the same raw rows gives, row for row.

Day 1 is built (the first run: a full rebuild), day 2's batch lands with awkward rows (a new version of an
old key, an identical copy in a later batch, an older version arriving late, a held future row that
becomes due, a corrected version of a row held for a clock error, a row whose defect a later version
fixes), day 2 runs incrementally; then the same warehouse is rebuilt in full for day 2 and every staging
table, the accounting, quarantine, merges and corrections must be the same.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.db import copy_rows
from martech.ingest.landing import cutoff_for
from martech.staging.incremental import INCREMENTAL

pytestmark = pytest.mark.db

DAY1 = dt.date(2026, 11, 2)
DAY2 = DAY1 + dt.timedelta(days=1)
CUT1, CUT2 = cutoff_for(DAY1), cutoff_for(DAY2)
SESSION_COLS = ("session_id", "customer_id", "contact_id", "started_at", "ended_at", "page_views", "product_views",
                "updated_at")
VIEW_COLS = ("session_id", "view_no", "product_id", "viewed_at", "updated_at")
CUSTOMER_COLS = ("customer_id", "email", "first_name", "last_name", "country", "created_at", "updated_at", "deleted_at")
PRODUCT_COLS = ("product_id", "sku", "name", "category", "price", "image_url", "created_at", "updated_at")
ORDER_COLS = ("order_id", "customer_id", "order_ts", "status", "currency", "total_amount", "coupon_code", "updated_at")
LINE_COLS = ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at")


def _shop_day1() -> dict[str, list[tuple]]:
    t = CUT1 - dt.timedelta(days=3)
    due = CUT1 + dt.timedelta(hours=2)
    return {
        "raw.shop_customers": [
            ("1", "a@example.com", "Ann", "A", "DE", _ts(t), _ts(t), None),
            ("7", "g@example.com", "Gil", "G", "DE", _ts(t), _ts(t), None),  # merged into 6 on day 2
        ],
        "raw.shop_products": [("100", "S100", "Mug", "home", "10.00", None, _ts(t), _ts(t)),
                              ("101", "S101", "Cup", "home", "5.00", None, _ts(t), _ts(t))],
        "raw.shop_orders": [
            ("1", "1", _ts(t), "completed", "EUR", "25.00", None, _ts(t)),
            ("2", "2", _ts(t), "completed", "EUR", "10.00", None, _ts(t)),   # its customer arrives on day 2
            ("3", "1", _ts(t), "completed", "EUR", "10.00", None, _ts(t)),   # a line of it is held until day 2
            ("4", "1", _ts(t), "completed", "EUR", "10.00", None, _ts(t)),   # refunded on day 2
            ("6", "7", _ts(t), "completed", "EUR", "5.00", None, _ts(t)),    # its customer merges on day 2
        ],
        "raw.shop_order_items": [
            ("1", "1", "100", "2", "10.00", _ts(t)),
            ("1", "2", "101", "1", "5.00", _ts(t)),
            ("2", "1", "100", "1", "10.00", _ts(t)),
            ("3", "1", "100", "1", "10.00", _ts(t)),
            ("3", "2", "101", "1", "5.00", _ts(due)),                          # held, due on day 2
            ("4", "1", "100", "1", "10.00", _ts(t)),
            ("5", "1", "100", "1", "10.00", _ts(t)),                           # its order arrives on day 2
            ("6", "1", "101", "1", "5.00", _ts(t)),
        ],
    }


def _shop_day2() -> dict[str, list[tuple]]:
    t = CUT2 - dt.timedelta(hours=5)
    old = CUT1 - dt.timedelta(days=3)
    return {
        "raw.shop_customers": [
            ("2", "b@example.com", "Bob", "B", "DE", _ts(t), _ts(t), None),   # the late parent of order 2
            ("6", "g@example.com", "Gil", "G", "DE", _ts(old - dt.timedelta(days=9)), _ts(t), None),  # earlier
        ],
        "raw.shop_products": [],
        "raw.shop_orders": [
            ("4", "1", _ts(old), "refunded", "EUR", "10.00", None, _ts(t)),   # new version of an old key
            ("1", "1", _ts(old), "completed", "EUR", "25.00", None, _ts(old)),  # identical copy, later batch
            ("5", "1", _ts(t), "completed", "EUR", "10.00", None, _ts(t)),    # the late parent of its line
        ],
        "raw.shop_order_items": [("1", "2", "101", "3", "5.00", _ts(t))],    # changes order 1's total
    }


def _ts(moment: dt.datetime) -> str:
    return moment.isoformat()


def _day1_rows() -> tuple[list[tuple], list[tuple]]:
    t = CUT1 - dt.timedelta(hours=5)
    due = CUT1 + dt.timedelta(hours=2)  # at or after day 1's cutoff, before day 2's: held once, then staged
    sessions = [
        ("s1", "1", None, _ts(t), _ts(t), "3", "2", _ts(t)),
        ("s2", "2", "C2", _ts(t), None, "1", "1", _ts(t)),
        ("s3", "x", None, _ts(t), None, "1", "1", _ts(t)),                        # invalid customer id
        ("s4", "4", None, _ts(t), None, "2", "1", _ts(t)),
        ("s4", "4", None, _ts(t), None, "2", "1", _ts(t)),                        # identical copy, same batch
        ("s5", "5", None, _ts(t), None, "2", "1", _ts(t)),
        ("s5", "5", None, _ts(t), None, "7", "1", _ts(t)),                        # conflicting version
        ("s6", "6", None, _ts(due), None, "1", "1", _ts(due)),                    # future: held, due on day 2
        ("s8", "8", None, "2099-01-01T00:00:00+00:00", None, "1", "0", _ts(t)),   # clock error: held
        ("s10", "10", None, _ts(t), None, "1", "1", _ts(t - dt.timedelta(hours=1))),
        (None, "11", None, _ts(t), None, "1", "1", _ts(t)),                       # no key
    ]
    views = [
        ("s1", "1", "100", _ts(t), _ts(t)),
        ("s1", "2", "101", _ts(t), _ts(t)),
        ("s2", "1", "102", _ts(t), _ts(t)),
        ("s3", "1", "p", _ts(t), _ts(t)),                                         # invalid product
        ("s4", "1", "104", _ts(t), _ts(t)),
        ("s4", "1", "104", _ts(t), _ts(t)),                                       # identical copy, same batch
        ("s5", "1", "105", _ts(t), _ts(t)),
        ("s5", "1", "106", _ts(t), _ts(t)),                                       # conflicting version
        ("s2", "2", "107", _ts(due), _ts(due)),                                   # future: held, due on day 2
        ("s6", "1", "108", _ts(due), _ts(due)),                                   # its session is held too
        ("s8", "1", "109", "2099-01-01T00:00:00+00:00", _ts(t)),                  # clock error: held
    ]
    return sessions, views


def _day2_rows() -> tuple[list[tuple], list[tuple]]:
    t = CUT2 - dt.timedelta(hours=5)
    old = CUT1 - dt.timedelta(hours=5)
    sessions = [
        ("s1", "1", "C1", _ts(old), _ts(t), "9", "4", _ts(t)),                    # new version of an old key
        ("s2", "2", "C2", _ts(old), None, "1", "1", _ts(old)),                    # identical copy, later batch
        ("s3", "3", None, _ts(old), None, "1", "1", _ts(t)),                      # fixes the rejected version
        ("s8", "8", None, _ts(old), None, "1", "0", _ts(t)),                      # the corrected clock
        ("s10", "10", None, _ts(old), None, "5", "5", _ts(old - dt.timedelta(hours=9))),  # older, arrives late
        ("s9", "9", None, _ts(t), None, "1", "1", _ts(t)),                        # a new key
        ("s12", "12", None, "2099-01-01T00:00:00+00:00", None, "1", "1", _ts(t)),  # new and held
        ("s9", None, None, _ts(t), None, "-1", "1", _ts(t)),                      # rejected version of a new key
    ]
    views = [
        ("s1", "1", "200", _ts(old), _ts(t)),                                     # new version of an old key
        ("s1", "2", "101", _ts(old), _ts(old)),                                   # identical copy, later batch
        ("s3", "1", "103", _ts(old), _ts(t)),                                     # fixes the rejected version
        ("s4", "1", "104", _ts(old), _ts(old - dt.timedelta(hours=3))),           # older version, arrives late
        ("s5", "1", "107", _ts(old), _ts(old)),                                   # same time, later batch: wins
        ("s9", "1", "110", _ts(t), _ts(t)),
        ("s9", "1", "110", _ts(t), _ts(t)),                                       # identical copy, same batch
        ("s8", "1", "109", _ts(old), _ts(t)),                                     # the corrected clock
    ]
    return sessions, views


def _land(engine, batch: str, loaded_at: dt.datetime, sessions: list[tuple], views: list[tuple],
          shop: dict[str, list[tuple]] | None = None) -> None:
    columns = {"raw.shop_web_sessions": SESSION_COLS, "raw.shop_product_views": VIEW_COLS,
               "raw.shop_customers": CUSTOMER_COLS, "raw.shop_products": PRODUCT_COLS,
               "raw.shop_orders": ORDER_COLS, "raw.shop_order_items": LINE_COLS}
    tables = {"raw.shop_web_sessions": sessions, "raw.shop_product_views": views, **(shop or {})}
    with engine.begin() as conn:
        for table, rows in tables.items():
            copy_rows(conn, table, (*columns[table], "_batch_id", "_source", "_loaded_at"),
                      [(*r, batch, "shop", loaded_at) for r in rows])


SNAPSHOTS = {
    "staging.orders": "select t::text from staging.orders as t",
    "staging.order_items": "select t::text from staging.order_items as t",
    "staging.customers": "select t::text from staging.customers as t",
    "staging.web_sessions": "select t::text from staging.web_sessions as t",
    "staging.product_views": "select t::text from staging.product_views as t",
    "staging.row_accounting": "select t::text from staging.row_accounting as t where run_date = :d",
    "raw.quarantine": "select t::text from raw.quarantine as t where stage = 'staging'",
    "staging.merged_rows": "select t::text from staging.merged_rows as t",
    "staging.corrections": "select t::text from staging.corrections as t",
}


def _snapshot(engine, run_date: dt.date) -> dict[str, list[str]]:
    with engine.connect() as conn:
        return {name: sorted(conn.execute(sa.text(sql), {"d": run_date}).scalars())
                for name, sql in SNAPSHOTS.items()}


def _watermarks(engine) -> dict[str, tuple]:
    with engine.connect() as conn:
        return {r.table_name: (r.loaded_through, r.full_refresh) for r in conn.execute(sa.text(
            "select table_name, loaded_through, full_refresh from staging.model_watermarks"))}


def test_incremental_day_matches_a_full_rebuild(clean_warehouse, warehouse):
    eng = clean_warehouse
    _land(eng, "b1", CUT1 - dt.timedelta(hours=1), *_day1_rows(), _shop_day1())
    first = pipeline.build_staging(warehouse, DAY1)
    assert set(first["refresh"].values()) == {"full"}  # the first run rebuilds
    assert _watermarks(eng) == {t: (CUT1, True) for t in INCREMENTAL}
    with eng.connect() as conn:
        held = conn.execute(sa.text(
            "select row_key from raw.quarantine where stage = 'staging' and reason_code like 'future%'"
            " order by 1")).scalars().all()
    assert held == ["3:2", "s2:2", "s6", "s6:1", "s8", "s8:1"]

    _land(eng, "b2", CUT2 - dt.timedelta(hours=1), *_day2_rows(), _shop_day2())
    second = pipeline.build_staging(warehouse, DAY2)
    assert second["refresh"] == {t: f"incremental since {CUT1.isoformat()}" for t in INCREMENTAL}
    assert _watermarks(eng) == {t: (CUT2, False) for t in INCREMENTAL}
    incremental = _snapshot(eng, DAY2)

    rebuilt = pipeline.build_staging(warehouse, DAY2, full_refresh=True)
    assert set(rebuilt["refresh"].values()) == {"full"}
    assert _watermarks(eng) == {t: (CUT2, True) for t in INCREMENTAL}
    full = _snapshot(eng, DAY2)
    for name in SNAPSHOTS:
        assert incremental[name] == full[name], name

    with eng.connect() as conn:
        sessions = dict(conn.execute(sa.text("select session_id, page_views from staging.web_sessions")).all())
        views = dict(conn.execute(sa.text(
            "select session_id || ':' || view_no, product_id from staging.product_views")).all())
    # the new versions won, the late older ones did not, the due and corrected rows were staged
    assert sessions == {"s1": 9, "s2": 1, "s3": 1, "s4": 2, "s5": 2, "s6": 1, "s8": 1, "s9": 1, "s10": 1}
    with eng.connect() as conn:
        orders = {r.order_id: (r.customer_id, str(r.total_amount), str(r.net_amount)) for r in conn.execute(sa.text(
            "select order_id, customer_id, total_amount, net_amount from staging.orders"))}
        lines = conn.execute(sa.text("select count(*) from staging.order_items")).scalar_one()
    assert orders == {1: (1, "35.00", "35.00"), 2: (2, "10.00", "10.00"), 3: (1, "15.00", "15.00"),
                      4: (1, "10.00", "0.00"), 5: (1, "10.00", "10.00"), 6: (6, "5.00", "5.00")}
    assert lines == 8
    assert views == {"s1:1": 200, "s1:2": 101, "s2:1": 102, "s2:2": 107, "s3:1": 103, "s4:1": 104,
                     "s5:1": 107, "s6:1": 108, "s8:1": 109, "s9:1": 110}
    # day 2 again: nothing new, the same tables; one more batch after a full rebuild is incremental again
    again = pipeline.build_staging(warehouse, DAY2)
    assert again["refresh"] == {t: f"incremental since {CUT2.isoformat()}" for t in INCREMENTAL}
    assert _snapshot(eng, DAY2) == full


def test_an_erasure_behind_the_watermark_rebuilds_in_full(clean_warehouse, warehouse):
    eng = clean_warehouse
    _land(eng, "b1", CUT1 - dt.timedelta(hours=1), *_day1_rows())
    pipeline.build_staging(warehouse, DAY1)
    with eng.begin() as conn:  # as martech.privacy.erase holds a person back: the raw rows are deleted
        conn.execute(sa.text("delete from raw.shop_web_sessions where session_id = 's1'"))
        conn.execute(sa.text("delete from raw.shop_product_views where session_id = 's1'"))
    _land(eng, "b2", CUT2 - dt.timedelta(hours=1), *_day2_rows())
    second = pipeline.build_staging(warehouse, DAY2)
    assert second["refresh"]["staging.web_sessions"] == second["refresh"]["staging.product_views"] == "full"
    with eng.connect() as conn:
        state = conn.execute(sa.text(
            "select count(*) from staging_state.web_sessions where session_id = 's1'")).scalar_one()
        staged = conn.execute(sa.text(
            "select count(*) from staging.web_sessions where session_id = 's1'")).scalar_one()
    assert state == 1 and staged == 1  # only the day-2 version remains, nothing of the deleted rows
