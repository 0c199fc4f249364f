"""Erase one person planted through the pipeline, then search every table and every file for them;
re-import them (their CRM row and their shop account with a new order) and check they are held back
at staging, counted in the row accounting, never mailed, and again found nowhere."""

from __future__ import annotations

import csv
import datetime as dt
import re

import pytest
import sqlalchemy as sa

from martech import paths, pipeline
from martech.campaigns import runner
from martech.privacy.erase import WITHHELD
from martech.runs import Run
from martech.warehouse import Warehouse

pytestmark = pytest.mark.integration

AS_OF = dt.date(2026, 5, 4)
NEXT = AS_OF + dt.timedelta(days=1)
LATER = AS_OF + dt.timedelta(days=7)
CAMPAIGNS = ("winback", "vip", "upsell")
SCHEMAS = ("raw", "staging", "marts", "audiences", "campaigns", "kpis")
PIPELINE_SCHEMAS = ("shop", "sim_truth", *SCHEMAS)


def _day(wh: Warehouse, day: dt.date) -> dict:
    pipeline.ingest_shop(wh, day)
    pipeline.ingest_crm(wh, day)
    pipeline.validate_raw(wh, day)
    staged = pipeline.build_staging(wh, day)
    pipeline.build_customer_models(wh, day)
    pipeline.ingest_events(wh, day)  # the campaigns send only on suppressions refreshed for the day
    now = dt.datetime.combine(day, dt.time(9), tzinfo=dt.timezone.utc)
    for campaign in CAMPAIGNS:
        runner.build_audience(wh, campaign, Run.daily(day))
        runner.dispatch(wh, campaign, Run.daily(day), now)
    pipeline.build_kpis(wh, day)
    return staged


@pytest.fixture(scope="module")
def planted(engine, warehouse):
    from martech.db import migrate
    from martech.simulate import generate_sources, play_responses

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
    # Previews of every treatment member (a send writes the first few only) and a dry run, which records
    # each member's address in campaigns.dry_runs.
    from martech.campaigns.dispatch import dry_run, write_previews
    from martech.campaigns.spec import load_campaign

    with engine.connect() as conn:
        campaign = conn.execute(sa.text(
            "select min(campaign_id) from campaigns.send_ledger where contact_id = :c and status = 'sent'"),
            {"c": person["contact_id"]}).scalar_one()
    spec = load_campaign(paths.CAMPAIGNS_DIR / f"{campaign}.yml")
    now = dt.datetime.combine(AS_OF, dt.time(9), tzinfo=dt.timezone.utc)
    write_previews(engine, spec, AS_OF, paths.outbox_dir() / "previews", now=now, samples=10_000)
    dry_run(engine, spec, AS_OF, now=now)
    # The next day the recipients' events come in, and a CRM export mangles the person's address: the raw
    # check keeps it in its sample of failing values and its Data Docs, staging quarantines the row.
    play_responses(engine, paths.landing_dir(), send_date=AS_OF, days=1, seed=17)
    fields = [k for k in crm[0] if not k.startswith("_")]
    with (paths.landing_dir() / "crm" / f"contacts_{NEXT}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerow({**{k: crm[-1][k] for k in fields}, "updated_at": f"{NEXT}T06:00:00+00:00",
                         "email": f"{person['first_name']} {person['last_name']} <{person['email']}>"})
    pipeline.ingest_crm(warehouse, NEXT)
    from martech.quality.results import DataQualityError

    with pytest.raises(DataQualityError):  # the only row of its file fails: the gate stops, samples kept
        pipeline.validate_raw(warehouse, NEXT)
    pipeline.build_staging(warehouse, NEXT)
    pipeline.ingest_events(warehouse, NEXT)
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
            key = "files:" + "/".join(rel.parts[:2] if rel.parts[:2] == ("outbox", "previews") else rel.parts[:1])
            hits[key] = hits.get(key, 0) + 1
    return hits


def test_erase_leaves_no_trace_and_the_person_is_never_mailed_again(planted, engine, warehouse, tmp_path):
    person, crm = planted
    before = _hits(engine, person)
    print("before the erasure:", before)
    for place in ("raw.crm_contacts", "raw.shop_customers", "raw.shop_orders", "raw.quarantine", "raw.email_events",
                  "staging.contacts", "staging.customers", "staging.orders", "staging.email_events",
                  "marts.customer_360", "marts.customer_rfm", "audiences.audience_members", "campaigns.send_ledger",
                  "campaigns.coupons", "campaigns.dry_runs", "kpis.data_quality", "files:outbox",
                  "files:outbox/previews", "files:landing", "files:data_docs"):
        assert before.get(place, 0) > 0, place
    with engine.connect() as conn:
        ledger_rows = conn.execute(sa.text("select count(*) from campaigns.send_ledger")).scalar_one()
        kept = {t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one()
                for t in ("audiences.audience_members", "staging.email_events", "raw.email_events")}
        sent_kpi = conn.execute(sa.text("select sum(sent) from kpis.campaign_daily")).scalar_one()

    summary = pipeline.erase_person(warehouse, AS_OF, request_id="REQ-0001", contact_id=person["contact_id"])
    print("erasure counts:", summary["counts"])
    assert _hits(engine, person) == {}
    with engine.connect() as conn:
        # Tombstones: the KPIs still count the send.
        assert conn.execute(sa.text("select count(*) from campaigns.send_ledger")).scalar_one() == ledger_rows
        assert {t: conn.execute(sa.text(f"select count(*) from {t}")).scalar_one() for t in kept} == kept
        audit = conn.execute(sa.text("select identified_by, counts from campaigns.erasure_requests")).one()
        listed = conn.execute(sa.text("select count(*) from campaigns.do_not_contact")).scalar_one()
    # The address, the contact id and the shop customer id, as keyed hashes.
    assert listed == summary["counts"]["campaigns.do_not_contact"] >= 3
    assert audit.identified_by == "contact_id" and audit.counts == summary["counts"]
    assert audit.counts["campaigns.send_ledger"] > 0 and audit.counts["files:outbox"] > 0
    pipeline.build_kpis(warehouse, AS_OF)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select sum(sent) from kpis.campaign_daily")).scalar_one() == sent_kpi
    # A second run of the same request finds nothing more.
    assert pipeline.erase_person(warehouse, AS_OF, request_id="REQ-0001",
                                 email=person["email"].upper())["counts"]["campaigns.do_not_contact"] == 1
    assert _hits(engine, person) == {}

    # A week later the CRM exports them again, and the shop (which has not erased them) sends their
    # account again with a new order: held back at staging, never mailed.
    export = paths.landing_dir() / "crm" / "contacts_reexport.csv"
    fields = [k for k in crm[0] if not k.startswith("_")]
    with export.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: row[k] for k in fields} for row in crm)
    changed = dt.datetime.combine(LATER - dt.timedelta(days=2), dt.time(12), tzinfo=dt.timezone.utc)
    with engine.begin() as conn:
        conn.execute(sa.text("update shop.customers set updated_at = :ts where customer_id = :c"),
                     {"ts": changed, "c": int(person["customer_id"])})
        new_order = conn.execute(sa.text("select max(order_id) + 1 from shop.orders")).scalar_one()
        old_order = conn.execute(sa.text("select min(order_id) from shop.orders where customer_id = :c"),
                                 {"c": int(person["customer_id"])}).scalar_one()
        conn.execute(sa.text(
            "insert into shop.orders select :n, customer_id, :ts, status, currency, total_amount, null, :ts"
            " from shop.orders where order_id = :o"), {"n": new_order, "o": old_order, "ts": changed})
        conn.execute(sa.text(
            "insert into shop.order_items select :n, line_no, product_id, quantity, unit_price, :ts"
            " from shop.order_items where order_id = :o"), {"n": new_order, "o": old_order, "ts": changed})
    staged = _day(warehouse, LATER)
    print("held back at staging:", staged["held_back"])
    # Order lines name no person (only their order): like the erasure, the hold-back leaves them.
    for table in ("raw.crm_contacts", "raw.shop_customers", "raw.shop_orders"):
        assert staged["held_back"].get(table, 0) > 0, table
    assert staged["held_back"].get("files:landing") == 1  # the re-export, rewritten without their line
    from martech.staging import accounting

    accounts = {a.raw_table: a for a in accounting.check(engine, LATER, pipeline._run_ts(LATER))}
    print("row accounting:", *(accounts[t].line() for t in ("raw.crm_contacts", "raw.shop_customers",
                                                            "raw.shop_orders")), sep="\n  ")
    with engine.connect() as conn:
        withheld = dict(conn.execute(sa.text(
            "select table_name, count(*) from raw.quarantine where reason_code = 'do_not_contact'"
            " and stage = 'landing' group by 1")).all())
        assert set(conn.execute(sa.text(
            "select received from raw.quarantine where reason_code = 'do_not_contact'")).scalars()) == {WITHHELD}
        mailed = conn.execute(sa.text(
            "select count(*) from campaigns.send_ledger where contact_id = :c or lower(email) = :e"),
            {"c": person["contact_id"], "e": person["email"].lower()}).scalar_one()
        members = conn.execute(sa.text(
            "select count(*) from audiences.audience_members where contact_id = :c"),
            {"c": person["contact_id"]}).scalar_one()
        sent_later = conn.execute(sa.text(
            "select count(*) from campaigns.send_ledger where run_id like :d"), {"d": f"%{LATER}%"}).scalar_one()
        listed = dict(conn.execute(sa.text("select kind, count(*) from campaigns.do_not_contact group by 1")).all())
    # Quarantined at landing, counted in the accounting (sent = landed + quarantined at landing).
    for table, n in staged["held_back"].items():
        if table.startswith("raw.") and table != "raw.quarantine":
            assert withheld[table] == n, table
            if table in accounts:
                assert accounts[table].landing_quarantined >= n, table
    assert mailed == 0 and members == 0 and sent_later > 0  # the campaigns did send that day, not to them
    assert listed.keys() == {"address", "contact_id", "customer_id"}
    # Nowhere: not in raw, staging, marts, audiences, campaigns, kpis, nor in any file.
    assert _hits(engine, person) == {}
    # Campaign eligibility still refuses the address should it come back some other way.
    from martech.privacy.erase import do_not_contact

    with engine.connect() as conn:
        erased = do_not_contact(conn)
    assert erased(f"  {person['email'].upper()} ") and not erased("someone.else@example.com")
