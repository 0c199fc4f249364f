"""The CDNOW figures of Fader, Hardie & Lee (2005) through the pipeline's own steps, for run date 1997-10-01.

The transaction log is written as export files (customers and orders, one order per purchase line, the whole
log 1997-01 .. 1998-06 at once, as a historical export would be): staging holds the orders after the run
date back, and the customer-models step fits BG/NBD on what is left.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.models import clv

pytestmark = pytest.mark.integration
RUN = dt.date(1997, 10, 1)


def test_cdnow_bgnbd_parameters_through_the_pipeline(clean_warehouse, warehouse, tmp_path):
    tx = clv.load_cdnow_sample().sort_values(["customer_id", "order_ts"], kind="stable")
    (tmp_path / "customers").mkdir()
    (tmp_path / "orders").mkdir()
    first = tx.groupby("customer_id")["order_ts"].min()
    (tmp_path / "customers" / "customers.csv").write_text("customer_id,email,created_at,updated_at\n" + "".join(
        f"{cid},cdnow{cid}@example.com,{day:%Y-%m-%d},{day:%Y-%m-%d}\n" for cid, day in first.items()))
    (tmp_path / "orders" / "orders.csv").write_text(
        "order_id,customer_id,order_ts,status,currency,total_amount,updated_at\n" + "".join(
            f"{n},{r.customer_id},{r.order_ts:%Y-%m-%d},completed,USD,{r.amount:.2f},{r.order_ts:%Y-%m-%d}\n"
            for n, r in enumerate(tx.itertuples(index=False), start=1)))
    pipeline.ingest_files(warehouse, RUN, root=str(tmp_path))
    staged = pipeline.build_staging(warehouse, RUN)
    assert staged["rows"]["staging.customers"] == 2357
    with clean_warehouse.connect() as conn:
        held = conn.execute(sa.text("select count(*) from raw.quarantine where reason_code = 'future_timestamp'"
                                    " and table_name = 'raw.shop_orders'")).scalar_one()
    assert held == int((tx["order_ts"] >= "1997-10-01").sum())  # after the run date: held, not lost
    pipeline.build_customer_models(warehouse, RUN)
    with clean_warehouse.connect() as conn:
        version, n = conn.execute(sa.text("select min(model_version), count(*) from marts.clv_predictions"
                                          " where as_of = :d"), {"d": RUN}).one()
    assert n == 2357
    print(version)  # the fitted parameters, shown with -s
    fitted = {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.]+)", version)}
    for name, published in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert fitted[name] == pytest.approx(published, rel=0.01), (name, version)
