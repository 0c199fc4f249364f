"""Nothing silently dropped: every raw row is accounted for after each staging rebuild.

Each staging model writes one ``staging.row_accounting`` row per run: rows received (raw rows landed up
to the run's cutoff) split into staged, quarantined, identical copies, superseded versions and identity
merges. :func:`check` recounts every term from the tables themselves — the raw table, the staging
table, ``raw.quarantine``, ``staging.merged_rows`` and ``raw.ingest_batches`` — and raises
:class:`AccountingError` when an equation does not hold, so a model that loses rows fails its run
instead of shrinking a table quietly.

The two equations, per table:

- landing:  rows the source sent = rows landed in raw + rows quarantined at landing (unreadable lines)
- staging:  rows landed in raw   = staged + quarantined + duplicate + superseded + merged
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa


class AccountingError(RuntimeError):
    """Rows went missing (or appeared) between landing and staging; the message names table and numbers."""


@dataclass(frozen=True)
class TableAccount:
    table: str
    raw_table: str
    received: int
    staged: int
    quarantined: int
    duplicate: int
    superseded: int
    merged: int
    landing_quarantined: int

    def line(self) -> str:
        parts = [f"{self.staged:,} staged"]
        for label, n in (("quarantined", self.quarantined), ("duplicate copies", self.duplicate),
                         ("superseded versions", self.superseded), ("merged identities", self.merged)):
            if n:
                parts.append(f"{n:,} {label}")
        return f"{self.raw_table} → {self.table}: {self.received:,} received = " + " + ".join(parts) + (
            f" (and {self.landing_quarantined:,} quarantined at landing)" if self.landing_quarantined else "")


def _count(conn: Any, sql: str, **params: Any) -> int:
    return int(conn.execute(sa.text(sql), params).scalar_one())


def check(engine: Any, run_date: dt.date, run_ts: dt.datetime) -> list[TableAccount]:
    """Recount every staging table's accounting rows of ``run_date``; raise AccountingError on a mismatch.

    A staging table may be fed by several raw tables (one accounting row each): their staged rows add up
    to the rows in the table, every other term is recounted per raw table.
    """
    problems: list[str] = []
    accounts: list[TableAccount] = []
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select * from staging.row_accounting where run_date = :d order by table_name, raw_table"),
            {"d": run_date}).mappings().all()
        for r in rows:
            acc = TableAccount(table=r["table_name"], raw_table=r["raw_table"], received=r["rows_received"],
                               staged=r["rows_staged"], quarantined=r["rows_quarantined"],
                               duplicate=r["rows_duplicate"], superseded=r["rows_superseded"],
                               merged=r["rows_merged"], landing_quarantined=r["landing_quarantined"])
            accounts.append(acc)
            t, raw = acc.table, acc.raw_table
            observed = {
                "received (raw rows)": _count(conn, f"select count(*) from {raw} where _loaded_at <= :ts", ts=run_ts),
                "quarantined (raw.quarantine)": _count(
                    conn, "select count(*) from raw.quarantine where stage = 'staging' and table_name = :t", t=raw),
                "duplicate + merged (staging.merged_rows)": _count(
                    conn, "select count(*) from staging.merged_rows where table_name = :t", t=raw),
            }
            stated = {"received (raw rows)": acc.received, "quarantined (raw.quarantine)": acc.quarantined,
                      "duplicate + merged (staging.merged_rows)": acc.duplicate + acc.merged}
            for what, n in observed.items():
                if n != stated[what]:
                    problems.append(f"{t} from {raw}: {what} is {n:,} in the tables but {stated[what]:,} in the"
                                    " accounting")
            total = acc.staged + acc.quarantined + acc.duplicate + acc.superseded + acc.merged
            if total != acc.received:
                problems.append(f"{t} from {raw}: {acc.received:,} raw rows received but {total:,} accounted for"
                                f" (staged {acc.staged:,} + quarantined {acc.quarantined:,} + duplicate"
                                f" {acc.duplicate:,} + superseded {acc.superseded:,} + merged {acc.merged:,})")
            sent = _count(conn, "select coalesce(sum(rows_received), 0) from raw.ingest_batches"
                                " where table_name = :t and loaded_at <= :ts", t=raw, ts=run_ts)
            landed = _count(conn, "select coalesce(sum(rows_loaded), 0) from raw.ingest_batches"
                                  " where table_name = :t and loaded_at <= :ts", t=raw, ts=run_ts)
            if sent and sent != landed + acc.landing_quarantined:
                problems.append(f"{raw}: sources sent {sent:,} rows but {landed:,} landed and"
                                f" {acc.landing_quarantined:,} were quarantined at landing")
            if sent and landed != acc.received:
                problems.append(f"{raw}: ingest batches record {landed:,} rows landed but the table holds"
                                f" {acc.received:,}")
        for table in sorted({a.table for a in accounts}):
            staged = sum(a.staged for a in accounts if a.table == table)
            derived = table in DERIVED
            in_table = _count(conn, f"select count(*) from {table}"
                                    + (" where derived_from is null" if derived else ""))
            if staged != in_table:
                problems.append(f"{table}: staged (rows in the table) is {in_table:,} in the tables but {staged:,}"
                                " in the accounting")
            if derived:
                problems.extend(_derived_problems(conn, table, run_ts))
    if problems:
        raise AccountingError("row accounting does not add up for staging run "
                              f"{run_date.isoformat()}:\n- " + "\n- ".join(problems))
    return accounts


# Staging tables that may hold rows made from another staging table instead of raw rows (marked by
# ``derived_from``): the query that counts the rows they must hold, given the run's cutoff.
DERIVED: dict[str, str] = {
    # Contacts made from shop customers when no CRM export or HubSpot row arrived
    # (staging.contacts_from_customers in include/sql/staging/functions/derived.sql).
    "staging.contacts": """
        select count(*) from staging.customers as c
        where not c.is_deleted
          and not exists (select 1 from raw.crm_contacts as r where r._loaded_at <= :ts)
          and not exists (select 1 from raw.hubspot_contacts as h where h._loaded_at <= :ts)""",
}


def _derived_problems(conn: Any, table: str, run_ts: dt.datetime) -> list[str]:
    made = _count(conn, f"select count(*) from {table} where derived_from is not null")
    expected = _count(conn, DERIVED[table], ts=run_ts)
    if made == expected:
        return []
    return [f"{table}: {made:,} rows derived from other staging tables, but {expected:,} expected"]


class RebuildRefused(RuntimeError):
    """A staging rebuild would replace the tables with an older or much smaller picture; the message says
    how to force it."""


FORCE_VARIABLE = "MARTECH_FORCE_STAGING"
SHRINK_LIMIT = 0.5  # a rebuild from under half the raw rows of the last run is refused (when that had >= 100)


def guard_rebuild(engine: Any, run_date: dt.date, run_ts: dt.datetime) -> None:
    """Refuse to rebuild staging for a date older than the last staging run, or from under half the raw
    rows the last run received for a table, unless ``MARTECH_FORCE_STAGING=1``: both replace the tables
    that the models and campaigns read with a smaller picture (a replayed example, a wrong run date)."""
    import os

    if os.environ.get(FORCE_VARIABLE, "").strip().lower() in ("1", "true", "yes"):
        return
    force = f"set {FORCE_VARIABLE}=1 to rebuild anyway"
    with engine.connect() as conn:
        if conn.execute(sa.text("select to_regclass('staging.row_accounting')")).scalar_one() is None:
            return
        last = conn.execute(sa.text("select max(run_date) from staging.row_accounting")).scalar_one()
        if last is None or last == run_date:
            return
        if last > run_date:
            raise RebuildRefused(
                f"staging was last built for {last.isoformat()}; rebuilding it for the older date"
                f" {run_date.isoformat()} would replace every staging table with what was known then. Use a"
                f" separate MARTECH_HOME (or warehouse) for historical data, or {force}")
        rows = conn.execute(sa.text(
            "select raw_table, rows_received from staging.row_accounting where run_date = :d"), {"d": last}).all()
        for raw, before in rows:
            now = _count(conn, f"select count(*) from {raw} where _loaded_at <= :ts", ts=run_ts)
            if before >= 100 and now < SHRINK_LIMIT * before:
                raise RebuildRefused(
                    f"{raw} holds {now:,} rows for {run_date.isoformat()} but the staging run of"
                    f" {last.isoformat()} received {before:,}; rebuilding would shrink the staging tables."
                    f" Check the warehouse and the landing folders, or {force}")
