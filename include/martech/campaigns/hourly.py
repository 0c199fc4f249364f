"""Hourly micro-batch runs of a series campaign (the abandoned cart): the pull that precedes each run.

An hourly run stands for one instant, the top of its hour ``H`` (UTC), a :class:`martech.runs.Run`.
:func:`refresh_shop` pulls the shop tables the audience reads (carts, cart lines, orders) incrementally
up to ``H`` into ``raw.*`` as batches tagged ``<date>T<HH>``. Staging is not rebuilt: the audience SQL
reads the latest raw version of each cart and order updated before ``H`` itself. The run itself
(snapshot per step, gate, dispatch and the sweep of earlier hours' unsent rows) is the same entry
point as a daily campaign's: :mod:`martech.campaigns.runner`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from martech.runs import Run

if TYPE_CHECKING:
    from martech.warehouse import Warehouse

__all__ = ["HOURLY_TABLES", "batch_tag", "daily_run_date", "parse_run_id", "refresh_shop"]

log = logging.getLogger("martech.campaigns.hourly")

# What the abandoned-cart audience reads from the shop between two daily ingests.
HOURLY_TABLES = ("carts", "cart_items", "orders")


def batch_tag(run_at: dt.datetime) -> str:
    """``2026-11-02T13``: names the hour's landing batches and its run ids."""
    return Run.hour(run_at).batch_tag


def daily_run_date(run_at: dt.datetime) -> dt.date:
    """The daily run whose cutoff first covers this hour's pull (the next midnight at or after it).

    Recorded as the batch's run date, so the daily raw checks of that date also check the hourly batches
    that landed its rows.
    """
    return Run.hour(run_at).batch_run_date


def parse_run_id(run_id: str) -> tuple[dt.datetime, int] | None:
    """``2026-11-02T13.step2`` -> (2026-11-02 13:00 UTC, 2); None for a daily run id."""
    try:
        run, step = Run.parse(run_id)
    except ValueError:
        return None
    return (run.cutoff, step) if run.hourly else None


def refresh_shop(wh: Warehouse, run: Run | dt.datetime, *,
                 tables: Sequence[str] = HOURLY_TABLES) -> dict[str, Any]:
    """Pull ``tables`` of every enabled SQL source incrementally, up to the run's hour.

    A rerun of the hour loads nothing (its batches are complete); a later hour starts from the watermark,
    so a missed hour's rows arrive with the next pull.
    """
    from martech.db import migrate
    from martech.ingest.shop_pull import pull_shop

    run = Run.hour(run.cutoff if isinstance(run, Run) else run)
    migrate(wh.engine)
    results = pull_shop(wh.engine, run, shop_url=wh.shop_url, shop_schema=wh.shop_schema, tables=tables)
    for r in results:
        log.info(r.line())
    return {"run_ts": run.cutoff.isoformat(), "batch_tag": run.batch_tag,
            "batches": {r.table: r.batch_id for r in results}, "rows": {r.table: r.rows_loaded for r in results}}
