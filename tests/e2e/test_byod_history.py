"""Bring your own data through Airflow: export files only (the simulator's shop database off by a setting),
for a historical run date (1997, long before any schedule would start)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.e2e
RUN = dt.date(1997, 10, 1)


def test_historical_export_files_only_run_through_the_dags(clean_warehouse, warehouse_url, tmp_path, monkeypatch):
    from martech.devtools import airflow_env, demo

    files = tmp_path / "exports"
    (files / "Customers").mkdir(parents=True)
    (files / "orders").mkdir()
    (files / "Customers" / "c.csv").write_text("customer_id,email,updated_at\n1,a@example.com,1997-01-01\n"
                                               "2,b@example.com,1997-01-02\n")
    (files / "orders" / "o.csv").write_text(
        "order_id,customer_id,order_ts,status,total_amount,updated_at\n1,1,1997-01-01,completed,10,1997-01-01\n"
        "2,1,1997-03-01,completed,12,1997-03-01\n3,2,1997-11-05,completed,9,1997-11-05\n")
    monkeypatch.setenv("MARTECH_BYOD", "1")
    monkeypatch.setenv("MARTECH_FILES_URL", str(files))
    monkeypatch.setenv("MARTECH_CRM_DIR", str(tmp_path / "crm"))
    airflow_env.configure(warehouse_url)
    airflow_env.migrate_metadata()
    dags = demo._load_dags()
    for dag_id in ("ingest", "staging"):
        demo._run_dag(dags, dag_id, RUN, 2, tmp_path / "airflow.log")
    with clean_warehouse.connect() as conn:
        assert conn.execute(sa.text("select count(*) from raw.shop_orders")).scalar_one() == 3
        assert conn.execute(sa.text("select order_id from staging.orders order by 1")).scalars().all() == [1, 2]
        assert conn.execute(sa.text("select row_key from raw.quarantine where reason_code = 'future_timestamp'")
                            ).scalars().all() == ["3"]
