"""Export files the simulator would never write: every line accounted for, one bad value never stops a run."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.ingest import files
from martech.ingest.landing import ingest_crm_exports
from martech.staging import accounting

pytestmark = pytest.mark.integration
RUN = dt.date(2026, 5, 2)
LOADED = dt.datetime(2026, 5, 2, tzinfo=dt.timezone.utc)
TS = "2026-04-01T10:00:00Z"
CUSTOMERS = "customer_id,email,first_name,updated_at\n"
ORDERS = "order_id,customer_id,order_ts,status,total_amount,updated_at\n"


def q(eng, sql, **params):
    with eng.connect() as conn:
        return conn.execute(sa.text(sql), params).all()


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def quarantined(eng, table):
    return q(eng, "select source_ref, reason_code, received, received_encoding, reason from raw.quarantine"
                  " where table_name = :t and stage = 'landing' order by source_ref", t=table)


def test_folder_names_match_regardless_of_case_and_plural_and_the_rest_is_reported(clean_warehouse, tmp_path):
    write(tmp_path / "customer" / "c.csv", CUSTOMERS + f"1,a@example.com,Ann,{TS}\n")
    write(tmp_path / "Orders" / "o.CSV", ORDERS + f"10,1,{TS},completed,5.00,{TS}\n")
    write(tmp_path / "Order-Items" / "i.jsonl", '{"order_id": 10, "line_no": 1, "product_id": 3, "quantity": 1,'
                                                f' "unit_price": 5, "updated_at": "{TS}"}}\n')
    write(tmp_path / "refunds" / "r.csv", "refund_id\n1\n")
    write(tmp_path / "customer" / "c.csv.gz", b"\x1f\x8b")
    write(tmp_path / "stray.csv", "a\n")
    report: list[str] = []
    results = files.ingest_folder(clean_warehouse, str(tmp_path), run_date=RUN, loaded_at=LOADED, report=report)
    assert {r.table: r.rows_loaded for r in results} == {
        "raw.shop_customers": 1, "raw.shop_orders": 1, "raw.shop_order_items": 1}
    assert sorted(s.split(":")[0] for s in report) == ["customer/c.csv.gz", "refunds/", "stray.csv"]
    # Two folders for one entity: the exact name wins, the other is reported.
    write(tmp_path / "orders" / "o2.csv", ORDERS + f"11,1,{TS},completed,5.00,{TS}\n")
    plan = files.scan(*__import__("fsspec").core.url_to_fs(str(tmp_path)))
    assert [e for _, e in plan.files].count("orders") == 1
    assert any(s.startswith("Orders/: several folders look like orders") for s in plan.unrecognised)


def test_crm_export_names_regardless_of_case(clean_warehouse, tmp_path):
    from martech.ingest.landing import CRM_CONTACT_COLUMNS, export_files, unrecognised_files

    header = ",".join(CRM_CONTACT_COLUMNS) + "\n"
    row = "{id},c{id}@example.com,A,B,1990-01-01,DE,Europe/Berlin,opted_in,{ts},lead,,{ts},{ts}\n"
    for name, cid in (("Contacts_2026-05-01.csv", 1), ("contacts-2026-05-02.CSV", 2)):
        write(tmp_path / name, header + row.format(id=cid, ts=TS))
    write(tmp_path / "export.csv", header)
    loaded = ingest_crm_exports(clean_warehouse, tmp_path, run_date=RUN, loaded_at=LOADED)
    assert sorted((r.source_file, r.rows_loaded) for r in loaded) == [
        ("Contacts_2026-05-01.csv", 1), ("contacts-2026-05-02.CSV", 1)]
    assert [s.split(":")[0] for s in unrecognised_files(tmp_path, export_files(tmp_path, "contacts", ".csv"))] == [
        "export.csv"]


def test_an_unterminated_quote_costs_its_own_line_only(clean_warehouse, tmp_path):
    lines = [f'{i},c{i}@example.com,"Name {i}",{TS}\n' for i in range(1, 42)]
    lines[4] = f'5,c5@example.com,"Broken,{TS}\n'  # the quote never closes
    lines[9] = f'10,c10@example.com,"Two\nlines",{TS}\n'  # a real embedded line break still works
    lines[14] = f"15,c15@example.com,Trailing,{TS},\n"  # a trailing delimiter
    write(tmp_path / "customers" / "c.csv", CUSTOMERS + "".join(lines))
    (result,) = files.ingest_folder(clean_warehouse, str(tmp_path), run_date=RUN, loaded_at=LOADED)
    assert (result.rows_loaded, result.rows_quarantined) == (39, 2)
    bad = quarantined(clean_warehouse, "raw.shop_customers")
    assert [(ref, code, received) for ref, code, received, _enc, _why in bad] == [
        ("c.csv:17", "malformed_csv_line", f"15,c15@example.com,Trailing,{TS},\n"),
        ("c.csv:6", "unterminated_quote", f'5,c5@example.com,"Broken,{TS}\n')]
    assert "c.csv line 6: a quote opened on this line is never closed" in bad[1][4]
    assert q(clean_warehouse, "select first_name from raw.shop_customers where customer_id = '10'") == [
        ("Two\nlines",)]


def test_nul_bytes_huge_fields_and_windows_1252_quarantine_their_row_only(clean_warehouse, tmp_path):
    write(tmp_path / "customers" / "c.csv", (CUSTOMERS + f"1,a@example.com,A\x00nn,{TS}\n"
                                             f"2,b@example.com,{'x' * 10_000_000},{TS}\n"
                                             f"3,c@example.com,Cy,{TS}\n").encode())
    write(tmp_path / "customers" / "c.jsonl", f'{{"customer_id": 4, "email": "d@example.com", "first_name":'
                                              f' "Ren\u00e9", "updated_at": "{TS}"}}\n'.encode("cp1252")
          + f'{{"customer_id": 5, "email": "e@example.com", "updated_at": "{TS}"}}\n'.encode("cp1252"))
    results = files.ingest_folder(clean_warehouse, str(tmp_path), run_date=RUN, loaded_at=LOADED)
    assert sum(r.rows_loaded for r in results) == 2 and sum(r.rows_quarantined for r in results) == 3
    bad = {ref: (code, received, enc, why) for ref, code, received, enc, why in
           quarantined(clean_warehouse, "raw.shop_customers")}
    assert bad["c.csv:2"][:3] == ("nul_byte", base64.b64encode(f"1,a@example.com,A\x00nn,{TS}\n".encode()).decode(),
                                  "base64")
    assert "field first_name holds a NUL byte" in bad["c.csv:2"][3]
    assert bad["c.csv:3"][0] == "field_too_large" and len(bad["c.csv:3"][1]) > 10_000_000
    assert "c.csv line 3: field first_name is 10,000,000 bytes, over the limit" in bad["c.csv:3"][3]
    code, received, enc, why = bad["c.jsonl:1"]
    assert (code, enc) == ("invalid_utf8", "base64") and base64.b64decode(received).decode("cp1252").startswith(
        '{"customer_id": 4')
    assert why.startswith("c.jsonl line 1: field first_name is not valid UTF-8 (byte 0xE9")
    assert "re-export the file as UTF-8" in why


def test_a_truncated_parquet_file_is_refused_alone(clean_warehouse, tmp_path):
    buf = pa.BufferOutputStream()
    pq.write_table(pa.table({"customer_id": [1], "email": ["a@example.com"], "updated_at": [TS]}), buf)
    write(tmp_path / "customers" / "broken.parquet", buf.getvalue().to_pybytes()[:40])
    write(tmp_path / "customers" / "good.csv", CUSTOMERS + f"2,b@example.com,Bo,{TS}\n")
    write(tmp_path / "products" / "extra.csv", "product_id,name,price,updated_at,colour\n1,Tea,2,2026-01-01,red\n")
    report: list[str] = []
    results = files.ingest_folder(clean_warehouse, str(tmp_path), run_date=RUN, loaded_at=LOADED, report=report)
    assert sorted((r.source_file, r.rows_loaded, r.rows_quarantined) for r in results) == [
        ("broken.parquet", 0, 1), ("extra.csv", 0, 1), ("good.csv", 1, 0)]
    assert any(s.startswith("broken.parquet: not a readable Parquet file") and "export it again" in s
               for s in report)
    assert any(s.startswith("extra.csv: columns must follow the products contract") and "unknown: colour" in s
               for s in report)


def test_out_of_range_values_duplicates_and_conflicts_never_stop_staging(clean_warehouse, warehouse, tmp_path):
    write(tmp_path / "customers" / "c.csv", CUSTOMERS + f"1,a@example.com,Ann,{TS}\n" * 2
          + f"2,b@example.com,Bo,{TS}\n2,b@example.com,Bob,{TS}\n")
    write(tmp_path / "products" / "p.csv", f"product_id,name,price,updated_at\n3,Tea,9999999.99,{TS}\n")
    write(tmp_path / "orders" / "o.csv", ORDERS + f"10,1,{TS},completed,123456789012345.00,{TS}\n"
          f"11,1,{TS},completed,5.00,{TS}\n")
    write(tmp_path / "order_items" / "i.csv", "order_id,line_no,product_id,quantity,unit_price,updated_at\n"
          f"11,1,3,1000000,9999999.99,{TS}\n11,2,3,1,5.00,{TS}\n")
    files.ingest_folder(clean_warehouse, str(tmp_path), run_date=RUN, loaded_at=LOADED)
    pipeline.build_staging(warehouse, RUN)
    codes = q(clean_warehouse, "select table_name, row_key, reason_code from raw.quarantine where stage = 'staging'"
                               " order by 1, 2")
    assert codes == [("raw.shop_order_items", "11:1", "amount_out_of_range"),
                     ("raw.shop_orders", "10", "amount_out_of_range")]
    assert q(clean_warehouse, "select order_id, total_amount from staging.orders") == [(11, 5)]
    accounts = {a.table: a for a in accounting.check(clean_warehouse, RUN, LOADED)}
    assert (accounts["staging.customers"].staged, accounts["staging.customers"].duplicate,
            accounts["staging.customers"].superseded) == (2, 1, 1)
    assert q(clean_warehouse, "select row_key, kind from staging.corrections where kind = 'conflicting_version'") == [
        ("2", "conflicting_version")]


def test_future_dated_rows_are_held_and_staged_when_their_time_comes(clean_warehouse, warehouse, tmp_path):
    write(tmp_path / "customers" / "c.csv", CUSTOMERS + f"1,a@example.com,Ann,{TS}\n"
          "2,b@example.com,Bo,2099-01-01T00:00:00Z\n")
    write(tmp_path / "orders" / "o.csv", ORDERS + f"10,1,{TS},completed,5.00,{TS}\n"
          "11,1,2026-05-20T09:00:00Z,completed,7.00,2026-05-20T09:00:00Z\n")
    files.ingest_folder(clean_warehouse, str(tmp_path), run_date=RUN, loaded_at=LOADED)
    pipeline.build_staging(warehouse, RUN)
    held = q(clean_warehouse, "select table_name, row_key, reason_code from raw.quarantine where stage = 'staging'"
                              " order by 1, 2")
    assert held == [("raw.shop_customers", "2", "future_updated_at"), ("raw.shop_orders", "11", "future_timestamp")]
    # The file counts as loaded, yet a later run examines the held rows again: the order's time has come.
    later = dt.date(2026, 6, 1)
    pipeline.build_staging(warehouse, later)
    assert q(clean_warehouse, "select order_id from staging.orders order by 1") == [(10,), (11,)]
    # The 2099 clock error stays held, and the corrected row the source sends next is staged.
    write(tmp_path / "customers" / "c2.csv", CUSTOMERS + "2,b@example.com,Bob,2026-05-25T00:00:00Z\n")
    files.ingest_folder(clean_warehouse, str(tmp_path), run_date=later,
                        loaded_at=dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc))
    pipeline.build_staging(warehouse, later)
    assert q(clean_warehouse, "select customer_id, first_name from staging.customers order by 1") == [
        (1, "Ann"), (2, "Bob")]
    assert q(clean_warehouse, "select row_key from raw.quarantine where reason_code = 'future_updated_at'") == [("2",)]


ITEMS = "order_id,line_no,product_id,quantity,unit_price,updated_at\n"
PRODUCTS = "product_id,name,price,updated_at\n"
CARTS = "cart_id,customer_id,status,created_at,updated_at\n"
CART_ITEMS = "cart_id,line_no,product_id,quantity,unit_price,updated_at\n"
SESSIONS = "session_id,customer_id,started_at,page_views,product_views,updated_at\n"
VIEWS = "session_id,view_no,product_id,viewed_at,updated_at\n"
CRM_HEADER = ("contact_id,email,first_name,last_name,birthday,country,timezone,consent_status,consent_updated_at,"
              "lifecycle_status,shop_customer_id,created_at,updated_at\n")
CLOCK_BUG = "2099-01-01T00:00:00Z"


def _every_table(root: Path, later: str, second_name: str) -> None:
    """One key per table, a good version (TS) and a second version (``later``) of different content."""
    write(root / "customers" / "c.csv", CUSTOMERS + f"1,a@example.com,Ann,{TS}\n1,a@example.com,{second_name},{later}\n")
    write(root / "products" / "p.csv", PRODUCTS + f"3,Tea,5.00,{TS}\n3,{second_name},6.00,{later}\n")
    write(root / "orders" / "o.csv", ORDERS + f"10,1,{TS},completed,5.00,{TS}\n10,1,{TS},refunded,5.00,{later}\n")
    write(root / "order_items" / "i.csv", ITEMS + f"10,1,3,1,5.00,{TS}\n10,1,3,2,5.00,{later}\n")
    write(root / "carts" / "c.csv", CARTS + f"20,1,abandoned,{TS},{TS}\n20,1,open,{TS},{later}\n")
    write(root / "cart_items" / "i.csv", CART_ITEMS + f"20,1,3,1,5.00,{TS}\n20,1,3,3,5.00,{later}\n")
    write(root / "web_sessions" / "s.csv", SESSIONS + f"s1,1,{TS},2,1,{TS}\ns1,1,{TS},9,1,{later}\n")
    write(root / "product_views" / "v.csv", VIEWS + f"s1,1,3,{TS},{TS}\ns1,1,4,{TS},{later}\n")


def test_a_clock_error_in_updated_at_is_held_in_every_table_and_shadows_nothing(clean_warehouse, warehouse,
                                                                               tmp_path):
    _every_table(tmp_path / "files", CLOCK_BUG, "Clock")
    crm = tmp_path / "crm"
    row = "{id},{email},{name},B,1990-01-01,DE,Europe/Berlin,opted_in,{ts},customer,1,{ts},{ts}\n"
    write(crm / "contacts_2026-05-01.csv", CRM_HEADER + row.format(id="X1", email="a@example.com", name="Ann", ts=TS)
          + row.format(id="X1", email="a@example.com", name="Clock", ts=CLOCK_BUG))
    pipeline.ingest_files(warehouse, RUN, root=str(tmp_path / "files"))
    pipeline.ingest_crm(warehouse, RUN, folder=crm)
    pipeline.build_staging(warehouse, RUN)
    held = q(clean_warehouse, "select table_name, reason_code, reason from raw.quarantine where stage = 'staging'"
                              " order by 1")
    tables = ["raw.crm_contacts", "raw.shop_cart_items", "raw.shop_carts", "raw.shop_customers",
              "raw.shop_order_items", "raw.shop_orders", "raw.shop_product_views", "raw.shop_products",
              "raw.shop_web_sessions"]
    assert [(t, code) for t, code, _ in held] == [(t, "future_updated_at") for t in tables]
    assert all(f"updated_at '{CLOCK_BUG}' is at or after the run's cutoff" in why and "fix the clock" in why
               for _, _, why in held)
    # The held 2099 versions shadow nothing: the good versions are staged.
    assert q(clean_warehouse, "select first_name from staging.customers") == [("Ann",)]
    assert q(clean_warehouse, "select first_name from staging.contacts") == [("Ann",)]
    assert q(clean_warehouse, "select name, price from staging.products") == [("Tea", 5)]
    assert q(clean_warehouse, "select status from staging.orders") == [("completed",)]
    assert q(clean_warehouse, "select quantity from staging.order_items") == [(1,)]
    assert q(clean_warehouse, "select status, cart_value from staging.carts") == [("abandoned", 5)]
    assert q(clean_warehouse, "select quantity from staging.cart_items") == [(1,)]
    assert q(clean_warehouse, "select page_views from staging.web_sessions") == [(2,)]
    assert q(clean_warehouse, "select product_id from staging.product_views") == [(3,)]
    # Nothing flagged on the order: its held line leaves its total as sent.
    assert q(clean_warehouse, "select kind from staging.corrections where table_name = 'raw.shop_orders'") == []
    accounting.check(clean_warehouse, RUN, LOADED)


def test_conflicting_same_version_rows_are_recorded_in_every_keyed_table(clean_warehouse, warehouse, tmp_path):
    _every_table(tmp_path / "files", TS, "Other")
    crm = tmp_path / "crm"
    row = "X1,a@example.com,{name},B,1990-01-01,DE,Europe/Berlin,opted_in,{ts},customer,1,{ts},{ts}\n"
    write(crm / "contacts_2026-05-01.csv", CRM_HEADER + row.format(name="Ann", ts=TS) + row.format(name="Other", ts=TS))
    pipeline.ingest_files(warehouse, RUN, root=str(tmp_path / "files"))
    pipeline.ingest_crm(warehouse, RUN, folder=crm)
    pipeline.build_staging(warehouse, RUN)
    conflicts = q(clean_warehouse, "select table_name, row_key, corrected_value from staging.corrections"
                                   " where kind = 'conflicting_version' order by 1")
    assert [(t, k) for t, k, _ in conflicts] == [
        ("raw.crm_contacts", "X1"), ("raw.shop_cart_items", "20:1"), ("raw.shop_carts", "20"),
        ("raw.shop_customers", "1"), ("raw.shop_order_items", "10:1"), ("raw.shop_orders", "10"),
        ("raw.shop_product_views", "s1:1"), ("raw.shop_products", "3"), ("raw.shop_web_sessions", "s1")]
    assert all(kept.startswith("kept the version") for _, _, kept in conflicts)
    accounts = {a.table: a for a in accounting.check(clean_warehouse, RUN, LOADED)}
    assert all((a.staged, a.superseded) == (1, 1) for a in accounts.values() if a.received), accounts


def test_a_cart_too_large_for_its_value_is_quarantined_with_its_lines(clean_warehouse, warehouse, tmp_path):
    write(tmp_path / "customers" / "c.csv", CUSTOMERS + f"1,a@example.com,Ann,{TS}\n")
    write(tmp_path / "carts" / "c.csv", CARTS + f"20,1,abandoned,{TS},{TS}\n21,1,abandoned,{TS},{TS}\n")
    # Every line is in range (below 1,000,000,000), eleven of them add up past what a cart value holds.
    write(tmp_path / "cart_items" / "i.csv", CART_ITEMS + "".join(
        f"20,{n},3,1,999999999.00,{TS}\n" for n in range(1, 12)) + f"21,1,3,2,5.00,{TS}\n"
          f"21,2,3,0,123456789012345.00,{TS}\n")
    pipeline.ingest_files(warehouse, RUN, root=str(tmp_path))
    pipeline.build_staging(warehouse, RUN)
    codes = q(clean_warehouse, "select table_name, reason_code, count(*) from raw.quarantine where stage = 'staging'"
                               " group by 1, 2 order by 1, 2")
    assert codes == [("raw.shop_cart_items", "amount_out_of_range", 1),
                     ("raw.shop_cart_items", "cart_value_out_of_range", 11),
                     ("raw.shop_carts", "cart_value_out_of_range", 1)]
    (why,) = q(clean_warehouse, "select reason from raw.quarantine where table_name = 'raw.shop_cart_items'"
                                " and row_key = '20:1'")
    assert "the lines of cart 20 add up to 10999999989.00, out of range for a cart value" in why[0]
    assert q(clean_warehouse, "select cart_id, cart_value from staging.carts") == [(21, 10)]
    accounting.check(clean_warehouse, RUN, LOADED)


def test_email_event_rows_without_a_readable_time_are_quarantined_not_fatal(clean_warehouse, warehouse,
                                                                           tmp_path):
    event = '{{"sg_event_id": "{id}", "event": "delivered", "email": "a@example.com", "timestamp": {ts}}}\n'
    write(tmp_path / "events_2026-05-01.jsonl", "".join(
        event.format(id=f"e{n}", ts=ts) for n, ts in enumerate((1777000000, '"yesterday"', -5, "1e400"), start=1))
          + '{"event": "open", "email": "a@example.com", "timestamp": 1777000000}\n')
    result = pipeline.ingest_events(warehouse, RUN, folder=tmp_path)
    assert result["staged"] == 1
    assert q(clean_warehouse, "select stage, source_ref, reason_code from raw.quarantine order by 2") == [
        ("staging", "events_2026-05-01.jsonl:2", "invalid_timestamp"),
        ("staging", "events_2026-05-01.jsonl:3", "invalid_timestamp"),
        ("landing", "events_2026-05-01.jsonl:4", "invalid_number"),
        ("staging", "events_2026-05-01.jsonl:5", "invalid_key")]


def test_files_only_builds_the_customer_level_tables_and_says_why_nobody_is_mailed(clean_warehouse, warehouse,
                                                                                  tmp_path, monkeypatch):
    from martech.campaigns.audience import build_snapshot
    from martech.campaigns.spec import load_campaign
    from martech.testing.campaigns import write_promo_campaign

    monkeypatch.setenv("MARTECH_BYOD", "1")
    write(tmp_path / "customers" / "c.csv", CUSTOMERS + f"1,a@example.com,Ann,{TS}\n2,b@example.com,Bo,{TS}\n"
          f"3,c@example.com,Cy,{TS}\n")
    write(tmp_path / "products" / "p.csv", PRODUCTS + f"3,Tea,5.00,{TS}\n")
    write(tmp_path / "orders" / "o.csv", ORDERS + "".join(
        f"{10 + n},1,2026-0{1 + n}-01T10:00:00Z,completed,5.00,{TS}\n" for n in range(3))
          + f"20,2,2025-06-01T10:00:00Z,completed,5.00,{TS}\n")
    write(tmp_path / "order_items" / "i.csv", ITEMS + "".join(f"{o},1,3,1,5.00,{TS}\n" for o in (10, 11, 12, 20)))
    pipeline.ingest_shop(warehouse, RUN)  # off in BYOD mode
    pipeline.ingest_files(warehouse, RUN, root=str(tmp_path))
    staged = pipeline.build_staging(warehouse, RUN)
    notes = " ".join(staged["notes"])
    assert "no CRM export or HubSpot contact received" in notes and "the 3 contacts are made from the 3 live" in notes
    assert "campaigns will mail nobody" in notes and "consent is 'unknown'" in notes
    pipeline.validate_staging(warehouse, RUN)  # the gate accepts contacts made from customers
    models = pipeline.build_customer_models(warehouse, RUN)
    assert models["rows"]["marts.customer_360"] == 3 and models["rows"]["marts.customer_lifecycle"] >= 3
    assert q(clean_warehouse, "select contact_id, customer_id, orders_count, is_contactable from marts.customer_360"
                              " order by 1") == [("shop:1", 1, 3, False), ("shop:2", 2, 1, False),
                                                 ("shop:3", 3, 0, False)]
    # The audience is empty, and it says why: every candidate is excluded for want of consent.
    spec = load_campaign(write_promo_campaign(tmp_path / "campaigns"))  # its audience: every contact
    summary = build_snapshot(clean_warehouse, spec, RUN)
    assert (summary.candidates, summary.members, summary.exclusions) == (3, 0, {"no_consent": 3})
    accounting.check(clean_warehouse, RUN, LOADED)
    with clean_warehouse.begin() as conn:  # a made contact lost is caught like a lost raw row
        conn.execute(sa.text("delete from staging.contacts where contact_id = 'shop:3'"))
    with pytest.raises(accounting.AccountingError, match="2 rows derived from other staging tables, but 3 expected"):
        accounting.check(clean_warehouse, RUN, LOADED)


def test_quarantined_lines_keep_their_bytes_so_they_can_be_repaired_and_replayed(clean_warehouse, tmp_path):
    good = f'{{"customer_id": 1, "email": "a@example.com", "updated_at": "{TS}"}}\r\n'
    broken = f'{{"customer_id": 2, "email": "b@example.com", "updated_at": "{TS}"\r\n'  # the brace never closes
    trailing = f"3,c@example.com,Cy,{TS},\r\n"
    write(tmp_path / "customers" / "c.jsonl", good + broken)
    write(tmp_path / "customers" / "c.csv", CUSTOMERS + trailing)
    files.ingest_folder(clean_warehouse, str(tmp_path), run_date=RUN, loaded_at=LOADED)
    bad = {ref: (code, received, enc) for ref, code, received, enc, _ in quarantined(clean_warehouse,
                                                                                    "raw.shop_customers")}
    assert bad == {"c.jsonl:2": ("invalid_json", broken, "text"), "c.csv:2": ("malformed_csv_line", trailing, "text")}
    # Exactly the bytes received: repaired by hand and sent again, they load.
    fixed = tmp_path / "fixed"
    write(fixed / "customers" / "replay.jsonl", bad["c.jsonl:2"][1].replace('"\r\n', '"}\r\n'))
    write(fixed / "customers" / "replay.csv", CUSTOMERS + bad["c.csv:2"][1].replace(f"{TS},", TS))
    results = files.ingest_folder(clean_warehouse, str(fixed), run_date=RUN, loaded_at=LOADED)
    assert sorted((r.source_file, r.rows_loaded, r.rows_quarantined) for r in results) == [
        ("replay.csv", 1, 0), ("replay.jsonl", 1, 0)]
    assert q(clean_warehouse, "select customer_id from raw.shop_customers order by 1") == [("1",), ("2",), ("3",)]
