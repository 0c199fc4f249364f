"""Which staging tables are built incrementally, and from where each one's next run reads its raw table.

An incrementally built model judges only the raw rows landed after its watermark
(``staging.model_watermarks.loaded_through``, the cutoff of its last run; ``staging.watermark`` decides)
and the rows it must judge again (held as future-dated, waiting for a parent: ``staging.rows_to_recheck``),
then settles again every key those rows touch, with the key's earlier rows read from the model's state
(``staging_state.<table>``); see ``staging.begin_checked`` in include/sql/staging/functions/accounting.sql.
The result is the table a full rebuild makes from the same raw rows. A full rebuild runs instead when asked
for, the first time, and whenever the raw rows up to the watermark are no longer the ones the last run
counted (an erasure removed some, a batch landed behind the watermark, the raw table was reloaded).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

# The staging tables built incrementally and the raw table feeding each. The others are rebuilt from all
# their raw rows every run (docs/scale.md says why for each).
INCREMENTAL: dict[str, str] = {
    "staging.product_views": "raw.shop_product_views",
    "staging.web_sessions": "raw.shop_web_sessions",
    "staging.orders": "raw.shop_orders",
    "staging.order_items": "raw.shop_order_items",
}


def plan(engine: Any, run_ts: dt.datetime, full_refresh: bool = False) -> dict[str, dt.datetime | None]:
    """Per incrementally built table, the watermark its run at ``run_ts`` reads on from (None: a full
    rebuild). ``full_refresh`` deletes the watermarks first, so that every one of them is rebuilt."""
    with engine.begin() as conn:
        if full_refresh:
            conn.execute(sa.text("delete from staging.model_watermarks where table_name = any(:t)"),
                         {"t": list(INCREMENTAL)})
        return {t: conn.execute(sa.text("select staging.watermark(:t, :r, :ts)"),
                                {"t": t, "r": raw, "ts": run_ts}).scalar_one()
                for t, raw in INCREMENTAL.items()}
