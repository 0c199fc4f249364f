"""The worked "Bring your own data" example: ``martech byod setup <home>`` prepares a separate
``MARTECH_HOME`` holding shop export files and a CRM contacts file whose ids cannot collide with the
simulator's; ``martech byod run`` runs ingest, staging and the customer models there and prints the queries
that show the result (in export-only mode, :mod:`martech.ingest.byod`).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from martech import paths

if TYPE_CHECKING:
    from martech.warehouse import Warehouse

EXAMPLE_DATE = dt.date(2026, 5, 2)


def setup(home: Path) -> list[str]:
    """Create ``home`` as a MARTECH_HOME holding the worked example; return the commands to run next."""
    home = Path(home).resolve()
    if (home / "warehouse").exists():
        raise FileExistsError(f"{home} already holds a warehouse; choose a new folder for the example")
    examples = paths.PROJECT_ROOT / "examples"
    shutil.copytree(examples / "byod", home / "landing" / "files", dirs_exist_ok=True)
    shutil.copytree(examples / "byod-crm", home / "landing" / "crm", dirs_exist_ok=True)
    return [f"export MARTECH_HOME={home} MARTECH_BYOD=1; unset MARTECH_WAREHOUSE_URL",
            f"martech byod check {home / 'landing' / 'files'}",
            f"martech byod run --date {EXAMPLE_DATE.isoformat()}"]


RESULT_QUERIES = (
    "select customer_id, email, country from staging.customers order by customer_id",
    "select order_id, customer_id, order_date, total_amount from staging.orders order by order_id",
    "select customer_id, segment, recency_days, frequency, monetary from marts.customer_rfm order by customer_id",
    "select contact_id, customer_id, email, is_contactable, lifecycle_status from marts.customer_360"
    " order by contact_id",
)


def run(wh: Warehouse, run_date: dt.date) -> list[str]:
    """Ingest (files and CRM exports), staging and the customer models for ``run_date``; then the result
    queries and their rows."""
    import sqlalchemy as sa

    from martech import pipeline

    pipeline.prepare_warehouse(wh)
    pipeline.ingest_files(wh, run_date, root=str(paths.landing_dir() / "files"))
    pipeline.ingest_crm(wh, run_date, folder=paths.landing_dir() / "crm")
    pipeline.build_staging(wh, run_date)
    pipeline.build_customer_models(wh, run_date)
    lines: list[str] = []
    with wh.engine.connect() as conn:
        for query in RESULT_QUERIES:
            lines.append(f"{query};")
            lines += ["  " + " | ".join(str(v) for v in row) for row in conn.execute(sa.text(query))]
    return lines
