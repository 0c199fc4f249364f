"""Staging against the simulator's ground truth: every planted defect found, no clean row flagged,
every raw row accounted for, and a lost row caught.

The simulator plants each kind of ``martech.simulate.defects`` at a 3 % rate and labels the rows in
``sim_truth.defects``; staging never reads the labels. ``martech.devtools.defect_eval`` matches what staging
recorded (raw.quarantine, staging.corrections, staging.merged_rows) to the labels by table, row and kind.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.devtools import defect_eval
from martech.ingest.landing import cutoff_for
from martech.simulate.defects import KINDS
from martech.staging import accounting

pytestmark = pytest.mark.integration

AS_OF = dt.date(2026, 6, 1)


@pytest.fixture(scope="module")
def dirty(simulated_staging):
    engine = simulated_staging(AS_OF, customers=1_500, seed=11, defect_rate=0.03)
    return engine, simulated_staging.summary


def test_every_kind_is_found_and_nothing_clean_is_flagged(dirty):
    eng, _ = dirty
    with eng.connect() as conn:
        scores = defect_eval.score(conn)
        report = defect_eval.markdown_table(scores)
        problems = {s.kind: defect_eval.misses(conn, s.kind, 5) for s in scores
                    if s.precision < 1 or s.recall < 1}
    assert [s.kind for s in scores] == [k.code for k in KINDS]
    assert all(s.labels > 0 for s in scores), report
    assert problems == {}, report


def test_every_raw_row_is_accounted_for(dirty):
    eng, summary = dirty
    accounts = {a.table: a for a in accounting.check(eng, AS_OF, cutoff_for(AS_OF))}
    assert set(accounts) == {"staging.customers", "staging.products", "staging.orders", "staging.order_items",
                             "staging.contacts", "staging.cart_items", "staging.carts", "staging.web_sessions",
                             "staging.product_views"}
    for a in accounts.values():
        assert a.received == a.staged + a.quarantined + a.duplicate + a.superseded + a.merged, a
    # The dirty tables really exercised each term.
    assert accounts["staging.orders"].quarantined > 0 and accounts["staging.orders"].duplicate > 0
    assert accounts["staging.order_items"].quarantined > 0
    assert accounts["staging.customers"].merged > 0 and accounts["staging.contacts"].merged > 0
    assert accounts["staging.contacts"].landing_quarantined > 0
    assert summary["quarantined"]["staging.orders"] == accounts["staging.orders"].quarantined


def test_quarantined_rows_say_what_to_fix(dirty):
    eng, _ = dirty
    with eng.connect() as conn:
        rows = conn.execute(sa.text(
            "select table_name, reason_code, reason, received, source_ref from raw.quarantine")).all()
    assert rows
    for table, code, reason, received, ref in rows:
        assert code and reason and received and ref, (table, code, reason)
    by_code = {code: reason for _, code, reason, _, _ in rows}
    assert "not an ISO 4217 currency" in by_code["unknown_currency"]
    assert "was rejected (" in by_code["orphan_order_item"] or "no order" in by_code["orphan_order_item"]
    assert "fields" in by_code["malformed_csv_line"]


def test_identity_merge_keeps_the_strictest_recent_consent(dirty):
    eng, _ = dirty
    with eng.connect() as conn:
        dupes = conn.execute(sa.text(
            "select lower(email), count(*) from staging.contacts where email is not null"
            " group by 1 having count(*) > 1")).all()
        merged = conn.execute(sa.text(
            "select m.merged_key, m.surviving_key from staging.merged_rows as m"
            " where m.table_name = 'raw.crm_contacts'")).all()
        staged_ids = {r[0] for r in conn.execute(sa.text("select contact_id from staging.contacts"))}
    assert dupes == []
    assert merged and all(m not in staged_ids and s in staged_ids for m, s in merged)


def test_a_rerun_replaces_what_staging_recorded(dirty, warehouse):
    eng, _ = dirty

    def snapshot():
        with eng.connect() as conn:
            return [conn.execute(sa.text(q)).all() for q in (
                "select table_name, reason_code, count(*) from raw.quarantine group by 1, 2 order by 1, 2",
                "select table_name, kind, count(*) from staging.corrections group by 1, 2 order by 1, 2",
                "select table_name, kind, count(*) from staging.merged_rows group by 1, 2 order by 1, 2",
                "select * from staging.row_accounting order by table_name")]

    before = snapshot()
    pipeline.build_staging(warehouse, AS_OF)
    assert snapshot() == before


def test_a_lost_row_fails_the_accounting(dirty, warehouse):
    eng, _ = dirty
    with eng.begin() as conn:
        conn.execute(sa.text("delete from staging.order_items where ctid = (select min(ctid) from staging.order_items)"))
    with pytest.raises(accounting.AccountingError, match=r"staging.order_items: staged \(rows in the table\)"):
        accounting.check(eng, AS_OF, cutoff_for(AS_OF))
    pipeline.build_staging(warehouse, AS_OF)  # rebuilt whole again
