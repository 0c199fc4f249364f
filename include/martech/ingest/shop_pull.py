"""Pull the shop database's tables for one run: the daily ingest (every table) and the hourly pull of
an hourly series (the tables its audience reads) share this loop over the SQL sources of sources.yml."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from martech.runs import Run

log = logging.getLogger("martech")

__all__ = ["pull_shop"]


def pull_shop(warehouse: Any, run: Run, *, shop_url: str | None = None, shop_schema: str | None = None,
              tables: Sequence[str] | None = None) -> list[Any]:
    """Land the shop rows updated before ``run``'s cutoff into ``raw.shop_*``, per enabled SQL source.

    ``tables`` limits the pull (else each source's own list, else every shop table). An hourly run's
    batches carry its batch tag and the run date of the daily run that first covers them.
    """
    import sqlalchemy as sa

    from martech.db import make_engine
    from martech.ingest import byod
    from martech.ingest.landing import ingest_shop
    from martech.ingest.sources import SourcesError, of_kind

    results: list[Any] = []
    for name, source in of_kind("sql"):
        wanted: Sequence[str] | None = source.tables or None
        if tables is not None:
            wanted = [t for t in tables if not source.tables or t in source.tables]
            if not wanted:
                continue
        src_url = shop_url or source.url
        schema = shop_schema or source.schema_name
        if not src_url and byod.enabled():
            log.info("source %s: the simulator's shop database is off (%s=1); not pulled", name, byod.VARIABLE)
            continue
        if not src_url and not sa.inspect(warehouse).get_table_names(schema=schema):
            raise SourcesError(
                f"source {name} (include/sources.yml): no shop database given (MARTECH_SHOP_URL or the Airflow"
                f" connection shop_db) and the warehouse has no {schema} schema the simulator would have"
                f" written; to load export files only, set {byod.VARIABLE}=1 (or run `martech --byod ...`),"
                " else run `martech simulate` or set MARTECH_SHOP_URL")
        src = make_engine(src_url) if src_url else warehouse
        try:
            results += ingest_shop(src, warehouse, source_schema=schema,
                                   run_date=run.batch_run_date, loaded_at=run.cutoff, tables=wanted,
                                   cutoff=run.cutoff,
                                   batch_tag=run.batch_tag if run.hourly else None)
        finally:
            if src is not warehouse:
                src.dispose()
    return results
