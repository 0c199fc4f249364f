"""Bring your own data: shop exports as CSV, JSON Lines or Parquet files, from a folder or any fsspec URL.

Layout: ``<root>/<entity>/<file>`` with ``entity`` one of :data:`CONTRACT` (customers, products, orders,
order_items, carts, cart_items) and the format taken from the extension (``.csv``, ``.jsonl`` / ``.ndjson``,
``.parquet``). Each file is loaded once: its batch id is ``file.<entity>:<name>:<sha256[:12]>`` in
``raw.ingest_batches``, so re-running is a no-op and a changed file (new checksum) loads again as a new batch
(staging keeps the latest version of each key by ``updated_at``).

The column contract per entity is :data:`CONTRACT`: the required columns must be present (any order);
the other columns of the raw table are optional (NULL when absent); unknown columns are an error that names
them. Values land as text, exactly as in the file; staging types them. A row that cannot be read (wrong
number of fields, broken JSON, a required value missing) goes to ``raw.quarantine`` with file, line, field and
what to fix; the rest of the file loads.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from martech.db import copy_rows
from martech.ingest import batches
from martech.ingest.batches import BatchResult
from martech.ingest.landing import SHOP_TABLES

REQUIRED: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "email", "updated_at"),
    "products": ("product_id", "name", "price", "updated_at"),
    "orders": ("order_id", "customer_id", "order_ts", "status", "total_amount", "updated_at"),
    "order_items": ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
    "carts": ("cart_id", "customer_id", "status", "updated_at"),
    "cart_items": ("cart_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
    "web_sessions": ("session_id", "started_at", "page_views", "updated_at"),
    "product_views": ("session_id", "view_no", "product_id", "viewed_at", "updated_at"),
}
CONTRACT = {t.name: (t.raw_table, t.columns, REQUIRED[t.name]) for t in SHOP_TABLES}
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


class ContractError(ValueError):
    """A file does not follow the column contract (the message names file, columns and the fix)."""


def _rows(name: str, data: bytes, fmt: str) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """(line, row or None, problem) per record of the file."""
    if fmt == "csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ContractError(
                f"{name}: not UTF-8 ({exc.reason} at byte {exc.start}); re-export it as UTF-8") from None
        reader = csv.reader(io.StringIO(text, newline=""))
        header = [h.strip() for h in next(reader, [])]
        yield 1, {"__header__": header}, ""
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                yield reader.line_num, None, (f"expected {len(header)} fields, found {len(fields)}; "
                                              "quote values that contain commas")
                continue
            yield reader.line_num, dict(zip(header, fields)), ""
    elif fmt == "jsonl":
        for n, line in enumerate(data.decode("utf-8-sig").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, None, f"not valid JSON ({exc.msg} at column {exc.colno})"
                continue
            if not isinstance(obj, dict):
                yield n, None, "each line must be one JSON object"
                continue
            yield n, obj, ""
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        yield 0, {"__header__": table.column_names}, ""
        for n, obj in enumerate(table.to_pylist(), start=1):
            yield n, obj, ""


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value)


def load_file(engine: Any, fs: Any, path: str, entity: str, *, run_date: dt.date,
              loaded_at: dt.datetime) -> BatchResult:
    """Load one export file into its raw table (once per name and checksum)."""
    if entity not in CONTRACT:
        raise ContractError(f"{path}: unknown entity folder {entity!r}; use one of {', '.join(CONTRACT)}")
    raw_table, columns, required = CONTRACT[entity]
    name = path.rsplit("/", 1)[-1]
    fmt = FORMATS.get("." + name.rsplit(".", 1)[-1].lower()) if "." in name else None
    if fmt is None:
        raise ContractError(f"{path}: unknown file type; use {', '.join(FORMATS)}")
    with fs.open(path, "rb") as fh:
        data = fh.read()
    checksum = hashlib.sha256(data).hexdigest()
    batch_id = f"file.{entity}:{name}:{checksum[:12]}"
    result = BatchResult(batch_id=batch_id, table=raw_table, source_file=name)
    good: list[list[Any]] = []
    bad: list[tuple[str, str, str]] = []
    for line, row, problem in _rows(name, data, fmt):
        if row is not None and "__header__" in row:
            header = row["__header__"]
            missing = [c for c in required if c not in header]
            unknown = [c for c in header if c not in columns]
            if missing or unknown:
                raise ContractError(
                    f"{path}: columns must follow the {entity} contract (required: {', '.join(required)};"
                    f" optional: {', '.join(c for c in columns if c not in required)}); missing:"
                    f" {', '.join(missing) or '-'}; unknown: {', '.join(unknown) or '-'}")
            continue
        if row is None:
            bad.append((f"{name}:{line}", "", problem))
            continue
        unknown = [k for k in row if k not in columns]
        absent = [c for c in required if _text(row.get(c)) is None]
        if unknown or absent:
            why = (f"unknown field(s) {', '.join(unknown)}" if unknown else
                   f"required field(s) {', '.join(absent)} empty; fill them in the export")
            bad.append((f"{name}:{line}", json.dumps(row, default=str, sort_keys=True), why))
            continue
        good.append([*(_text(row.get(c)) for c in columns), batch_id, f"file:{name}", loaded_at])
    with engine.begin() as conn:
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": f"ingest:{batch_id}"})
        if batches.complete_batch(conn, batch_id):
            result.skipped = True
            return result
        result.rows_loaded = copy_rows(conn, raw_table, (*columns, "_batch_id", "_source", "_loaded_at"), good)
        rejected = [(raw_table, batch_id, ref, received, reason, run_date) for ref, received, reason in bad]
        result.rows_quarantined = batches.quarantine_rows(conn, rejected) if rejected else 0
        result.rows_received = result.rows_loaded + result.rows_quarantined
        batches.record_batch(conn, result, source=f"file:{entity}", run_date=run_date, loaded_at=loaded_at,
                      checksum=checksum)
    return result


def ingest_folder(engine: Any, root: Any, *, run_date: dt.date, loaded_at: dt.datetime) -> list[BatchResult]:
    """Load every export under ``root``: a local folder, an fsspec URL such as s3://bucket/exports, or a
    path object carrying its own file system (Airflow's ObjectStoragePath, which takes its credentials
    from an Airflow connection)."""
    if hasattr(root, "fs") and hasattr(root, "path"):
        fs, base = root.fs, str(root.path)
    else:
        import fsspec

        fs, base = fsspec.core.url_to_fs(str(root))
    results = []
    for entity in CONTRACT:
        folder = f"{base.rstrip('/')}/{entity}"
        if not fs.exists(folder):
            continue
        for path in sorted(p for p in fs.ls(folder, detail=False) if not p.rsplit("/", 1)[-1].startswith(".")):
            results.append(load_file(engine, fs, path, entity, run_date=run_date, loaded_at=loaded_at))
    return results
