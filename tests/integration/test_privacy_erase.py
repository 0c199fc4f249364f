"""Erase one person planted through the pipeline, then search every table and every file for them;
re-import their CRM row and check they are never mailed again."""

from __future__ import annotations

import csv
import datetime as dt
import re

import pytest
import sqlalchemy as sa

from martech import paths, pipeline
from martech.campaigns import runner
from martech.runs import Run
from martech.warehouse import Warehouse

pytestmark = pytest.mark.integration

AS_OF = dt.date(2026, 5, 4)
LATER = AS_OF + dt.timedelta(days=7)
CAMPAIGNS = ("winback", "vip", "upsell")
SCHEMAS = ("raw", "staging", "marts", "audiences", "campaigns", "kpis")
PIPELINE_SCHEMAS = ("shop", "sim_truth", *SCHEMAS)


def _day(wh: Warehouse, day: dt.date) -> None:
    pipeline.ingest_shop(wh, day)
    pipeline.ingest_crm(wh, day)
    pipeline.validate_raw(wh, day)
    pipeline.build_staging(wh, day)
    pipeline.build_customer_models(wh, day)
    pipeline.ingest_events(wh, day)  # the campaigns send only on suppressions refreshed for the day
    now = dt.datetime.combine(day, dt.time(9), tzinfo=dt.timezone.utc)
    for campaign in CAMPAIGNS:
        runner.build_audience(wh, campaign, Run.daily(day))
        runner.dispatch(wh, campaign, Run.daily(day), now)
    pipeline.build_kpis(wh, day)


@pytest.fixture(scope="module")
def planted(engine, warehouse):
    from martech.db import migrate
    from martech.simulate import generate_sources

    with engine.begin() as conn:
        for schema in PIPELINE_SCHEMAS:
            conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
    migrate(engine)
    # Landed under MARTECH_HOME, where the erasure looks for files.
    generate_sources(engine, paths.landing_dir(), as_of=AS_OF, customers=400, seed=17, defect_rate=0.02)
    _day(warehouse, AS_OF)
    with engine.connect() as conn:
        person = conn.execute(sa.text(
            "select c.contact_id, c.email, c.first_name, c.last_name, c.customer_id::text as customer_id"
            " from campaigns.send_ledger as l join staging.contacts as c using (contact_id)"
            " where l.status = 'sent' and c.customer_id is not null and c.first_name is not null"
            "   and c.last_name is not null"
            # Searching for the name must not find a namesake: pick someone whose name is theirs alone.
            "   and not exists (select 1 from raw.crm_contacts as o where o.first_name = c.first_name"
            "       and o.last_name = c.last_name and lower(btrim(o.email)) <> lower(c.email))"
            "   and not exists (select 1 from raw.shop_customers as o where o.first_name = c.first_name"
            "       and o.last_name = c.last_name and lower(btrim(o.email)) <> lower(c.email))"
            " order by (select count(*) from campaigns.send_ledger as o where o.contact_id = c.contact_id) desc,"
            "          c.contact_id limit 1")).mappings().one()
        crm = [dict(r) for r in conn.execute(sa.text(
            "select * from raw.crm_contacts where contact_id = :c"), {"c": person["contact_id"]}).mappings()]
    assert crm
    return dict(person), crm


def _hits(engine, person) -> dict[str, int]:
    """Rows per table naming the person, and files under MARTECH_HOME mentioning them."""
    email, cid = person["email"].lower(), person["contact_id"]
    text_pattern = rf"{re.escape(email)}|\m{re.escape(cid)}\M|{re.escape(person['first_name'])}\s+{re.escape(person['last_name'])}"
    hits: dict[str, int] = {}
    with engine.connect() as conn:
        columns = conn.execute(sa.text(
            "select table_schema || '.' || table_name, column_name, data_type from information_schema.columns"
            " where table_schema = any(:s) and (table_schema, table_name) in (select table_schema, table_name"
            " from information_schema.tables where table_type = 'BASE TABLE')"), {"s": list(SCHEMAS)}).all()
        by_table: dict[str, list[tuple[str, str]]] = {}
        for table, column, kind in columns:
            by_table.setdefault(table, []).append((column, kind))
        for table, cols in sorted(by_table.items()):
            conds = [f"{c}::text ~* :p" for c, k in cols if k in ("text", "jsonb", "character varying")]
            conds += [f"{c}::text = :cust" for c, _ in cols if c in ("customer_id", "shop_customer_id")]
            names = {c for c, _ in cols}
            if {"first_name", "last_name"} <= names:
                conds.append("(first_name = :first and last_name = :last)")
            if not conds:
                continue
            n = conn.execute(sa.text(f"select count(*) from {table} where {' or '.join(conds)}"),
                             {"p": text_pattern, "cust": person["customer_id"], "first": person["first_name"],
                              "last": person["last_name"]}).scalar_one()
            if n:
                hits[table] = n
    home = paths.home()
    needles = re.compile(text_pattern.replace(r"\m", r"\b").replace(r"\M", r"\b"), re.IGNORECASE)
    for path in home.rglob("*"):
        rel = path.relative_to(home)
        # The embedded server's own storage (heap pages, WAL) is the database itself, scanned above.
        if (path.is_file() and rel.parts[0] != "warehouse"
                and needles.search(path.read_bytes().decode("utf-8", errors="replace"))):
            key = f"files:{rel.parts[0]}"
            hits[key] = hits.get(key, 0) + 1
    return hits


def test_erase_leaves_no_trace_and_the_person_is_never_mailed_again(planted, engine, warehouse, tmp_path):
    person, crm = planted
    before = _hits(engine, person)
    print("before the erasure:", before)
    for place in ("raw.crm_contacts", "staging.contacts", "marts.customer_360", "audiences.audience_members",
                  "campaigns.send_ledger", "files:outbox", "files:landing"):
        assert before.get(place, 0) > 0, place
    with engine.connect() as conn:
        ledger_rows = conn.execute(sa.text("select count(*) from campaigns.send_ledger")).scalar_one()
        sent_kpi = conn.execute(sa.text("select sum(sent) from kpis.campaign_daily")).scalar_one()

    summary = pipeline.erase_person(warehouse, AS_OF, request_id="REQ-0001", contact_id=person["contact_id"])
    print("erasure counts:", summary["counts"])
    assert _hits(engine, person) == {}
    with engine.connect() as conn:
        # Tombstones: the KPIs still count the send.
        assert conn.execute(sa.text("select count(*) from campaigns.send_ledger")).scalar_one() == ledger_rows
        audit = conn.execute(sa.text("select identified_by, counts from campaigns.erasure_requests")).one()
        assert conn.execute(sa.text("select count(*) from campaigns.do_not_contact")).scalar_one() == 1
    assert audit.identified_by == "contact_id" and audit.counts == summary["counts"]
    assert audit.counts["campaigns.send_ledger"] > 0 and audit.counts["files:outbox"] > 0
    pipeline.build_kpis(warehouse, AS_OF)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select sum(sent) from kpis.campaign_daily")).scalar_one() == sent_kpi
    # A second run of the same request finds nothing more.
    assert pipeline.erase_person(warehouse, AS_OF, request_id="REQ-0001",
                                 email=person["email"].upper())["counts"]["campaigns.do_not_contact"] == 1
    assert _hits(engine, person) == {}

    # The CRM exports them again a week later: imported, but never mailed.
    export = paths.landing_dir() / "crm" / "contacts_reexport.csv"
    fields = [k for k in crm[0] if not k.startswith("_")]
    with export.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: row[k] for k in fields} for row in crm)
    _day(warehouse, LATER)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from staging.contacts where contact_id = :c"),
                            {"c": person["contact_id"]}).scalar_one() == 1
        mailed = conn.execute(sa.text(
            "select count(*) from campaigns.send_ledger where contact_id = :c or lower(email) = :e"),
            {"c": person["contact_id"], "e": person["email"].lower()}).scalar_one()
        members = conn.execute(sa.text(
            "select count(*) from audiences.audience_members where contact_id = :c"),
            {"c": person["contact_id"]}).scalar_one()
        reasons = set(conn.execute(sa.text(
            "select reason from audiences.exclusions where contact_id = :c and run_date = :d"),
            {"c": person["contact_id"], "d": LATER}).scalars())
    assert mailed == 0 and members == 0 and "suppressed" not in reasons  # no longer in those audiences
    # An audience that does select them: eligibility excludes them as suppressed (do-not-contact list).
    from martech.campaigns.audience import build_snapshot
    from martech.campaigns.spec import load_campaign

    only_them = tmp_path / "only_them.sql"
    only_them.write_text("select c.contact_id, c.email, c.first_name from staging.contacts as c"
                         f" where c.contact_id = '{person['contact_id']}'")
    spec = load_campaign(paths.CAMPAIGNS_DIR / "upsell.yml").model_copy(update={"audience_sql": str(only_them)})
    build_snapshot(engine, spec, LATER)
    with engine.connect() as conn:
        excluded = conn.execute(sa.text(
            "select reason, detail from audiences.exclusions where campaign_id = 'upsell' and run_date = :d"
            " and contact_id = :c"), {"c": person["contact_id"], "d": LATER}).all()
        members = conn.execute(sa.text(
            "select count(*) from audiences.audience_members where contact_id = :c"),
            {"c": person["contact_id"]}).scalar_one()
    assert members == 0 and [tuple(e) for e in excluded] == [("suppressed", "erased: on the do-not-contact list")]
