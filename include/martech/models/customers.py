"""What several customer models read and write alike: the contact of each shop customer, and an empty run."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine


def contact_of_customer(conn: Connection) -> pd.DataFrame:
    """customer_id, contact_id: one contact per linked shop customer (the lowest contact id)."""
    return pd.read_sql_query(
        sa.text("select customer_id, min(contact_id) as contact_id from staging.contacts"
                " where customer_id is not null group by customer_id"), conn)


def read_orders(conn: Connection, as_of: dt.date) -> pd.DataFrame:
    """customer_id, order_ts, net_amount (float) of the orders placed before ``as_of`` that were not cancelled.

    The history the RFM scores and the CLV summaries are computed from; read once per run. The amount is
    cast in PostgreSQL (the nearest double, as ``float()`` of the numeric gives) so no Decimal objects
    are made per row.
    """
    return pd.read_sql_query(
        sa.text("select customer_id, order_ts, net_amount::float8 as net_amount from staging.orders"
                " where status <> 'cancelled' and order_ts < :d"), conn, params={"d": as_of})


def nothing_to_model(engine: Engine, table: str, as_of: dt.date) -> dict[str, Any]:
    """Empties ``table`` for ``as_of`` (a rerun replaces) and says that no model was fitted."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"delete from {table} where as_of = :d"), {"d": as_of})
    return {"rows": 0, "model_version": None}
