"""The data-quality gate: Great Expectations suites on raw batches, recorded in kpis.data_quality.

The raw tables are created in a scratch schema (same columns as raw.*) and the suites are pointed at
them, so these tests neither depend on nor disturb the real raw tables.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid

import pytest
import sqlalchemy as sa

from martech.db import copy_rows, migrate
from martech.quality import (
    DATE_RE,
    EMAIL_RE,
    INTEGER_RE,
    NON_NEGATIVE_NUMBER_RE,
    TIMESTAMP_RE,
    DataQualityError,
    check,
    one_of_re,
    record_results,
    suites,
    validate_raw,
)

pytestmark = pytest.mark.integration

RUN_DATE = dt.date(2026, 4, 1)
LOADED = dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc)
TS = "2026-03-31 10:00:00+00"

SOURCE_COLUMNS = {
    "shop_customers": ("customer_id", "email", "first_name", "last_name", "country", "created_at",
                       "updated_at", "deleted_at"),
    "shop_products": ("product_id", "sku", "name", "category", "price", "image_url", "created_at",
                      "updated_at"),
    "shop_orders": ("order_id", "customer_id", "order_ts", "status", "currency", "total_amount",
                    "coupon_code", "updated_at"),
    "shop_order_items": ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
    "crm_contacts": ("contact_id", "email", "first_name", "last_name", "birthday", "country", "timezone",
                     "consent_status", "consent_updated_at", "lifecycle_status", "shop_customer_id",
                     "created_at", "updated_at"),
}


def _ddl(schema: str, table: str) -> str:
    cols = [f"{c} text" for c in SOURCE_COLUMNS[table]]
    if table == "crm_contacts":
        cols += ["_source_file text", "_line_no integer"]
    cols += ["_batch_id text not null", "_source text not null", "_loaded_at timestamptz not null"]
    return f"create table if not exists {schema}.{table} ({', '.join(cols)})"


@pytest.fixture()
def raw(engine, scratch_schema):
    """Scratch copies of the five raw tables; returns (schema, suites pointed at them)."""
    migrate(engine)  # kpis.data_quality exists even if another test dropped the schemas
    with engine.begin() as conn:
        for table in SOURCE_COLUMNS:
            conn.execute(sa.text(_ddl(scratch_schema, table)))
    pointed = {f"{scratch_schema}.{name.split('.')[1]}": specs for name, specs in suites().items()}
    return scratch_schema, pointed


def clean_rows(n: int, offset: int = 0) -> dict[str, list[tuple]]:
    """n clean rows per table (keys offset by ``offset``)."""
    ids = range(offset, offset + n)
    return {
        "shop_customers": [(str(i), f"user{i}@example.com", "Ana", "Lee", "DE", TS, TS, None) for i in ids],
        "shop_products": [(str(i), f"SKU{i}", "Beans", "Coffee", f"{i % 50}.50", None, TS, TS) for i in ids],
        "shop_orders": [(str(i), str(i % 97), TS, ("completed", "refunded", "Cancelled")[i % 3], "EUR",
                         f"{i % 200}.00", None, TS) for i in ids],
        "shop_order_items": [(str(i // 2), str(1 + i % 2), str(i % 40), "2", "3.25", TS) for i in ids],
        "crm_contacts": [(f"C{i}", f" User{i}@Example.com ", "Ana", None, "1990-04-01" if i % 2 else None,
                          "DE", "Europe/Berlin", ("opted_in", "double_opt_in", "OPTED_OUT", None)[i % 4],
                          "2026-03-01T09:00:00+01:00", "customer", str(i), "2026-01-01T00:00:00Z",
                          "2026-03-01T09:00:00.250+01:00", "contacts_20260401.csv", 2 + i) for i in ids],
    }


def load(engine, schema: str, batch: str, rows: dict[str, list[tuple]]) -> None:
    with engine.begin() as conn:
        for table, data in rows.items():
            cols = SOURCE_COLUMNS[table] + (("_source_file", "_line_no") if table == "crm_contacts" else ())
            copy_rows(conn, f"{schema}.{table}", (*cols, "_batch_id", "_source", "_loaded_at"),
                      [(*r, batch, "test", LOADED) for r in data])


def batches(schema: str, *batch_ids: str) -> dict[str, list[str]]:
    return {f"{schema}.{t}": list(batch_ids) for t in SOURCE_COLUMNS}


def stored(engine, run_id: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(
            "select * from kpis.data_quality where run_id = :r order by table_name, expectation, column_name"),
            {"r": run_id})]


@pytest.fixture()
def run_id(engine):
    rid = f"test__{uuid.uuid4().hex[:8]}"
    yield rid
    with engine.begin() as conn:
        conn.execute(sa.text("delete from kpis.data_quality where run_id = :r"), {"r": rid})


# -- declarations ---------------------------------------------------------------------------------------


def test_suites_cover_the_five_raw_tables_and_keys_are_unique():
    declared = suites()
    assert set(declared) == {f"raw.{t}" for t in SOURCE_COLUMNS}
    for table, specs in declared.items():
        keys = [(s.expectation, s.column or "") for s in specs]
        assert len(keys) == len(set(keys)), f"{table}: (expectation, column) repeats: {keys}"
        assert any(s.critical for s in specs) and all(s.fix for s in specs if s.critical)
        for s in specs:
            for col in s.gx_kwargs().get("column_list", [s.gx_kwargs().get("column")]):
                assert col == "_batch_id" or col in SOURCE_COLUMNS[table.split(".")[1]], (table, col)
    assert [s for s in declared["raw.crm_contacts"] if s.column == "email" and s.critical]
    assert [s for s in declared["raw.shop_customers"] if s.column == "email" and s.critical]
    assert ("expect_compound_columns_to_be_unique", "order_id, line_no") in {
        (s.expectation, s.column) for s in declared["raw.shop_order_items"]}


GOOD_BAD = [
    (TIMESTAMP_RE, "timestamptz",
     ["2026-03-31 10:00:00+00", "2026-03-31T10:00:00+01:00", "2026-03-31T10:00:00.123456Z", "2026-03-31",
      " 2026-03-31 10:00+0530 ", "2026-03-31 10:00:00"],
     ["31/03/2026", "2026-13-01", "2026-03-31 25:00", "yesterday", "", "2026-03-31T10:00:00+1:00"]),
    (DATE_RE, "date", ["1990-04-01", " 2001-12-31 "], ["1990-4-1", "01.04.1990", "", "1990-04-01T00:00"]),
    (NON_NEGATIVE_NUMBER_RE, "numeric", ["0", "12.50", "12.", ".5", " 3 ", "+4.00"],
     ["-12.00", "-0.01", "12,50", "€12", "1e3", "", "NaN", "12.5.1"]),
    (INTEGER_RE, "bigint", ["0", "42", " 7 "], ["-1", "4.0", "x", ""]),
    (EMAIL_RE, None, ["ana@example.com", " Ana.Lee+news@Mail.Example.CO.UK "],
     ["not-an-email", "ana@", "@example.com", "ana@example", "ana lee@example.com", "a@@b.com", ""]),
    (one_of_re(["opted_in", "opted_out"]), None, ["opted_in", " OPTED_OUT "], ["opted", "opted_in_x", ""]),
]


@pytest.mark.parametrize(("regex", "cast", "good", "bad"), GOOD_BAD,
                         ids=["timestamp", "date", "non_negative_number", "integer", "email", "one_of"])
def test_format_rules_accept_what_staging_casts_accept(engine, regex, cast, good, bad):
    for value in good:
        assert re.search(regex, value), value
    for value in bad:
        assert not re.search(regex, value), value
    if cast:
        with engine.connect() as conn:
            for value in good:
                conn.execute(sa.text(f"select cast(:v as {cast})"), {"v": value})


# -- validation -----------------------------------------------------------------------------------------


def test_clean_batch_passes_and_is_recorded(engine, raw, run_id):
    schema, pointed = raw
    load(engine, schema, "clean", clean_rows(200))
    report = validate_raw(engine, batches(schema, "clean"), run_id=run_id, run_date=RUN_DATE, tables=pointed)

    assert report.rows == {f"{schema}.{t}": 200 for t in SOURCE_COLUMNS}
    assert report.failed_critical == [] and report.warnings == []
    check(report)  # does not raise
    assert len(report.results) == sum(len(s) for s in pointed.values())

    n = record_results(engine, report, RUN_DATE)
    rows = stored(engine, run_id)
    assert n == len(rows) == len(report.results)
    assert all(r["success"] and r["run_date"] == RUN_DATE for r in rows)
    email = next(r for r in rows if r["table_name"] == f"{schema}.crm_contacts" and r["column_name"] == "email"
                 and r["expectation"] == "expect_column_values_to_match_regex")
    assert email["critical"] is True and email["unexpected_count"] == 0 and email["unexpected_sample"] == []
    assert email["kwargs"]["column"] == "email" and "regex" in email["kwargs"]
    assert email["observed"] == "0 of 200 rows unexpected (0.00%)"
    assert any("expectations passed" in line for line in report.summary_lines())


def test_bad_batch_fails_with_a_message_naming_table_column_and_values(engine, raw, run_id):
    schema, pointed = raw
    load(engine, schema, "clean", clean_rows(50))
    bad = clean_rows(50, offset=1000)
    bad["crm_contacts"][3] = ("C1003", "ana.example.com", *bad["crm_contacts"][3][2:])
    order = list(bad["shop_orders"][7])
    order[5] = "-12.00"
    bad["shop_orders"][7] = tuple(order)
    bad["shop_order_items"].append(bad["shop_order_items"][0])          # duplicate (order_id, line_no)
    bad["shop_customers"].append(bad["shop_customers"][5])              # duplicate customer_id
    cust = list(bad["shop_customers"][1])
    cust[4] = "Germany"                                                   # only a warning
    bad["shop_customers"][1] = tuple(cust)
    load(engine, schema, "bad", bad)

    report = validate_raw(engine, batches(schema, "bad"), run_id=run_id, run_date=RUN_DATE, tables=pointed)
    failed = {(r.table.split(".")[1], r.column, r.expectation) for r in report.failed_critical}
    assert failed == {
        ("crm_contacts", "email", "expect_column_values_to_match_regex"),
        ("shop_orders", "total_amount", "expect_column_values_to_match_regex"),
        ("shop_order_items", "order_id, line_no", "expect_compound_columns_to_be_unique"),
        ("shop_customers", "customer_id", "expect_compound_columns_to_be_unique"),
    }
    assert [(r.column, r.unexpected_sample) for r in report.warnings] == [("country", ["Germany"])]

    with pytest.raises(DataQualityError) as info:
        check(report)
    message = str(info.value)
    assert f"{schema}.crm_contacts.email" in message and "'ana.example.com'" in message
    assert f"{schema}.shop_orders.total_amount" in message and "'-12.00'" in message
    assert f"{schema}.shop_order_items.order_id, line_no" in message
    assert "(order_id='500', line_no='1')" in message
    assert "2 of 51 rows unexpected" in message                      # both copies of the duplicate
    assert "fix: total_amount must be a number >= 0" in message
    assert "fix: email must be an address like name@example.com" in message
    assert "Germany" not in message                                  # warnings are not in the error
    assert info.value.report is report

    record_results(engine, report, RUN_DATE)
    rows = {(r["table_name"].split(".")[1], r["expectation"], r["column_name"]): r for r in stored(engine, run_id)}
    neg = rows[("shop_orders", "expect_column_values_to_match_regex", "total_amount")]
    assert (neg["success"], neg["critical"], neg["unexpected_count"], neg["unexpected_sample"]) == (
        False, True, 1, ["-12.00"])
    dup = rows[("shop_order_items", "expect_compound_columns_to_be_unique", "order_id, line_no")]
    assert dup["unexpected_sample"] == [{"_batch_id": "bad", "order_id": "500", "line_no": "1"}]


def test_record_results_is_idempotent_per_run_id(engine, raw, run_id):
    schema, pointed = raw
    load(engine, schema, "b1", clean_rows(20))
    report = validate_raw(engine, batches(schema, "b1"), run_id=run_id, run_date=RUN_DATE, tables=pointed)
    first = record_results(engine, report, RUN_DATE)
    before = stored(engine, run_id)
    assert record_results(engine, report, RUN_DATE) == first
    assert stored(engine, run_id) == before
    # a rerun with a different outcome replaces the run's rows instead of adding to them
    report.results = report.results[:3]
    assert record_results(engine, report, RUN_DATE) == 3
    assert len(stored(engine, run_id)) == 3


def test_only_the_given_batches_are_validated_and_keys_are_unique_per_batch(engine, raw, run_id):
    schema, pointed = raw
    load(engine, schema, "old", clean_rows(30))
    load(engine, schema, "new", clean_rows(30))                    # same keys again: a later version
    broken = clean_rows(5, offset=900)
    broken["crm_contacts"] = [("C900", "broken", *broken["crm_contacts"][0][2:])]
    load(engine, schema, "other", broken)

    report = validate_raw(engine, batches(schema, "old", "new"), run_id=run_id, run_date=RUN_DATE,
                          tables=pointed)
    assert report.failed_critical == []
    assert report.rows[f"{schema}.shop_orders"] == 60

    everything = validate_raw(engine, None, run_id=run_id, run_date=RUN_DATE, tables=pointed)
    assert everything.rows[f"{schema}.crm_contacts"] == 61
    assert [(r.column, r.unexpected_sample) for r in everything.failed_critical] == [("email", ["broken"])]


def test_tables_without_batches_are_skipped(engine, raw, run_id):
    schema, pointed = raw
    load(engine, schema, "only", {"shop_orders": clean_rows(10)["shop_orders"]})
    report = validate_raw(engine, {f"{schema}.shop_orders": ["only"], f"{schema}.crm_contacts": []},
                          run_id=run_id, run_date=RUN_DATE, tables=pointed)
    assert report.rows == {f"{schema}.shop_orders": 10}
    assert {r.table for r in report.results} == {f"{schema}.shop_orders"}


def test_an_empty_run_records_nothing_and_passes(engine, run_id):
    report = validate_raw(engine, {}, run_id=run_id, run_date=RUN_DATE)
    assert report.results == [] and report.rows == {}
    check(report)
    assert record_results(engine, report, RUN_DATE) == 0


def test_five_tables_of_a_few_thousand_rows_in_one_call(engine, raw, run_id):
    schema, pointed = raw
    load(engine, schema, "big", clean_rows(3000))
    start = time.perf_counter()
    report = validate_raw(engine, batches(schema, "big"), run_id=run_id, run_date=RUN_DATE, tables=pointed)
    took = time.perf_counter() - start
    assert sum(report.rows.values()) == 15_000 and report.failed_critical == []
    print(f"\nvalidate_raw: 5 tables x 3,000 rows, {len(report.results)} expectations in {took:.2f} s")
    assert took < 60
