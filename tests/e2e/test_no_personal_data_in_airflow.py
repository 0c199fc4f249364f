"""A small chain through Airflow and an erasure request, then a search of everything Airflow kept — task logs, XComs, asset
events and every other row of its metadata database — for the simulated people's addresses and names."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.e2e

DAY = dt.date(2026, 5, 4)


def _metadata_text(db_path) -> str:
    """Every value of every table in Airflow's SQLite metadata database, blobs decoded."""
    out = []
    with sqlite3.connect(db_path) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
        for table in tables:
            for row in conn.execute(f'select * from "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        value = value.decode("utf-8", errors="replace")
                    if value is not None:
                        out.append(str(value))
    assert "xcom" in tables and "asset_event" in tables
    return "\n".join(out)


def test_airflow_keeps_no_address_or_name(engine, warehouse_url, tmp_path, capfd):
    from martech import paths
    from martech.db import migrate
    from martech.devtools import airflow_env, demo
    from martech.simulate import generate_sources

    airflow_env.configure(warehouse_url)
    airflow_env.migrate_metadata()
    dags = demo._load_dags()
    demo.reset(warehouse_url)
    migrate(engine)
    generate_sources(engine, paths.landing_dir(), as_of=DAY, customers=200, seed=13)
    log = tmp_path / "airflow.log"
    for dag_id in ("ingest", "staging", "customer_models", "email_events", "campaign_winback"):
        demo._run_dag(dags, dag_id, DAY, 2, log)

    with engine.connect() as conn:
        sent = conn.execute(sa.text("select count(*) from campaigns.send_ledger where status = 'sent'")).scalar_one()
        people = conn.execute(sa.text(
            "select email, first_name, last_name from staging.contacts where email is not null")).all()
    assert sent > 0 and len(people) > 100
    # An erasure request through Airflow (by contact id: the run's params are kept in Airflow's metadata).
    with engine.connect() as conn:
        erased = conn.execute(sa.text(
            "select min(contact_id) from campaigns.send_ledger where status = 'sent'")).scalar_one()
    with demo._output_to(log):
        run = dags["gdpr_erase"].test(
            logical_date=dt.datetime.combine(DAY, dt.time(5), tzinfo=dt.timezone.utc),
            run_conf={"run_date": DAY.isoformat(), "request_id": "REQ-E2E-1", "contact_id": erased})
    assert str(run.state).endswith("success")
    with engine.connect() as conn:
        counts = conn.execute(sa.text(
            "select counts from campaigns.erasure_requests where request_id = 'REQ-E2E-1'")).scalar_one()
    assert counts["staging.contacts"] == 1 and counts["campaigns.send_ledger"] >= 1
    addresses = {p.email.lower() for p in people}
    # Whole words of five letters or more: shorter names occur inside ordinary words and identifiers.
    names = {n for p in people for n in (p.first_name, p.last_name) if n and len(n) >= 5}

    home = airflow_env.airflow_home()
    captured = capfd.readouterr()  # task logs, written to the console by dag.test()
    console = log.read_text(errors="replace") + captured.out + captured.err
    texts = {"console": console, "metadata": _metadata_text(home / "airflow.db")}
    texts.update({str(f): f.read_text(errors="replace") for f in (home / "logs").rglob("*") if f.is_file()})
    assert "campaign_winback" in texts["metadata"] and len(texts["console"]) > 1000
    name_pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names))) + r")\b")
    hits = []
    for where, text in texts.items():
        lowered = text.lower()
        hits += [f"{where}: {a}" for a in addresses if a in lowered]
        hits += [f"{where}: {m.group(0)}" for m in name_pattern.finditer(text)][:5]
    print(f"searched {len(texts)} texts ({sum(map(len, texts.values())):,} characters) for {len(addresses)}"
          f" addresses and {len(names)} names: {len(hits)} hits")
    assert hits == []
