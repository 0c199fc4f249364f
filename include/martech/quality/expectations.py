"""The expectation vocabulary: how a check is declared, and the building blocks every suite uses.

A check is an :class:`ExpectationSpec`: a Great Expectations expectation (snake case, e.g.
``expect_column_values_to_not_be_null``), its arguments, whether a failure is *critical* (stops the
pipeline) or a *warning* (recorded and logged), what staging does with the rows it catches, and what to
do about a failure. The constructors below (:func:`not_null`, :func:`matches`, :func:`email`, ...) and the
regular expressions are shared by the raw, staging and audience suites; nothing here imports GX.

Single bad rows never stop the chain, so a critical row-level check is given GX's ``mostly``
(:func:`with_threshold`): it fails only when more than :data:`MAX_BAD_ROW_SHARE` of the run's rows break
it (``MARTECH_MAX_BAD_ROW_SHARE`` overrides it). A ``trailing`` batch-size check takes its bounds from the
table's previous batches (:func:`with_history`).

All raw columns are text as received; checks that a value can be cast use regular expressions that
accept what PostgreSQL's casts in ``staging`` accept (surrounding blanks included). Nulls are never
"unexpected" for a format check; not-null checks say where a value is required.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

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


_SCOPED_IGNORECASE = re.compile(r"(?P<head>.*)\(\?i:(?P<words>.*)\)(?P<tail>.*)", re.DOTALL)


def postgres_regex(regex: str) -> str:
    """``regex`` for PostgreSQL's ``~``, which matches as Python's ``re.search`` does for these patterns.

    PostgreSQL's regular expressions know no scoped flag group: :func:`one_of_re`'s ``(?i:words)``
    becomes a leading ``(?i)`` over a plain group, the same match as long as nothing outside the group
    has a letter that case could change (escapes such as ``\\s`` excepted). Other patterns are returned
    as they are: the vocabulary above is written in the syntax both dialects share.
    """
    found = _SCOPED_IGNORECASE.fullmatch(regex)
    if found is None:
        return regex
    outside = re.sub(r"\\.", "", found["head"] + found["tail"])
    if re.search(r"[A-Za-z]", outside) or "(?i:" in found["words"]:
        raise ValueError(f"{regex!r}: a case-insensitive group among case-sensitive letters has no PostgreSQL form")
    return f"(?i){found['head']}(?:{found['words']}){found['tail']}"


ORDER_STATUSES = ("completed", "refunded", "cancelled")
CONSENT_STATUSES = ("opted_in", "double_opt_in", "opted_out", "unknown")
LIFECYCLE_STATUSES = ("lead", "customer", "other")


# -- declarations ---------------------------------------------------------------------------------------

MAX_BAD_ROW_SHARE = 0.05
MAX_BAD_ROW_SHARE_ENV = "MARTECH_MAX_BAD_ROW_SHARE"
FRESHNESS_DAYS = 3
DRIFT_BOUNDS = (0.75, 1.5)
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
                       "the source or extend the list in martech.quality.expectations", handled=handled)


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
