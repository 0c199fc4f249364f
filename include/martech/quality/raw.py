"""The data-quality gate on the raw landing tables, with Great Expectations 1.x.

What is checked is declared as data in :func:`suites`: one list of :class:`ExpectationSpec` per raw
table. A spec names a GX expectation (snake case, e.g. ``expect_column_values_to_not_be_null``), its
arguments, whether a failure is *critical* (stops the pipeline) or a *warning* (recorded and logged),
what staging does with the rows it catches, and what to do about a failure. Adding a check is adding
one line there.

Single bad rows never stop the chain: staging quarantines, corrects or merges them with a reason
(``raw.quarantine``, ``staging.corrections``, ``staging.identity_merges``). So a critical row-level
expectation (a format, a required value, a key unique in its batch, a value set) is validated with
GX's ``mostly``: it fails only when more than :data:`MAX_BAD_ROW_SHARE` of the run's rows break it
(``MARTECH_MAX_BAD_ROW_SHARE`` overrides it), which means the extract or the source is broken, not a
row. Below the threshold it is recorded as a warning, with its count and a sample. Schema checks (the
column set of every raw table) are critical at any count; batch checks (freshness of the newest
``updated_at``, the size of full-export batches against the trailing ones) are warnings.

:func:`validate_raw` reads the rows of this run's batches (``_batch_id``) from each raw table into
pandas plus one summary row per batch, and validates every table in one GX context. ``great_expectations``
is imported there and only there: importing it costs ~10 s, so never import it at DAG-parse time, and
validate all tables in one call. Every validation (raw, staging, the audience gate) also renders GX Data
Docs into :func:`martech.paths.data_docs_dir` (``index.html``). :func:`record_results` writes
``kpis.data_quality`` (idempotent per run id) and :func:`check` raises :class:`DataQualityError` when a
critical expectation failed.

All raw columns are text as received; checks that a value can be cast use regular expressions that
accept what PostgreSQL's casts in ``staging`` accept (surrounding blanks included). Nulls are never
"unexpected" for a format check; not-null checks say where a value is required.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("martech.quality.raw")

RESULTS_TABLE = "kpis.data_quality"
SAMPLE_SIZE = 5
BATCH_COLUMN = "_batch_id"

# -- what a value must look like ------------------------------------------------------------------------

_B = r"\s*"  # PostgreSQL's casts ignore surrounding blanks, and so do we
INTEGER_RE = rf"^{_B}\+?\d+{_B}$"
NON_NEGATIVE_NUMBER_RE = rf"^{_B}\+?(?:\d+(?:\.\d*)?|\.\d+){_B}$"
_DATE = r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
DATE_RE = rf"^{_B}{_DATE}{_B}$"
_TIME = r"(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?"
_OFFSET = r"(?:Z|[+-][01]\d(?::?[0-5]\d)?)"
TIMESTAMP_RE = rf"^{_B}{_DATE}(?:[T ]{_TIME})?{_B}{_OFFSET}?{_B}$"
EMAIL_RE = (
    rf"^{_B}[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@"
    rf"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{{2,}}{_B}$"
)
COUNTRY_RE = rf"^{_B}[A-Za-z]{{2}}{_B}$"
CURRENCY_RE = rf"^{_B}[A-Za-z]{{3}}{_B}$"
TIMEZONE_RE = rf"^{_B}(?:UTC|[A-Za-z]+(?:/[A-Za-z0-9_+-]+)+){_B}$"


def one_of_re(values: Iterable[str]) -> str:
    """A regex for "one of these words", case-insensitive and blank-tolerant (staging lower-cases)."""
    words = "|".join(re.escape(v) for v in values)
    return rf"^{_B}(?i:{words}){_B}$"


ORDER_STATUSES = ("completed", "refunded", "cancelled")
CONSENT_STATUSES = ("opted_in", "double_opt_in", "opted_out", "unknown")
LIFECYCLE_STATUSES = ("lead", "customer", "other")


# -- declarations ---------------------------------------------------------------------------------------

MAX_BAD_ROW_SHARE = 0.05
MAX_BAD_ROW_SHARE_ENV = "MARTECH_MAX_BAD_ROW_SHARE"
# Raw tables whose newest updated_at says whether the source is alive. Not the product catalogue: it can
# go weeks without a change.
FRESHNESS_DAYS = 3
FRESH_TABLES = ("shop_customers", "shop_orders", "shop_order_items", "shop_carts", "shop_cart_items",
                "shop_web_sessions", "shop_product_views", "crm_contacts")
# Full exports (every row, every time) have a normal size; incremental pulls do not (the first run loads
# the history, later ones a day's changes), so batch-size drift is only judged for these.
FULL_EXPORT_TABLES = ("crm_contacts",)
DRIFT_BOUNDS = (0.75, 1.5)
TRAILING_BATCHES = 5
MIN_HISTORY = 3

# GX expectations that judge rows one by one (they take ``mostly``); the rest judge a table or a batch.
ROW_LEVEL = frozenset({
    "expect_column_values_to_not_be_null", "expect_column_values_to_match_regex",
    "expect_column_values_to_be_in_set", "expect_column_values_to_be_between",
    "expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique",
})

QUARANTINED = "staging quarantines these rows with the reason (raw.quarantine)"


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation on one table, declared as data.

    ``expectation`` is GX's snake-case name; ``column`` is what the report calls the checked column(s)
    (for column expectations it is also passed as GX's ``column`` unless ``kwargs`` has one).
    Per table, (expectation, column) must be unique: it is part of ``kpis.data_quality``'s key.
    ``on`` says what is validated: the table's ``rows`` (of the run's batches), or its ``batches``
    (one row per batch: ``batch_id``, ``rows``, ``newest_updated_at``, ``age_days``). ``handled`` says
    what staging does with rows that break it (shown while their share is under the threshold);
    ``trailing`` marks a batch-size check whose bounds come from the table's previous batches.
    """

    expectation: str
    column: str | None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    critical: bool = True
    fix: str = ""
    on: Literal["rows", "batches"] = "rows"
    handled: str = QUARANTINED
    trailing: bool = False

    def gx_kwargs(self) -> dict[str, Any]:
        out = dict(self.kwargs)
        if self.column is not None and "column" not in out and "column_list" not in out:
            out["column"] = self.column
        return out

    @property
    def row_level(self) -> bool:
        return self.on == "rows" and self.expectation in ROW_LEVEL


def max_bad_row_share(value: str | float | None = None) -> float:
    """The share of bad rows a critical row-level check tolerates: ``value``, the env, or the default.

    Accepts 0.05 or 5%; 0 makes every bad row critical.
    """
    raw = os.environ.get(MAX_BAD_ROW_SHARE_ENV, "") if value is None else value
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return MAX_BAD_ROW_SHARE
        try:
            share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"{MAX_BAD_ROW_SHARE_ENV}={raw!r} is not a share; use e.g. 0.05 or 5%") from None
    else:
        share = float(raw)
    if not 0 <= share <= 1:
        raise ValueError(f"{MAX_BAD_ROW_SHARE_ENV} must be between 0 and 1 (or 0% and 100%), got {raw!r}")
    return share


def with_threshold(spec: ExpectationSpec, share: float) -> ExpectationSpec:
    """The spec with GX's ``mostly`` set so that up to ``share`` of the rows may break it.

    Only critical row-level specs get one: warnings are recorded at any count anyway, and table or batch
    checks have no rows to share out. A spec that declares its own ``mostly`` keeps it.
    """
    if not (spec.critical and spec.row_level) or share <= 0 or "mostly" in spec.kwargs:
        return spec
    return replace(spec, kwargs={**spec.kwargs, "mostly": round(1.0 - share, 9)})


def not_null(column: str, *, critical: bool = True, fix: str = "", handled: str = QUARANTINED
             ) -> ExpectationSpec:
    return ExpectationSpec("expect_column_values_to_not_be_null", column, critical=critical,
                           fix=fix or f"every row needs a {column}; fix the source or its extract",
                           handled=handled)


def unique_in_batch(*key: str, fix: str = "") -> ExpectationSpec:
    """Key columns unique within each load batch (raw keeps every version across batches)."""
    return ExpectationSpec(
        "expect_compound_columns_to_be_unique", ", ".join(key),
        {"column_list": [BATCH_COLUMN, *key]}, critical=True,
        fix=fix or f"one load must hold each {', '.join(key)} once; deduplicate the extract and reload",
        handled="staging keeps one row per key and counts the copies (exact copies are merged)",
    )


def matches(column: str, regex: str, *, critical: bool, fix: str, handled: str = QUARANTINED) -> ExpectationSpec:
    return ExpectationSpec("expect_column_values_to_match_regex", column, {"regex": regex},
                           critical=critical, fix=fix, handled=handled)


def integer(column: str, *, critical: bool = True) -> ExpectationSpec:
    return matches(column, INTEGER_RE, critical=critical,
                   fix=f"{column} must be a whole number (staging casts it to an integer)")


def non_negative_number(column: str, *, handled: str = QUARANTINED) -> ExpectationSpec:
    return matches(column, NON_NEGATIVE_NUMBER_RE, critical=True,
                   fix=f"{column} must be a number >= 0 such as 12.50 (no sign, no currency symbol, "
                       "'.' as decimal point); correct the source rows", handled=handled)


def timestamp(column: str, *, critical: bool = True, handled: str = QUARANTINED) -> ExpectationSpec:
    return matches(column, TIMESTAMP_RE, critical=critical,
                   fix=f"{column} must be an ISO-8601 timestamp such as 2026-01-31T09:30:00+00:00",
                   handled=handled)


def date(column: str, *, critical: bool = True, handled: str = QUARANTINED) -> ExpectationSpec:
    return matches(column, DATE_RE, critical=critical, fix=f"{column} must be a date YYYY-MM-DD or empty",
                   handled=handled)


def email(column: str = "email") -> ExpectationSpec:
    return matches(column, EMAIL_RE, critical=True,
                   fix=f"{column} must be an address like name@example.com; correct or blank it at the"
                       " source",
                   handled="staging quarantines the rows whose address does not parse (raw.quarantine)")


def one_of(column: str, values: Sequence[str], *, critical: bool, handled: str = QUARANTINED) -> ExpectationSpec:
    return matches(column, one_of_re(values), critical=critical,
                   fix=f"{column} must be one of {', '.join(values)} (case-insensitive); map new values in "
                       "the source or extend the list in martech.quality.raw", handled=handled)


def columns_are(columns: Sequence[str]) -> ExpectationSpec:
    """The table has exactly these columns: a source that renamed, dropped or added one stops the chain."""
    return ExpectationSpec(
        "expect_table_columns_to_match_set", None, {"column_set": list(columns), "exact_match": True},
        critical=True, handled="",
        fix="the raw table's columns differ from the contract in martech.ingest.landing: map the source's new "
            "columns in ingest and staging (and the raw DDL in include/sql/raw), or restore the source")


def fresh(days: int = FRESHNESS_DAYS) -> ExpectationSpec:
    """The newest updated_at of the run's batches is at most ``days`` before the run's cutoff."""
    return ExpectationSpec(
        "expect_column_min_to_be_between", "updated_at", {"column": "age_days", "max_value": days},
        critical=False, on="batches", handled="",
        fix=f"no row of this run's batches was updated in the {days} days before the run: is the source "
            "or its extract stale?")


def batch_size_drift() -> ExpectationSpec:
    """Each batch of a full export holds about as many rows as the previous ones (bounds from history)."""
    return ExpectationSpec(
        "expect_column_values_to_be_between", None, {"column": "rows"}, critical=False, on="batches",
        handled="", trailing=True,
        fix="this export's size is far from the previous exports': check that the file is complete "
            "before the models read it")


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


# -- results --------------------------------------------------------------------------------------------


def _pct(share: float) -> str:
    return f"{100 * share:.4g}%"


@dataclass
class ExpectationResult:
    table: str
    expectation: str
    column: str | None
    kwargs: dict[str, Any]
    success: bool
    critical: bool
    unexpected_count: int | None
    unexpected_sample: list[Any]
    observed: str
    fix: str = ""
    max_bad_share: float | None = None  # the share of bad rows tolerated, for a thresholded check
    handled: str = ""  # what staging does with the rows, for a check under its threshold

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table

    @property
    def tolerated(self) -> bool:
        """Bad rows under the threshold: a warning, the rows are left to staging's quarantine."""
        return self.max_bad_share is not None and not self.success and not self.critical

    def describe(self) -> str:
        sample = ", ".join(_show(v) for v in self.unexpected_sample)
        text = f"{self.label} [{self.expectation}]: {self.observed}"
        if self.max_bad_share is not None and not self.success:
            if self.critical:
                text += (" — over the threshold: not a few bad rows but a systematic problem in the source"
                         " or its extract")
            else:
                text += f" — under the threshold, not a stop: {self.handled or QUARANTINED}"
        return f"{text}; e.g. {sample}" if sample else text


@dataclass
class QualityReport:
    run_id: str
    results: list[ExpectationResult]
    rows: dict[str, int] = field(default_factory=dict)
    run_date: dt.date | None = None
    seconds: float | None = None
    data_docs: str | None = None  # the index.html the validation was rendered into
    docs_seconds: float | None = None

    @property
    def failed_critical(self) -> list[ExpectationResult]:
        return [r for r in self.results if r.critical and not r.success]

    @property
    def warnings(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.critical and not r.success]

    @property
    def success(self) -> bool:
        return not self.failed_critical

    def summary_lines(self) -> list[str]:
        took = f" in {self.seconds:.1f} s" if self.seconds is not None else ""
        lines = [f"data quality {self.run_id}: {len(self.results)} expectations on "
                 f"{len(self.rows)} table(s){took}, {len(self.failed_critical)} critical failure(s), "
                 f"{len(self.warnings)} warning(s)"]
        for table, n in self.rows.items():
            mine = [r for r in self.results if r.table == table]
            passed = sum(r.success for r in mine)
            lines.append(f"  {table}: {n:,} rows, {passed}/{len(mine)} expectations passed")
        lines += [f"  CRITICAL {r.describe()}" for r in self.failed_critical]
        lines += [f"  warning  {r.describe()}" for r in self.warnings]
        if self.data_docs:
            lines.append(f"  Data Docs: {self.data_docs} (built in {self.docs_seconds or 0:.2f} s)")
        return lines


class DataQualityError(RuntimeError):
    """A critical expectation failed on the data of a run; the message says what and how to fix it."""

    def __init__(self, report: QualityReport | str) -> None:
        # Also accepts the finished message, so that the exception survives pickling (args = message).
        self.report = report if isinstance(report, QualityReport) else None
        super().__init__(report if isinstance(report, str) else self._message(report))

    @staticmethod
    def _message(report: QualityReport) -> str:
        failed = report.failed_critical
        lines = [f"data quality gate failed for run {report.run_id}: {len(failed)} critical expectation(s)"
                 f" failed (all results in {RESULTS_TABLE} where run_id = '{report.run_id}')"]
        for r in failed:
            lines.append(f"- {r.describe()}")
            if r.fix:
                lines.append(f"  fix: {r.fix}")
            if r.max_bad_share is not None:
                lines.append(
                    f"  then rerun the date. Up to {_pct(r.max_bad_share)} of bad rows per check are left to"
                    " staging, which quarantines them with a reason; if this share is really expected, raise"
                    f" {MAX_BAD_ROW_SHARE_ENV}")
        if report.data_docs:
            lines.append(f"Data Docs of this run: {report.data_docs}")
        return "\n".join(lines)


# -- validation -----------------------------------------------------------------------------------------

_NOT_LOADED = ("_source", "_loaded_at", "_source_file", "_line_no")  # kept as names only: never checked
_DATED = r"^\s*\d{4}-\d{2}-\d{2}"  # what can be the newest updated_at; other text is the row checks' job
DATA_DOCS_ENV = "MARTECH_DATA_DOCS"  # "0" / "off": validate without rendering Data Docs
DATA_DOCS_KEEP = 500  # validation results kept behind the Data Docs (the oldest are pruned)
DATA_DOCS_INDEX_LIMIT = 200  # validation runs listed on index.html, newest first


def _table_name(name: str) -> str:
    return name if "." in name else f"raw.{name}"


def _columns(conn: Connection, table: str) -> list[str]:
    import sqlalchemy as sa

    schema, name = table.split(".")
    return list(conn.execute(sa.text(
        "select column_name from information_schema.columns"
        " where table_schema = :s and table_name = :t order by ordinal_position"), {"s": schema, "t": name}
    ).scalars())


def _load(conn: Connection, table: str, batch_ids: list[str] | None, *, rows: bool = True) -> pd.DataFrame:
    """The table's rows (of the given batches), every source column as text, plus ``_batch_id``.

    Load metadata other than ``_batch_id`` comes back as empty columns: the column-set check sees every
    name without paying for the values. ``rows=False`` returns the columns only.
    """
    import pandas as pd
    import sqlalchemy as sa

    cols = _columns(conn, table)
    select = ", ".join(f"null::text as {c}" if c in _NOT_LOADED else c for c in cols)
    sql = f"select {select} from {table}"
    params: dict[str, Any] = {}
    if not rows:
        sql += " limit 0"
    elif batch_ids is not None:
        sql += f" where {BATCH_COLUMN} = any(:ids)"
        params["ids"] = list(batch_ids)
    result = conn.execute(sa.text(sql), params)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)


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


def with_history(spec: ExpectationSpec, history: Sequence[int]) -> ExpectationSpec:
    """A ``trailing`` batch-size spec with its bounds: DRIFT_BOUNDS × the mean of the previous batches.

    With fewer than MIN_HISTORY previous batches there is no normal size yet: recorded, never failing.
    """
    if not spec.trailing:
        return spec
    if len(history) < MIN_HISTORY:
        low, high, mean = 0, 10**12, None
    else:
        mean = sum(history) / len(history)
        low, high = int(mean * DRIFT_BOUNDS[0]), int(mean * DRIFT_BOUNDS[1]) + 1
    fix = spec.fix if mean is None else f"{spec.fix} (previous batches: mean {mean:,.0f} rows)"
    return replace(spec, kwargs={**spec.kwargs, "min_value": low, "max_value": high}, fix=fix)


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a GX value (NaN → None, tuples → lists, numpy scalars → Python)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)):
        return value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _plain(item())
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "(" + ", ".join(f"{k}={_show(v)}" for k, v in value.items() if k != BATCH_COLUMN) + ")"
    return "null" if value is None else repr(value)


def _sample(values: Iterable[Any], size: int = SAMPLE_SIZE) -> list[Any]:
    """The first ``size`` distinct values, in order."""
    out: list[Any] = []
    seen: set[str] = set()
    for v in values:
        key = json.dumps(v, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(v)
            if len(out) == size:
                break
    return out


def _observed(spec: ExpectationSpec, res: Mapping[str, Any], threshold: float | None) -> str:
    unexpected = res.get("unexpected_count")
    noun = "batches" if spec.on == "batches" else "rows"
    if unexpected is not None:
        total = int(res.get("element_count") or 0)
        missing = int(res.get("missing_count") or 0)
        pct = res.get("unexpected_percent")
        text = f"{int(unexpected):,} of {total:,} {noun} unexpected"
        if pct is not None and total:
            base = f" of {total - missing:,} non-null" if missing and spec.expectation != (
                "expect_column_values_to_not_be_null") else ""
            text += f" ({float(pct):.2f}%{base})"
        if threshold is not None:
            text += f", at most {_pct(threshold)} tolerated"
        return text
    details = (res.get("details") or {}).get("mismatched") if isinstance(res.get("details"), Mapping) else None
    if spec.expectation == "expect_table_columns_to_match_set" and isinstance(details, Mapping):
        missing_cols = ", ".join(details.get("missing") or []) or "none"
        extra_cols = ", ".join(details.get("unexpected") or []) or "none"
        return f"columns missing: {missing_cols}; unexpected: {extra_cols}"
    if spec.expectation == "expect_table_columns_to_match_set":
        return f"{len(res.get('observed_value') or [])} columns as declared"
    value = _plain(res.get("observed_value"))
    if spec.on == "batches" and spec.column == "updated_at":
        return ("no dated row in the run's batches" if value is None
                else f"newest updated_at {value} days before the run's cutoff")
    return str(value)


def _to_result(table: str, spec: ExpectationSpec, gx_result: Any) -> ExpectationResult:
    res = dict(gx_result.result or {})
    exc = gx_result.exception_info or {}
    if isinstance(exc, Mapping) and "raised_exception" not in exc:  # keyed per metric in some versions
        exc = next((v for v in exc.values() if isinstance(v, Mapping) and v.get("raised_exception")), {})
    raised = bool(exc.get("raised_exception")) if isinstance(exc, Mapping) else False
    unexpected = res.get("unexpected_count")
    sample = _sample(_plain(res.get("partial_unexpected_list") or []))
    mostly = spec.gx_kwargs().get("mostly")
    threshold = None if mostly is None or float(mostly) >= 1 else round(1.0 - float(mostly), 9)
    success, critical = bool(gx_result.success) and not raised, spec.critical
    if success and unexpected:
        # GX passed it (under ``mostly``, or a warning spec); bad rows exist all the same: a warning.
        success, critical = False, False
    observed = (f"could not be evaluated: {exc.get('exception_message')}" if raised
                else _observed(spec, res, threshold))
    return ExpectationResult(
        table=table, expectation=spec.expectation, column=spec.column,
        kwargs=_plain(spec.gx_kwargs()), success=success, critical=critical,
        unexpected_count=None if unexpected is None else int(unexpected),
        unexpected_sample=sample, observed=observed, fix=spec.fix, max_bad_share=threshold,
        handled=spec.handled,
    )


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


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

    frames: dict[tuple[str, str], pd.DataFrame] = {}
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
            frames[(table, "rows")] = _load(conn, table, ids, rows=per_row)
            batches = _load_batches(conn, table, ids, cutoff_for(run_date))
            if any(s.on == "batches" for s in specs):
                frames[(table, "batches")] = batches
            specs_for[table] = specs
            rows[table] = int(batches["rows"].sum())

    report = QualityReport(run_id=run_id, results=[], rows=rows, run_date=run_date)
    if frames:
        _run_gx(specs_for, frames, report)
    report.seconds = time.perf_counter() - t0
    log.info("data quality: validated %s table(s) in %.2f s", len(rows), report.seconds)
    return report


def validate_frames(frames: Mapping[str, pd.DataFrame], declared: Mapping[str, Sequence[ExpectationSpec]],
                    run_id: str, run_date: dt.date) -> QualityReport:
    """Validate DataFrames (table name → rows) against declared expectations in one GX context.

    For checks on data that is not a raw table (the staging gate and the campaign snapshot gate use it):
    no threshold applies, every unexpected row of a critical spec fails it. Record the report with
    :func:`record_results` and gate with :func:`check`.
    """
    import time

    t0 = time.perf_counter()
    report = QualityReport(run_id=run_id, results=[], rows={t: len(f) for t, f in frames.items()},
                           run_date=run_date)
    if frames:
        _run_gx(declared, {(t, "rows"): f for t, f in frames.items()}, report)
    report.seconds = time.perf_counter() - t0
    return report


def _suite_name(table: str, on: str, run_id: str) -> str:
    """The GX suite (and Data Docs page) name: the table, the run's scope (e.g. the campaign), the part."""
    scope = run_id.split(":")[1:-1]  # "audience:<campaign>:<run>" → the campaign; "raw:<date>" → none
    name = f"{table}@{'.'.join(scope)}" if scope else table
    return f"{name} batches" if on == "batches" else name


def _docs_enabled() -> bool:
    return os.environ.get(DATA_DOCS_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def _gx_context(docs: bool) -> Any:
    """An ephemeral GX context; with ``docs``, its suites and results are kept as JSON under
    MARTECH_HOME and rendered into the Data Docs folder, so that every run adds to the same site."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    from martech import paths

    if not docs:
        context = gx.get_context(mode="ephemeral")
    else:
        store = paths.quality_store_dir()

        def files(sub: str) -> dict[str, Any]:
            return {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(store / sub)}

        memory = {"class_name": "InMemoryStoreBackend"}
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            stores={
                "expectations_store": {"class_name": "ExpectationsStore", "store_backend": files("expectations")},
                "validation_results_store": {"class_name": "ValidationResultsStore",
                                             "store_backend": files("validations")},
                "checkpoint_store": {"class_name": "CheckpointStore", "store_backend": memory},
                "validation_definition_store": {"class_name": "ValidationDefinitionStore",
                                                "store_backend": memory},
            },
            data_docs_sites={"martech": {
                "class_name": "SiteBuilder", "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(paths.data_docs_dir())},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                       "validation_results_limit": DATA_DOCS_INDEX_LIMIT},
            }},
            analytics_enabled=False,
        )
        context = gx.get_context(project_config=config, mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def _run_gx(declared: Mapping[str, Sequence[ExpectationSpec]], frames: Mapping[tuple[str, str], pd.DataFrame],
            report: QualityReport) -> None:
    """Validate each (table, part) frame against its specs; fill ``report`` with results (and Data Docs)."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.expectations.metadata_types import FailureSeverity

    docs = _docs_enabled()
    context = _gx_context(docs)
    source = context.data_sources.add_pandas(name="martech")
    run_date = report.run_date or dt.date(1970, 1, 1)
    # A fixed run time per run date: a rerun of the date overwrites its pages instead of adding some.
    run = RunIdentifier(run_name=report.run_id,
                        run_time=dt.datetime.combine(run_date, dt.time(0), tzinfo=dt.timezone.utc))
    suites_run: list[str] = []
    for (table, on), frame in frames.items():
        specs = [s for s in declared[table] if s.on == on]
        if not specs:
            continue
        name = _suite_name(table, on, report.run_id)
        suite = gx.ExpectationSuite(name=name, meta={"martech_run": report.run_id})
        for k, spec in enumerate(specs):
            cls = getattr(gxe, _camel(spec.expectation), None)
            if cls is None:
                raise ValueError(f"{table}: unknown Great Expectations expectation {spec.expectation!r}")
            severity = FailureSeverity.CRITICAL if spec.critical else FailureSeverity.WARNING
            suite.add_expectation(cls(**spec.gx_kwargs(), meta={"martech_spec": k}, notes=spec.fix or None,
                                      severity=severity))
        suite = context.suites.add_or_update(suite)
        batch_definition = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("rows")
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch_definition, suite=suite))
        validation = definition.run(batch_parameters={"dataframe": frame}, run_id=run, result_format={
            "result_format": "SUMMARY", "partial_unexpected_count": 20})
        suites_run.append(name)
        # GX does not keep the suite's order: match each result back to its spec by the index in meta.
        by_spec = {}
        for res in validation.results:
            config = res.expectation_config
            if config is None or not config.meta or "martech_spec" not in config.meta:
                raise RuntimeError(f"{table}: GX returned a result without its expectation")
            by_spec[int(config.meta["martech_spec"])] = res
        if sorted(by_spec) != list(range(len(specs))):
            raise RuntimeError(f"{table}: GX returned results for specs {sorted(by_spec)} of {len(specs)}")
        report.results += [_to_result(table, spec, by_spec[k]) for k, spec in enumerate(specs)]
    if docs and suites_run:
        _build_docs(context, report, suites_run)


def _build_docs(context: Any, report: QualityReport, suite_names: list[str]) -> None:
    """Render this run's pages and the index. Never fails the gate: the docs are a view of the results."""
    import fcntl
    import time

    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    from martech import paths
    from martech.quality import docs_offline

    t0 = time.perf_counter()
    try:
        store = context.validation_results_store
        keys = store.list_keys()
        if len(keys) > DATA_DOCS_KEEP:
            for key in sorted(keys, key=lambda k: (k.run_id.run_time, k.run_id.run_name))[:-DATA_DOCS_KEEP]:
                store.remove_key(key)
        mine = [k for k in store.list_keys()
                if k.run_id.run_name == report.run_id and k.expectation_suite_identifier.name in suite_names]
        targets = [*mine, *(ExpectationSuiteIdentifier(name=n) for n in suite_names)]
        paths.quality_store_dir().mkdir(parents=True, exist_ok=True)
        # Parallel validations (several campaign gates) share the site: one index write at a time.
        with open(paths.quality_store_dir() / ".docs.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            built = context.build_data_docs(resource_identifiers=targets)
            docs_offline.make_offline(paths.data_docs_dir())  # GX's pages load CDN assets: rewrite them
        report.data_docs = str(built.get("martech") or paths.data_docs_dir() / "index.html")
    except Exception as exc:  # the gate's outcome must not depend on rendering
        log.warning("data quality: Data Docs were not built (%s: %s); results are in %s",
                    type(exc).__name__, exc, RESULTS_TABLE)
    report.docs_seconds = time.perf_counter() - t0
    log.info("data quality: Data Docs %s in %.2f s", report.data_docs, report.docs_seconds)


# -- recording and gating -------------------------------------------------------------------------------

_RESULT_COLUMNS = ("run_id", "run_date", "table_name", "expectation", "column_name", "kwargs", "success",
                   "critical", "unexpected_count", "unexpected_sample", "observed")


def record_results(engine: Engine, report: QualityReport, run_date: dt.date) -> int:
    """Replace ``kpis.data_quality``'s rows for ``report.run_id`` with this report's; returns the count."""
    import sqlalchemy as sa

    from martech.db import copy_rows

    rows = [
        (report.run_id, run_date.isoformat(), r.table, r.expectation, r.column or "",
         json.dumps(r.kwargs, sort_keys=True, default=str), "true" if r.success else "false",
         "true" if r.critical else "false", r.unexpected_count,
         json.dumps(r.unexpected_sample, default=str), r.observed)
        for r in report.results
    ]
    with engine.begin() as conn:
        conn.execute(sa.text(f"delete from {RESULTS_TABLE} where run_id = :r"), {"r": report.run_id})
        return copy_rows(conn, RESULTS_TABLE, _RESULT_COLUMNS, rows)


def check(report: QualityReport) -> None:
    """Raise :class:`DataQualityError` if any critical expectation failed; log the warnings."""
    for r in report.warnings:
        log.warning("data quality warning: %s", r.describe())
    if report.failed_critical:
        raise DataQualityError(report)
