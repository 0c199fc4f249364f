"""A series (the welcome campaign): each step reaches the contacts whose trigger is that many days back,
once, with its own template; the steps have their own run ids and ledger steps."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from martech.campaigns.audience import build_snapshot, step_run_id
from martech.campaigns.dispatch import dispatch
from martech.campaigns.spec import load_campaigns
from martech.campaigns.transports import OutboxTransport
from martech.db import run_model

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
RUN = dt.date(2026, 3, 10)
WELCOME = {s.id: s for s in load_campaigns()}["welcome"]


@pytest.fixture()
def wh(clean_warehouse):
    eng = clean_warehouse
    params = {"run_date": RUN, "run_ts": dt.datetime(2026, 3, 10, tzinfo=UTC)}
    run_model(eng, "staging.contacts", params)
    run_model(eng, "staging.customers", params)
    # Signed up 1, 3, 8 and 5 days before the run date (step 1, 2, 3, and none).
    for i, days in enumerate((1, 3, 8, 5), start=1):
        at = dt.datetime.combine(RUN - dt.timedelta(days=days), dt.time(15), tzinfo=UTC)
        with eng.begin() as conn:
            conn.execute(sa.text("insert into staging.customers (customer_id, email, created_at, is_deleted)"
                                 " values (:i, :e, :t, false)"), {"i": i, "e": f"n{i}@example.com", "t": at})
            conn.execute(sa.text("insert into staging.contacts (contact_id, email, first_name, consent_status,"
                                 " customer_id, timezone) values (:c, :e, :f, 'opted_in', :i, 'UTC')"),
                         {"c": f"n{i}", "e": f"n{i}@example.com", "f": f"N{i}", "i": i})
    return eng


def test_each_step_takes_its_own_day_of_signups(wh, tmp_path) -> None:
    got = {}
    for step in WELCOME.step_numbers:
        summary = build_snapshot(wh, WELCOME, RUN, step=step)
        assert summary.run_id == step_run_id(RUN, step)
        with wh.connect() as conn:
            got[step] = [r for (r,) in conn.execute(sa.text(
                "select contact_id from audiences.audience_members where campaign_id = 'welcome' and run_id = :r"
                " order by 1"), {"r": summary.run_id})]
    assert got == {1: ["n1"], 2: ["n2"], 3: ["n3"]}

    outbox = OutboxTransport(tmp_path / "outbox")
    now = dt.datetime.combine(RUN, dt.time(12), tzinfo=UTC)  # inside the 09:00-20:00 UTC window
    for step in WELCOME.step_numbers:
        dispatch(wh, WELCOME, RUN, outbox, now=now, step=step)
        dispatch(wh, WELCOME, RUN, outbox, now=now, step=step)  # a rerun sends nothing twice
    with wh.connect() as conn:
        ledger = conn.execute(sa.text("select run_id, step, contact_id, status from campaigns.send_ledger"
                                      " order by step")).all()
        treatment = {r for (r,) in conn.execute(sa.text(
            "select contact_id from audiences.audience_members where campaign_id = 'welcome' and arm = 'treatment'"))}
    assert ledger and {r.contact_id for r in ledger} == treatment  # every treatment member of every step, once
    assert {(r.step, r.contact_id) for r in ledger} <= {(s, c) for s, cs in got.items() for c in cs}
    assert all(r.status == "sent" and r.run_id == step_run_id(RUN, r.step) for r in ledger)
    assert len(ledger) == len({r.contact_id for r in ledger})
    texts = {p.parent.name: p.read_text() for p in (tmp_path / "outbox" / "welcome").rglob("*.eml")}
    for run_id, text in texts.items():
        if run_id.endswith("step2"):
            assert "three tips" in text
        elif run_id.endswith("step3"):
            assert "SECOND10" in text
        else:
            assert "Welcome" in text


def test_series_audience_without_trigger_at_is_refused(wh, tmp_path) -> None:
    from martech.campaigns.audience import AudienceSqlError
    from martech.campaigns.spec import load_campaign

    (tmp_path / "audiences").mkdir()
    (tmp_path / "audiences" / "s.sql").write_text("select contact_id, email, first_name from staging.contacts\n")
    (tmp_path / "s.yml").write_text(
        "id: s\nname: S\nowner: t\ndescription: t\nschedule: '0 8 * * *'\naudience_sql: audiences/s.sql\n"
        "template: welcome\nholdout_share: 0\nvariants: [{id: a, weight: 1, subject: Hi}]\n"
        "steps: [{delay_days: 0}, {delay_days: 2}]\n")
    with pytest.raises(AudienceSqlError, match="trigger_at"):
        build_snapshot(wh, load_campaign(tmp_path / "s.yml"), RUN, step=2)


# The abandoned cart is an hourly series: tests/integration/test_abandoned_cart_hourly.py.
