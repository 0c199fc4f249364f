"""Bring your own data as a mode: the shop database switched off by a setting, a check before loading,
a worked example in its own MARTECH_HOME, and staging that refuses to shrink without being told to."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
import sqlalchemy as sa

from martech import cli, pipeline
from martech.devtools import byod_example
from martech.ingest.sources import SourcesError
from martech.paths import PROJECT_ROOT
from martech.staging import accounting

pytestmark = pytest.mark.integration


def test_check_says_what_each_file_would_become_before_loading(tmp_path, capsys):
    root = tmp_path / "exports"
    shutil.copytree(PROJECT_ROOT / "examples" / "byod", root)
    (root / "customers" / "more.csv").write_text('customer_id,email,updated_at\n5,"e@example.com,2026-01-01\n'
                                                 "6,f@example.com,2026-01-01\n")
    (root / "products" / "bad.csv").write_text("product_id,title\n1,Tea\n")
    (root / "returns").mkdir()
    (root / "returns" / "r.csv").write_text("x\n")
    assert cli.main(["byod", "check", str(root)]) == 1  # a file would be refused
    out = capsys.readouterr().out.splitlines()
    assert "customers/customers_2026-05-01.csv → raw.shop_customers: 3 rows would load" in out
    assert ("customers/more.csv → raw.shop_customers: 1 rows would load, 1 quarantined (unterminated_quote 1);"
            " first: line 2: a quote opened on this line is never closed;"
            ' close it or double the quote inside the value ("")') in out
    assert any(line.startswith("products/bad.csv → raw.shop_products: REFUSED") for line in out)
    assert any(line.startswith("not read: returns/") for line in out)
    shutil.rmtree(root / "returns")
    (root / "products" / "bad.csv").unlink()
    (root / "customers" / "more.csv").unlink()
    assert cli.main(["byod", "check", str(root)]) == 0


def test_the_shop_database_is_off_in_byod_mode_and_said_missing_otherwise(clean_warehouse, warehouse,
                                                                         monkeypatch):
    monkeypatch.delenv("MARTECH_SHOP_URL", raising=False)
    with pytest.raises(SourcesError, match="set MARTECH_BYOD=1"):
        pipeline.ingest_shop(warehouse, dt.date(2026, 5, 2))
    monkeypatch.setenv("MARTECH_BYOD", "1")
    assert pipeline.ingest_shop(warehouse, dt.date(2026, 5, 2))["batches"] == {}


def test_the_worked_example_runs_in_its_own_home_and_shows_its_result(clean_warehouse, warehouse, tmp_path,
                                                                     monkeypatch, capsys):
    home = tmp_path / "byod-home"
    assert cli.main(["byod", "setup", str(home)]) == 0
    assert f"export MARTECH_HOME={home}" in capsys.readouterr().out
    assert cli.main(["byod", "setup", str(home)]) == 0  # no warehouse yet: setting up again is harmless
    monkeypatch.setenv("MARTECH_HOME", str(home))
    lines = byod_example.run(warehouse, byod_example.EXAMPLE_DATE)
    rows = "\n".join(lines)
    assert "9100001 | 9000001 | 2026-04-02 | 20.50" in rows
    assert "X0000001 | 9000001 | ana@example.com | True" in rows
    with clean_warehouse.connect() as conn:
        assert conn.execute(sa.text("select count(*) from marts.customer_rfm")).scalar_one() == 2


def test_staging_refuses_an_older_date_or_a_much_smaller_input_unless_forced(clean_warehouse, warehouse,
                                                                            tmp_path, monkeypatch):
    root = tmp_path / "exports"
    (root / "customers").mkdir(parents=True)
    (root / "customers" / "c.csv").write_text("customer_id,email,updated_at\n" + "".join(
        f"{i},c{i}@example.com,2026-04-01T00:00:00Z\n" for i in range(1, 201)))
    pipeline.ingest_files(warehouse, dt.date(2026, 5, 2), root=str(root))
    pipeline.build_staging(warehouse, dt.date(2026, 5, 2))
    with pytest.raises(accounting.RebuildRefused, match=r"older date 2026-05-01.*MARTECH_FORCE_STAGING=1"):
        pipeline.build_staging(warehouse, dt.date(2026, 5, 1))
    with clean_warehouse.begin() as conn:  # the raw rows vanish (a reset landing, a wrong warehouse)
        conn.execute(sa.text("delete from raw.shop_customers where customer_id::int > 20"))
    with pytest.raises(accounting.RebuildRefused, match=r"holds 20 rows .* received 200"):
        pipeline.build_staging(warehouse, dt.date(2026, 5, 3))
    monkeypatch.setenv("MARTECH_FORCE_STAGING", "1")
    with pytest.raises(accounting.AccountingError):  # forced: rebuilt, and the accounting notices the loss
        pipeline.build_staging(warehouse, dt.date(2026, 5, 3))
