"""Scores written back to HubSpot: against the local batch-upsert stand-in and a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from martech.crm import writeback
from martech.crm.writeback import PROPERTIES, Pacer, write_back_hubspot
from martech.ingest.connectors._http import ApiError, HttpClient, RetryPolicy
from martech.ingest.sources import SourcesError, load_sources
from martech.testing.fake_hubspot import FakeHubSpot

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fast_http_retries")]

D1 = dt.date(2026, 5, 4)
D2 = dt.date(2026, 5, 5)
SEGMENTS = ("champions", "loyal", "at_risk", "hibernating")


class Clock:
    """A manual clock shared by the writer's pacing, its retry waits and the fake's burst window."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture()
def db(module_warehouse):
    eng = module_warehouse.engine
    with eng.begin() as conn:
        conn.execute(sa.text("create schema if not exists staging"))
        conn.execute(sa.text(
            "create table if not exists staging.contacts (contact_id text primary key, customer_id bigint,"
            " email text, updated_at timestamptz)"))
        conn.execute(sa.text(
            "create table if not exists marts.customer_lifecycle (as_of_date date, contact_id text,"
            " customer_id bigint, lifecycle_stage text, primary key (as_of_date, contact_id))"))
        for t in ("staging.contacts", "marts.customer_lifecycle", "marts.customer_rfm", "marts.lead_scores",
                  "marts.clv_predictions", "campaigns.crm_write_batches", "campaigns.crm_property_writes",
                  "campaigns.do_not_contact"):
            conn.execute(sa.text(f"truncate {t}"))
    return eng


def _seed(eng, n: int, as_of: dt.date = D1) -> None:
    """``n`` contacts: every one a customer with RFM, lifecycle and CLV rows; every third a scored lead."""
    with eng.begin() as conn:
        conn.execute(sa.text(
            "insert into staging.contacts select 'C' || i, i, 'c' || i || '@example.com', now()"
            " from generate_series(1, :n) as i"), {"n": n})
        _scores(conn, as_of, n)


def _scores(conn, as_of: dt.date, n: int, changed: frozenset[int] = frozenset()) -> None:
    """Scores as of ``as_of``: segment by i mod 4, or 'new_segment' for the contacts in ``changed``."""
    conn.execute(sa.text(
        "insert into marts.customer_rfm select :d, i, 10, 2, 99.5, now(), now(), 3, 3, 3, '333',"
        " case when i = any(:changed) then 'new_segment' else (:segments)[i % 4 + 1] end"
        " from generate_series(1, :n) as i"),
        {"d": as_of, "n": n, "changed": sorted(changed), "segments": list(SEGMENTS)})
    conn.execute(sa.text(
        "insert into marts.customer_lifecycle select :d, 'C' || i, i, 'active' from generate_series(1, :n) as i"),
        {"d": as_of, "n": n})
    conn.execute(sa.text(
        "insert into marts.clv_predictions (as_of, customer_id, contact_id, frequency, recency_days, t_days,"
        " monetary_avg, p_alive, churn_risk, expected_purchases, expected_revenue, horizon_days, model_version)"
        " select :d, i, 'C' || i, 2, 30, 90, 50, 0.8, 'low', 1.5, 75.25 + i, 365, 'test'"
        " from generate_series(1, :n) as i"), {"d": as_of, "n": n})
    conn.execute(sa.text(
        "insert into marts.lead_scores select :d, 'C' || i, 0.7, 'A', 'points', 'test'"
        " from generate_series(3, :n, 3) as i"), {"d": as_of, "n": n})


def _run(eng, fake, run_date=D1, clock: Clock | None = None, **kw) -> writeback.WriteBackResult:
    clock = clock or Clock()
    kw.setdefault("policy", RetryPolicy(attempts=3))
    return write_back_hubspot(eng, "tok", run_date=run_date, planned_at=dt.datetime(2026, 5, 4, tzinfo=dt.timezone.utc),
                              base_url=fake.url, sleep=clock.sleep, clock=clock, **kw)


def _sent_inputs(fake: FakeHubSpot) -> list[tuple[str, str, str]]:
    return [(i["id"], p, v) for body in fake.state.upserts for i in body["inputs"] for p, v in i["properties"].items()]


def test_first_run_sends_every_value_and_the_second_run_sends_nothing(db) -> None:
    _seed(db, 30)
    with FakeHubSpot(token="tok") as fake:
        first = _run(db, fake)
        assert (first.sent_inputs, first.sent_batches, first.requests) == (30, 1, 1)
        c7 = fake.state.written["c7@example.com"]
        assert c7 == {"martech_rfm_segment": "hibernating", "martech_lifecycle_stage": "active",
                      "martech_churn_risk": "low", "martech_predicted_clv": "82.25"}  # not a lead: no tier sent
        assert fake.state.written["c9@example.com"]["martech_lead_score_tier"] == "A"
        second = _run(db, fake)
        assert (second.planned_inputs, second.sent_inputs, second.requests) == (0, 0, 0)
        assert len(fake.state.upserts) == 1


def test_after_k_segment_changes_exactly_k_inputs_with_only_the_changed_property(db) -> None:
    _seed(db, 40)
    with FakeHubSpot(token="tok") as fake:
        _run(db, fake)
        changed = {5, 11, 23}
        with db.begin() as conn:
            _scores(conn, D2, 40, frozenset(changed))
        before = len(fake.state.upserts)
        result = _run(db, fake, run_date=D2)
        bodies = fake.state.upserts[before:]
        assert result.sent_inputs == len(changed)
        assert [i for b in bodies for i in b["inputs"]] == [
            {"idProperty": "email", "id": f"c{i}@example.com", "properties": {"martech_rfm_segment": "new_segment"}}
            for i in sorted(changed, key=lambda i: f"c{i}@example.com")]


def test_a_score_that_disappears_is_cleared_once(db) -> None:
    _seed(db, 6)
    with FakeHubSpot(token="tok") as fake:
        _run(db, fake)
        with db.begin() as conn:
            _scores(conn, D2, 6)
            conn.execute(sa.text("delete from marts.lead_scores where as_of = :d and contact_id = 'C3'"), {"d": D2})
        before = len(fake.state.upserts)
        _run(db, fake, run_date=D2)
        assert _sent_inputs(fake)[len(_sent_inputs(fake)) - 1:] == [("c3@example.com", "martech_lead_score_tier", "")]
        assert len(fake.state.upserts) == before + 1
        assert _run(db, fake, run_date=D2).sent_inputs == 0


def test_an_outage_mid_run_resumes_without_sending_any_input_twice(db) -> None:
    _seed(db, 450)
    with FakeHubSpot(token="tok") as fake:
        fake.fail_after = 2  # two batches answered, then the service is down
        with pytest.raises(ApiError, match="still failing"):
            _run(db, fake)
        with db.connect() as conn:
            states = dict(conn.execute(sa.text(
                "select status, count(*) from campaigns.crm_write_batches group by status")).all())
        assert states == {"sent": 2, "pending": 3}
        fake.fail_after = None
        resumed = _run(db, fake)
        assert (resumed.resumed_batches, resumed.planned_inputs, resumed.sent_inputs) == (3, 0, 250)
        ids = Counter(i["id"] for body in fake.state.upserts for i in body["inputs"])
        assert len(ids) == 450 and set(ids.values()) == {1}
        assert len(fake.state.upserts) == 5
        assert _run(db, fake).sent_inputs == 0


def test_more_than_100_inputs_are_split_and_the_fake_refuses_101(db) -> None:
    _seed(db, 250)
    with FakeHubSpot(token="tok") as fake:
        result = _run(db, fake)
        assert [len(b["inputs"]) for b in fake.state.upserts] == [100, 100, 50]
        assert result.sent_inputs == 250
        with pytest.raises(ApiError, match=r"400.*exceeds the limit of 100"):
            HttpClient(fake.url, {"Authorization": "Bearer tok"}).request(
                "POST", writeback.UPSERT_PATH,
                body={"inputs": [{"idProperty": "email", "id": f"x{i}@example.com", "properties": {}}
                                 for i in range(101)]})
    with pytest.raises(ValueError, match="batch_size must be between 1 and 100"):
        _run(db, fake, batch_size=101)


def test_429_from_the_burst_limit_is_waited_out_as_retry_after_says(db) -> None:
    _seed(db, 120)
    clock = Clock()
    with FakeHubSpot(token="tok", burst_limit=3, clock=clock) as fake:
        # Pacing above the fake's limit on purpose, so that the fake refuses requests.
        result = _run(db, fake, clock=clock, batch_size=10, max_requests=50)
        assert fake.state.rate_limited >= 1 and result.rate_limited == fake.state.rate_limited
        assert result.sent_inputs == 120 and len(fake.state.upserts) == 12
        waits = [s for reason, s in result.waits if reason == "429"]
        assert waits and all(1 <= s <= 10 for s in waits)
        assert 429 in fake.state.statuses


def test_pacing_keeps_under_the_burst_limit(db) -> None:
    _seed(db, 1200)
    clock = Clock()
    with FakeHubSpot(token="tok", clock=clock) as fake:
        result = _run(db, fake, clock=clock, batch_size=10)  # 120 requests: more than one window's worth
        assert result.sent_inputs == 1200 and fake.state.rate_limited == 0
        # 80 requests in the first window, then one wait until they leave it (a manual clock: no time
        # passes while requests are made), then the other 40.
        assert result.waits == [("pace", 10.0)]
        assert clock.t - 1000.0 == 10.0


def test_erased_contacts_are_not_written(db) -> None:
    from martech.privacy.erase import address_key

    _seed(db, 5)
    with db.begin() as conn:
        conn.execute(sa.text("insert into campaigns.do_not_contact (address_hmac, request_id, listed_on)"
                             " values (:h, 'r1', :d)"), {"h": address_key("c2@example.com"), "d": D1})
    with FakeHubSpot(token="tok") as fake:
        result = _run(db, fake)
        assert result.sent_inputs == 4
        assert "c2@example.com" not in fake.state.written


def test_pacer_waits_only_past_the_limit() -> None:
    clock, waits = Clock(), []
    pacer = Pacer(2, 10.0, lambda s, r: (waits.append(s), clock.sleep(s)), clock)
    for _ in range(3):
        pacer.before_request()
    assert waits == [10.0]


def test_off_unless_the_source_says_write_back(db, warehouse, tmp_path: Path) -> None:
    path = tmp_path / "sources.yml"
    path.write_text("sources:\n  hubspot:\n    kind: hubspot\n    enabled: true\n")
    out = writeback.run_write_back(warehouse, D1, credentials=lambda c: {"token": "tok"}, sources_path=path)
    assert out == {"run_date": "2026-05-04", "enabled": False, "sources": {}}
    path.write_text("sources:\n  files:\n    kind: files\n    write_back: true\n")
    with pytest.raises(SourcesError, match=r"source 'files', field write_back: .*only a source of kind hubspot"):
        load_sources(path)


def test_figures_at_3000_contacts(db) -> None:
    _seed(db, 3000)
    clock = Clock()
    with FakeHubSpot(token="tok", clock=clock) as fake:
        t0 = time.perf_counter()
        first = _run(db, fake, clock=clock)
        t1 = time.perf_counter()
        second = _run(db, fake, clock=clock)
        changed = set(range(1, 3001, 20))  # 150 segment changes
        with db.begin() as conn:
            _scores(conn, D2, 3000, frozenset(changed))
        third = _run(db, fake, run_date=D2, clock=clock)
    print(f"\nfigures at 3000 contacts: first run {first.requests} requests / {first.sent_inputs} inputs"
          f" ({t1 - t0:.2f} s wall); unchanged rerun {second.requests} / {second.sent_inputs};"
          f" after {len(changed)} segment changes {third.requests} / {third.sent_inputs}")
    assert (first.requests, first.sent_inputs) == (30, 3000)
    assert (second.requests, second.sent_inputs) == (0, 0)
    assert (third.requests, third.sent_inputs) == (2, len(changed))
    assert set(PROPERTIES) >= {p for _, p, _ in _sent_inputs(fake)}
