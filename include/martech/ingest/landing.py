"""Ingest: land source data in ``raw.*``, incrementally, with ``COPY``.

Two kinds of source:

- **SQL tables** (any SQLAlchemy URL): rows with ``(updated_at, key) > watermark`` and
  ``updated_at < cutoff`` (the start of the run date, so a run never sees a half-written day) are
  streamed through a server-side cursor and copied into the raw table. Rows, the batch record and the
  advanced watermark commit in one transaction: a crash leaves the old watermark, and the rerun loads
  the same rows again exactly once.
- **Files** in a landing folder: each file is loaded once, recognised by name and checksum.

Every batch has a deterministic id, and a rerun of a complete batch loads nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from martech.db import copy_rows
from martech.ingest import batches
from martech.ingest.batches import BatchResult


@dataclass(frozen=True)
class SqlTable:
    """A source table pulled incrementally into a raw table."""

    name: str
    raw_table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    updated_at: str = "updated_at"
    optional: bool = False  # a source may not have it (e.g. a shop without cart tracking): skipped then


SHOP_TABLES: tuple[SqlTable, ...] = (
    SqlTable("customers", "raw.shop_customers",
             ("customer_id", "email", "first_name", "last_name", "country", "created_at", "updated_at",
              "deleted_at"), ("customer_id",)),
    SqlTable("products", "raw.shop_products",
             ("product_id", "sku", "name", "category", "price", "image_url", "created_at", "updated_at"),
             ("product_id",)),
    SqlTable("orders", "raw.shop_orders",
             ("order_id", "customer_id", "order_ts", "status", "currency", "total_amount", "coupon_code",
              "updated_at"), ("order_id",)),
    SqlTable("order_items", "raw.shop_order_items",
             ("order_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
             ("order_id", "line_no")),
    SqlTable("carts", "raw.shop_carts",
             ("cart_id", "customer_id", "status", "order_id", "currency", "created_at", "updated_at"),
             ("cart_id",), optional=True),
    SqlTable("cart_items", "raw.shop_cart_items",
             ("cart_id", "line_no", "product_id", "quantity", "unit_price", "updated_at"),
             ("cart_id", "line_no"), optional=True),
    SqlTable("web_sessions", "raw.shop_web_sessions", ("session_id", "customer_id", "contact_id", "started_at",
             "ended_at", "page_views", "product_views", "updated_at"), ("session_id",), optional=True),
    SqlTable("product_views", "raw.shop_product_views",
             ("session_id", "view_no", "product_id", "viewed_at", "updated_at"), ("session_id", "view_no"),
             optional=True),
)

CRM_CONTACT_COLUMNS: tuple[str, ...] = (
    "contact_id", "email", "first_name", "last_name", "birthday", "country", "timezone", "consent_status",
    "consent_updated_at", "lifecycle_status", "shop_customer_id", "created_at", "updated_at",
)
# Lead activity properties a CRM may export too (lead scoring uses them), and the contact's region
# (ISO 3166-2) and preferred language (ISO 639-1) for geo targeting; absent columns load as NULL.
CRM_OPTIONAL_COLUMNS: tuple[str, ...] = ("lead_source", "page_views", "email_opens", "form_submissions",
                                         "region", "language")

EMAIL_EVENT_FIELDS: tuple[str, ...] = (
    "sg_event_id", "event", "email", "timestamp", "sg_message_id", "url", "send_id", "campaign_id",
    "run_id", "contact_id",
)


def cutoff_for(run_date: dt.date) -> dt.datetime:
    """Rows updated before the start of the run date (UTC) belong to that run."""
    from martech.runs import Run

    return Run.daily(run_date).cutoff


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def ingest_sql_table(source: Engine, warehouse: Engine, table: SqlTable, *, source_schema: str,
                     run_date: dt.date, loaded_at: dt.datetime, source_name: str = "shop",
                     chunk_rows: int = 20_000, method: str = "auto", cutoff: dt.datetime | None = None,
                     batch_tag: str | None = None) -> BatchResult:
    """Pull one source table's changed rows into its raw table as one batch.

    ``cutoff`` (default: the start of ``run_date``) bounds ``updated_at``; a micro-batch pull passes a
    later instant and a ``batch_tag`` (e.g. ``2026-11-02T13``) that names its batch instead of the date.
    ``method``: ``insert`` (the source tables are in the warehouse's own database: one ``INSERT ...
    SELECT`` inside PostgreSQL, nothing leaves the server), ``copy`` (PostgreSQL sources: COPY out and
    in, streamed, no Python per row), ``stream`` (any SQLAlchemy source: server-side cursor), or ``auto``
    (``insert`` for the warehouse's own database, else ``copy`` when the source is PostgreSQL, else
    ``stream``). The result's ``seconds`` and ``cpu_seconds`` are the batch's wall time and this process's
    CPU time.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in METHODS)}, got {method!r}")
    if method == "auto":
        method = ("insert" if same_database(source, warehouse)
                  else "copy" if source.dialect.name == "postgresql" else "stream")
    t0, c0 = time.perf_counter(), time.process_time()
    batch_id = f"{source_name}.{table.name}:{batch_tag or run_date.isoformat()}"
    cutoff = cutoff or cutoff_for(run_date)
    result = BatchResult(batch_id=batch_id, table=table.raw_table)
    with warehouse.begin() as wconn:
        # Serialise every pull of the same table (a daily and an hourly batch share one watermark); a
        # second run of the same batch then sees it complete.
        wconn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:k))"),
                      {"k": f"ingest:{source_name}:{table.raw_table}"})
        if batches.complete_batch(wconn, batch_id):
            result.skipped = True
            return _timed(result, t0, c0)
        state = wconn.execute(
            sa.text("select watermark_ts, watermark_key from raw.ingest_state"
                    " where source = :s and table_name = :t"),
            {"s": source_name, "t": table.raw_table},
        ).first()
        wm_ts: Any = None
        wm_key: list[Any] = []
        if state and state[0] is not None:
            wm_ts, wm_key = state[0], json.loads(state[1])

        changes = _Changes(table, source_schema, cutoff, wm_ts, wm_key, (batch_id, source_name, loaded_at))
        if method == "insert":
            n, last = _insert_in_database(wconn, changes)
        elif method == "copy":
            n, last = _copy_between_postgres(source, wconn, changes)
        else:
            n, last = _stream_rows(source, wconn, changes, chunk_rows)
        result.rows_received = result.rows_loaded = n
        wm_from = json.dumps([_text(wm_ts), wm_key]) if wm_ts is not None else None
        if n:
            result.watermark_to = json.dumps([_text(last["ts"]), last["key"]], default=str)
            wconn.execute(
                sa.text(
                    "insert into raw.ingest_state (source, table_name, watermark_ts, watermark_key,"
                    " last_batch_id) values (:s, :t, :ts, :key, :b)"
                    " on conflict (source, table_name) do update set watermark_ts = excluded.watermark_ts,"
                    " watermark_key = excluded.watermark_key, last_batch_id = excluded.last_batch_id"
                ),
                {"s": source_name, "t": table.raw_table, "ts": last["ts"],
                 "key": json.dumps(last["key"], default=str), "b": batch_id},
            )
        else:
            result.watermark_to = wm_from
        batches.record_batch(wconn, result, source=source_name, run_date=run_date, loaded_at=loaded_at,
                      watermark_from=wm_from)
    return _timed(result, t0, c0)


METHODS = ("auto", "insert", "copy", "stream")


def _timed(result: BatchResult, t0: float, c0: float) -> BatchResult:
    result.seconds = time.perf_counter() - t0
    result.cpu_seconds = time.process_time() - c0
    return result


def same_database(source: Engine, warehouse: Engine) -> bool:
    """Whether ``source`` is the warehouse's own PostgreSQL database, reached as the same user."""
    if source is warehouse:
        return True
    a, b = source.url, warehouse.url
    return (source.dialect.name == warehouse.dialect.name == "postgresql"
            and (a.host, a.port or 5432, a.database, a.username) == (b.host, b.port or 5432, b.database, b.username))


@dataclass(frozen=True)
class _Changes:
    """The rows one pull lands: ``(updated_at, key)`` after the watermark and ``updated_at`` before the
    cutoff; ``meta`` is the batch id, source name and load time every landed row carries."""

    table: SqlTable
    schema: str
    cutoff: dt.datetime
    wm_ts: Any
    wm_key: list[Any]
    meta: tuple[str, str, dt.datetime]

    @property
    def position(self) -> str:
        """The columns that order the changes: the update time, then the key."""
        return ", ".join((self.table.updated_at, *self.table.key))

    def where(self) -> tuple[str, dict[str, Any]]:
        """The condition (``:name`` placeholders) and its parameters."""
        where = [f"{self.table.updated_at} < :cutoff"]
        params: dict[str, Any] = {"cutoff": self.cutoff}
        if self.wm_ts is not None:
            rhs = ", ".join([":wm_ts"] + [f":wm_k{i}" for i in range(len(self.table.key))])
            where.append(f"({self.position}) > ({rhs})")
            params["wm_ts"] = self.wm_ts
            params.update({f"wm_k{i}": v for i, v in enumerate(self.wm_key)})
        return " and ".join(where), params

    def select(self, columns: str, *, upto: Sequence[Any] | None = None, order: str = "") -> tuple[str, dict[str, Any]]:
        """``select <columns>`` of the changes (up to and including the position ``upto``), ``order``ed."""
        where, params = self.where()
        if upto is not None:
            bound = [f":top{i}" for i in range(len(upto))]
            where += f" and ({self.position}) <= ({', '.join(bound)})"
            params.update({f"top{i}": v for i, v in enumerate(upto)})
        sql = f"select {columns} from {self.schema}.{self.table.name} where {where}"
        return sql + (f" order by {order}" if order else ""), params

    def last(self, conn: Connection) -> Any:
        """The newest change's position (update time, key values) or None when nothing changed."""
        desc = ", ".join(f"{c} desc" for c in (self.table.updated_at, *self.table.key))
        sql, params = self.select(self.position, order=f"{desc} limit 1")
        return conn.execute(sa.text(sql), params).first()

    def as_text(self) -> str:
        """The source columns as text and the batch columns as parameters ``:_batch``, ``:_source``, ``:_loaded``."""
        return ", ".join([*(f"{c}::text" for c in self.table.columns),
                          ":_batch", ":_source", "cast(:_loaded as timestamptz)"])

    @property
    def meta_params(self) -> dict[str, Any]:
        return {"_batch": self.meta[0], "_source": self.meta[1], "_loaded": self.meta[2]}

    @property
    def raw_columns(self) -> str:
        return ", ".join((*self.table.columns, "_batch_id", "_source", "_loaded_at"))


def _stream_rows(source: Engine, wconn: Connection, changes: _Changes, chunk_rows: int) -> tuple[int, dict[str, Any]]:
    """Any SQLAlchemy source: a server-side cursor, each value rendered as text, COPY into raw."""
    table, meta = changes.table, changes.meta
    key_idx = [table.columns.index(k) for k in table.key]
    ts_idx = table.columns.index(table.updated_at)
    last: dict[str, Any] = {}
    sql, params = changes.select(", ".join(table.columns), order=changes.position)

    def rows() -> Iterator[Sequence[Any]]:
        with source.connect() as sconn:
            stream = sconn.execution_options(stream_results=True, yield_per=chunk_rows).execute(sa.text(sql), params)
            for row in stream:
                last["ts"], last["key"] = row[ts_idx], [row[i] for i in key_idx]
                yield [*(_text(v) for v in row), *meta]

    n = copy_rows(wconn, table.raw_table, (*table.columns, "_batch_id", "_source", "_loaded_at"), rows())
    return n, last


def _insert_in_database(wconn: Connection, changes: _Changes) -> tuple[int, dict[str, Any]]:
    """The source tables live in the warehouse's database: ``INSERT ... SELECT`` in the landing transaction.

    The high-water mark is read first and bounds the insert, so the rows landed and the watermark agree
    even while the shop keeps writing between the two statements.
    """
    top = changes.last(wconn)
    if top is None:
        return 0, {}
    wconn.execute(sa.text("set local timezone = 'UTC'"))  # timestamps as text in UTC, as the COPY path writes them
    sql, params = changes.select(changes.as_text(), upto=tuple(top))
    n = wconn.execute(sa.text(f"insert into {changes.table.raw_table} ({changes.raw_columns}) {sql}"),
                      {**params, **changes.meta_params}).rowcount
    return n, {"ts": top[0], "key": list(top[1:])}


def _copy_between_postgres(source: Engine, wconn: Connection, changes: _Changes) -> tuple[int, dict[str, Any]]:
    """A PostgreSQL source: COPY out of the source streamed into COPY into raw, no Python per row.

    The high-water mark and the copied rows come from one repeatable-read snapshot of the source, so
    they agree even while the shop keeps writing. The source's COPY runs on a thread of its own and
    writes into a pipe the warehouse's COPY reads from, so both servers work at once.
    """
    with source.connect() as sconn:
        sconn = sconn.execution_options(isolation_level="REPEATABLE READ")
        with sconn.begin():
            sconn.execute(sa.text("set local timezone = 'UTC'"))
            top = changes.last(sconn)
            if top is None:
                return 0, {}
            sql, params = changes.select(changes.as_text())
            with sconn.connection.dbapi_connection.cursor() as scur:  # type: ignore[union-attr]
                # COPY takes no parameters: render the bound query once.
                inner = scur.mogrify(_pyformat(sql), {**params, **changes.meta_params}).decode()
                copy_in = f"copy {changes.table.raw_table} ({changes.raw_columns}) from stdin with (format csv)"
                with wconn.connection.dbapi_connection.cursor() as wcur:  # type: ignore[union-attr]
                    n = _pipe_copy(lambda out: scur.copy_expert(f"copy ({inner}) to stdout with (format csv)", out),
                                   lambda src: wcur.copy_expert(copy_in, src, size=1 << 16), wcur)
    return n, {"ts": top[0], "key": list(top[1:])}


def _pipe_copy(copy_out: Any, copy_in: Any, in_cursor: Any) -> int:
    """Run ``copy_out(writer)`` on a thread into a pipe that ``copy_in(reader)`` reads; the rows copied in.

    A failure on either side fails the whole: the other side sees the pipe closed, and the thread's
    error is raised even when the reader already saw an end (a partial COPY never commits).
    """
    import os
    import threading

    read_fd, write_fd = os.pipe()
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=1 << 20) as out:
                copy_out(out)
        except BaseException as exc:  # handed to the caller below
            failed.append(exc)

    thread = threading.Thread(target=produce, name="copy-out", daemon=True)
    thread.start()
    try:
        with os.fdopen(read_fd, "rb") as src:
            copy_in(src)
    except BaseException:
        thread.join()
        if failed and not isinstance(failed[0], BrokenPipeError):  # the source failed first: the cause
            raise failed[0] from None
        raise  # the warehouse's COPY failed first (the writer then found the pipe closed)
    thread.join()
    if failed:
        raise failed[0]
    return int(in_cursor.rowcount)


def _pyformat(sql: str) -> str:
    """SQLAlchemy's :name placeholders as psycopg2's %(name)s."""
    import re

    return re.sub(r"(?<!:):([a-z_][a-z0-9_]*)", r"%(\1)s", sql)


def ingest_shop(source: Engine, warehouse: Engine, *, source_schema: str, run_date: dt.date,
                loaded_at: dt.datetime, tables: Sequence[str] | None = None, cutoff: dt.datetime | None = None,
                batch_tag: str | None = None) -> list[BatchResult]:
    """Pull the shop tables (all of SHOP_TABLES, or the named ones) incrementally; optional ones may be absent."""
    import sqlalchemy as sa

    present = set(sa.inspect(source).get_table_names(schema=source_schema))
    wanted = set(tables) if tables is not None else {t.name for t in SHOP_TABLES}
    return [
        ingest_sql_table(source, warehouse, t, source_schema=source_schema, run_date=run_date,
                         loaded_at=loaded_at, cutoff=cutoff, batch_tag=batch_tag)
        for t in SHOP_TABLES
        if t.name in wanted and (not t.optional or t.name in present)
    ]


# -- files --------------------------------------------------------------------------------------------

def _checksum(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_file(warehouse: Engine, path: Path, *, table: str, source: str, run_date: dt.date,
               loaded_at: dt.datetime, parse: Any) -> BatchResult:
    checksum = _checksum(path)
    batch_id = f"{table}:{path.name}:{checksum[:12]}"
    result = BatchResult(batch_id=batch_id, table=table, source_file=path.name)
    with warehouse.begin() as conn:
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext(:k))"), {"k": f"ingest:{batch_id}"})
        if batches.complete_batch(conn, batch_id):
            result.skipped = True
            return result
        good, bad = parse(path, batch_id, source, loaded_at)
        result.rows_loaded = copy_rows(conn, table, good[0], good[1])
        rejected = [(table, batch_id, ref, received, reason, run_date, *extra) for ref, received, reason, *extra in bad]
        result.rows_quarantined = batches.quarantine_rows(conn, rejected) if rejected else 0
        result.rows_received = result.rows_loaded + result.rows_quarantined
        batches.record_batch(conn, result, source=source, run_date=run_date, loaded_at=loaded_at,
                      checksum=checksum)
    return result


def _bad(path: Path, rec: Any) -> tuple[str, ...]:
    """A quarantine entry (source ref, received, reason, code, encoding) for an unreadable record."""
    received, encoding = rec.received()
    return (f"{path.name}:{rec.line}", received, f"{path.name} line {rec.line}: {rec.problem}", rec.code, encoding)


def _parse_crm_csv(path: Path, batch_id: str, source: str, loaded_at: dt.datetime):
    from martech.ingest.exports import read_csv

    header, records = read_csv(path.read_bytes())
    missing = [c for c in CRM_CONTACT_COLUMNS if c not in header]
    unknown = [c for c in header if c not in CRM_CONTACT_COLUMNS and c not in CRM_OPTIONAL_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise ValueError(
            f"{path}: header must name the columns {','.join(CRM_CONTACT_COLUMNS)} (any order), optionally"
            f" {','.join(CRM_OPTIONAL_COLUMNS)}; missing: {','.join(missing) or '-'};"
            f" unknown: {','.join(unknown) or '-'}; got {','.join(header)}")
    columns = (*CRM_CONTACT_COLUMNS, *CRM_OPTIONAL_COLUMNS)
    good: list[list[Any]] = []
    bad: list[tuple[str, ...]] = []
    for rec in records:
        if rec.fields is None:
            bad.append(_bad(path, rec))
            continue
        values = [rec.fields.get(c) or None for c in columns]
        good.append([*values, path.name, rec.line, batch_id, source, loaded_at])
    cols = (*columns, "_source_file", "_line_no", "_batch_id", "_source", "_loaded_at")
    return (cols, good), bad


def _parse_events_jsonl(path: Path, batch_id: str, source: str, loaded_at: dt.datetime):
    from martech.ingest.exports import read_jsonl

    good: list[list[Any]] = []
    bad: list[tuple[str, ...]] = []
    for rec in read_jsonl(path.read_bytes()):
        if rec.fields is None:
            bad.append(_bad(path, rec))
            continue
        event = rec.fields
        try:
            payload = json.dumps(event, sort_keys=True, allow_nan=False)
        except ValueError:  # 1e400, NaN, Infinity: Python reads them, jsonb (and JSON itself) cannot hold them
            rec.problem = ("a number is not finite (NaN, Infinity or out of range such as 1e400); JSON cannot"
                           " hold it: fix the feed and send the event again")
            rec.code = "invalid_number"
            bad.append(_bad(path, rec))
            continue
        good.append([*(_text(event.get(f)) for f in EMAIL_EVENT_FIELDS),
                     payload, path.name, rec.line, batch_id, source, loaded_at])
    cols = ("sg_event_id", "event", "email", "event_timestamp", "sg_message_id", "url", "send_id",
            "campaign_id", "run_id", "contact_id", "payload", "_source_file", "_line_no", "_batch_id",
            "_source", "_loaded_at")
    return (cols, good), bad


def export_files(folder: Path, prefix: str, extension: str) -> list[Path]:
    """Files in ``folder`` named ``<prefix>_*`` or ``<prefix>-*`` with ``extension``, regardless of case
    (``Contacts_2026.CSV``), sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == extension
                  and p.name.lower()[:len(prefix) + 1] in (prefix + "_", prefix + "-"))


def unrecognised_files(folder: Path, known: Sequence[Path]) -> list[str]:
    """Sentences for files in ``folder`` that are not loaded (hidden files excepted)."""
    if not folder.is_dir():
        return []
    return [f"{p.name}: not loaded; name exports like contacts_<date>.csv or events_<date>.jsonl"
            for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".") and p not in known]


def _load_exports(warehouse: Engine, folder: Path, prefix: str, suffix: str, **load: Any) -> list[BatchResult]:
    """Every ``<prefix>_*<suffix>`` file in ``folder`` not loaded before, oldest first (``load``: _load_file's)."""
    return [_load_file(warehouse, p, **load) for p in export_files(folder, prefix, suffix)]


def ingest_crm_exports(warehouse: Engine, folder: Path, *, run_date: dt.date,
                       loaded_at: dt.datetime) -> list[BatchResult]:
    """Load every CRM contacts export in ``folder`` not loaded before, oldest first."""
    return _load_exports(warehouse, folder, "contacts", ".csv", table="raw.crm_contacts", source="crm_export",
                         run_date=run_date, loaded_at=loaded_at, parse=_parse_crm_csv)


def ingest_email_events(warehouse: Engine, folder: Path, *, run_date: dt.date,
                        loaded_at: dt.datetime) -> list[BatchResult]:
    """Load every email-event feed file in ``folder`` not loaded before, oldest first."""
    return _load_exports(warehouse, folder, "events", ".jsonl", table="raw.email_events", source="esp_events",
                         run_date=run_date, loaded_at=loaded_at, parse=_parse_events_jsonl)
