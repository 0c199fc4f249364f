"""CRM stage transitions from successive landed HubSpot versions, and the mql_follow_up audience on them."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from martech import pipeline
from martech.campaigns.freshness import stale_inputs
from martech.campaigns.spec import load_campaigns
from martech.db import run_model
from martech.ingest.connectors import hubspot
from martech.ingest.landing import cutoff_for
from martech.testing.fake_hubspot import FakeHubSpot

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fast_http_retries")]

UTC = dt.timezone.utc
RUN = dt.date(2026, 5, 10)


def _at(day: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(2026, 5, day, hour, tzinfo=UTC)


@pytest.fixture()
def db(module_warehouse):
    eng = module_warehouse.engine
    with eng.begin() as conn:
        conn.execute(sa.text("create schema if not exists staging"))
        conn.execute(sa.text("create table if not exists staging.contacts (contact_id text primary key,"
                             " email text, first_name text)"))
        for t in ("staging.contacts", "raw.hubspot_contacts", "raw.ingest_batches", "raw.ingest_state",
                  "campaigns.mart_builds", "campaigns.suppression_refreshes"):
            conn.execute(sa.text(f"truncate {t}"))
        conn.execute(sa.text("drop table if exists marts.crm_stage_transitions"))
    return eng


def _pull(eng, fake, run_date: dt.date) -> None:
    hubspot.pull_hubspot(eng, "tok", run_date=run_date, loaded_at=cutoff_for(run_date), objects=("contacts",),
                         base_url=fake.url, min_interval_s=0)


def _build(eng, run_date: dt.date) -> list[tuple]:
    pipeline._build_crm_transitions(eng, run_date)
    with eng.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "select contact_id, stage_property, from_stage, to_stage, changed_at"
            " from marts.crm_stage_transitions order by 1, 2, 5"))]


def test_transitions_follow_the_landed_versions_and_feed_the_audience(db) -> None:
    with FakeHubSpot(token="tok") as fake:
        fake.put("contacts", 1, _at(1), email="a@example.com", lifecyclestage="lead", hs_lead_status="NEW")
        fake.put("contacts", 2, _at(1), email="b@example.com", lifecyclestage="lead")
        fake.put("contacts", 3, _at(1), email="c@example.com", lifecyclestage="lead")
        fake.put("contacts", 4, _at(1), email="d@example.com", lifecyclestage="lead")
        _pull(db, fake, dt.date(2026, 5, 2))
        assert _build(db, dt.date(2026, 5, 2)) == []  # a first value is not a transition
        fake.put("contacts", 1, _at(6), lifecyclestage="marketingqualifiedlead", hs_lead_status="OPEN")
        fake.put("contacts", 2, _at(5), lifecyclestage="marketingqualifiedlead")
        fake.put("contacts", 4, _at(5), lifecyclestage="marketingqualifiedlead")
        fake.put("contacts", 3, _at(6), firstname="Cy")  # a change of something else: no transition
        _pull(db, fake, dt.date(2026, 5, 7))
        fake.put("contacts", 4, _at(8), lifecyclestage="salesqualifiedlead")  # moved on since
        _pull(db, fake, RUN)
    rows = _build(db, RUN)
    assert rows == [
        ("hubspot:1", "hs_lead_status", "new", "open", _at(6)),
        ("hubspot:1", "lifecyclestage", "lead", "marketingqualifiedlead", _at(6)),
        ("hubspot:2", "lifecyclestage", "lead", "marketingqualifiedlead", _at(5)),
        ("hubspot:4", "lifecyclestage", "lead", "marketingqualifiedlead", _at(5)),
        ("hubspot:4", "lifecyclestage", "marketingqualifiedlead", "salesqualifiedlead", _at(8)),
    ]
    assert _build(db, RUN) == rows  # a rebuild for the same run changes nothing

    spec = {s.id: s for s in load_campaigns()}["mql_follow_up"]
    with db.begin() as conn:
        conn.execute(sa.text("insert into staging.contacts values ('hubspot:1', 'a@example.com', 'Ann'),"
                             " ('hubspot:2', 'b@example.com', null), ('hubspot:4', 'd@example.com', 'Dee')"))
    with db.connect() as conn:
        cur = conn.connection.dbapi_connection.cursor()
        cur.execute(spec.audience_sql_text(), {"run_date": RUN})
        cols = [c.name for c in cur.description]
        audience = {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}
    assert sorted(audience) == ["hubspot:1", "hubspot:2"]
    assert audience["hubspot:1"]["days_since_qualified"] == 4
    # Eight days after the move it is out of the 7-day window.
    with db.connect() as conn:
        cur = conn.connection.dbapi_connection.cursor()
        run_model(db, "marts.crm_stage_transitions", {"run_date": dt.date(2026, 5, 14),
                                                      "run_ts": cutoff_for(dt.date(2026, 5, 14))})
        cur.execute(spec.audience_sql_text(), {"run_date": dt.date(2026, 5, 14)})
        assert [r[0] for r in cur.fetchall()] == []


def test_an_empty_build_counts_as_fresh_for_the_campaign_gate(db) -> None:
    spec = {s.id: s for s in load_campaigns()}["mql_follow_up"]
    with db.connect() as conn:
        assert any("marts.crm_stage_transitions is as of never" in p for p in stale_inputs(
            conn, spec.audience_sql_text(), RUN))
    assert _build(db, RUN) == []  # no CRM connected: nothing landed
    with db.begin() as conn:
        conn.execute(sa.text("insert into campaigns.suppression_refreshes (run_date, added, refreshed_at)"
                             " values (:d, 0, now())"), {"d": RUN})
    with db.connect() as conn:
        assert stale_inputs(conn, spec.audience_sql_text(), RUN) == []
        assert stale_inputs(conn, spec.audience_sql_text(), RUN + dt.timedelta(days=1)) != []
