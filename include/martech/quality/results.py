"""What a validation found, and where it goes: the report, the gate's error, ``kpis.data_quality``.

Every gate (raw, staging, the audience snapshot) fills a :class:`QualityReport` with one
:class:`ExpectationResult` per declared check. :func:`record_results` replaces the run's rows in
``kpis.data_quality`` (idempotent per run id) and :func:`check` raises :class:`DataQualityError`, whose
message names each failed check, what was observed and the fix, when a critical expectation failed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from martech.quality.expectations import BATCH_COLUMN, MAX_BAD_ROW_SHARE_ENV, QUARANTINED

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger("martech.quality.results")

RESULTS_TABLE = "kpis.data_quality"


def percent(share: float) -> str:
    return f"{100 * share:.4g}%"


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "(" + ", ".join(f"{k}={_show(v)}" for k, v in value.items() if k != BATCH_COLUMN) + ")"
    return "null" if value is None else repr(value)


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
                    f"  then rerun the date. Up to {percent(r.max_bad_share)} of bad rows per check are left to"
                    " staging, which quarantines them with a reason; if this share is really expected, raise"
                    f" {MAX_BAD_ROW_SHARE_ENV}")
        if report.data_docs:
            lines.append(f"Data Docs of this run: {report.data_docs}")
        return "\n".join(lines)


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
