"""The staging gate: bad staging stops the chain before models and sends; drift is judged against history."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from martech.db import run_model
from martech.quality.results import DataQualityError
from martech.quality.staging import validate_staging

pytestmark = pytest.mark.integration
RUN = dt.date(2026, 4, 1)
UTC = dt.timezone.utc


@pytest.fixture()
def staged(clean_warehouse):
    eng = clean_warehouse
    params = {"run_date": RUN, "run_ts": dt.datetime(2026, 4, 1, tzinfo=UTC)}
    for model in ("staging.customers", "staging.products", "staging.orders", "staging.order_items",
                  "staging.contacts", "staging.cart_items", "staging.carts", "staging.web_sessions"):
        run_model(eng, model, params)
    with eng.begin() as conn:
        conn.execute(sa.text("insert into staging.customers (customer_id, email, country, is_deleted)"
                             " values (1, 'a@example.com', 'DE', false), (2, 'b@example.com', 'FR', false)"))
        conn.execute(sa.text("insert into staging.products (product_id, sku, name, category, price)"
                             " values (10, 'S', 'Tea', 'Tea', 4.5)"))
        conn.execute(sa.text(
            "insert into staging.orders (order_id, customer_id, order_ts, order_date, status, currency, total_amount,"
            " net_amount) values (100, 1, '2026-03-31 10:00+00', '2026-03-31', 'completed', 'EUR', 9, 9),"
            " (101, 2, '2026-03-30 10:00+00', '2026-03-30', 'refunded', 'EUR', 4.5, 0)"))
        conn.execute(sa.text("insert into staging.order_items (order_id, line_no, product_id, quantity, unit_price,"
                             " line_amount) values (100, 1, 10, 2, 4.5, 9), (101, 1, 10, 1, 4.5, 4.5)"))
        conn.execute(sa.text("insert into staging.contacts (contact_id, email, consent_status, country)"
                             " values ('c1', 'a@example.com', 'opted_in', 'DE')"))
    return eng


def results(eng, run_id: str):
    with eng.connect() as conn:
        return {(t, e, c): (s, k, o) for t, e, c, s, k, o in conn.execute(sa.text(
            "select table_name, expectation, column_name, success, critical, observed from kpis.data_quality"
            " where run_id = :r"), {"r": run_id})}


def test_clean_staging_passes_and_every_check_is_recorded(staged):
    report = validate_staging(staged, RUN)
    assert report.success and len(report.results) >= 30
    got = results(staged, "staging:2026-04-01")
    assert got[("staging.orders", "expect_table_row_count_to_be_between", "")] == (True, False, "2")
    assert got[("staging.order_items", "expect_column_values_to_be_in_set", "order_known")][:2] == (True, True)


@pytest.mark.parametrize("sql, words", [
    ("insert into staging.orders (order_id, customer_id, order_ts, order_date, status, total_amount, net_amount)"
     " values (102, 1, '2026-04-05 10:00+00', '2026-04-05', 'completed', 1, 1)", "not_in_future"),
    ("insert into staging.order_items (order_id, line_no, product_id, quantity, unit_price, line_amount)"
     " values (999, 1, 10, 1, 4.5, 4.5)", "order_known"),
    ("insert into staging.order_items (order_id, line_no, product_id, quantity, unit_price, line_amount)"
     " values (100, 2, 10, -1, 4.5, -4.5)", "quantity"),
    ("insert into staging.contacts (contact_id, email, consent_status) values ('c2', 'x@example.com', 'maybe')",
     "consent_status"),
    ("insert into staging.contacts (contact_id, email, consent_status) values ('c2', ' A@Example.com', 'opted_in')",
     r"staging.contacts.email \[expect_column_values_to_be_unique\]"),
    ("insert into staging.customers (customer_id, email, country, is_deleted) values (3, 'B@example.com ', 'DE', false)",
     r"staging.customers.email \[expect_column_values_to_be_unique\]"),
    ("insert into staging.orders (order_id, customer_id, order_ts, order_date, status, total_amount, net_amount)"
     " values (104, 1, '1969-12-31 23:59:59+00', '1969-12-31', 'completed', 1, 1)", "after_1970"),
    ("insert into staging.order_items (order_id, line_no, product_id, quantity, unit_price, line_amount)"
     " values (100, 3, 10, 1, -4.5, -4.5)", "unit_price"),
    ("insert into staging.carts (cart_id, customer_id, created_at, updated_at, status, cart_value)"
     " values (7, 1, '2026-03-01 10:00+00', '2026-03-01 10:00+00', 'lost', 5)", r"staging.carts.status"),
    ("insert into staging.cart_items (cart_id, line_no, product_id, quantity, unit_price)"
     " values (7, 1, 10, -2, 4.5)", r"staging.cart_items.quantity"),
])
def test_a_critical_defect_stops_the_chain(staged, sql, words):
    with staged.begin() as conn:
        conn.execute(sa.text(sql))
    with pytest.raises(DataQualityError, match=words):
        validate_staging(staged, RUN)


def test_a_warning_is_recorded_but_does_not_stop(staged):
    with staged.begin() as conn:
        conn.execute(sa.text("insert into staging.orders (order_id, customer_id, order_ts, order_date, status,"
                             " total_amount, net_amount) values (103, 77, '2026-03-31 11:00+00', '2026-03-31',"
                             " 'completed', 1, 1)"))
    report = validate_staging(staged, RUN)
    assert report.success and any(r.column == "customer_known" for r in report.warnings)


def test_row_count_drift_against_the_trailing_runs(staged):
    for day in (25, 26, 27, 28):  # four earlier checks saw 40 orders
        with staged.begin() as conn:
            conn.execute(sa.text(
                "insert into kpis.data_quality (run_id, run_date, table_name, expectation, column_name, kwargs,"
                " success, critical, observed) values (:r, :d, 'staging.orders',"
                " 'expect_table_row_count_to_be_between', '', '{}', true, true, '40')"),
                {"r": f"staging:2026-03-{day}", "d": dt.date(2026, 3, day)})
    with pytest.raises(DataQualityError, match="row count far from the trailing mean"):
        validate_staging(staged, RUN)  # 2 orders against a mean of 40
    got = results(staged, "staging:2026-04-01")
    assert got[("staging.orders", "expect_table_row_count_to_be_between", "")][:2] == (False, True)


def test_shared_addresses_are_allowed_only_where_identity_resolution_allows_them(staged):
    with staged.begin() as conn:
        # a deleted customer may keep the address of a live one; addresses may be missing
        conn.execute(sa.text("insert into staging.customers (customer_id, email, country, is_deleted) values"
                             " (3, 'A@example.com', 'DE', true), (4, null, 'DE', false), (5, null, 'FR', false)"))
        conn.execute(sa.text("insert into staging.contacts (contact_id, email, consent_status) values"
                             " ('c3', null, 'unknown'), ('c4', null, 'opted_out')"))
    report = validate_staging(staged, RUN)
    assert report.success
    got = results(staged, "staging:2026-04-01")
    assert got[("staging.customers", "expect_column_values_to_be_unique", "email")][:2] == (True, True)
    assert got[("staging.contacts", "expect_column_values_to_be_unique", "email")][:2] == (True, True)
