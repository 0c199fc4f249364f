"""Bring your own data: CSV / JSON Lines / Parquet exports, loaded once, bad rows quarantined."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.ingest import files
from martech.paths import PROJECT_ROOT

pytestmark = pytest.mark.integration
RUN = dt.date(2026, 5, 2)
LOADED = dt.datetime(2026, 5, 2, tzinfo=dt.timezone.utc)


def q(eng, sql):
    with eng.connect() as conn:
        return conn.execute(sa.text(sql)).all()


def test_the_worked_example_loads_and_stages(clean_warehouse, warehouse, tmp_path):
    root = tmp_path / "byod"
    shutil.copytree(PROJECT_ROOT / "examples" / "byod", root)
    results = files.ingest_folder(clean_warehouse, str(root), run_date=RUN, loaded_at=LOADED)
    assert {r.table: r.rows_loaded for r in results} == {
        "raw.shop_customers": 3, "raw.shop_products": 2, "raw.shop_orders": 2, "raw.shop_order_items": 3}
    again = files.ingest_folder(clean_warehouse, str(root), run_date=RUN, loaded_at=LOADED)
    assert all(r.skipped for r in again)  # each file once, by name and checksum
    pipeline.build_staging(warehouse, RUN)
    assert q(clean_warehouse, "select order_id, total_amount from staging.orders order by 1") == [
        (9100001, 20.5), (9100002, 6.5)]


def test_parquet_bad_rows_and_contract_errors(clean_warehouse, tmp_path):
    root = tmp_path / "exports"
    (root / "customers").mkdir(parents=True)
    pq.write_table(pa.table({"customer_id": [7, 8], "email": ["g@example.com", None],
                             "updated_at": [dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc)] * 2}),
                   root / "customers" / "part-0.parquet")
    (root / "orders").mkdir()
    (root / "orders" / "o.jsonl").write_text(
        '{"order_id": 1, "customer_id": 7, "order_ts": "2026-04-01T00:00:00Z", "status": "completed",'
        ' "total_amount": 5, "updated_at": "2026-04-01T00:00:00Z"}\n{broken\n'
        '{"order_id": 2, "customer_id": 7, "status": "completed", "total_amount": 5, "updated_at": "x"}\n')
    results = {r.table: r for r in files.ingest_folder(clean_warehouse, str(root), run_date=RUN, loaded_at=LOADED)}
    assert (results["raw.shop_customers"].rows_loaded, results["raw.shop_customers"].rows_quarantined) == (1, 1)
    assert (results["raw.shop_orders"].rows_loaded, results["raw.shop_orders"].rows_quarantined) == (1, 2)
    reasons = sorted(r for (r,) in q(clean_warehouse, "select source_ref || ' ' || reason from raw.quarantine"))
    assert reasons == [
        "o.jsonl:2 o.jsonl line 2: not valid JSON (Expecting property name enclosed in double quotes at column 2);"
        " each line must be one complete JSON object",
        "o.jsonl:3 o.jsonl line 3: required field(s) order_ts empty; fill them in the export",
        "part-0.parquet:2 part-0.parquet record 2: required field(s) email empty; fill them in the export"]
    # received = loaded + quarantined, nothing dropped
    assert q(clean_warehouse, "select sum(rows_received), sum(rows_loaded) + sum(rows_quarantined)"
                              " from raw.ingest_batches")[0] == (5, 5)
    # A file that breaks the contract is refused alone: each of its lines quarantined with the sentence.
    (root / "products").mkdir()
    (root / "products" / "p.csv").write_text("product_id,title\n1,Tea\n2,Cake\n")
    report: list[str] = []
    results = files.ingest_folder(clean_warehouse, str(root), run_date=RUN, loaded_at=LOADED, report=report)
    refused = next(r for r in results if r.table == "raw.shop_products")
    assert (refused.rows_loaded, refused.rows_quarantined) == (0, 2)
    assert len(report) == 1 and "missing: name, price, updated_at; unknown: title" in report[0]
    assert q(clean_warehouse, "select source_ref, received, reason_code from raw.quarantine"
                              " where table_name = 'raw.shop_products' order by 1") == [
        ("p.csv:2", "1,Tea\n", "file_refused"), ("p.csv:3", "2,Cake\n", "file_refused")]


def test_fsspec_urls_work_too(clean_warehouse, tmp_path):
    root = tmp_path / "remote"
    shutil.copytree(PROJECT_ROOT / "examples" / "byod", root)
    results = files.ingest_folder(clean_warehouse, Path(root).as_uri(), run_date=RUN, loaded_at=LOADED)
    assert sum(r.rows_loaded for r in results) == 10


def test_an_object_storage_path_brings_its_own_file_system(clean_warehouse, tmp_path, monkeypatch):
    from airflow.sdk import ObjectStoragePath

    from martech import dagkit

    root = tmp_path / "bucket"
    shutil.copytree(PROJECT_ROOT / "examples" / "byod", root)
    results = files.ingest_folder(clean_warehouse, ObjectStoragePath(root.as_uri()), run_date=RUN, loaded_at=LOADED)
    assert sum(r.rows_loaded for r in results) == 10
    # The DAG builds one from sources.yml when the files source names a connection, and not otherwise.
    monkeypatch.setenv("MARTECH_FILES_URL", root.as_uri())
    assert dagkit.files_root() is None
    monkeypatch.setenv("MARTECH_FILES_CONN_ID", "my_store")
    found = dagkit.files_root()
    assert isinstance(found, ObjectStoragePath) and found.conn_id == "my_store" and str(found.path) == str(root)


def test_sources_file_decides_what_feeds_raw(tmp_path, monkeypatch):
    from martech.ingest.sources import SourcesError, load_sources, of_kind

    monkeypatch.setenv("MY_EXPORTS", "s3://bucket/exports")
    good = tmp_path / "sources.yml"
    good.write_text("sources:\n  db: {kind: sql, url: '${NOPE:-}', tables: [orders]}\n"
                    "  exports: {kind: files, path: '${MY_EXPORTS}'}\n  old: {kind: files, enabled: false}\n")
    loaded = load_sources(good)
    assert loaded["db"].url is None and loaded["db"].tables == ("orders",)
    assert [(n, s.path) for n, s in of_kind("files", good)] == [("exports", "s3://bucket/exports")]
    bad = tmp_path / "bad.yml"
    bad.write_text("sources:\n  db: {kind: sql, tables: [orderz]}\n  x: {kind: ftp}\n")
    with pytest.raises(SourcesError) as info:
        load_sources(bad)
    assert "source 'db', field tables: Value error, unknown table(s) orderz" in str(info.value)
    assert "source 'x', field kind" in str(info.value)
    # The shipped file is valid and feeds every shop table from the database.
    shipped = load_sources()
    assert shipped["shop_db"].kind == "sql" and "orders" in shipped["shop_db"].tables
