"""The data-quality gate on the staging tables (Great Expectations), between staging and the models.

Raw batches are checked as they land (:func:`martech.quality.raw.suites`); this gate checks what staging made of
them, table by table, before any customer model or send reads it:

* keys: not null and unique (critical); one contact per address and one live (not deleted) customer per
  address, compared as ``lower(trim(email))`` (critical: identity resolution guarantees it);
* values: order and consent statuses in their sets, amounts, prices and quantities not negative, order times
  neither in the future of the run nor before 1970 (critical); email, currency and country formats (warning);
* referential integrity: every order line's order and product exist (critical), every order's customer
  exists (warning: a shop can sell to customers whose record arrives later); carts, cart lines and web
  sessions: keys, statuses, non-negative values, and their customer / order / cart (warnings). Product
  views (the largest table) rely on their primary key in the warehouse rather than a pandas copy;
* freshness: the newest order is at most ``FRESHNESS_DAYS`` before the run date (warning);
* row-count drift: each table's rows within ``DRIFT_BOUNDS`` × the mean of its previous ``TRAILING_RUNS``
  staging checks (critical from ``MIN_HISTORY`` previous checks on; recorded but not enforced before).

Results go to ``kpis.data_quality`` under run id ``staging:<date>``; a critical failure raises
``DataQualityError`` with every failed expectation, its table, column, observed value and what to do.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from martech.quality.expectations import CONSENT_STATUSES, COUNTRY_RE, CURRENCY_RE, EMAIL_RE, ORDER_STATUSES
from martech.quality.expectations import ExpectationSpec as E
from martech.quality.gx_runner import validate_frames
from martech.quality.results import QualityReport, check, record_results

TRAILING_RUNS = 5
MIN_HISTORY = 3
DRIFT_BOUNDS = (0.5, 2.0)
FRESHNESS_DAYS = 3

_FRAMES = {
    "staging.customers": """
        select customer_id, email, country,
               case when not is_deleted then lower(btrim(email)) end as live_email
        from staging.customers""",
    "staging.products": "select product_id, price from staging.products",
    "staging.orders": """
        select o.order_id, o.customer_id, o.status, o.currency, o.total_amount,
               o.order_ts <= :run_ts as not_in_future, o.order_ts >= '1970-01-01' as after_1970,
               exists (select 1 from staging.customers as c where c.customer_id = o.customer_id) as customer_known
        from staging.orders as o""",
    "staging.order_items": """
        select i.order_id, i.line_no, i.quantity, i.unit_price,
               exists (select 1 from staging.orders as o where o.order_id = i.order_id) as order_known,
               exists (select 1 from staging.products as p where p.product_id = i.product_id) as product_known
        from staging.order_items as i""",
    "staging.contacts": """
        select contact_id, email, consent_status, country, lower(btrim(email)) as email_key
        from staging.contacts""",
    "staging.carts": """
        select ca.cart_id, ca.status, ca.cart_value,
               exists (select 1 from staging.customers as c where c.customer_id = ca.customer_id) as customer_known,
               ca.order_id is null
               or exists (select 1 from staging.orders as o where o.order_id = ca.order_id) as order_known
        from staging.carts as ca""",
    "staging.cart_items": """
        select i.cart_id, i.line_no, i.quantity, i.unit_price,
               exists (select 1 from staging.carts as ca where ca.cart_id = i.cart_id) as cart_known
        from staging.cart_items as i""",
    "staging.web_sessions": """
        select session_id, page_views >= product_views as views_consistent from staging.web_sessions""",
}


def _true(column: str, *, critical: bool, fix: str) -> E:
    return E("expect_column_values_to_be_in_set", column, {"value_set": [True]}, critical=critical, fix=fix)


def _min(column: str, low: float, fix: str) -> E:
    return E("expect_column_values_to_be_between", column, {"min_value": low}, critical=True, fix=fix)


def _line_amounts(quantity_fix: str) -> list[E]:
    """An order or cart line's quantity and unit price are not negative."""
    return [_min("quantity", 0, quantity_fix), _min("unit_price", 0, "a negative price is a source error")]


def suites(history: dict[str, list[int]]) -> dict[str, list[E]]:
    """Expectations per staging table; ``history`` holds each table's previous row counts, newest first."""
    def key(*cols: str) -> list[E]:
        specs = [E("expect_column_values_to_not_be_null", c, fix="staging must never produce a null key")
                 for c in cols]
        if len(cols) == 1:
            specs.append(E("expect_column_values_to_be_unique", cols[0], fix="staging must keep one row per key"))
        else:
            specs.append(E("expect_compound_columns_to_be_unique", "+".join(cols), {"column_list": list(cols)},
                           fix="staging must keep one row per key"))
        return specs

    email = E("expect_column_values_to_match_regex", "email", {"regex": EMAIL_RE}, critical=False,
              fix="invalid addresses cannot be mailed; fix them at the source")
    country = E("expect_column_values_to_match_regex", "country", {"regex": COUNTRY_RE}, critical=False,
                fix="country must be an ISO-3166 alpha-2 code")
    out = {
        "staging.customers": [
            *key("customer_id"), email, country,
            E("expect_column_values_to_be_unique", "email", {"column": "live_email"},
              fix="two live customers share an address (lower(trim(email))): staging must merge them into one"),
        ],
        "staging.products": [*key("product_id"), _min("price", 0, "a negative price is a source error")],
        "staging.orders": [
            *key("order_id"),
            E("expect_column_values_to_be_in_set", "status", {"value_set": list(ORDER_STATUSES)},
              fix="unknown order status: map it in staging.orders"),
            E("expect_column_values_to_match_regex", "currency", {"regex": CURRENCY_RE}, critical=False,
              fix="currency must be an ISO-4217 code"),
            _min("total_amount", 0, "negative order totals are refunds booked wrongly at the source"),
            _true("not_in_future", critical=True, fix="orders after the run's cutoff: check the source's clock"),
            _true("after_1970", critical=True, fix="orders before 1970 carry a sentinel date: fix at the source"),
            _true("customer_known", critical=False, fix="orders of customers staging does not know yet"),
        ],
        "staging.order_items": [
            *key("order_id", "line_no"),
            *_line_amounts("negative quantities: returns belong in refunds"),
            _true("order_known", critical=True, fix="order lines without their order: reload the orders"),
            _true("product_known", critical=True, fix="order lines of unknown products: reload the catalogue"),
        ],
        "staging.contacts": [
            *key("contact_id"), email, country,
            E("expect_column_values_to_be_unique", "email", {"column": "email_key"},
              fix="two contacts share an address (lower(trim(email))): identity resolution must merge them"),
            E("expect_column_values_to_be_in_set", "consent_status", {"value_set": list(CONSENT_STATUSES)},
              fix="unknown consent status: contacts without a known opt-in are never mailed"),
        ],
        "staging.carts": [
            *key("cart_id"),
            E("expect_column_values_to_be_in_set", "status", {"value_set": ["open", "abandoned", "converted"]},
              fix="unknown cart status: map it in staging.carts"),
            _min("cart_value", 0, "a cart worth less than nothing: check its lines' prices and quantities"),
            _true("customer_known", critical=False, fix="carts of customers staging does not know yet"),
            _true("order_known", critical=False, fix="converted carts whose order is not staged (rejected or late)"),
        ],
        "staging.cart_items": [
            *key("cart_id", "line_no"),
            *_line_amounts("negative quantities in a cart are a source error"),
            _true("cart_known", critical=False, fix="cart lines whose cart is not staged: reload the carts"),
        ],
        "staging.web_sessions": [
            *key("session_id"),
            _true("views_consistent", critical=False,
                  fix="a session with more product views than page views: check the tracker's counters"),
        ],
    }
    for table, specs in out.items():
        counts = history.get(table, [])
        enforce = len(counts) >= MIN_HISTORY
        mean = sum(counts) / len(counts) if counts else 0
        low, high = (int(mean * DRIFT_BOUNDS[0]), int(mean * DRIFT_BOUNDS[1]) + 1) if enforce else (0, 10**12)
        specs.append(E("expect_table_row_count_to_be_between", None, {"min_value": low, "max_value": high},
                       critical=enforce,
                       fix=f"row count far from the trailing mean ({mean:,.0f}): check the source extract and the"
                           " staging logic before models and sends use it"))
    return out


def _history(conn: Any, run_id: str) -> dict[str, list[int]]:
    rows = conn.execute(sa.text("""
        select table_name, observed from kpis.data_quality
        where expectation = 'expect_table_row_count_to_be_between' and run_id like 'staging:%'
          and run_id < :run_id
        order by run_id desc"""), {"run_id": run_id}).all()
    out: dict[str, list[int]] = {}
    for table, observed in rows:
        if observed is not None and str(observed).isdigit() and len(out.get(table, [])) < TRAILING_RUNS:
            out.setdefault(table, []).append(int(observed))
    return out


def validate_staging(engine: Any, run_date: dt.date) -> QualityReport:
    """Check the staging tables for the run, record the results, raise on a critical failure."""
    import pandas as pd

    run_id = f"staging:{run_date.isoformat()}"
    run_ts = dt.datetime.combine(run_date, dt.time(0), tzinfo=dt.timezone.utc)
    with engine.connect() as conn:
        history = _history(conn, run_id)
        frames = {t: pd.read_sql_query(sa.text(sql), conn, params={"run_ts": run_ts}) for t, sql in _FRAMES.items()}
    with engine.connect() as conn:
        newest = conn.execute(sa.text("select max(order_ts) from staging.orders")).scalar()
    frames["staging.orders"] = frames["staging.orders"].assign(
        fresh=newest is not None and newest >= run_ts - dt.timedelta(days=FRESHNESS_DAYS))
    declared = suites(history)
    stale = f"no order in the {FRESHNESS_DAYS} days before the run: is the shop extract stale?"
    declared["staging.orders"].append(_true("fresh", critical=False, fix=stale))
    report = validate_frames(frames, declared, run_id, run_date)
    record_results(engine, report, run_date)
    check(report)
    return report
