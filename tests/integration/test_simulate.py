"""The simulator: deterministic, consistent, with its planted structure and a true treatment effect."""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from martech.ingest.landing import CRM_CONTACT_COLUMNS, CRM_OPTIONAL_COLUMNS
from martech.simulate import generate_sources, play_responses
from martech.simulate.dirty import LINE_KINDS
from martech.simulate.purchases import History, sample_behaviour

pytestmark = pytest.mark.integration
AS_OF = dt.date(2026, 6, 1)


def _digest(engine) -> str:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "select md5(string_agg(o::text, '|' order by order_id)) from shop.orders o")).scalar_one()
    return rows


def _q(engine, sql, **p):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), p).all()


def test_sources_are_deterministic_and_consistent(clean_warehouse, tmp_path):
    eng = clean_warehouse
    s1 = generate_sources(eng, tmp_path / "a", as_of=AS_OF, customers=800, seed=3)
    d1 = _digest(eng)
    csv1 = hashlib.sha256((tmp_path / "a/crm/contacts_20260601.csv").read_bytes()).hexdigest()
    s2 = generate_sources(eng, tmp_path / "b", as_of=AS_OF, customers=800, seed=3)
    assert s1 == dataclasses.replace(s2, files=s1.files)
    assert [Path(f).name for f in s1.files] == [Path(f).name for f in s2.files]
    assert _digest(eng) == d1
    assert hashlib.sha256((tmp_path / "b/crm/contacts_20260601.csv").read_bytes()).hexdigest() == csv1

    cutoff = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
    assert _q(eng, "select max(updated_at) < :c, max(order_ts) < :c from shop.orders", c=cutoff)[0] == (True, True)
    mismatched = _q(eng, "select count(*) from shop.orders o join (select order_id, sum(quantity * unit_price) s"
                         " from shop.order_items group by 1) i using (order_id) where i.s <> o.total_amount::numeric")
    assert mismatched[0][0] == 0
    with open(tmp_path / "a/crm/contacts_20260601.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == (*CRM_CONTACT_COLUMNS, *CRM_OPTIONAL_COLUMNS)
    assert len(rows) - 1 == s1.contacts == s1.customers + s1.leads
    consent = [r[7] for r in rows[1:]]
    assert 0.6 < sum(c in ("opted_in", "double_opt_in") for c in consent) / len(consent) < 0.8
    # Heavy-tailed repeat purchasing: many one-order customers, some very loyal ones.
    counts = [n for (n,) in _q(eng, "select count(*) from shop.orders group by customer_id")]
    assert sum(c == 1 for c in counts) / len(counts) > 0.15 and max(counts) >= 15


def test_planted_copurchase_pairs_show_lift(clean_warehouse, tmp_path):
    eng = clean_warehouse
    generate_sources(eng, tmp_path, as_of=AS_OF, customers=1500, seed=5)
    lift = dict(((a, b), float(v)) for a, b, v in _q(eng, """
        with cc as (select distinct i.order_id as basket, p.category from shop.order_items i
                    join shop.products p using (product_id)),
             n as (select count(distinct basket)::float n from cc),
             c as (select category, count(*)::float k from cc group by 1)
        select a.category, b.category, count(*) / (ca.k * cb.k / n.n)
        from cc a join cc b on a.basket = b.basket and a.category < b.category
        join c ca on ca.category = a.category join c cb on cb.category = b.category cross join n
        group by a.category, b.category, ca.k, cb.k, n.n"""))
    # Baskets: planted partners appear together far more often than unrelated categories.
    assert lift[("Mugs & Cups", "Tea")] > 1.5 * lift[("Gift Sets", "Tea")]
    assert lift[("Brewing Gear", "Coffee")] > lift[("Coffee", "Tea")]


def test_purchase_process_drops_customers_out():
    rng = np.random.default_rng(0)
    n = 4000
    history = History(start_day=19_000, n_days=730)
    b = sample_behaviour(rng, history, np.full(n, history.start_s), np.zeros(n, dtype=np.int64))
    per_customer = np.bincount(b.order_customer, minlength=n)
    # Everyone who is still alive bought at most as often as the process offered; some dropped out early.
    assert 0.05 < (~b.alive).mean() < 0.95
    dead = ~b.alive & (per_customer > 0)
    assert per_customer[dead].mean() < per_customer[b.alive & (per_customer > 0)].mean() * 1.5
    # High drop-out probability means fewer purchases, all else equal.
    hi, lo = b.dropout_p > np.quantile(b.dropout_p, 0.8), b.dropout_p < np.quantile(b.dropout_p, 0.2)
    assert per_customer[hi].mean() < per_customer[lo].mean()
    assert np.all(np.diff(b.order_ts) >= 0)


def test_responses_have_a_true_effect_and_are_idempotent(clean_warehouse, tmp_path):
    eng = clean_warehouse
    generate_sources(eng, tmp_path, as_of=AS_OF, customers=3000, seed=11)
    send = AS_OF
    with eng.begin() as conn:
        ids = [r[0] for r in conn.execute(sa.text("select contact_id from sim_truth.contacts"
                                                  " where customer_id is not null order by 1"))]
        conn.execute(sa.text(
            "insert into audiences.audience_members (campaign_id, run_id, run_date, contact_id, email, first_name,"
            " arm, variant, definition_hash, attributes)"
            " select 'promo', :r, :d, c, c || '@example.com', 'X', case when n % 2 = 0 then 'treatment'"
            " else 'holdout' end, 'a', 'h', '{}' from unnest(cast(:ids as text[])) with ordinality as t(c, n)"),
            {"r": send.isoformat(), "d": send, "ids": ids})
        conn.execute(sa.text(
            "insert into campaigns.send_ledger (send_id, campaign_id, run_id, step, contact_id, email, variant,"
            " status, transport, message_id, attempts, created_at, sent_at)"
            " select 's' || contact_id, campaign_id, run_id, 1, contact_id, email, 'a', 'sent', 'outbox',"
            " 'm' || contact_id, 1, :t, :t from audiences.audience_members where arm = 'treatment'"),
            {"t": dt.datetime(2026, 6, 1, 9, tzinfo=dt.timezone.utc)})
    r1 = play_responses(eng, tmp_path, send_date=send, days=7, seed=11)
    files1 = {p.name: p.read_bytes() for p in (tmp_path / "email_events").glob("*.jsonl")}
    orders1 = _q(eng, "select count(*), sum(total_amount::numeric) from shop.orders")[0]
    r2 = play_responses(eng, tmp_path, send_date=send, days=7, seed=11)
    assert r1 == r2
    assert {p.name: p.read_bytes() for p in (tmp_path / "email_events").glob("*.jsonl")} == files1
    assert _q(eng, "select count(*), sum(total_amount::numeric) from shop.orders")[0] == orders1
    assert r1.events["processed"] == r1.messages and r1.events["delivered"] < r1.messages
    rates = dict(_q(eng, """
        select m.arm, avg((exists (select 1 from shop.orders o join sim_truth.contacts c using (customer_id)
               where c.contact_id = m.contact_id and o.order_ts >= :s and o.order_ts < :e))::int)
        from audiences.audience_members m group by m.arm""",
        s=dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc), e=dt.datetime(2026, 6, 8, tzinfo=dt.timezone.utc)))
    assert rates["treatment"] > rates["holdout"]


def test_lead_activity_carries_the_true_conversion_propensity(clean_warehouse, tmp_path):
    eng = clean_warehouse
    generate_sources(eng, tmp_path, as_of=AS_OF, customers=3000, seed=9)
    leads = _q(eng, "select propensity, converted from sim_truth.leads")
    assert len(leads) > 1000
    converted = [p for p, c in leads if c]
    other = [p for p, c in leads if not c]
    assert 0.2 < len(converted) / len(leads) < 0.8
    # Calibrated: the mean true propensity equals the conversion share; and it separates the classes.
    assert abs(np.mean([p for p, _ in leads]) - len(converted) / len(leads)) < 0.03
    assert np.mean(converted) > np.mean(other) + 0.15
    # Converted leads were in the CRM before their first order.
    early = _q(eng, "select count(*) filter (where l.created_at < c.signup_at), count(*) from sim_truth.leads l"
                    " join sim_truth.contacts k using (contact_id) join sim_truth.customers c using (customer_id)"
                    " where l.converted")
    assert early[0][0] == early[0][1] == len(converted)


def test_carts_are_bought_or_abandoned_consistently(clean_warehouse, tmp_path):
    eng = clean_warehouse
    summary = generate_sources(eng, tmp_path, as_of=AS_OF, customers=1500, seed=4)
    assert summary.carts > 0
    (bad_links,) = _q(eng, "select count(*) from shop.carts c left join shop.orders o using (order_id)"
                           " where c.status = 'converted' and (o.order_id is null or o.customer_id <> c.customer_id"
                           " or c.created_at >= o.order_ts)")
    assert bad_links[0] == 0  # a converted cart belongs to its customer's order and came before it
    (mismatch,) = _q(eng, "select count(*) from (select c.cart_id from shop.carts c join shop.cart_items i"
                          " using (cart_id) join shop.order_items oi on oi.order_id = c.order_id and oi.line_no ="
                          " i.line_no where oi.product_id <> i.product_id) x")
    assert mismatch[0] == 0
    shares = dict(_q(eng, "select status, count(*) from shop.carts group by 1"))
    assert {"converted", "abandoned"} <= set(shares) <= {"converted", "abandoned", "open"}
    assert shares["abandoned"] > 0.2 * sum(shares.values())
    # Open carts are the ones touched within the last hour; older untouched carts are abandoned.
    (young,) = _q(eng, "select count(*) filter (where status = 'open'), count(*) filter (where status <> 'converted'"
                       " and updated_at >= :t) from shop.carts",
                  t=dt.datetime(2026, 5, 31, 23, tzinfo=dt.timezone.utc))
    assert young[0] == young[1]
    (late,) = _q(eng, "select count(*) from shop.carts where updated_at >= :d", d=AS_OF)
    assert late[0] == 0


def test_web_sessions_and_product_views_are_ingested_and_staged(clean_warehouse, tmp_path):
    from martech.db import run_model
    from martech.ingest import landing as ingest

    eng = clean_warehouse
    summary = generate_sources(eng, tmp_path, as_of=AS_OF, customers=600, seed=8)
    assert summary.web_sessions > summary.orders and summary.product_views > summary.web_sessions
    run_ts = ingest.cutoff_for(AS_OF)
    results = {r.table: r for r in ingest.ingest_shop(eng, eng, source_schema="shop", run_date=AS_OF,
                                                      loaded_at=run_ts)}
    assert results["raw.shop_web_sessions"].rows_loaded == summary.web_sessions
    assert results["raw.shop_product_views"].rows_loaded == summary.product_views
    for model in ("staging.web_sessions", "staging.product_views"):
        run_model(eng, model, {"run_date": AS_OF, "run_ts": run_ts})
    (diff,) = _q(eng, """
        select count(*) from (
            (select session_id, customer_id, contact_id, started_at, page_views, product_views from shop.web_sessions
             except select session_id, customer_id, contact_id, started_at, page_views, product_views
             from staging.web_sessions)
            union all
            (select session_id, product_id::bigint, null, viewed_at, view_no, 0 from shop.product_views
             except select session_id, product_id, null, viewed_at, view_no, 0 from staging.product_views)) x""")
    assert diff[0] == 0
    (n,) = _q(eng, "select count(*) from staging.web_sessions")
    assert n[0] == summary.web_sessions
    # A second pull with no change in the source loads nothing.
    again = {r.table: r for r in ingest.ingest_shop(eng, eng, source_schema="shop", run_date=dt.date(2026, 6, 2),
                                                    loaded_at=ingest.cutoff_for(dt.date(2026, 6, 2)))}
    assert again["raw.shop_web_sessions"].rows_loaded == 0 and again["raw.shop_product_views"].rows_loaded == 0


def _defect_digest(engine) -> str:
    with engine.connect() as conn:
        parts = [conn.execute(sa.text(f"select md5(coalesce(string_agg(t::text, '|' order by t::text), ''))"
                                      f" from {table} t")).scalar_one()
                 for table in ("shop.customers", "shop.orders", "shop.order_items", "sim_truth.defects")]
    return ":".join(parts)


def test_dirty_sources_label_every_defect_kind_on_real_rows_and_still_ingest(clean_warehouse, tmp_path):
    from martech.ingest import landing as ingest
    from martech.simulate.defects import KINDS

    eng = clean_warehouse
    s1 = generate_sources(eng, tmp_path / "a", as_of=AS_OF, customers=800, seed=13, defect_rate=0.03)
    d1 = _defect_digest(eng)
    s2 = generate_sources(eng, tmp_path / "b", as_of=AS_OF, customers=800, seed=13, defect_rate=0.03)
    name = "contacts_20260601.csv"
    data = (tmp_path / "a/crm" / name).read_bytes()
    assert (tmp_path / "b/crm" / name).read_bytes() == data and _defect_digest(eng) == d1
    assert s1 == dataclasses.replace(s2, files=s1.files) and s1.defects > 0

    labels = _q(eng, "select table_name, row_key, source_file, line_no, kind, field, original_value, planted_value,"
                     " origin from sim_truth.defects")
    assert {r.kind for r in labels} == {k.code for k in KINDS}
    for k in KINDS:  # each kind is labelled in the raw table the catalogue says it lives in
        assert {r.table_name for r in labels if r.kind == k.code and r.origin != "consequence"} == {k.table}
    # ... and what follows from a planted row is labelled where it follows: the lines of a rejected order
    # or of a cart whose lines overflow its value
    assert {(r.kind, r.table_name) for r in labels if r.origin == "consequence"} <= {
        ("orphan_order_item", "shop_order_items"), ("cart_value_out_of_range", "shop_cart_items")}

    # Shop labels point at rows that hold the planted value.
    checks = {"shop_orders": ("shop.orders", "order_id::text"),
              "shop_order_items": ("shop.order_items", "order_id || ':' || line_no"),
              "shop_customers": ("shop.customers", "customer_id::text")}
    for table, (source, key) in checks.items():
        for r in (x for x in labels if x.table_name == table):
            col = r.field
            expr = {"order_ts": "to_char(order_ts at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || '+00:00'",
                    "unit_price": "to_char(unit_price, 'FM999990.00')"}.get(col, f"{col}::text")
            found = _q(eng, f"select {expr} from {source} where {key} = :k", k=r.row_key)
            assert found, r
            if r.kind == "conflicting_version":  # the key twice, same version: the original beside the other
                assert sorted(v for (v,) in found) == sorted([r.original_value, r.planted_value]), r
                continue
            assert {v for (v,) in found} == {r.planted_value}, r
            if r.kind == "duplicate_order_id":
                assert len(found) == 2

    # CRM labels point at file lines: the line itself for malformed ones, else the field as written.
    raw_lines = data.split(b"\n")
    lines = [line.decode("utf-8", "replace") for line in raw_lines]
    header = lines[0].split(",")
    crm = [r for r in labels if r.table_name == "crm_contacts"]
    assert all(r.source_file == name and r.line_no >= 2 for r in crm)
    for r in crm:
        if r.kind in ("malformed_csv_line", "unterminated_quote"):
            assert lines[r.line_no - 1] == r.planted_value
            continue
        if r.kind in LINE_KINDS:  # planted as bytes: the label holds them in base64
            assert base64.b64encode(raw_lines[r.line_no - 1]).decode() == r.planted_value
            continue
        row = next(csv.reader([lines[r.line_no - 1]]))
        assert len(row) == len(header) and row[0] == r.row_key, r
        assert row[header.index(r.field)] == r.planted_value, r

    # Ingest lands everything: malformed lines quarantined with file:line, nothing lost, nothing crashes.
    run_ts = ingest.cutoff_for(AS_OF)
    shop = {b.table: b for b in ingest.ingest_shop(eng, eng, source_schema="shop", run_date=AS_OF, loaded_at=run_ts)}
    (n_orders,) = _q(eng, "select count(*) from shop.orders")
    assert shop["raw.shop_orders"].rows_loaded == n_orders[0] == s1.orders + sum(
        r.kind == "duplicate_order_id" for r in labels)
    (crm_batch,) = ingest.ingest_crm_exports(eng, tmp_path / "a/crm", run_date=AS_OF, loaded_at=run_ts)
    malformed = {(f"{name}:{r.line_no}", r.kind) for r in crm if r.kind in LINE_KINDS}
    refs = {tuple(r) for r in _q(eng, "select source_ref, reason_code from raw.quarantine"
                                       " where table_name = 'raw.crm_contacts'")}
    assert refs == malformed
    assert crm_batch.rows_loaded + crm_batch.rows_quarantined == len([x for x in lines[1:] if x])
    # The raw table keeps each labelled CRM field exactly as planted (empty text lands as NULL).
    raw = {(f, n): row for f, n, *row in _q(eng, "select _source_file, _line_no, contact_id, email, birthday,"
                                                 " first_name, last_name, country, timezone, consent_status,"
                                                 " created_at, updated_at from raw.crm_contacts")}
    cols = ["contact_id", "email", "birthday", "first_name", "last_name", "country", "timezone", "consent_status",
            "created_at", "updated_at"]
    for r in crm:
        if r.kind not in LINE_KINDS:
            row = raw[(r.source_file, r.line_no)]
            assert row[0] == r.row_key and (row[cols.index(r.field)] or "") == r.planted_value, r
