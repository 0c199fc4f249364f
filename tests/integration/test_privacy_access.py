"""The analyst role against a warehouse the pipeline has filled: it reads every marts and kpis table and
the pseudonymous views, nothing in the schemas that hold addresses and names, and never an address."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.campaigns import runner
from martech.privacy.access import PERSONAL_COLUMNS, ROLE, analyst_url
from martech.runs import Run

pytestmark = pytest.mark.integration

AS_OF = dt.date(2026, 5, 4)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "analyst-queries.md"
DENIED_SCHEMAS = ("raw", "staging", "audiences", "campaigns")
READ_SCHEMAS = ("marts", "kpis", "analyst")
_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


@pytest.fixture(scope="module")
def filled(simulated_staging, warehouse):
    """One pipeline day: staging and its checks, customer models, a campaign sent to the outbox, the KPIs."""
    engine = simulated_staging(AS_OF, customers=400, seed=5)
    pipeline.validate_raw(warehouse, AS_OF)
    pipeline.build_customer_models(warehouse, AS_OF)
    pipeline.ingest_events(warehouse, AS_OF)  # the campaigns send only on suppressions refreshed for the day
    now = dt.datetime.combine(AS_OF, dt.time(9), tzinfo=dt.timezone.utc)
    for campaign in ("winback", "vip"):
        runner.build_audience(warehouse, campaign, Run.daily(AS_OF))
        runner.dispatch(warehouse, campaign, Run.daily(AS_OF), now)
    pipeline.build_kpis(warehouse, AS_OF + dt.timedelta(days=1))
    pipeline.prepare_warehouse(warehouse)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from campaigns.send_ledger")).scalar_one() > 0
    return engine


@pytest.fixture()
def analyst(filled, warehouse_url):
    conn = psycopg2.connect(analyst_url(warehouse_url))
    conn.autocommit = True
    yield conn
    conn.close()


def _tables(engine, schemas) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_schema = any(:s) order by 1"), {"s": list(schemas)}).scalars())


def _readable_columns(engine, table: str) -> list[tuple[str, str]]:
    schema, name = table.split(".")
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "select column_name, data_type from information_schema.columns"
            " where table_schema = :s and table_name = :t"
            "   and has_column_privilege(:role, quote_ident(table_schema) || '.' || quote_ident(table_name),"
            "                            column_name, 'select')"
            " order by ordinal_position"), {"s": schema, "t": name, "role": ROLE})]


def test_analyst_is_denied_every_table_with_personal_data(filled, analyst):
    tables = _tables(filled, DENIED_SCHEMAS)
    assert {t.split(".")[0] for t in tables} == set(DENIED_SCHEMAS)
    for table in tables:
        with analyst.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(f"select 1 from {table} limit 1")


def test_analyst_reads_every_marts_and_kpis_table(filled, analyst):
    tables = _tables(filled, READ_SCHEMAS)
    assert {"marts.customer_rfm", "marts.customer_360", "kpis.campaign_daily", "analyst.sends",
            "analyst.audience_members"} <= set(tables)
    for table in tables:
        columns = [c for c, _ in _readable_columns(filled, table)]
        assert columns, table
        with analyst.cursor() as cur:
            cur.execute(f"select {', '.join(columns)} from {table} limit 5")
            cur.execute(f"select count(*) from {table}")
            with filled.connect() as conn:
                assert cur.fetchone()[0] == conn.execute(sa.text(f"select count(*) from {table}")).scalar_one()


def test_analyst_sees_no_address_or_name(filled, analyst):
    for table, personal in PERSONAL_COLUMNS.items():
        readable = {c for c, _ in _readable_columns(filled, table)}
        assert readable and not readable & set(personal)
        with analyst.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(f"select {personal[0]} from {table}")
    with filled.connect() as conn:
        addresses = set(conn.execute(sa.text(
            "select lower(email) from staging.contacts where email is not null")).scalars())
        names = set(conn.execute(sa.text(
            "select last_name from staging.contacts where length(last_name) > 3")).scalars())
    assert len(addresses) > 100 and len(names) > 50
    seen = 0
    for table in _tables(filled, READ_SCHEMAS):
        for column, kind in _readable_columns(filled, table):
            if kind not in ("text", "jsonb", "character varying"):
                continue
            with analyst.cursor() as cur:
                cur.execute(f"select distinct {column}::text from {table} where {column} is not null")
                for (value,) in cur.fetchall():
                    seen += 1
                    found = {a.lower() for a in _ADDRESS.findall(value)}
                    assert not found & addresses, f"{table}.{column}: {value}"
                    assert value not in names, f"{table}.{column}: {value}"
    assert seen > 100


def test_analyst_is_read_only_and_future_tables_are_readable(filled, analyst, warehouse):
    with analyst.cursor() as cur, pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        cur.execute("create temporary table scratch (x int)")
    with filled.begin() as conn:
        conn.execute(sa.text("create table marts.t_future_table (x int)"))
    try:
        with analyst.cursor() as cur:
            cur.execute("select count(*) from marts.t_future_table")
            assert cur.fetchone() == (0,)
            cur.execute("begin read write")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("insert into marts.t_future_table values (1)")
            cur.execute("rollback")
    finally:
        with filled.begin() as conn:
            conn.execute(sa.text("drop table marts.t_future_table"))
    pipeline.prepare_warehouse(warehouse)  # a second time: idempotent


def test_cli_prints_the_analyst_url(filled, warehouse_url, capsys):
    from martech.cli import main

    assert main(["warehouse", "url", "--analyst"]) == 0
    url = capsys.readouterr().out.strip()
    assert url == re.sub(r"//[^@/]*@", f"//{ROLE}@", warehouse_url)
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("select current_user, count(*) from analyst.sends")
        user, sends = cur.fetchone()
    assert user == ROLE and sends > 0


def _documented_queries() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_docs_have_ten_queries():
    assert len(_documented_queries()) == 10


@pytest.mark.parametrize("index", range(10))
def test_documented_query_runs_as_analyst(filled, analyst, index):
    query = _documented_queries()[index]
    with analyst.cursor() as cur:
        cur.execute(query)
        rows = cur.fetchall()
    assert rows, f"query {index + 1} of {DOCS.name} returned no rows on the simulated day:\n{query}"


def test_sendgrid_send_refuses_dev_secrets_and_carries_ids_only(filled, warehouse, monkeypatch):
    from martech.campaigns.sendgrid_transport import SendGridTransport
    from martech.privacy.secrets import DevelopmentSecretError
    from martech.testing.fake_sendgrid import FakeSendGrid

    bodies: list[dict] = []

    class Recording(SendGridTransport):
        def request_body(self, messages, attempt_ref):
            body = super().request_body(messages, attempt_ref)
            bodies.append(body)
            return body

    now = dt.datetime.combine(AS_OF, dt.time(9), tzinfo=dt.timezone.utc)
    monkeypatch.setenv("MARTECH_TRANSPORT", "sendgrid")
    monkeypatch.delenv("MARTECH_UNSUBSCRIBE_SECRET", raising=False)
    with FakeSendGrid() as sg:
        transport = Recording("SG.test", host=sg.url, clock=lambda: now, sleep=lambda s: None)
        runner.build_audience(warehouse, "upsell", Run.daily(AS_OF))
        with pytest.raises(DevelopmentSecretError, match="MARTECH_UNSUBSCRIBE_SECRET"):
            runner.dispatch(warehouse, "upsell", Run.daily(AS_OF), now, transport)
        assert bodies == []
        monkeypatch.setenv("MARTECH_UNSUBSCRIBE_SECRET", "u" * 48)
        monkeypatch.setenv("MARTECH_COUPON_SECRET", "c" * 48)
        runner.dispatch(warehouse, "upsell", Run.daily(AS_OF), now, transport)
    args = [p["custom_args"] for b in bodies for p in b["personalizations"]]
    assert args, "the upsell campaign sent nothing on the simulated day"
    with filled.connect() as conn:
        ids = {r.send_id: r for r in conn.execute(sa.text(
            "select send_id, campaign_id, run_id, contact_id, variant, step::text as step"
            " from campaigns.send_ledger where campaign_id = 'upsell'"))}
    for custom in args:
        row = ids[custom["send_id"]]
        # The attempt token (exactly-once delivery) is an opaque random id; everything else is a ledger id.
        attempt = custom.pop("attempt", None)
        assert attempt is None or re.fullmatch(r"[0-9a-f]{32}", attempt)
        assert custom == {"send_id": row.send_id, "campaign_id": row.campaign_id, "run_id": row.run_id,
                          "contact_id": row.contact_id, "variant": row.variant, "step": row.step}


# Every schema the pipeline writes (the analyst views included) and public, where the migration records
# the schema versions. The simulator's schemas are not the pipeline's: they are only labelled as the simulator's.
CATALOGUE_SCHEMAS = ("raw", "staging", "marts", "audiences", "campaigns", "kpis", "analyst", "public")
SIMULATOR_SCHEMAS = ("shop", "sim_truth")


def _uncommented(engine) -> list[str]:
    """Every schema, table, view and column of the catalogue schemas without a comment, from pg_catalog."""
    with engine.connect() as conn:
        return list(conn.execute(sa.text("""
            select 'schema ' || n.nspname
            from pg_namespace as n
            where n.nspname = any(:s) and coalesce(obj_description(n.oid, 'pg_namespace'), '') = ''
            union all
            select case c.relkind when 'v' then 'view ' when 'm' then 'view ' else 'table ' end
                   || n.nspname || '.' || c.relname
            from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
            where n.nspname = any(:s) and c.relkind in ('r', 'p', 'v', 'm', 'f')
              and coalesce(obj_description(c.oid, 'pg_class'), '') = ''
            union all
            select 'column ' || n.nspname || '.' || c.relname || '.' || a.attname
            from pg_attribute as a
            join pg_class as c on c.oid = a.attrelid
            join pg_namespace as n on n.oid = c.relnamespace
            where n.nspname = any(:s) and c.relkind in ('r', 'p', 'v', 'm', 'f')
              and a.attnum > 0 and not a.attisdropped
              and coalesce(col_description(c.oid, a.attnum), '') = ''
            order by 1"""), {"s": list(CATALOGUE_SCHEMAS)}).scalars())


def test_every_schema_table_view_and_column_has_a_comment(filled):
    from martech.db import SqlFile
    from martech.paths import SQL_DIR

    missing = _uncommented(filled)
    print(f"{len(missing)} without a comment:", *missing, sep="\n  ")
    assert missing == []
    # The check saw every table the SQL files define, not only those this day happened to build.
    defined = {SqlFile(p).qualified_name for p in sorted(SQL_DIR.glob("*/*.sql"))}
    assert defined <= set(_tables(filled, CATALOGUE_SCHEMAS))


def test_the_simulator_schemas_are_labelled_as_the_simulator(filled):
    with filled.connect() as conn:
        labels = dict(conn.execute(sa.text(
            "select nspname, obj_description(oid, 'pg_namespace') from pg_namespace where nspname = any(:s)"),
            {"s": list(SIMULATOR_SCHEMAS)}).all())
    assert set(labels) == set(SIMULATOR_SCHEMAS)
    for schema, label in labels.items():
        assert "simulat" in (label or "").lower() and "not a pipeline schema" in label, schema
