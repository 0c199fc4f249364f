"""Schema migrations run once per schema version: a current warehouse is left alone (no DDL, no lock
waited on), and an old warehouse migrated forward ends at the same schema as a fresh one."""

from __future__ import annotations

import subprocess
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from martech import paths
from martech.db import MIGRATIONS_TABLE, make_engine, migrate, schema_version

pytestmark = pytest.mark.integration

OLD_LAYOUT = "48fe527"  # a warehouse layout from before the schema was versioned


def test_a_current_schema_is_left_alone(engine, warehouse_url):
    migrate(engine)
    with engine.connect() as conn:
        recorded = conn.execute(sa.text(f"select version from {MIGRATIONS_TABLE}")).scalars().all()
    assert schema_version() in recorded

    # Another session holds the tables the old per-task DDL locked; a migration finding the schema
    # current must neither wait for them nor make anyone wait.
    holding, release = threading.Event(), threading.Event()

    def hold():
        with engine.begin() as conn:
            conn.execute(sa.text("lock table campaigns.suppressions, audiences.audience_members,"
                                 " raw.quarantine in access exclusive mode"))
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    impatient = make_engine(warehouse_url, connect_args={"options": "-c lock_timeout=500"})
    try:
        assert migrate(impatient) == []
        with engine.connect() as conn:
            waiting = conn.execute(sa.text("select count(*) from pg_locks where not granted")).scalar_one()
            held = conn.execute(sa.text(
                "select count(*) from pg_locks where mode = 'AccessExclusiveLock' and locktype = 'relation'"
                " and relation = any(array[to_regclass('campaigns.suppressions'),"
                " to_regclass('audiences.audience_members'), to_regclass('raw.quarantine')]::oid[])")).scalar_one()
        assert held == 3 and waiting == 0
    finally:
        release.set()
        holder.join()
        impatient.dispose()


@pytest.fixture()
def two_databases(warehouse_url):
    from contextlib import ExitStack

    from martech.db import scratch_database

    base = make_url(warehouse_url).database
    with ExitStack() as stack:
        urls = [stack.enter_context(scratch_database(warehouse_url, f"{base}_{n}")) for n in ("old_layout", "fresh")]
        engines = [make_engine(u) for u in urls]
        try:
            yield engines
        finally:
            for eng in engines:
                eng.dispose()


def _schema(engine) -> dict[str, list]:
    schemas = ["raw", "staging", "marts", "audiences", "campaigns", "kpis"]
    queries = {
        "columns": "select table_schema, table_name, column_name, data_type, is_nullable, column_default"
                   " from information_schema.columns where table_schema = any(:s)",
        "constraints": "select n.nspname, t.relname, c.conname, pg_get_constraintdef(c.oid)"
                       " from pg_constraint c join pg_class t on t.oid = c.conrelid"
                       " join pg_namespace n on n.oid = t.relnamespace where n.nspname = any(:s)",
        "indexes": "select schemaname, tablename, indexname, indexdef from pg_indexes where schemaname = any(:s)",
        "functions": "select routine_schema, routine_name, data_type from information_schema.routines"
                     " where routine_schema = any(:s)",
    }
    with engine.connect() as conn:
        return {k: sorted(tuple(map(str, r)) for r in conn.execute(sa.text(q), {"s": schemas}))
                for k, q in queries.items()}


def test_an_old_warehouse_and_a_fresh_one_end_at_the_same_schema(two_databases, tmp_path):
    old, fresh = two_databases
    subprocess.run(f"git archive {OLD_LAYOUT} include/sql | tar -x -C {tmp_path}", shell=True, check=True,
                   cwd=paths.PROJECT_ROOT)
    old_sql = tmp_path / "include" / "sql"
    assert schema_version(old_sql) != schema_version()
    migrate(old, old_sql)
    before = _schema(old)
    assert migrate(old)  # a new version: applied
    migrate(fresh)
    after = _schema(old)
    assert after != before  # the old layout really was older
    assert after == _schema(fresh)
