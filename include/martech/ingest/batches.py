"""Landing batches: the record of each batch in ``raw.ingest_batches`` and unreadable rows in ``raw.quarantine``.

Every connector (shop database, CRM exports, files, HubSpot, Shopify) lands through these, so a batch is
recorded the same way whoever loaded it, and a batch recorded complete is never loaded again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from martech.db import copy_rows


@dataclass
class BatchResult:
    batch_id: str
    table: str
    rows_received: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    skipped: bool = False
    source_file: str | None = None
    watermark_to: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the batch (set by the SQL pulls)
    cpu_seconds: float = 0.0  # CPU time of the loading process in it (PostgreSQL's own is not counted)

    def line(self) -> str:
        if self.skipped:
            return f"{self.table}: batch {self.batch_id} already loaded, nothing to do"
        q = f", {self.rows_quarantined} quarantined" if self.rows_quarantined else ""
        return f"{self.table}: {self.rows_loaded} rows loaded{q} (batch {self.batch_id})"


def complete_batch(conn: Connection, batch_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.text("select * from raw.ingest_batches where batch_id = :b"), {"b": batch_id})
    found = row.mappings().first()
    return dict(found) if found else None


def record_batch(conn: Connection, result: BatchResult, *, source: str, run_date: dt.date,
                  loaded_at: dt.datetime, watermark_from: str | None = None,
                  checksum: str | None = None) -> None:
    conn.execute(
        sa.text(
            "insert into raw.ingest_batches (batch_id, source, table_name, run_date, status, rows_received,"
            " rows_loaded, rows_quarantined, watermark_from, watermark_to, source_file, checksum, loaded_at)"
            " values (:batch_id, :source, :table, :run_date, 'complete', :received, :loaded, :quarantined,"
            " :wm_from, :wm_to, :file, :checksum, :loaded_at)"
        ),
        {"batch_id": result.batch_id, "source": source, "table": result.table, "run_date": run_date,
         "received": result.rows_received, "loaded": result.rows_loaded,
         "quarantined": result.rows_quarantined, "wm_from": watermark_from, "wm_to": result.watermark_to,
         "file": result.source_file, "checksum": checksum, "loaded_at": loaded_at},
    )


def quarantine_rows(conn: Connection, rows: Iterable[Sequence[Any]]) -> int:
    """Rows of (table, batch, source ref, received, reason, run date[, reason code[, encoding]]) into
    raw.quarantine; ``encoding`` says how ``received`` holds the bytes: 'text' or 'base64'."""
    defaults = ("unreadable_row", "text")
    full = (tuple(r) + defaults[len(r) - 6:] for r in rows)
    return copy_rows(conn, "raw.quarantine", ("table_name", "batch_id", "source_ref", "received", "reason",
                                              "run_date", "reason_code", "received_encoding"), full)
