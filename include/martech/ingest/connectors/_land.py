"""Checkpointed landing of API pages into ``raw.*``: the protocol both SaaS connectors share.

A pull is a sequence of pages. Each page's rows and the advanced watermark commit in **one
transaction**, so after a crash the watermark in ``raw.ingest_state`` is exactly the last record
that landed, and the rerun asks the API for what comes after it: nothing lost, nothing twice.
Staging all pages and committing at the end would be simpler but would redo a whole pull (hours for
a large account, against rate limits) after any failure, and hold every page in memory or on disk.

The batch (``<source>.<stream>:<run date or tag>``) is recorded as complete in
``raw.ingest_batches`` only when the pull reaches the end; its rows are every row tagged with its id,
including the pages a crashed attempt committed. A rerun of a complete batch asks the API nothing.

The watermark is ``(ts, key)``: every record with ``(modified, id) <= (ts, key)`` has landed. A key of
``None`` means "every record modified before ts" (no record *at* ts yet). Each commit compares the
stored watermark with the one this pull started the page from (compare-and-swap), so two pulls of
the same stream cannot both land a page: the second one stops with an error instead of duplicating.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from martech.db import copy_rows
from martech.ingest import batches
from martech.ingest.batches import BatchResult

log = logging.getLogger("martech")

META_COLUMNS = ("payload", "_batch_id", "_source", "_loaded_at")


class ConcurrentPullError(RuntimeError):
    """Another pull advanced the same stream's watermark while this one was running."""


@dataclass(frozen=True)
class Watermark:
    ts: dt.datetime | None = None
    key: str | None = None

    def as_text(self) -> str | None:
        return None if self.ts is None else json.dumps([self.ts.isoformat(), [self.key] if self.key else []])

    def _stored_key(self) -> str | None:
        return None if self.ts is None else json.dumps([self.key] if self.key else [])


class Checkpointer:
    """Begin (or resume) one batch of one stream, commit pages, finish."""

    def __init__(self, engine: Engine, *, source: str, stream: str, raw_table: str,
                 columns: Sequence[str], run_date: dt.date, loaded_at: dt.datetime,
                 batch_tag: str | None = None) -> None:
        self.engine, self.source, self.raw_table = engine, source, raw_table
        self.columns = tuple(columns)
        self.run_date, self.loaded_at = run_date, loaded_at
        self.batch_id = f"{source}.{stream}:{batch_tag or run_date.isoformat()}"
        self.watermark = Watermark()
        self.watermark_from: str | None = None
        self.resumed_rows = 0
        self.pages = 0

    def begin(self) -> BatchResult | None:
        """Load the watermark; a :class:`BatchResult` (skipped) when the batch is already complete."""
        with self.engine.begin() as conn:
            if batches.complete_batch(conn, self.batch_id):
                return BatchResult(batch_id=self.batch_id, table=self.raw_table, skipped=True)
            conn.execute(sa.text("insert into raw.ingest_state (source, table_name) values (:s, :t)"
                                 " on conflict do nothing"), {"s": self.source, "t": self.raw_table})
            ts, key, last_batch = conn.execute(
                sa.text("select watermark_ts, watermark_key, last_batch_id from raw.ingest_state"
                        " where source = :s and table_name = :t"), {"s": self.source, "t": self.raw_table}).one()
            keys = json.loads(key) if key else []
            self.watermark = Watermark(ts, str(keys[0]) if keys else None)
            if last_batch and last_batch != self.batch_id and not batches.complete_batch(conn, last_batch):
                self._close_orphan(conn, last_batch)
            if last_batch == self.batch_id:
                # Resuming: the batch started from where the previous complete batch ended.
                self.resumed_rows = self._rows_of(conn, self.batch_id)
                self.watermark_from = conn.execute(sa.text(
                    "select watermark_to from raw.ingest_batches where source = :s and table_name = :t"
                    " order by loaded_at desc, batch_id desc limit 1"),
                    {"s": self.source, "t": self.raw_table}).scalar()
                log.info("%s: resuming batch %s after %d rows (watermark %s)", self.raw_table, self.batch_id,
                         self.resumed_rows, self.watermark.as_text())
            else:
                self.watermark_from = self.watermark.as_text()
        return None

    def commit(self, records: Sequence[tuple[Sequence[Any], Any]], watermark: Watermark) -> int:
        """Land ``(column values, payload)`` records and move the watermark, in one transaction."""
        old = self.watermark
        with self.engine.begin() as conn:
            moved = conn.execute(
                sa.text("update raw.ingest_state set watermark_ts = :ts, watermark_key = :key, last_batch_id = :b"
                        " where source = :s and table_name = :t and watermark_ts is not distinct from :old_ts"
                        " and watermark_key is not distinct from :old_key"),
                {"ts": watermark.ts, "key": watermark._stored_key(), "b": self.batch_id, "s": self.source,
                 "t": self.raw_table, "old_ts": old.ts, "old_key": old._stored_key()}).rowcount
            if moved != 1:
                raise ConcurrentPullError(
                    f"{self.raw_table}: the watermark moved under batch {self.batch_id} (another pull of"
                    f" {self.source} is running?); this pull stopped without landing its page")
            meta = (self.batch_id, self.source, self.loaded_at)
            n = copy_rows(conn, self.raw_table, (*self.columns, *META_COLUMNS),
                          ([*values, json.dumps(payload, sort_keys=True), *meta] for values, payload in records))
        self.watermark = watermark
        self.pages += 1
        return n

    def finish(self) -> BatchResult:
        result = BatchResult(batch_id=self.batch_id, table=self.raw_table)
        with self.engine.begin() as conn:
            conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": f"ingest:{self.batch_id}"})
            if batches.complete_batch(conn, self.batch_id):
                result.skipped = True
                return result
            result.rows_received = result.rows_loaded = self._rows_of(conn, self.batch_id)
            result.watermark_to = self.watermark.as_text()
            if self.resumed_rows:
                result.notes.append(f"resumed after {self.resumed_rows} rows landed by an earlier attempt")
            batches.record_batch(conn, result, source=self.source, run_date=self.run_date, loaded_at=self.loaded_at,
                          watermark_from=self.watermark_from)
        return result

    def _rows_of(self, conn: Connection, batch_id: str) -> int:
        return int(conn.execute(sa.text(f"select count(*) from {self.raw_table} where _batch_id = :b"),
                                {"b": batch_id}).scalar_one())

    def _close_orphan(self, conn: Connection, batch_id: str) -> None:
        """A batch that crashed and was never rerun: its committed pages are real rows; record them."""
        tag = batch_id.rsplit(":", 1)[-1]
        try:
            run_date = dt.date.fromisoformat(tag[:10])
        except ValueError:
            run_date = self.run_date
        orphan = BatchResult(batch_id=batch_id, table=self.raw_table)
        orphan.rows_received = orphan.rows_loaded = self._rows_of(conn, batch_id)
        orphan.watermark_to = self.watermark.as_text()
        batches.record_batch(conn, orphan, source=self.source, run_date=run_date, loaded_at=self.loaded_at)
        log.warning("%s: batch %s was interrupted and not rerun; recorded its %d landed rows as complete",
                    self.raw_table, batch_id, orphan.rows_loaded)


def check_pull(service: str, objects: Sequence[str], known: Mapping[str, Any], page_size: int, limit: int) -> None:
    """Raise ValueError naming the bad argument of a pull: a page size outside 1..limit, an unknown object."""
    if not 1 <= page_size <= limit:
        raise ValueError(f"page_size must be between 1 and {limit}, got {page_size}")
    unknown = [o for o in objects if o not in known]
    if unknown:
        raise ValueError(f"unknown {service} object(s) {', '.join(unknown)}; known: {', '.join(known)}")


def land_streams(engine: Engine, streams: Mapping[str, Any], *, source_name: str, run_date: dt.date,
                 loaded_at: dt.datetime, batch_tag: str | None,
                 pages: Callable[[Any, Watermark], Iterable[tuple[list[Any], Any]]],
                 row: Callable[[Any, dict[str, Any]], tuple[Sequence[Any], Any]]) -> list[BatchResult]:
    """Land each stream (a name and its object, with ``raw_table`` and ``columns``) as one batch.

    A stream whose batch is already complete is skipped; otherwise ``pages(obj, watermark)`` yields
    (records, watermark) pages from the saved watermark on, each committed with its checkpoint, and
    ``row(obj, record)`` makes a record a raw row. HubSpot and Shopify share this loop.
    """
    results = []
    for name, obj in streams.items():
        cp = Checkpointer(engine, source=source_name, stream=name, raw_table=obj.raw_table,
                          columns=[c for c, _ in obj.columns], run_date=run_date, loaded_at=loaded_at,
                          batch_tag=batch_tag)
        done = cp.begin()
        if done is not None:
            results.append(done)
            continue
        for records, wm in pages(obj, cp.watermark):
            cp.commit([row(obj, r) for r in records], wm)
        results.append(cp.finish())
    return results


def dig(obj: Any, path: str) -> Any:
    """``a.b.0.c`` into nested dicts and lists; None where any step is missing."""
    for step in path.split("."):
        if isinstance(obj, dict):
            obj = obj.get(step)
        elif isinstance(obj, list) and step.isdigit():
            obj = obj[int(step)] if int(step) < len(obj) else None
        else:
            return None
    return obj


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
