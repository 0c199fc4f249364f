"""The whole chain through Airflow (``dag.test()``) at a small scale: a send day, a rerun of the same
day that must change nothing, the recipients' reactions, and a day one attribution window later."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.e2e

SEND_DAY = dt.date(2026, 5, 4)
DAY1 = ["ingest", "staging", "customer_models", "email_events"]  # campaigns send on fresh suppressions
DAY2 = ["ingest", "staging", "customer_models", "email_events", "kpis"]
SCHEMAS = ("raw", "staging", "marts", "audiences", "campaigns", "kpis")


def _fingerprint(engine) -> dict[str, str]:
    """One digest of every row of every pipeline table."""
    out = {}
    with engine.connect() as conn:
        tables = conn.execute(sa.text(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_schema = any(:s) and table_type = 'BASE TABLE' order by 1"),
            {"s": list(SCHEMAS)}).scalars().all()
        for name in tables:
            rows = conn.execute(sa.text(f"select t::text from {name} as t")).scalars().all()
            out[name] = hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest() + f":{len(rows)}"
    return out


def _count(engine, rows: str) -> int:
    """``select count(*) from <rows>``."""
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"select count(*) from {rows}")).scalar_one())


def _outbox_digest(root) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def airflow_dags(warehouse_url):
    from martech.devtools import airflow_env, demo
    airflow_env.configure(warehouse_url)
    airflow_env.migrate_metadata()
    return demo._load_dags()


def test_whole_chain_runs_and_rerun_changes_nothing(engine, warehouse_url, airflow_dags, tmp_path):
    from martech import paths
    from martech.devtools import demo
    from martech.simulate import generate_sources, play_responses

    demo.reset(warehouse_url)
    from martech.db import migrate

    migrate(engine)
    # Dirty sources, as in the demo: the chain must quarantine, repair and merge, and still send.
    generate_sources(engine, paths.landing_dir(), as_of=SEND_DAY, customers=600, seed=7, defect_rate=0.02)
    campaigns = sorted(d for d in airflow_dags if d.startswith("campaign_"))
    log = tmp_path / "airflow.log"

    for dag_id in DAY1 + campaigns:
        demo._run_dag(airflow_dags, dag_id, SEND_DAY, 2, log)
    first = _fingerprint(engine)
    outbox_first = _outbox_digest(paths.outbox_dir())
    assert int(first["marts.customer_rfm"].split(":")[1]) > 100
    assert int(first["campaigns.send_ledger"].split(":")[1]) > 0
    assert any(name.endswith(".eml") for name in outbox_first)
    assert _count(engine, "raw.quarantine") > 0
    assert _count(engine, "campaigns.send_ledger as l join staging.merged_rows as m"
                          " on m.table_name = 'raw.crm_contacts' and l.contact_id = m.merged_key") == 0
    assert _count(engine, "campaigns.send_ledger as l join raw.quarantine as q"
                          " on q.table_name = 'raw.crm_contacts' and l.contact_id = q.row_key") == 0

    # The same run date again, every DAG: nothing may change, nothing may be sent twice.
    for dag_id in DAY1 + campaigns:
        demo._run_dag(airflow_dags, dag_id, SEND_DAY, 2, log)
    assert _fingerprint(engine) == first
    assert _outbox_digest(paths.outbox_dir()) == outbox_first

    from martech.simulate.webhook import webhook_poster

    play_responses(engine, paths.landing_dir(), send_date=SEND_DAY, days=7, seed=7, post_events=webhook_poster(engine))
    day2 = SEND_DAY + dt.timedelta(days=7)
    for dag_id in DAY2:
        demo._run_dag(airflow_dags, dag_id, day2, 3, log)

    with engine.connect() as conn:
        kpis = conn.execute(sa.text(
            "select arm, sum(members), sum(sent), sum(opened), sum(converted), sum(revenue)"
            " from kpis.campaign_daily group by arm order by arm")).all()
    ledger_dupes = _count(engine, "(select campaign_id, run_id, contact_id from campaigns.send_ledger"
                                  " group by 1, 2, 3 having count(*) > 1) as d")
    holdout_sent = _count(engine, "campaigns.send_ledger as l join audiences.audience_members as m"
                                  " using (campaign_id, run_id, contact_id) where m.arm = 'holdout'")
    arms = {row[0]: row[1:] for row in kpis}
    assert set(arms) == {"holdout", "treatment"}
    treatment = arms["treatment"]
    assert treatment[1] > 0 and treatment[2] > 0           # sent, opened
    assert sum(a[3] for a in arms.values()) > 0             # conversions observed
    assert arms["holdout"][1] == 0                          # holdout never sent
    assert ledger_dupes == 0 and holdout_sent == 0
