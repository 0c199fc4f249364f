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

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from martech.db import copy_rows
from martech.ingest import batches
from martech.ingest.batches import BatchResult
from martech.ingest.exports import (
    FileRefused,
    Record,
    as_received,
    physical_records,
    read_csv,
    read_jsonl,
    read_parquet,
)
from martech.ingest.landing import SHOP_TABLES

log = logging.getLogger("martech")

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


def _entity_key(name: str) -> str:
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    return key[:-1] if key.endswith("s") else key


_ENTITY_KEYS = {_entity_key(e): e for e in REQUIRED}


def file_format(name: str) -> str | None:
    return FORMATS.get("." + name.rsplit(".", 1)[-1].lower()) if "." in name else None


@dataclass
class Plan:
    """What a folder of exports holds: the files that would load, as (path, entity), and sentences
    about everything else that looks like an export."""

    files: list[tuple[str, str]] = field(default_factory=list)
    unrecognised: list[str] = field(default_factory=list)


def scan(fs: Any, base: str) -> Plan:
    """Match entity folders by name regardless of case, '-' or '_' and a plural 's' (``Orders/``,
    ``customer/``, ``order-items/``) when one folder matches; report every other folder or file."""
    plan = Plan()
    base = base.rstrip("/")
    if not fs.exists(base):
        return plan
    by_entity: dict[str, list[str]] = {}
    for entry in sorted(fs.ls(base, detail=True), key=lambda e: e["name"]):
        path, kind = entry["name"].rstrip("/"), entry.get("type")
        name = path.rsplit("/", 1)[-1]
        if name.startswith("."):
            continue
        if kind != "directory":
            plan.unrecognised.append(f"{name}: a file directly under the exports folder is not loaded; move it into"
                                     f" a folder named after its entity ({', '.join(REQUIRED)})")
            continue
        entity = _ENTITY_KEYS.get(_entity_key(name))
        if entity is None:
            plan.unrecognised.append(f"{name}/: not an entity folder, its files are not loaded; rename it to one"
                                     f" of {', '.join(REQUIRED)}")
            continue
        by_entity.setdefault(entity, []).append(path)
    for entity in REQUIRED:
        folders = by_entity.get(entity, [])
        exact = [f for f in folders if f.rsplit("/", 1)[-1] == entity]
        chosen = exact or (folders if len(folders) == 1 else [])
        for other in folders:
            if other not in chosen:
                plan.unrecognised.append(
                    f"{other.rsplit('/', 1)[-1]}/: several folders look like {entity}; only"
                    f" {entity}/ is loaded when it exists, else none: merge them into one folder named {entity}")
        for folder in chosen:
            for path in sorted(p for p in fs.ls(folder, detail=False)):
                name = path.rstrip("/").rsplit("/", 1)[-1]
                if name.startswith("."):
                    continue
                if file_format(name) is None:
                    plan.unrecognised.append(f"{folder.rsplit('/', 1)[-1]}/{name}: unknown file type, not loaded;"
                                             f" use {', '.join(FORMATS)}")
                else:
                    plan.files.append((path, entity))
    return plan


def read(name: str, data: bytes, entity: str) -> tuple[list[Record], str]:
    """The records of one export file, checked against the entity's contract, and the sentence why
    the whole file is refused ('' when it is not)."""
    _raw_table, columns, required = CONTRACT[entity]
    fmt = file_format(name)
    try:
        if fmt == "jsonl":
            header, records = None, read_jsonl(data)
        elif fmt == "csv":
            header, records = read_csv(data)
        else:
            header, records = read_parquet(name, data)
    except FileRefused as exc:
        return [], str(exc)
    if header is not None:
        missing = [c for c in required if c not in header]
        unknown = [c for c in header if c not in columns]
        twice = sorted({c for c in header if header.count(c) > 1})
        if missing or unknown or twice:
            return [], (f"{name}: columns must follow the {entity} contract (required: {', '.join(required)};"
                        f" optional: {', '.join(c for c in columns if c not in required)}); missing:"
                        f" {', '.join(missing) or '-'}; unknown: {', '.join(unknown) or '-'}"
                        + (f"; named twice: {', '.join(twice)}" if twice else "")
                        + "; rename or remove the columns and export the file again")
    out = []
    for rec in records:
        if rec.fields is not None:
            unknown = [k for k in rec.fields if k not in columns]
            absent = [c for c in required if _text(rec.fields.get(c)) is None]
            if unknown:
                rec = Record(rec.line, rec.raw, None, f"unknown field(s) {', '.join(unknown)}; remove them or use"
                             f" the {entity} contract's names", "unknown_field")
            elif absent:
                rec = Record(rec.line, rec.raw, None, f"required field(s) {', '.join(absent)} empty; fill them in"
                             " the export", "missing_required")
        out.append(rec)
    return out, ""


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def load_file(engine: Any, fs: Any, path: str, entity: str, *, run_date: dt.date,
              loaded_at: dt.datetime) -> BatchResult:
    """Load one export file into its raw table (once per name and checksum).

    Every record is either landed or quarantined with its line, bytes and reason; a file that breaks
    the contract (or cannot be read) is refused alone: each of its lines is quarantined with the
    sentence saying why, and the result carries that sentence in ``notes``.
    """
    if entity not in CONTRACT:
        raise ContractError(f"{path}: unknown entity folder {entity!r}; use one of {', '.join(CONTRACT)}")
    raw_table, columns, _required = CONTRACT[entity]
    name = path.rsplit("/", 1)[-1]
    fmt = file_format(name)
    if fmt is None:
        raise ContractError(f"{path}: unknown file type; use {', '.join(FORMATS)}")
    with fs.open(path, "rb") as fh:
        data = fh.read()
    checksum = hashlib.sha256(data).hexdigest()
    batch_id = f"file.{entity}:{name}:{checksum[:12]}"
    result = BatchResult(batch_id=batch_id, table=raw_table, source_file=name)
    records, refused = read(name, data, entity)
    good: list[list[Any]] = []
    bad: list[tuple[Any, ...]] = []
    if refused:
        result.notes.append(refused)
        for line, raw in physical_records(data, fmt):
            bad.append((f"{name}:{line}", *as_received(raw), f"{refused} (file refused)", "file_refused"))
    for rec in records:
        if rec.fields is None:
            where = f"{name} {'record' if fmt == 'parquet' else 'line'} {rec.line}"
            bad.append((f"{name}:{rec.line}", *rec.received(), f"{where}: {rec.problem}", rec.code))
        else:
            good.append([*(_text(rec.fields.get(c)) for c in columns), batch_id, f"file:{name}", loaded_at])
    with engine.begin() as conn:
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": f"ingest:{batch_id}"})
        if batches.complete_batch(conn, batch_id):
            result.skipped = True
            return result
        result.rows_loaded = copy_rows(conn, raw_table, (*columns, "_batch_id", "_source", "_loaded_at"), good)
        rejected = [(raw_table, batch_id, ref, received, reason, run_date, code, encoding)
                    for ref, received, encoding, reason, code in bad]
        result.rows_quarantined = batches.quarantine_rows(conn, rejected) if rejected else 0
        result.rows_received = result.rows_loaded + result.rows_quarantined
        batches.record_batch(conn, result, source=f"file:{entity}", run_date=run_date, loaded_at=loaded_at,
                      checksum=checksum)
    return result


def ingest_folder(engine: Any, root: Any, *, run_date: dt.date, loaded_at: dt.datetime,
                  report: list[str] | None = None) -> list[BatchResult]:
    """Load every export under ``root``: a local folder, an fsspec URL such as s3://bucket/exports, or a
    path object carrying its own file system (Airflow's ObjectStoragePath, which takes its credentials
    from an Airflow connection)."""
    if hasattr(root, "fs") and hasattr(root, "path"):
        fs, base = root.fs, str(root.path)
    else:
        import fsspec

        fs, base = fsspec.core.url_to_fs(str(root))
    plan = scan(fs, base)
    for sentence in plan.unrecognised:
        log.warning("not loaded: %s", sentence)
    if report is not None:
        report.extend(plan.unrecognised)
    results = [load_file(engine, fs, path, entity, run_date=run_date, loaded_at=loaded_at)
               for path, entity in plan.files]
    for r in results:
        for note in r.notes:
            log.warning("refused: %s", note)
            if report is not None:
                report.append(note)
    return results
