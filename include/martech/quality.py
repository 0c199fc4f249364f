"""The data-quality gate on the raw landing tables, with Great Expectations 1.x.

What is checked is declared as data in :func:`suites`: one list of :class:`ExpectationSpec` per raw
table. A spec names a GX expectation (snake case, e.g. ``expect_column_values_to_not_be_null``), its
arguments, whether a failure is *critical* (stops the pipeline) or a *warning* (recorded and logged),
and what to do about a failure. Adding a check is adding one line there.

The rule for "critical": a failure that would make ``staging`` fail (a value its casts cannot read, a
missing key) or silently corrupt what we send or count (bad emails, negative money, unknown order or
consent statuses, duplicate keys in one load). Everything cosmetic is a warning.

:func:`validate_raw` reads the rows of this run's batches (``_batch_id``) from each raw table into
pandas and validates every table in one ephemeral GX context. ``great_expectations`` is imported
there and only there: importing it costs ~10 s, so never import it at DAG-parse time, and validate all
tables in one call. :func:`record_results` writes ``kpis.data_quality`` (idempotent per run id) and
:func:`check` raises :class:`DataQualityError` when a critical expectation failed.

All raw columns are text as received; checks that a value can be cast use regular expressions that
accept what PostgreSQL's casts in ``staging`` accept (surrounding blanks included). Nulls are never
"unexpected" for a format check; not-null checks say where a value is required.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("martech.quality")

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


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation on one raw table, declared as data.

    ``expectation`` is GX's snake-case name; ``column`` is what the report calls the checked column(s)
    (for column expectations it is also passed as GX's ``column`` unless ``kwargs`` has one).
    Per table, (expectation, column) must be unique: it is part of ``kpis.data_quality``'s key.
    """

    expectation: str
    column: str | None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    critical: bool = True
    fix: str = ""

    def gx_kwargs(self) -> dict[str, Any]:
        out = dict(self.kwargs)
        if self.column is not None and "column" not in out and "column_list" not in out:
            out["column"] = self.column
        return out


def not_null(column: str, *, critical: bool = True, fix: str = "") -> ExpectationSpec:
    return ExpectationSpec("expect_column_values_to_not_be_null", column, critical=critical,
                           fix=fix or f"every row needs a {column}; fix the source or its extract")


def unique_in_batch(*key: str, fix: str = "") -> ExpectationSpec:
    """Key columns unique within each load batch (raw keeps every version across batches)."""
    return ExpectationSpec(
        "expect_compound_columns_to_be_unique", ", ".join(key),
        {"column_list": [BATCH_COLUMN, *key]}, critical=True,
        fix=fix or f"one load must hold each {', '.join(key)} once; deduplicate the extract and reload",
    )


def matches(column: str, regex: str, *, critical: bool, fix: str) -> ExpectationSpec:
    return ExpectationSpec("expect_column_values_to_match_regex", column, {"regex": regex},
                           critical=critical, fix=fix)


def integer(column: str, *, critical: bool = True) -> ExpectationSpec:
    return matches(column, INTEGER_RE, critical=critical,
                   fix=f"{column} must be a whole number (staging casts it to an integer)")


def non_negative_number(column: str) -> ExpectationSpec:
    return matches(column, NON_NEGATIVE_NUMBER_RE, critical=True,
                   fix=f"{column} must be a number >= 0 such as 12.50 (no sign, no currency symbol, "
                       "'.' as decimal point); correct the source rows")


def timestamp(column: str, *, critical: bool = True) -> ExpectationSpec:
    return matches(column, TIMESTAMP_RE, critical=critical,
                   fix=f"{column} must be an ISO-8601 timestamp such as 2026-01-31T09:30:00+00:00")


def date(column: str, *, critical: bool = True) -> ExpectationSpec:
    return matches(column, DATE_RE, critical=critical, fix=f"{column} must be a date YYYY-MM-DD or empty")


def email(column: str = "email") -> ExpectationSpec:
    return matches(column, EMAIL_RE, critical=True,
                   fix=f"{column} must be an address like name@example.com; correct or blank it at the"
                       " source")


def one_of(column: str, values: Sequence[str], *, critical: bool) -> ExpectationSpec:
    return matches(column, one_of_re(values), critical=critical,
                   fix=f"{column} must be one of {', '.join(values)} (case-insensitive); map new values in "
                       "the source or extend the list in martech.quality")


def suites() -> dict[str, list[ExpectationSpec]]:
    """The expectations per raw table. Extend here."""
    return {
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
            not_null("total_amount"), non_negative_number("total_amount"),
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
            date("birthday"),
            matches("country", COUNTRY_RE, critical=False, fix="country must be an ISO-3166 alpha-2 code"),
            matches("timezone", TIMEZONE_RE, critical=False, fix="timezone must be an IANA name"),
            one_of("consent_status", CONSENT_STATUSES, critical=True),
            timestamp("consent_updated_at"),
            one_of("lifecycle_status", LIFECYCLE_STATUSES, critical=False),
            integer("shop_customer_id"),
            timestamp("created_at"), timestamp("updated_at"),
        ],
    }


# -- results --------------------------------------------------------------------------------------------


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

    @property
    def label(self) -> str:
        return f"{self.table}.{self.column}" if self.column else self.table

    def describe(self) -> str:
        sample = ", ".join(_show(v) for v in self.unexpected_sample)
        text = f"{self.label} [{self.expectation}]: {self.observed}"
        return f"{text}; e.g. {sample}" if sample else text


@dataclass
class QualityReport:
    run_id: str
    results: list[ExpectationResult]
    rows: dict[str, int] = field(default_factory=dict)
    run_date: dt.date | None = None
    seconds: float | None = None

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
        return lines


class DataQualityError(RuntimeError):
    """A critical expectation failed on the raw data of a run; the message says what and how to fix it."""

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
        return "\n".join(lines)


# -- validation -----------------------------------------------------------------------------------------


def _table_name(name: str) -> str:
    return name if "." in name else f"raw.{name}"


def _load(conn: Connection, table: str, batch_ids: list[str] | None) -> pd.DataFrame:
    """The table's rows (of the given batches), every source column as text, plus ``_batch_id``."""
    import pandas as pd
    import sqlalchemy as sa

    cols = [c for c in conn.execute(sa.text(
        "select column_name from information_schema.columns"
        " where table_schema = :s and table_name = :t order by ordinal_position"),
        {"s": table.split(".")[0], "t": table.split(".")[1]}).scalars()
        if c not in ("_source", "_loaded_at", "_source_file", "_line_no")]
    sql = f"select {', '.join(cols)} from {table}"
    params: dict[str, Any] = {}
    if batch_ids is not None:
        sql += f" where {BATCH_COLUMN} = any(:ids)"
        params["ids"] = list(batch_ids)
    result = conn.execute(sa.text(sql), params)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)


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


def _to_result(table: str, spec: ExpectationSpec, gx_result: Any) -> ExpectationResult:
    res = dict(gx_result.result or {})
    exc = gx_result.exception_info or {}
    if isinstance(exc, Mapping) and "raised_exception" not in exc:  # keyed per metric in some versions
        exc = next((v for v in exc.values() if isinstance(v, Mapping) and v.get("raised_exception")), {})
    raised = bool(exc.get("raised_exception")) if isinstance(exc, Mapping) else False
    unexpected = res.get("unexpected_count")
    sample = _sample(_plain(res.get("partial_unexpected_list") or []))
    if raised:
        observed = f"could not be evaluated: {exc.get('exception_message')}"
    elif unexpected is not None:
        total = int(res.get("element_count") or 0)
        share = f" ({100.0 * unexpected / total:.2f}%)" if total else ""
        observed = f"{int(unexpected):,} of {total:,} rows unexpected{share}"
    else:
        observed = str(_plain(res.get("observed_value")))
    return ExpectationResult(
        table=table, expectation=spec.expectation, column=spec.column,
        kwargs=_plain(spec.gx_kwargs()), success=bool(gx_result.success) and not raised,
        critical=spec.critical, unexpected_count=None if unexpected is None else int(unexpected),
        unexpected_sample=sample, observed=observed, fix=spec.fix,
    )


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def validate_raw(engine: Engine, batch_ids: dict[str, list[str]] | None, run_id: str,
                 run_date: dt.date, *, tables: Mapping[str, Sequence[ExpectationSpec]] | None = None
                 ) -> QualityReport:
    """Validate the raw tables' rows of this run against :func:`suites`, in one GX context.

    ``batch_ids`` maps a raw table (``raw.shop_orders`` or ``shop_orders``) to the batch ids this run
    loaded; a table without batches is skipped (nothing landed). ``None`` validates every row of every
    table (uniqueness still holds per batch). ``tables`` overrides the suites (tests, ad-hoc checks).
    """
    import time

    t0 = time.perf_counter()
    declared = {_table_name(k): list(v) for k, v in (tables if tables is not None else suites()).items()}
    wanted = None if batch_ids is None else {_table_name(k): list(v) for k, v in batch_ids.items()}
    for table in sorted(set(wanted or ()) - set(declared)):
        log.info("data quality: no suite for %s; its batches are not validated", table)

    frames: dict[str, pd.DataFrame] = {}
    import sqlalchemy as sa

    with engine.connect() as conn:
        for table in declared:
            if wanted is not None and not wanted.get(table):
                continue
            if conn.execute(sa.text("select to_regclass(:t)"), {"t": table}).scalar() is None:
                log.warning("data quality: %s does not exist; skipped", table)
                continue
            frames[table] = _load(conn, table, None if wanted is None else wanted[table])

    results: list[ExpectationResult] = []
    if frames:
        results = _run_gx(declared, frames)
    report = QualityReport(run_id=run_id, results=results, rows={t: len(f) for t, f in frames.items()},
                           run_date=run_date, seconds=time.perf_counter() - t0)
    log.info("data quality: validated %s table(s) in %.2f s", len(frames), report.seconds)
    return report


def validate_frames(frames: Mapping[str, pd.DataFrame], declared: Mapping[str, Sequence[ExpectationSpec]],
                    run_id: str, run_date: dt.date) -> QualityReport:
    """Validate DataFrames (table name → rows) against declared expectations in one GX context.

    For checks on data that is not a raw table (the campaign snapshot gate uses it); record the report
    with :func:`record_results` and gate with :func:`check`.
    """
    import time

    t0 = time.perf_counter()
    results = _run_gx(declared, frames) if frames else []
    return QualityReport(run_id=run_id, results=results, rows={t: len(f) for t, f in frames.items()},
                         run_date=run_date, seconds=time.perf_counter() - t0)


def _run_gx(declared: Mapping[str, Sequence[ExpectationSpec]],
            frames: Mapping[str, pd.DataFrame]) -> list[ExpectationResult]:
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas(name="raw")
    results: list[ExpectationResult] = []
    for i, (table, frame) in enumerate(frames.items()):
        specs = declared[table]
        asset = source.add_dataframe_asset(name=f"t{i}_{table.replace('.', '_')}")
        batch = asset.add_batch_definition_whole_dataframe("rows").get_batch(
            batch_parameters={"dataframe": frame})
        suite = gx.ExpectationSuite(name=f"{table}_suite")
        for k, spec in enumerate(specs):
            cls = getattr(gxe, _camel(spec.expectation), None)
            if cls is None:
                raise ValueError(f"{table}: unknown Great Expectations expectation {spec.expectation!r}")
            suite.add_expectation(cls(**spec.gx_kwargs(), meta={"martech_spec": k}))
        validation = batch.validate(suite, result_format={
            "result_format": "SUMMARY", "partial_unexpected_count": 20})
        # GX does not keep the suite's order: match each result back to its spec by the index in meta.
        by_spec = {}
        for res in validation.results:
            config = res.expectation_config
            if config is None or not config.meta or "martech_spec" not in config.meta:
                raise RuntimeError(f"{table}: GX returned a result without its expectation")
            by_spec[int(config.meta["martech_spec"])] = res
        if sorted(by_spec) != list(range(len(specs))):
            raise RuntimeError(f"{table}: GX returned results for specs {sorted(by_spec)} of {len(specs)}")
        results += [_to_result(table, spec, by_spec[k]) for k, spec in enumerate(specs)]
    return results


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
