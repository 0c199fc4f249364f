"""Send on fresh data only: the gate a campaign run passes before it dispatches.

A run for date ``D`` reads marts built for ``D`` (their as-of column) and the suppressions merged from
the email events before ``D`` (``campaigns.suppression_refreshes``). If any of them is older, the run
refuses to send with one sentence per stale input naming the table, its as-of date and the DAG that
brings it up to date. An hourly series runs between two daily refreshes: its hours on ``D`` accept the
suppressions of ``D - 1`` (``HOURLY_SUPPRESSIONS_GRACE``). A dry run sends nothing and is not gated.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import sqlalchemy as sa

__all__ = ["StaleInputsError", "marts_read_by", "record_build", "record_suppression_refresh", "require_fresh",
           "stale_inputs"]

_MART = re.compile(r"\bmarts\.([a-z_][a-z0-9_]*)")
AS_OF_COLUMNS = ("as_of_date", "as_of")
HOURLY_SUPPRESSIONS_GRACE = dt.timedelta(days=1)


class StaleInputsError(RuntimeError):
    """A campaign run whose inputs are older than its run date; ``problems`` has one sentence each."""

    def __init__(self, campaign_id: str, run_date: dt.date, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"campaign {campaign_id!r} does not send for {run_date}: " + " ".join(problems))


def marts_read_by(audience_sql: str) -> tuple[str, ...]:
    """The ``marts.*`` tables an audience query names, sorted."""
    return tuple(sorted({f"marts.{name}" for name in _MART.findall(audience_sql)}))


def _as_of(conn: Any, table: str) -> dt.date | None:
    # A mart that may hold no rows at all (no CRM connected) records its builds in campaigns.mart_builds.
    built = conn.execute(sa.text(
        "select max(as_of) from campaigns.mart_builds where table_name = :t"), {"t": table}).scalar() \
        if _exists(conn, "campaigns.mart_builds") else None
    own = _own_as_of(conn, table)
    return max((d for d in (built, own) if d is not None), default=None)


def _exists(conn: Any, table: str) -> bool:
    return conn.execute(sa.text("select to_regclass(:t) is not null"), {"t": table}).scalar_one()  # type: ignore[no-any-return]


def record_build(conn: Any, table: str, as_of: dt.date, rows: int) -> None:
    """Note that ``table`` was built for ``as_of`` (holding ``rows``), for marts that may be empty."""
    conn.execute(sa.text(
        "insert into campaigns.mart_builds (table_name, as_of, row_count) values (:t, :d, :n)"
        " on conflict (table_name, as_of) do update set row_count = excluded.row_count"),
        {"t": table, "d": as_of, "n": rows})


def _own_as_of(conn: Any, table: str) -> dt.date | None:
    schema, name = table.split(".")
    column = conn.execute(sa.text(
        "select column_name from information_schema.columns where table_schema = :s and table_name = :t"
        " and column_name = any(:cols) order by column_name desc limit 1"),
        {"s": schema, "t": name, "cols": list(AS_OF_COLUMNS)}).scalar()
    if column is None:
        return None
    return conn.execute(sa.text(f"select max({column}) from {table}")).scalar()


def stale_inputs(conn: Any, audience_sql: str, run_date: dt.date, *,
                 suppressions_grace: dt.timedelta = dt.timedelta(0)) -> list[str]:
    """One sentence per input of a run for ``run_date`` that is older than it (empty: fresh)."""
    problems = []
    for table in marts_read_by(audience_sql):
        as_of = _as_of(conn, table)
        if as_of is None or as_of < run_date:
            problems.append(f"{table} is as of {as_of or 'never (empty or missing)'}, older than the run date"
                            f" {run_date}; run customer_models for {run_date} first.")
    refreshed = conn.execute(sa.text(
        "select max(run_date) from campaigns.suppression_refreshes")).scalar()
    needed = run_date - suppressions_grace
    if refreshed is None or refreshed < needed:
        problems.append(f"campaigns.suppressions is as of {refreshed or 'never (no email-events run)'}, older"
                        f" than {needed}; run email_events for {needed} first.")
    return problems


def require_fresh(engine: Any, spec: Any, run_date: dt.date) -> None:
    """Raise :class:`StaleInputsError` unless every input of ``spec``'s run for ``run_date`` is fresh."""
    with engine.connect() as conn:
        problems = stale_inputs(conn, spec.audience_sql_text(), run_date,
                                suppressions_grace=HOURLY_SUPPRESSIONS_GRACE if spec.hourly else dt.timedelta(0))
    if problems:
        raise StaleInputsError(spec.id, run_date, problems)


def record_suppression_refresh(conn: Any, run_date: dt.date, added: int, refreshed_at: dt.datetime) -> None:
    """Note that the suppressions hold every event before ``run_date`` (the email-events stage calls it)."""
    conn.execute(sa.text(
        "insert into campaigns.suppression_refreshes (run_date, added, refreshed_at) values (:d, :n, :t)"
        " on conflict (run_date) do update set added = excluded.added, refreshed_at = excluded.refreshed_at"),
        {"d": run_date, "n": added, "t": refreshed_at})
