"""Pipeline entry points of the SaaS connectors, one per source kind, called by the ``ingest`` DAG.

Each reads the enabled sources of its kind from ``include/sources.yml``, asks the injected
``credentials`` function for the token of the source's ``conn_id`` (the DAG task passes a resolver
over Airflow connections; tests pass a dict lookup), and returns a JSON-serialisable summary. A
disabled or absent source is logged and yields a summary with 0 rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from martech.ingest.batches import BatchResult
from martech.ingest.sources import SOURCES_FILE, Source, of_kind

if TYPE_CHECKING:
    from martech.warehouse import Warehouse

log = logging.getLogger("martech")

Credentials = Callable[[str], Mapping[str, Any]]


def _summary(run_date: dt.date, results: list[BatchResult], *, enabled: bool) -> dict[str, Any]:
    for r in results:
        log.info(r.line() + "".join(f"; {n}" for n in r.notes))
    return {"run_date": run_date.isoformat(), "enabled": enabled,
            "batches": {r.table: r.batch_id for r in results},
            "tables": {r.table: r.rows_loaded for r in results},
            "rows": sum(r.rows_loaded for r in results)}


def _run(kind: str, wh: Warehouse, run_date: dt.date, credentials: Credentials, sources_path: Path,
         pull: Callable[[Any, Source, Mapping[str, Any]], list[BatchResult]]) -> dict[str, Any]:
    sources = of_kind(kind, sources_path)
    if not sources:
        log.info("no enabled source of kind %s in %s (set enabled: true to pull it)", kind, sources_path)
        return _summary(run_date, [], enabled=False)
    from martech.db import migrate

    migrate(wh.engine)
    results: list[BatchResult] = []
    for _name, source in sources:
        results += pull(wh.engine, source, credentials(source.conn_id or kind))
    return _summary(run_date, results, enabled=True)


def ingest_hubspot(wh: Warehouse, run_date: dt.date, *, credentials: Credentials,
                   sources_path: Path = SOURCES_FILE) -> dict[str, Any]:
    """Pull HubSpot contacts and deals into raw.hubspot_* (sources of kind hubspot)."""
    from martech.ingest.connectors.hubspot import API_URL, pull_hubspot
    from martech.ingest.landing import cutoff_for

    def pull(eng: Any, source: Source, creds: Mapping[str, Any]) -> list[BatchResult]:
        return pull_hubspot(eng, str(creds.get("token") or ""), run_date=run_date, loaded_at=cutoff_for(run_date),
                            objects=source.objects, base_url=source.url or API_URL,
                            conn_id=source.conn_id or "hubspot")

    return _run("hubspot", wh, run_date, credentials, sources_path, pull)


def ingest_shopify(wh: Warehouse, run_date: dt.date, *, credentials: Credentials,
                   sources_path: Path = SOURCES_FILE) -> dict[str, Any]:
    """Pull Shopify customers, orders and abandoned checkouts into raw.shopify_* (sources of kind shopify)."""
    from martech.ingest.connectors.shopify import pull_shopify
    from martech.ingest.landing import cutoff_for

    def pull(eng: Any, source: Source, creds: Mapping[str, Any]) -> list[BatchResult]:
        shop = str(creds.get("host") or source.shop or "")
        return pull_shopify(eng, str(creds.get("token") or ""), shop=shop, run_date=run_date,
                            loaded_at=cutoff_for(run_date), objects=source.objects, api_version=source.api_version,
                            base_url=source.url, conn_id=source.conn_id or "shopify")

    return _run("shopify", wh, run_date, credentials, sources_path, pull)
