"""HubSpot connector against the local CRM v3 search stand-in and a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa

from martech.ingest.connectors import _http, _land, hubspot
from martech.ingest.landing import cutoff_for
from martech.testing.fake_hubspot import FakeHubSpot, iso
from martech.testing.landing import assert_landed_once

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fast_http_retries")]

UTC = dt.timezone.utc
D1 = dt.date(2026, 3, 10)
BASE = dt.datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TABLE = {"contacts": ("raw.hubspot_contacts", "contact_id", "lastmodifieddate"),
         "deals": ("raw.hubspot_deals", "deal_id", "hs_lastmodifieddate")}


def _seed(fake: FakeHubSpot, obj: str, n: int, *, per_ts: int = 3, start: int = 1) -> None:
    # Several records share one timestamp, so the (modified, id) tiebreak matters.
    for i in range(start, start + n):
        fake.put(obj, 1000 + i, BASE + dt.timedelta(minutes=(i - start) // per_ts, milliseconds=7),
                 email=f"c{i}@example.com", firstname=f"F{i}", dealname=f"D{i}")


def _pull(engine, fake, src, run_date=D1, **kw):
    kw.setdefault("min_interval_s", 0)
    return hubspot.pull_hubspot(engine, kw.pop("token", "tok"), run_date=run_date,
                                loaded_at=cutoff_for(run_date), base_url=fake.url, source_name=src, **kw)


def _landed(engine, src: str, obj: str) -> list[tuple[str, str]]:
    table, key, modified = TABLE[obj]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(f"select {key}, {modified} from {table}"
                                                       " where _source = :s"), {"s": src})]


def _assert_exact(engine, fake, src, obj):
    assert_landed_once(_landed(engine, src, obj), fake.versions(obj))


def test_pull_lands_every_record_once_with_ties_and_the_exact_last_page(engine, hub, src):
    _seed(hub, "contacts", 300)  # a multiple of the page size: the last page is full and has no paging.next
    _seed(hub, "deals", 41)
    results = _pull(engine, hub, src)
    assert [(r.table, r.rows_loaded, r.skipped) for r in results] == [
        ("raw.hubspot_contacts", 300, False), ("raw.hubspot_deals", 41, False)]
    _assert_exact(engine, hub, src, "contacts")
    _assert_exact(engine, hub, src, "deals")
    bodies = hub.state.searches
    assert all(b["limit"] == 100 and "after" not in b and len(b["sorts"]) == 1 for b in bodies)
    assert {b["sorts"][0]["propertyName"] for b in bodies if b["object"] == "deals"} == {"hs_lastmodifieddate"}
    with engine.connect() as conn:
        row = conn.execute(sa.text("select payload, email, lastmodifieddate from raw.hubspot_contacts"
                                   " where _source = :s and contact_id = '1001'"), {"s": src}).one()
    assert row.payload["properties"]["email"] == row.email == "c1@example.com"
    assert row.lastmodifieddate == iso(BASE + dt.timedelta(milliseconds=7))


def test_more_than_a_page_sharing_one_timestamp_is_drained_by_id(engine, hub, src):
    _seed(hub, "contacts", 250, per_ts=1000)  # a bulk import: 250 records, one timestamp
    _seed(hub, "contacts", 30, start=251)
    assert _pull(engine, hub, src, objects=["contacts"])[0].rows_loaded == 280
    _assert_exact(engine, hub, src, "contacts")
    assert any(b["sorts"][0]["propertyName"] == "hs_object_id" for b in hub.state.searches)


def test_the_10000_result_cap_is_never_reached(engine, hub, src):
    hub.server.max_results = 300  # HubSpot's cap is 10,000; lowered so a small account reaches it
    _seed(hub, "contacts", 1000)
    assert _pull(engine, hub, src, objects=["contacts"])[0].rows_loaded == 1000
    _assert_exact(engine, hub, src, "contacts")
    assert 400 not in hub.state.statuses


def test_rerun_is_a_no_op_and_the_next_run_loads_only_the_changes(engine, hub, src):
    _seed(hub, "contacts", 120)
    assert _pull(engine, hub, src, objects=["contacts"])[0].rows_loaded == 120
    asked = len(hub.state.searches)
    again = _pull(engine, hub, src, objects=["contacts"])[0]
    assert again.skipped and len(hub.state.searches) == asked  # a complete batch asks the API nothing
    assert _pull(engine, hub, src, D1 + dt.timedelta(days=1), objects=["contacts"])[0].rows_loaded == 0
    changed = dt.datetime.combine(D1 + dt.timedelta(days=1), dt.time(9), tzinfo=UTC)
    for i in range(7):
        hub.put("contacts", 1001 + i * 10, changed, email=f"new{i}@example.com")
    hub.put("contacts", 1002, changed + dt.timedelta(days=1))  # on the run date itself: the next run's
    assert _pull(engine, hub, src, D1 + dt.timedelta(days=2), objects=["contacts"])[0].rows_loaded == 7
    assert _pull(engine, hub, src, D1 + dt.timedelta(days=3), objects=["contacts"])[0].rows_loaded == 1
    _assert_exact(engine, hub, src, "contacts")
    assert len(_landed(engine, src, "contacts")) == 128


def test_429_and_5xx_bursts_are_retried_and_waited_without_sleeping(engine, hub, src):
    _seed(hub, "contacts", 150)
    hub.fault("429", "429", "500", "502", "503", "drop")
    waits: list[float] = []
    result = _pull(engine, hub, src, objects=["contacts"], sleep=waits.append)[0]
    assert result.rows_loaded == 150
    _assert_exact(engine, hub, src, "contacts")
    assert waits[:2] == [1.0, 1.0]  # Retry-After
    # One request met all six faults: retries 3 to 6 back off within 1 s * 2^retry, jittered.
    assert len(waits) == 6 and all(0 <= w <= 2 ** i for i, w in enumerate(waits[2:], start=2))


def test_retries_run_out_with_an_error_naming_the_failure(engine, hub, src):
    _seed(hub, "contacts", 10)
    hub.fail_after = 0
    with pytest.raises(_http.ApiError, match="still failing after 3 attempts; last: 503"):
        _pull(engine, hub, src, objects=["contacts"], policy=_http.RetryPolicy(attempts=3))


def test_bad_token_fails_at_once_with_a_clear_error(engine, hub, src):
    _seed(hub, "contacts", 10)
    with pytest.raises(_http.AuthError, match="check the token in the Airflow connection 'hubspot'"):
        _pull(engine, hub, src, token="wrong", objects=["contacts"])
    assert hub.state.statuses == [401] and _landed(engine, src, "contacts") == []
    with pytest.raises(ValueError, match=r"password .* of the Airflow connection 'hubspot'"):
        _pull(engine, hub, src, token="", objects=["contacts"])


def test_server_dying_after_n_pages_then_a_rerun_resumes_exactly(engine, hub, src):
    _seed(hub, "contacts", 430)
    hub.fail_after = 3
    with pytest.raises(_http.ApiError):
        _pull(engine, hub, src, objects=["contacts"], policy=_http.RetryPolicy(attempts=2))
    partial = _landed(engine, src, "contacts")
    assert 200 < len(partial) < 300  # three pages, each minus its tail at the last timestamp
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from raw.ingest_batches where source = :s"),
                            {"s": src}).scalar_one() == 0
    hub.fail_after = None
    result = _pull(engine, hub, src, objects=["contacts"])[0]
    assert result.rows_loaded == 430 and "resumed after" in result.notes[0]
    _assert_exact(engine, hub, src, "contacts")
    # The resumed query starts from the checkpoint, not from the beginning.
    resumed = hub.state.searches[3]
    assert any(f["operator"] in ("GTE", "EQ") for g in resumed["filterGroups"] for f in g["filters"])


def test_a_crash_inside_a_page_commit_rolls_that_page_back(engine, hub, src, crash_page_commit):
    _seed(hub, "contacts", 400, per_ts=1)
    with crash_page_commit(3, RuntimeError("killed after the rows were written, before the commit")), \
            pytest.raises(RuntimeError, match="killed"):
        _pull(engine, hub, src, objects=["contacts"])
    assert len(_landed(engine, src, "contacts")) == 2 * 99  # pages 1 and 2; page 3 rolled back
    assert _pull(engine, hub, src, objects=["contacts"])[0].rows_loaded == 400
    _assert_exact(engine, hub, src, "contacts")


def test_records_modified_during_the_pull_are_neither_lost_nor_doubled(engine, hub, src):
    _seed(hub, "contacts", 500, per_ts=2)
    late = BASE + dt.timedelta(days=2)

    def modify(fake: FakeHubSpot, answered: int) -> None:
        if answered == 2:  # between pages: records already landed and records not yet reached
            for i, rid in enumerate((1001, 1050, 1150, 1300, 1450)):
                fake.put("contacts", rid, late + dt.timedelta(seconds=i), email=f"moved{i}@example.com")

    hub.on_search = modify
    _pull(engine, hub, src, objects=["contacts"])
    _assert_exact(engine, hub, src, "contacts")
    with engine.connect() as conn:
        moved = conn.execute(sa.text("select count(*) from raw.hubspot_contacts where _source = :s"
                                     " and email like 'moved%'"), {"s": src}).scalar_one()
    assert moved == 5


def _search(fake: FakeHubSpot, body: dict, token: str | None = "tok") -> tuple[int, dict]:
    req = urllib.request.Request(f"{fake.url}/crm/v3/objects/contacts/search", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json",
                                                         **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_fake_validates_requests_like_hubspot(hub):
    _seed(hub, "contacts", 5)
    assert _search(hub, {"limit": 5}, token=None)[0] == 401
    assert _search(hub, {"limit": 101})[0] == 400
    assert _search(hub, {"limit": 5, "sorts": ["email", "createdate"]})[0] == 400
    assert _search(hub, {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "GT"}]}]})[0] == 400
    assert _search(hub, {"filterGroups": [{"filters": [{"propertyName": "x", "operator": "LIKE", "value": 1}]}]})[0] == 400
    assert _search(hub, {"after": "9950", "limit": 100})[0] == 400
    assert _search(hub, {"offset": 3})[0] == 400
    status, body = _search(hub, {"limit": 5})
    assert status == 200 and body["total"] == 5 and "paging" not in body  # exactly the last page
    status, body = _search(hub, {"limit": 2, "after": "4"})
    assert len(body["results"]) == 1 and "paging" not in body
    status, body = _search(hub, {"limit": 5, "filterGroups": [{"filters": [
        {"propertyName": "lastmodifieddate", "operator": "GTE", "value": "99999999999999"}]}]})
    assert status == 200 and body["results"] == [] and body["total"] == 0


def test_fake_after_is_an_offset_into_the_live_result_set(hub):
    """Why the connector re-anchors each page: following ``after`` skips a record per modification."""
    _seed(hub, "contacts", 6, per_ts=1)
    sort = [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}]
    _, first = _search(hub, {"limit": 3, "sorts": sort})
    hub.put("contacts", 1001, BASE + dt.timedelta(days=1))  # already read; moves to the end
    _, second = _search(hub, {"limit": 3, "sorts": sort, "after": first["paging"]["next"]["after"]})
    seen = {r["id"] for r in first["results"] + second["results"]}
    assert "1004" not in seen  # shifted into the first page's offsets: a naive pager never sees it


def test_two_pulls_of_one_stream_cannot_both_land_a_page(engine, src):
    def checkpointer():
        cp = _land.Checkpointer(engine, source=src, stream="contacts", raw_table="raw.hubspot_contacts",
                                columns=["contact_id", "lastmodifieddate"], run_date=D1, loaded_at=cutoff_for(D1))
        assert cp.begin() is None
        return cp

    first, second = checkpointer(), checkpointer()
    first.commit([(["1", iso(BASE)], {"id": "1"})], _land.Watermark(BASE, "1"))
    with pytest.raises(_land.ConcurrentPullError, match="another pull of"):
        second.commit([(["1", iso(BASE)], {"id": "1"})], _land.Watermark(BASE, "1"))
    assert _landed(engine, src, "contacts") == [("1", iso(BASE))]


def test_the_raw_gate_checks_a_hubspot_landing(engine, hub, src):
    from martech.quality import raw as quality
    _seed(hub, "contacts", 120)
    _pull(engine, hub, src, objects=["contacts"])
    with engine.connect() as conn:
        batches = [b for (b,) in conn.execute(sa.text(
            "select distinct _batch_id from raw.hubspot_contacts where _source = :s"), {"s": src})]
    report = quality.validate_raw(engine, {"raw.hubspot_contacts": batches}, run_id=f"raw:{src}", run_date=D1)
    checked = {(r.expectation, r.column) for r in report.results if r.table == "raw.hubspot_contacts"}
    assert ("expect_table_columns_to_match_set", None) in {(e, None) for e, _ in checked}
    assert ("expect_compound_columns_to_be_unique", "contact_id, lastmodifieddate") in checked
    assert report.failed_critical == []


def test_hubspot_contacts_join_the_crm_in_staging(clean_warehouse, warehouse, hub, src):
    """HubSpot feeds staging.contacts beside the CRM export: one contact per address, opt-outs honoured."""
    from martech import pipeline
    from martech.db import copy_rows
    from martech.staging import accounting

    eng = clean_warehouse
    crm_ts = "2026-02-01T10:00:00+00:00"
    with eng.begin() as conn:
        copy_rows(conn, "raw.crm_contacts", (
            "contact_id", "email", "first_name", "consent_status", "consent_updated_at", "created_at", "updated_at",
            "_source_file", "_line_no", "_batch_id", "_source", "_loaded_at"), [
            ("C1", "ana@example.com", "Ana", "opted_in", crm_ts, "2025-01-01T00:00:00+00:00", crm_ts, "f.csv", 2,
             "crm:f", "crm_export", cutoff_for(D1)),
            ("C2", "bo@example.com", "Bo", "opted_in", crm_ts, "2025-01-01T00:00:00+00:00", crm_ts, "f.csv", 3,
             "crm:f", "crm_export", cutoff_for(D1))])
    # Ana is in HubSpot too and opted out there after her CRM opt-in; Cy is only in HubSpot.
    hub.put("contacts", 501, BASE, email="ANA@example.com", firstname="Ana", hs_email_optout="true")
    hub.put("contacts", 502, BASE, email="cy@example.com", firstname="Cy", hs_email_optout="false",
            lifecyclestage="marketingqualifiedlead")
    _pull(eng, hub, src, objects=["contacts"])
    pipeline.build_staging(warehouse, D1)

    with eng.connect() as conn:
        contacts = {r.contact_id: r for r in conn.execute(sa.text(
            "select contact_id, email, consent_status, lifecycle_status from staging.contacts"))}
        merges = conn.execute(sa.text(
            "select table_name, merged_key, surviving_key from staging.merged_rows where kind = 'email_case_duplicate'")).all()
    assert set(contacts) == {"C1", "C2", "hubspot:502"}
    assert contacts["C1"].consent_status == "opted_out"  # the newer decision, from HubSpot, wins
    assert contacts["C2"].consent_status == "opted_in"
    assert (contacts["hubspot:502"].consent_status, contacts["hubspot:502"].lifecycle_status) == ("unknown", "lead")
    assert merges == [("raw.hubspot_contacts", "hubspot:501", "C1")]
    accounts = {a.raw_table: a for a in accounting.check(eng, D1, cutoff_for(D1)) if a.table == "staging.contacts"}
    assert (accounts["raw.crm_contacts"].staged, accounts["raw.hubspot_contacts"].staged) == (2, 1)
    assert accounts["raw.hubspot_contacts"].merged == 1
