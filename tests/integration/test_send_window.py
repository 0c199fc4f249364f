"""Quiet hours: each member's send window in their own time zone, honoured at dispatch."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from martech.campaigns.audience import build_snapshot
from martech.campaigns.dispatch import dispatch
from martech.campaigns.spec import load_campaign
from martech.campaigns.transports import BaseTransport, OutboundMessage
from martech.campaigns.window import scheduled_for
from martech.db import run_model

pytestmark = pytest.mark.integration
RUN = dt.date(2026, 7, 1)
UTC = dt.timezone.utc


def test_scheduled_for_rules() -> None:
    start = dt.datetime(2026, 7, 1, 7, tzinfo=UTC)
    end = dt.datetime(2026, 7, 1, 18, tzinfo=UTC)
    assert scheduled_for(None, None, start) is None  # no window
    assert scheduled_for(start, end, start - dt.timedelta(hours=3)) == start  # before: wait for the start
    assert scheduled_for(start, end, start + dt.timedelta(hours=1)) is None  # inside: now
    assert scheduled_for(start, end, end + dt.timedelta(hours=1)) == start + dt.timedelta(days=1)  # after: tomorrow
    # Airflow passes pendulum instants; their differences must work the same way.
    import pendulum

    late = pendulum.instance(end + dt.timedelta(days=2, hours=1))
    assert scheduled_for(start, end, late) == start + dt.timedelta(days=3)


class Recording(BaseTransport):
    name = "recording"
    batch_size = 50
    supports_send_at = False

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    def send(self, message: OutboundMessage) -> str:
        self.sent.append(message)
        return f"<{message.send_id}>"


@pytest.fixture()
def spec(tmp_path):
    from martech.testing.campaigns import write_campaign

    return load_campaign(write_campaign(
        tmp_path, "promo",
        "id: promo\nname: Promo\nowner: test\ndescription: test\nschedule: '0 * * * *'\n"
        "audience_sql: audiences/promo.sql\ntemplate: birthday\nholdout_share: 0.0\n"
        "variants:\n  - {id: a, weight: 1, subject: 'Hi {{ first_name }}'}\n"
        "send_window: {start: '09:00', end: '20:00'}\n",
        "select contact_id, email, first_name, true as is_customer from staging.contacts\n"))


def test_window_in_each_contacts_time_zone_and_deferral(clean_warehouse, spec) -> None:
    eng = clean_warehouse
    run_model(eng, "staging.contacts", {"run_date": RUN, "run_ts": dt.datetime(2026, 7, 1, tzinfo=UTC)})
    zones = {"berlin": "Europe/Berlin", "ny": "America/New_York", "tokyo": "Asia/Tokyo", "nowhere": "Mars/Base"}
    with eng.begin() as conn:
        for cid, tz in zones.items():
            conn.execute(sa.text("insert into staging.contacts (contact_id, email, first_name, consent_status,"
                                 " timezone) values (:c, :e, :c, 'opted_in', :tz)"),
                         {"c": cid, "e": f"{cid}@example.com", "tz": tz})
    build_snapshot(eng, spec, RUN)
    with eng.connect() as conn:
        got = {r.contact_id: (r.send_at, r.send_before) for r in conn.execute(sa.text(
            "select contact_id, send_at, send_before from audiences.audience_members"))}
    for cid, tz in zones.items():
        zone = ZoneInfo(tz) if cid != "nowhere" else UTC  # an unknown zone counts as UTC
        assert got[cid][0] == dt.datetime(2026, 7, 1, 9, tzinfo=zone)
        assert got[cid][1] == dt.datetime(2026, 7, 1, 20, tzinfo=zone)

    # 12:00 UTC: inside the window in Berlin (14:00) and UTC (12:00), before it in New York (08:00),
    # after it in Tokyo (21:00). A transport that cannot schedule sends only what is due now.
    transport = Recording()
    summary = dispatch(eng, spec, RUN, transport, now=dt.datetime(2026, 7, 1, 12, tzinfo=UTC))
    assert sorted(m.to for m in transport.sent) == ["berlin@example.com", "nowhere@example.com"]
    assert summary.deferred == 2 and summary.sent_now == 2
    # 13:30 UTC: New York is at 09:30, its window is open; Tokyo stays deferred (tomorrow's window).
    later = dispatch(eng, spec, RUN, transport, now=dt.datetime(2026, 7, 1, 13, 30, tzinfo=UTC))
    assert later.sent_now == 1 and later.deferred == 1 and transport.sent[-1].to == "ny@example.com"
