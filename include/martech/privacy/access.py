"""The ``analyst`` role: read-only, on ``marts``, ``kpis`` and the pseudonymous views in ``analyst``.

Raw, staging, audiences and campaigns hold e-mail addresses and names, so the role gets no USAGE on
those schemas at all. Where analysts need audiences or sends, the views in schema ``analyst`` show them
by contact id only; a view runs with its owner's rights, so it needs no grant on the tables under it.
Everything here is idempotent and runs after every migration.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine

ROLE = "analyst"
READABLE_SCHEMAS = ("marts", "kpis", "analyst")
# Columns in the readable schemas that hold personal data: the analyst reads every other column of
# these tables (column privileges), never these. customer_360 is the one mart that joins the address.
PERSONAL_COLUMNS = {
    "marts.customer_360": ("email", "first_name", "last_name", "birthday"),
    "kpis.data_quality": ("unexpected_sample",),  # failing values as received, e.g. malformed addresses
}
_VIEWS = {
    "analyst.audience_members": """
        select campaign_id, run_id, run_date, contact_id, arm, variant, step, send_at, send_before
        from audiences.audience_members""",
    "analyst.sends": """
        select send_id, campaign_id, run_id, step, contact_id, variant, status, transport, attempts,
               created_at, sent_at
        from campaigns.send_ledger""",
}
_VIEW_COMMENTS = {
    "analyst.audience_members": "audiences.audience_members without address, name or attributes: "
                                "one row per contact per campaign run",
    "analyst.sends": "campaigns.send_ledger without address or error text: one row per intended send",
}
# The views' columns mean what they mean in the tables under them.
_COLUMN_COMMENTS = {
    "campaign_id": "Campaign (include/campaigns/<id>.yml)",
    "run_id": "Campaign run (a date, or an hour for hourly series)",
    "run_date": "Run date",
    "contact_id": "CRM contact id (erased people: erased:<hash>); no address or name",
    "arm": "treatment (mailed) or holdout (not mailed)",
    "variant": "A/B variant",
    "step": "Step of a series (1 for single messages)",
    "send_at": "Start of the send window in the contact's time zone",
    "send_before": "End of that window (null = no window)",
    "send_id": "Id of the intended send (custom_args.send_id in email events)",
    "status": "pending, sent, failed or skipped",
    "transport": "outbox, smtp or sendgrid",
    "attempts": "Requests made for the send",
    "created_at": "When the send was planned (the run's timestamp)",
    "sent_at": "When the provider accepted it",
}

_CREATE_ROLE = f"""
do $$
begin
    if not exists (select 1 from pg_roles where rolname = '{ROLE}') then
        create role {ROLE} login nosuperuser nocreatedb nocreaterole noinherit;
    end if;
exception when duplicate_object or unique_violation then
    null;  -- created concurrently by another migration on the same server
end
$$"""


def grant_analyst_access(engine: Engine) -> None:
    """Create the role if missing and (re)apply its grants and views. Idempotent."""
    with engine.begin() as conn:
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext('martech.analyst_access'))"))
        conn.execute(sa.text(_CREATE_ROLE))
        # A role created by hand without LOGIN would leave the printed URL useless.
        conn.execute(sa.text(f"alter role {ROLE} login"))
        conn.execute(sa.text(f"alter role {ROLE} set default_transaction_read_only = on"))
        conn.execute(sa.text("create schema if not exists analyst"))
        conn.execute(sa.text(
            "comment on schema analyst is 'Pseudonymous views for analysts: contact ids, no addresses or names'"))
        for name, body in _VIEWS.items():
            conn.execute(sa.text(f"create or replace view {name} as {body}"))
            conn.execute(sa.text(f"comment on view {name} is :c"), {"c": _VIEW_COMMENTS[name]})
            for column in _view_columns(body):
                conn.execute(sa.text(f"comment on column {name}.{column} is :c"), {"c": _COLUMN_COMMENTS[column]})
        for schema in READABLE_SCHEMAS:
            conn.execute(sa.text(f"create schema if not exists {schema}"))
            conn.execute(sa.text(f"grant usage on schema {schema} to {ROLE}"))
            conn.execute(sa.text(f"grant select on all tables in schema {schema} to {ROLE}"))
            # Tables created later by the migrating role (models rebuilt each run) are readable too.
            conn.execute(sa.text(
                f"alter default privileges in schema {schema} grant select on tables to {ROLE}"))
        _restrict_personal_columns(conn)


def _view_columns(body: str) -> list[str]:
    select_list = body.split("select", 1)[1].split("from", 1)[0]
    return [c.strip() for c in select_list.split(",")]


def _restrict_personal_columns(conn: sa.Connection) -> None:
    for table, personal in PERSONAL_COLUMNS.items():
        schema, name = table.split(".")
        columns = conn.execute(sa.text(
            "select column_name from information_schema.columns where table_schema = :s and table_name = :t"
            " order by ordinal_position"), {"s": schema, "t": name}).scalars().all()
        if not columns:
            continue  # a model not built yet: the next call after its build restricts it
        conn.execute(sa.text(f"revoke select on {table} from {ROLE}"))
        allowed = ", ".join(c for c in columns if c not in personal)
        conn.execute(sa.text(f"grant select ({allowed}) on {table} to {ROLE}"))


def analyst_url(url: str) -> str:
    """The same warehouse URL with the analyst as user (no password: trust or a .pgpass entry)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{ROLE}@{host}"))
