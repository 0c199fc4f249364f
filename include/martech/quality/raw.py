"""The data-quality gate on the raw landing tables: the raw suite and its validation.

What is checked is declared as data in :func:`suites`: one list of
:class:`~martech.quality.expectations.ExpectationSpec` per raw table, built from the shared vocabulary
in :mod:`martech.quality.expectations`. Adding a check is adding one line there.

Single bad rows never stop the chain: staging quarantines, corrects or merges them with a reason
(``raw.quarantine``, ``staging.corrections``, ``staging.identity_merges``). So a critical row-level
expectation (a format, a required value, a key unique in its batch, a value set) fails only when more
than ``MAX_BAD_ROW_SHARE`` of the run's rows break it, which means the extract or the source is broken,
not a row. Below the threshold it is recorded as a warning, with its count and a sample. Schema checks
(the column set of every raw table) are critical at any count; batch checks (freshness of the newest
``updated_at``, the size of full-export batches against the trailing ones) are warnings.

:func:`validate_raw` validates the rows of this run's batches (``_batch_id``) where they are: GX's SQL
data source runs each table's checks in PostgreSQL, so only counts and samples of unexpected values reach
Python, whatever the number of rows. The one summary row per batch (size, newest ``updated_at``) is
read into pandas. Every table is validated in one GX context (:mod:`martech.quality.gx_runner`, which
also renders the Data Docs). The report is written to
``kpis.data_quality`` and gated by :mod:`martech.quality.results`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from martech.quality.expectations import (
    BATCH_COLUMN,
    CONSENT_STATUSES,
    COUNTRY_RE,
    CURRENCY_RE,
    INTEGER_RE,
    LIFECYCLE_STATUSES,
    ORDER_STATUSES,
    TIMEZONE_RE,
    ExpectationSpec,
    batch_size_drift,
    columns_are,
    date,
    email,
    fresh,
    integer,
    matches,
    max_bad_row_share,
    non_negative_number,
    not_null,
    one_of,
    timestamp,
    unique_in_batch,
    with_history,
    with_threshold,
)
from martech.quality.gx_runner import SqlRows, run_suites
from martech.quality.results import QualityReport

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("martech.quality.raw")

# Raw tables whose newest updated_at says whether the source is alive. Not the product catalogue: it can
# go weeks without a change.
FRESH_TABLES = ("shop_customers", "shop_orders", "shop_order_items", "shop_carts", "shop_cart_items",
                "shop_web_sessions", "shop_product_views", "crm_contacts")
# Full exports (every row, every time) have a normal size; incremental pulls do not (the first run loads
# the history, later ones a day's changes), so batch-size drift is only judged for these.
FULL_EXPORT_TABLES = ("crm_contacts",)
TRAILING_BATCHES = 5


def raw_columns() -> dict[str, tuple[str, ...]]:
    """The column contract of each raw table: what ingest writes (source columns plus load metadata)."""
    from martech.ingest.connectors._land import META_COLUMNS
    from martech.ingest.connectors.hubspot import OBJECTS
    from martech.ingest.connectors.shopify import RESOURCES
    from martech.ingest.landing import CRM_CONTACT_COLUMNS, CRM_OPTIONAL_COLUMNS, SHOP_TABLES

    meta = (BATCH_COLUMN, "_source", "_loaded_at")
    out = {t.raw_table: (*t.columns, *meta) for t in SHOP_TABLES}
    out["raw.crm_contacts"] = (*CRM_CONTACT_COLUMNS, *CRM_OPTIONAL_COLUMNS, "_source_file", "_line_no", *meta)
    for api in (*OBJECTS.values(), *RESOURCES.values()):
        out[api.raw_table] = (*(c for c, _ in api.columns), *META_COLUMNS)  # type: ignore[attr-defined]
    return out


def _api_suites() -> dict[str, list[ExpectationSpec]]:
    """HubSpot and Shopify landings: every record has its id, and no page landed twice in a batch."""
    from martech.ingest.connectors.hubspot import OBJECTS
    from martech.ingest.connectors.shopify import RESOURCES

    out: dict[str, list[ExpectationSpec]] = {}
    for obj in OBJECTS.values():
        key = obj.columns[0][0]
        out[obj.raw_table] = [not_null(key), unique_in_batch(key, obj.modified)]
    for res in RESOURCES.values():
        key = res.columns[0][0]
        out[res.raw_table] = [not_null(key), unique_in_batch(key, "updated_at"), timestamp("updated_at")]
    return out


def suites() -> dict[str, list[ExpectationSpec]]:
    """The expectations per raw table. Extend here."""
    rows: dict[str, list[ExpectationSpec]] = {
        "raw.shop_customers": [
            not_null("customer_id"), unique_in_batch("customer_id"), integer("customer_id"),
            not_null("email", critical=False, fix="customers without an email cannot be reached"),
            email(),
            matches("country", COUNTRY_RE, critical=False, fix="country must be an ISO-3166 alpha-2 code"),
            timestamp("created_at"), timestamp("updated_at"), timestamp("deleted_at"),
        ],
        "raw.shop_products": [
            not_null("product_id"), unique_in_batch("product_id"), integer("product_id"),
            not_null("sku", critical=False), not_null("name", critical=False),
            not_null("category", critical=False, fix="products without a category count as Uncategorised"),
            non_negative_number("price"),
            timestamp("created_at"), timestamp("updated_at"),
        ],
        "raw.shop_orders": [
            not_null("order_id"), unique_in_batch("order_id"), integer("order_id"),
            not_null("customer_id"), integer("customer_id"),
            not_null("order_ts"), timestamp("order_ts"),
            not_null("status"), one_of("status", ORDER_STATUSES, critical=True),
            matches("currency", CURRENCY_RE, critical=False, fix="currency must be an ISO-4217 code"),
            not_null("total_amount"),
            non_negative_number("total_amount", handled=(
                "staging parses amounts written as text ('€1,234.50', recorded in staging.corrections) and "
                "quarantines the rest (raw.quarantine)")),
            timestamp("updated_at"),
        ],
        "raw.shop_order_items": [
            not_null("order_id"), not_null("line_no"), unique_in_batch("order_id", "line_no"),
            integer("order_id"), integer("line_no"),
            not_null("product_id", critical=False), integer("product_id"),
            not_null("quantity"), matches("quantity", INTEGER_RE, critical=True,
                                          fix="quantity must be a whole number >= 0"),
            not_null("unit_price"), non_negative_number("unit_price"),
            timestamp("updated_at"),
        ],
        "raw.crm_contacts": [
            not_null("contact_id"), unique_in_batch("contact_id", fix=(
                "each export file must hold a contact once; ask the CRM team for a corrected export")),
            not_null("email", critical=False, fix="contacts without an email cannot be reached"),
            email(),
            date("birthday", handled="staging sets impossible birthdays to unknown (staging.corrections)"),
            matches("country", COUNTRY_RE, critical=False, fix="country must be an ISO-3166 alpha-2 code"),
            matches("timezone", TIMEZONE_RE, critical=False, fix="timezone must be an IANA name"),
            one_of("consent_status", CONSENT_STATUSES, critical=True, handled=(
                "staging treats unknown consent values as 'unknown', never mailed (staging.corrections)")),
            timestamp("consent_updated_at"),
            one_of("lifecycle_status", LIFECYCLE_STATUSES, critical=False),
            integer("shop_customer_id"),
            timestamp("created_at", handled="staging reads zone-less times as UTC and quarantines the rest"),
            timestamp("updated_at", handled="staging reads zone-less times as UTC and quarantines the rest"),
        ],
    }
    rows.update(_api_suites())
    out: dict[str, list[ExpectationSpec]] = {}
    for table, columns in raw_columns().items():
        name = table.split(".")[1]
        specs = [columns_are(columns), *rows.get(table, [])]
        if name in FRESH_TABLES:
            specs.append(fresh())
        if name in FULL_EXPORT_TABLES:
            specs.append(batch_size_drift())
        out[table] = specs
    return out


# -- validation -----------------------------------------------------------------------------------------

_NOT_LOADED = ("_source", "_loaded_at", "_source_file", "_line_no")  # kept as names only: never checked
_DATED = r"^\s*\d{4}-\d{2}-\d{2}"  # what can be the newest updated_at; other text is the row checks' job


def _table_name(name: str) -> str:
    return name if "." in name else f"raw.{name}"


def _columns(conn: Connection, table: str) -> list[str]:
    import sqlalchemy as sa

    schema, name = table.split(".")
    return list(conn.execute(sa.text(
        "select column_name from information_schema.columns"
        " where table_schema = :s and table_name = :t order by ordinal_position"), {"s": schema, "t": name}
    ).scalars())


def _literal(text: str) -> str:
    """``text`` as a SQL expression with no quote or colon in it (GX hands its query to ``sa.text``)."""
    return f"convert_from(decode('{text.encode().hex()}', 'hex'), 'UTF8')"


def _rows(conn: Connection, table: str, batch_ids: list[str] | None, *, rows: bool = True) -> SqlRows:
    """The table's rows (of the given batches) as a query GX runs in PostgreSQL, plus ``_batch_id``.

    Load metadata other than ``_batch_id`` comes back as empty columns: the column-set check sees every
    name, no check reads the values. ``rows=False`` selects the columns only. Nothing is fetched here.
    """
    cols = _columns(conn, table)
    select = ", ".join(f"null::text as {c}" if c in _NOT_LOADED else c for c in cols)
    sql = f"select {select} from {table}"
    if not rows:
        sql += " limit 0"
    elif batch_ids is not None:
        sql += f" where {BATCH_COLUMN} = any(array[{', '.join(_literal(b) for b in batch_ids)}]::text[])"
    return SqlRows(url=conn.engine.url.render_as_string(hide_password=False), query=sql)


def _load_batches(conn: Connection, table: str, batch_ids: list[str] | None, cutoff: dt.datetime
                  ) -> pd.DataFrame:
    """One row per batch of the run: batch_id, rows, newest_updated_at and its age in days at the cutoff."""
    import pandas as pd
    import sqlalchemy as sa

    newest = (f"max(t.updated_at) filter (where t.updated_at ~ '{_DATED}')"
              if "updated_at" in _columns(conn, table) else "null::text")
    if batch_ids is None:
        sql = (f"select t.{BATCH_COLUMN} as batch_id, count(*) as rows, {newest} as newest"
               f" from {table} as t group by t.{BATCH_COLUMN} order by 1")
        params: dict[str, Any] = {}
    else:  # batches that landed no row still count (an empty incremental pull is a stale source)
        sql = (f"select b.batch_id, count(t.{BATCH_COLUMN}) as rows, {newest} as newest"
               f" from unnest(cast(:ids as text[])) as b (batch_id)"
               f" left join {table} as t on t.{BATCH_COLUMN} = b.batch_id group by b.batch_id order by 1")
        params = {"ids": list(batch_ids)}
    frame = pd.DataFrame(conn.execute(sa.text(sql), params).all(), columns=["batch_id", "rows", "newest"])
    stamps = pd.to_datetime(frame["newest"], utc=True, format="ISO8601", errors="coerce")
    frame["newest_updated_at"] = stamps
    frame["age_days"] = ((pd.Timestamp(cutoff) - stamps).dt.total_seconds() / 86400).round(2)
    frame["rows"] = frame["rows"].astype("int64")
    return frame.drop(columns=["newest"])


def _batch_history(conn: Connection, table: str, run_date: dt.date) -> list[int]:
    """Rows of the table's complete batches of earlier run dates, newest first."""
    import sqlalchemy as sa

    return [int(n) for n in conn.execute(sa.text(
        "select rows_loaded from raw.ingest_batches where table_name = :t and run_date < :d"
        " order by run_date desc, loaded_at desc limit :n"),
        {"t": table, "d": run_date, "n": TRAILING_BATCHES}).scalars()]


def validate_raw(engine: Engine, batch_ids: dict[str, list[str]] | None, run_id: str,
                 run_date: dt.date, *, tables: Mapping[str, Sequence[ExpectationSpec]] | None = None,
                 max_bad_share: float | str | None = None) -> QualityReport:
    """Validate the raw tables' rows of this run against :func:`suites`, in one GX context.

    ``batch_ids`` maps a raw table (``raw.shop_orders`` or ``shop_orders``) to the batch ids this run
    loaded; a table without batches is skipped (nothing landed). ``None`` validates every row of every
    table (uniqueness still holds per batch). ``tables`` overrides the suites (tests, ad-hoc checks).
    ``max_bad_share`` overrides :func:`max_bad_row_share` (the env, else :data:`MAX_BAD_ROW_SHARE`).
    """
    import time

    import sqlalchemy as sa

    from martech.ingest.landing import cutoff_for

    t0 = time.perf_counter()
    share = max_bad_row_share(max_bad_share)
    declared = {_table_name(k): list(v) for k, v in (tables if tables is not None else suites()).items()}
    wanted = None if batch_ids is None else {_table_name(k): list(v) for k, v in batch_ids.items()}
    for table in sorted(set(wanted or ()) - set(declared)):
        log.info("data quality: no suite for %s; its batches are not validated", table)

    frames: dict[tuple[str, str], pd.DataFrame | SqlRows] = {}
    specs_for: dict[str, list[ExpectationSpec]] = {}
    rows: dict[str, int] = {}
    with engine.connect() as conn:
        for table, specs in declared.items():
            if wanted is not None and not wanted.get(table):
                continue
            if conn.execute(sa.text("select to_regclass(:t)"), {"t": table}).scalar() is None:
                log.warning("data quality: %s does not exist; skipped", table)
                continue
            ids = None if wanted is None else wanted[table]
            history = _batch_history(conn, table, run_date) if any(s.trailing for s in specs) else []
            specs = [with_history(with_threshold(s, share), history) for s in specs]
            per_row = any(s.on == "rows" and s.expectation != "expect_table_columns_to_match_set" for s in specs)
            frames[(table, "rows")] = _rows(conn, table, ids, rows=per_row)
            batches = _load_batches(conn, table, ids, cutoff_for(run_date))
            if any(s.on == "batches" for s in specs):
                frames[(table, "batches")] = batches
            specs_for[table] = specs
            rows[table] = int(batches["rows"].sum())

    report = QualityReport(run_id=run_id, results=[], rows=rows, run_date=run_date)
    if frames:
        run_suites(specs_for, frames, report)
    report.seconds = time.perf_counter() - t0
    log.info("data quality: validated %s table(s) in %.2f s", len(rows), report.seconds)
    return report
