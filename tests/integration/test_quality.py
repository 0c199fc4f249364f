"""The data-quality gate: Great Expectations suites on raw batches, recorded in kpis.data_quality.

The raw tables are created in a scratch schema (same columns as raw.*) and the suites are pointed at
them, so these tests neither depend on nor disturb the real raw tables.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import tracemalloc
import uuid

import pytest
import sqlalchemy as sa

from martech.db import copy_rows, migrate
from martech.paths import data_docs_dir, home
from martech.quality.expectations import (
    DATE_RE,
    EMAIL_RE,
    INTEGER_RE,
    MAX_BAD_ROW_SHARE,
    NON_NEGATIVE_NUMBER_RE,
    TIMESTAMP_RE,
    one_of_re,
)
from martech.quality.raw import raw_columns, suites, validate_raw
from martech.quality.results import DataQualityError, check, record_results

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


def _ddl(schema: str, table: str, columns: tuple[str, ...] | None = None) -> str:
    """The scratch table with the raw contract's columns (or ``columns``), typed as ingest writes them."""
    types = {"_line_no": "integer", "_loaded_at": "timestamptz not null", "_batch_id": "text not null",
             "_source": "text not null"}
    cols = columns or raw_columns()[f"raw.{table}"]
    spec = ", ".join(f"{c} {types.get(c, 'text')}" for c in cols)
    return f"create table if not exists {schema}.{table} ({spec})"


@pytest.fixture()
def raw(engine, scratch_schema):
    """Scratch copies of the five raw tables; returns (schema, suites pointed at them)."""
    migrate(engine)  # kpis.data_quality exists even if another test dropped the schemas
    with engine.begin() as conn:
        for table in SOURCE_COLUMNS:
            conn.execute(sa.text(_ddl(scratch_schema, table)))
    pointed = {f"{scratch_schema}.{name.split('.')[1]}": specs for name, specs in suites().items()
               if name.split(".")[1] in SOURCE_COLUMNS}
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
                          "2026-03-31T09:00:00.250+01:00", "contacts_20260401.csv", 2 + i) for i in ids],
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


def test_suites_cover_every_raw_table_and_keys_are_unique():
    declared = suites()
    contract = raw_columns()
    assert set(declared) == set(contract) and set(SOURCE_COLUMNS) <= {t.split(".")[1] for t in declared}
    for table, specs in declared.items():
        keys = [(s.expectation, s.column or "") for s in specs]
        assert len(keys) == len(set(keys)), f"{table}: (expectation, column) repeats: {keys}"
        assert any(s.critical for s in specs) and all(s.fix for s in specs if s.critical)
        columns = specs[0]
        assert (columns.expectation, columns.critical) == ("expect_table_columns_to_match_set", True)
        assert columns.kwargs == {"column_set": list(contract[table]), "exact_match": True}
        for s in specs:
            if s.on == "batches":
                assert not s.critical and s.gx_kwargs()["column"] in ("age_days", "rows")
                continue
            for col in s.gx_kwargs().get("column_list", [s.gx_kwargs().get("column")]):
                assert col is None or col in contract[table], (table, col)
    assert [s for s in declared["raw.crm_contacts"] if s.column == "email" and s.critical]
    assert [s for s in declared["raw.shop_customers"] if s.column == "email" and s.critical]
    assert ("expect_compound_columns_to_be_unique", "order_id, line_no") in {
        (s.expectation, s.column) for s in declared["raw.shop_order_items"]}
    fresh = {t for t, specs in declared.items() if any(s.column == "updated_at" and s.on == "batches" for s in specs)}
    assert "raw.shop_products" not in fresh and {"raw.shop_orders", "raw.crm_contacts"} <= fresh
    drift = {t for t, specs in declared.items() if any(s.trailing for s in specs)}
    assert drift == {"raw.crm_contacts"}


def test_the_column_contract_is_what_the_migrated_raw_tables_have(engine):
    with engine.connect() as conn:
        for table, columns in raw_columns().items():
            schema, name = table.split(".")
            actual = conn.execute(sa.text(
                "select column_name from information_schema.columns where table_schema = :s and table_name = :t"),
                {"s": schema, "t": name}).scalars().all()
            assert set(actual) == set(columns), table


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
    assert email["kwargs"]["mostly"] == pytest.approx(1 - MAX_BAD_ROW_SHARE)
    assert email["observed"] == "0 of 200 rows unexpected (0.00%), at most 5% tolerated"
    columns = next(r for r in rows if r["table_name"] == f"{schema}.shop_orders"
                   and r["expectation"] == "expect_table_columns_to_match_set")
    assert columns["critical"] is True and columns["observed"] == "11 columns as declared"
    fresh = next(r for r in rows if r["table_name"] == f"{schema}.shop_orders"
                 and r["expectation"] == "expect_column_min_to_be_between")
    assert fresh["observed"] == "newest updated_at 0.58 days before the run's cutoff"   # 2026-03-31 10:00
    assert any("expectations passed" in line for line in report.summary_lines())


def one_percent_dirty(n: int = 200) -> dict[str, list[tuple]]:
    """A batch with 1% bad rows of several kinds the simulator plants (2 rows of 200 per kind)."""
    rows = clean_rows(n, offset=5000)
    contacts = rows["crm_contacts"]
    for i, bad in ((3, "ana.example.com"), (4, "ben @example.com")):            # invalid_email
        contacts[i] = (contacts[i][0], bad, *contacts[i][2:])
    for i, bad in ((10, "yes"), (11, "OPT-IN")):                                 # invalid_consent_status
        contacts[i] = (*contacts[i][:7], bad, *contacts[i][8:])
    items = rows["shop_order_items"]
    for i in (20, 21):                                                           # negative_quantity
        items[i] = (*items[i][:3], "-2", *items[i][4:])
    orders = rows["shop_orders"]
    for i, bad in ((30, "€1,234.50"), (31, "1,234.50 ")):                        # number_as_text
        orders[i] = (*orders[i][:5], bad, *orders[i][6:])
    orders.append(orders[40])                                                    # duplicate_order_id
    return rows


def test_one_percent_bad_rows_pass_with_the_warnings_counted(engine, raw, run_id, monkeypatch):
    monkeypatch.delenv("MARTECH_MAX_BAD_ROW_SHARE", raising=False)
    schema, pointed = raw
    load(engine, schema, "dirty", one_percent_dirty())
    report = validate_raw(engine, batches(schema, "dirty"), run_id=run_id, run_date=RUN_DATE, tables=pointed)

    assert report.failed_critical == []
    check(report)  # a few bad rows are staging's to quarantine: the chain goes on
    warned = {(r.table.split(".")[1], r.column): r for r in report.warnings}
    assert {k: (r.unexpected_count, r.critical, r.success) for k, r in warned.items()} == {
        ("crm_contacts", "email"): (2, False, False),
        ("crm_contacts", "consent_status"): (2, False, False),
        ("shop_order_items", "quantity"): (2, False, False),
        ("shop_orders", "total_amount"): (2, False, False),
        ("shop_orders", "order_id"): (2, False, False),                          # both copies of the key
    }
    assert warned[("crm_contacts", "email")].unexpected_sample == ["ana.example.com", "ben @example.com"]
    assert warned[("shop_orders", "total_amount")].unexpected_sample == ["€1,234.50", "1,234.50 "]
    assert warned[("shop_orders", "order_id")].observed == (
        "2 of 201 rows unexpected (1.00%), at most 5% tolerated")
    text = warned[("crm_contacts", "consent_status")].describe()
    assert "under the threshold, not a stop" in text and "'unknown'" in text and "'OPT-IN'" in text
    assert all(r.max_bad_share == pytest.approx(0.05) for r in warned.values())

    record_results(engine, report, RUN_DATE)
    rows = {(r["table_name"].split(".")[1], r["expectation"], r["column_name"]): r for r in stored(engine, run_id)}
    qty = rows[("shop_order_items", "expect_column_values_to_match_regex", "quantity")]
    assert (qty["success"], qty["critical"], qty["unexpected_count"], qty["unexpected_sample"]) == (
        False, False, 2, ["-2"])
    assert qty["kwargs"]["mostly"] == pytest.approx(0.95)
    assert qty["observed"] == "2 of 200 rows unexpected (1.00%), at most 5% tolerated"


def test_twenty_percent_bad_rows_fail_naming_table_column_share_and_fix(engine, raw, run_id, monkeypatch):
    monkeypatch.delenv("MARTECH_MAX_BAD_ROW_SHARE", raising=False)
    schema, pointed = raw
    rows = clean_rows(200, offset=7000)
    rows["crm_contacts"] = [(c[0], f"user{k}.example.com" if k % 5 == 0 else c[1], *c[2:])
                            for k, c in enumerate(rows["crm_contacts"])]        # 40 of 200: the export is broken
    load(engine, schema, "broken", rows)
    report = validate_raw(engine, batches(schema, "broken"), run_id=run_id, run_date=RUN_DATE, tables=pointed)

    assert [(r.table, r.column, r.expectation) for r in report.failed_critical] == [
        (f"{schema}.crm_contacts", "email", "expect_column_values_to_match_regex")]
    with pytest.raises(DataQualityError) as info:
        check(report)
    message = str(info.value)
    assert f"{schema}.crm_contacts.email [expect_column_values_to_match_regex]" in message
    assert "40 of 200 rows unexpected (20.00%), at most 5% tolerated" in message
    assert "over the threshold: not a few bad rows but a systematic problem" in message
    assert "fix: email must be an address like name@example.com" in message
    assert "MARTECH_MAX_BAD_ROW_SHARE" in message and "'user0.example.com'" in message

    # A team that knows its CRM is that dirty can say so: the same batch passes with 25% tolerated.
    monkeypatch.setenv("MARTECH_MAX_BAD_ROW_SHARE", "25%")
    relaxed = validate_raw(engine, batches(schema, "broken"), run_id=run_id, run_date=RUN_DATE, tables=pointed)
    assert relaxed.success and [r.unexpected_count for r in relaxed.warnings if r.column == "email"] == [40]


def test_with_no_tolerance_every_bad_row_is_critical(engine, raw, run_id):
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

    report = validate_raw(engine, batches(schema, "bad"), run_id=run_id, run_date=RUN_DATE, tables=pointed,
                          max_bad_share=0)
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
    assert "mostly" not in neg["kwargs"]
    dup = rows[("shop_order_items", "expect_compound_columns_to_be_unique", "order_id, line_no")]
    assert dup["unexpected_sample"] == [{"_batch_id": "bad", "order_id": "500", "line_no": "1"}]


def test_a_source_that_changed_its_columns_stops_the_chain(engine, scratch_schema, run_id):
    migrate(engine)
    renamed = tuple("amount" if c == "total_amount" else c for c in raw_columns()["raw.shop_orders"])
    with engine.begin() as conn:
        conn.execute(sa.text(_ddl(scratch_schema, "shop_orders", (*renamed, "channel"))))
    with engine.begin() as conn:
        copy_rows(conn, f"{scratch_schema}.shop_orders", ("order_id", "amount", "_batch_id", "_source", "_loaded_at"),
                  [("1", "12.00", "b", "test", LOADED)])
    table = f"{scratch_schema}.shop_orders"
    report = validate_raw(engine, {table: ["b"]}, run_id=run_id, run_date=RUN_DATE,
                          tables={table: suites()["raw.shop_orders"]})
    columns = next(r for r in report.failed_critical if r.expectation == "expect_table_columns_to_match_set")
    assert columns.observed == "columns missing: total_amount; unexpected: amount, channel"
    with pytest.raises(DataQualityError) as info:
        check(report)
    message = str(info.value)
    assert f"{table} [expect_table_columns_to_match_set]: columns missing: total_amount" in message
    assert "fix: the raw table's columns differ from the contract in martech.ingest.landing" in message


def test_stale_batches_and_a_short_full_export_are_warnings(engine, raw, run_id):
    schema, pointed = raw
    rows = clean_rows(40)
    rows["shop_orders"] = [(*r[:7], "2026-03-01 08:00:00+00") for r in rows["shop_orders"]]
    load(engine, schema, "today", rows)
    earlier = [(f"{schema}.crm_contacts:old{k}", dt.date(2026, 3, 28 + k), 1000) for k in range(3)]
    with engine.begin() as conn:
        for batch, day, n in earlier:
            conn.execute(sa.text(
                "insert into raw.ingest_batches (batch_id, source, table_name, run_date, status, rows_received,"
                " rows_loaded, loaded_at) values (:b, 'test', :t, :d, 'complete', :n, :n, :d)"),
                {"b": batch, "t": f"{schema}.crm_contacts", "d": day, "n": n})
    try:
        report = validate_raw(engine, batches(schema, "today"), run_id=run_id, run_date=RUN_DATE, tables=pointed)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("delete from raw.ingest_batches where table_name = :t"),
                         {"t": f"{schema}.crm_contacts"})
    assert report.success
    warned = {(r.table.split(".")[1], r.expectation): r for r in report.warnings}
    stale = warned[("shop_orders", "expect_column_min_to_be_between")]
    assert stale.observed == "newest updated_at 30.67 days before the run's cutoff"
    assert "stale" in stale.fix
    drift = warned[("crm_contacts", "expect_column_values_to_be_between")]
    assert drift.kwargs["min_value"] == 750 and drift.kwargs["max_value"] == 1501
    assert drift.unexpected_sample == [40] and "1 of 1 batches unexpected" in drift.observed
    assert "mean 1,000 rows" in drift.fix
    assert ("shop_customers", "expect_column_min_to_be_between") not in warned


def test_every_validation_renders_data_docs_into_martech_home(engine, raw, run_id):
    schema, pointed = raw
    load(engine, schema, "docs", one_percent_dirty())
    report = validate_raw(engine, batches(schema, "docs"), run_id=run_id, run_date=RUN_DATE, tables=pointed)
    index = data_docs_dir() / "index.html"
    assert data_docs_dir().is_relative_to(home()) and index.is_file()
    assert report.data_docs == index.as_uri() and report.docs_seconds is not None
    html = index.read_text()
    for table in SOURCE_COLUMNS:
        assert f"{schema}.{table}" in html
    assert run_id in html
    pages = sorted((data_docs_dir() / "validations" / schema).rglob("*.html"))
    # the rows of each table, and the batches of each but the product catalogue (no batch checks there)
    assert len(pages) == 2 * len(SOURCE_COLUMNS) - 1
    orders = next(p for p in pages if p.parts[-4] == "shop_orders")
    body = " ".join(re.sub(r"<[^>]+>", " ", orders.read_text()).split())
    assert "Values for given compound columns must be unique together, at least 95 % of the time" in body
    assert "€1,234.50" in body                                  # the unexpected values are shown

    again = validate_raw(engine, batches(schema, "docs"), run_id=run_id, run_date=RUN_DATE, tables=pointed)
    assert again.data_docs == report.data_docs
    assert sorted((data_docs_dir() / "validations" / schema).rglob("*.html")) == pages  # a rerun replaces


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
    assert report.failed_critical == [] and report.warnings == []
    assert report.rows[f"{schema}.shop_orders"] == 60

    everything = validate_raw(engine, None, run_id=run_id, run_date=RUN_DATE, tables=pointed)
    assert everything.rows[f"{schema}.crm_contacts"] == 61
    assert everything.failed_critical == []                        # 1 of 61: under the threshold
    assert [(r.column, r.unexpected_sample) for r in everything.warnings] == [("email", ["broken"])]
    alone = validate_raw(engine, batches(schema, "other"), run_id=run_id, run_date=RUN_DATE, tables=pointed)
    assert [(r.column, r.unexpected_sample) for r in alone.failed_critical] == [("email", ["broken"])]


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
    print(f"\nvalidate_raw: 5 tables x 3,000 rows, {len(report.results)} expectations in {took:.2f} s"
          f" (Data Docs {report.docs_seconds:.2f} s)")
    assert took < 60


def test_the_rows_stay_in_postgresql_and_only_samples_reach_python(engine, raw, run_id, monkeypatch):
    """300,000 order lines built in SQL: what the gate fetches and allocates is bounded by the samples."""
    monkeypatch.setenv("MARTECH_DATA_DOCS", "0")  # rendering is not what is measured
    schema, pointed = raw
    table = f"{schema}.shop_order_items"
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"insert into {table} (order_id, line_no, product_id, quantity, unit_price, updated_at, _batch_id,"
            " _source, _loaded_at)"
            " select (i / 2)::text, (1 + i % 2)::text, (i % 40)::text,"
            " case when i % 1000 = 7 then '-2' else '2' end, '3.25', :ts, 'many', 'test', :loaded"
            " from generate_series(0, 299999) as i"), {"ts": TS, "loaded": LOADED})
    cursors: list = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if cursor.description is not None:  # a query: its rowcount ends as the rows it sent to Python
            cursors.append(cursor)

    sa.event.listen(sa.engine.Engine, "after_cursor_execute", keep)
    tracemalloc.start()
    try:
        report = validate_raw(engine, {table: ["many"]}, run_id=run_id, run_date=RUN_DATE,
                              tables={table: pointed[table]})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        sa.event.remove(sa.engine.Engine, "after_cursor_execute", keep)
    fetched = [max(c.rowcount, 0) for c in cursors]

    assert report.rows == {table: 300_000} and report.failed_critical == []
    quantity = next(r for r in report.warnings if r.column == "quantity")
    assert (quantity.unexpected_count, quantity.unexpected_sample) == (300, ["-2"])
    assert quantity.observed == "300 of 300,000 rows unexpected (0.10%), at most 5% tolerated"
    print(f"\nvalidate_raw on 300,000 rows: {sum(fetched):,} rows fetched in {len(fetched)} queries,"
          f" Python peak {peak / 2**20:.1f} MiB")
    assert sum(fetched) < 2_000                 # loading the rows into pandas fetched all 300,000
    assert peak < 64 * 2**20                    # ... and took hundreds of MiB for them
