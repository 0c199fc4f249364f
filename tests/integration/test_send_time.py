"""Send-time optimisation end to end on a throwaway warehouse.

marts.contact_send_hours (machine opens excluded, own / cohort / default), the snapshot's per-member slot
(clamped into the window, tomorrow when an hourly run is past it), exactly-once sends at each member's hour,
and, on the simulator, how well the estimated hour matches the true one and what sto does to open rates.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from martech.campaigns.audience import assign_send_time_arm, build_snapshot
from martech.campaigns.dispatch import dispatch
from martech.campaigns.spec import load_campaign
from martech.campaigns.transports import BaseTransport, OutboundMessage
from martech.campaigns.window import apply_send_window
from martech.db import run_model

pytestmark = pytest.mark.integration
UTC = dt.timezone.utc
RUN = dt.date(2026, 1, 20)
RUN_TS = dt.datetime(2026, 1, 20, tzinfo=UTC)


class Recording(BaseTransport):
    name = "recording"
    batch_size = 50
    supports_send_at = False  # holds every message until its hour, like SMTP

    def __init__(self) -> None:
        self.sent: list[tuple[dt.datetime, OutboundMessage]] = []
        self.now = RUN_TS

    def send(self, message: OutboundMessage) -> str:
        self.sent.append((self.now, message))
        return f"<{message.send_id}>"


def _contacts(eng, rows: list[tuple[str, str, str]]) -> None:
    """(contact id, time zone, country) rows into an empty staging.contacts."""
    run_model(eng, "staging.contacts", {"run_date": RUN, "run_ts": RUN_TS})
    with eng.begin() as conn:
        conn.execute(sa.text("insert into staging.contacts (contact_id, email, first_name, consent_status, timezone,"
                             " country) values (:c, :c || '@example.com', :c, 'opted_in', :tz, :country)"),
                     [{"c": c, "tz": tz, "country": country} for c, tz, country in rows])


def _events(eng, rows: list[tuple[str, str, dt.datetime, bool]]) -> None:
    """(contact id, message key, instant, machine open) rows: opens into an empty staging.email_events."""
    run_model(eng, "staging.email_events", {"run_date": RUN, "run_ts": RUN_TS})
    if not rows:
        return
    with eng.begin() as conn:
        conn.execute(sa.text("insert into staging.email_events (event_id, event, event_ts, send_id, contact_id,"
                             " machine_open) values (:id, 'open', :ts, :send, :c, :m)"),
                     [{"id": f"e{i}", "c": c, "send": s, "ts": ts, "m": m} for i, (c, s, ts, m) in enumerate(rows)])


def _hours(eng) -> dict[str, tuple]:
    run_model(eng, "marts.contact_send_hours", {"run_date": RUN})
    with eng.connect() as conn:
        return {r.contact_id: (r.preferred_hour, r.source, r.engaged_messages) for r in conn.execute(sa.text(
            "select contact_id, preferred_hour, source, engaged_messages from marts.contact_send_hours"))}


def test_hours_mart_excludes_machine_opens_and_falls_back(clean_warehouse) -> None:
    eng = clean_warehouse
    de = [(f"de{i:02d}", "Europe/Berlin", "DE") for i in range(20)]
    _contacts(eng, [("own", "Europe/Berlin", "DE"), ("few", "Europe/Berlin", "DE"), ("mpp", "Europe/Berlin", "DE"),
                    ("lonely", "Mars/Base", "FR"), *de])
    day = dt.datetime(2026, 1, 5, tzinfo=UTC)
    rows = []
    for k in range(4):  # 18:xx in Berlin (UTC+1 in January) on four messages, one of them opened twice
        rows.append(("own", f"own{k}", day + dt.timedelta(days=k, hours=17, minutes=10 * k), False))
        rows.append(("own", f"own{k}", day + dt.timedelta(days=k, hours=17, minutes=10 * k, seconds=5), True))
    rows.append(("own", "own0", day + dt.timedelta(days=3, hours=5), False))  # a later reopen: not the first
    for k in range(6):  # the proxy fetches at 03:00 local: would win if it counted
        rows.append(("own", f"own{k}", day + dt.timedelta(days=k, hours=2), True))
        rows.append(("mpp", f"mpp{k}", day + dt.timedelta(days=k, hours=2), True))
    rows.append(("few", "few0", day + dt.timedelta(hours=6), False))
    rows += [(c, f"{c}m", day + dt.timedelta(hours=11, minutes=5), False) for c, _, _ in de]  # 12:05 Berlin
    rows.append(("de00", "late", dt.datetime(2026, 1, 20, 3, tzinfo=UTC), False))  # on the as-of date: ignored
    _events(eng, rows)
    got = _hours(eng)
    assert got["own"] == (18, "own", 4)
    assert got["few"] == (12, "cohort", 1)  # one message is not enough: Germany's hour
    assert got["mpp"] == (12, "cohort", 0)  # machine opens only: no engagement of their own
    assert got["lonely"] == (12, "default", 0)  # France has no engagement: everyone's hour
    assert got["de00"] == (12, "cohort", 1)
    with eng.connect() as conn:
        zone, share = conn.execute(sa.text("select timezone, hour_share from marts.contact_send_hours"
                                           " where contact_id in ('lonely', 'own') order by contact_id")).all()
    assert zone[0] == "UTC" and share[1] == 1.0


def _spec(tmp_path, schedule: str = "0 6 * * *"):
    from martech.testing.campaigns import write_campaign

    return load_campaign(write_campaign(
        tmp_path, "promo",
        f"id: promo\nname: Promo\nowner: test\ndescription: test\nschedule: '{schedule}'\n"
        "audience_sql: audiences/promo.sql\ntemplate: birthday\nholdout_share: 0.0\n"
        "variants:\n  - {id: a, weight: 1, subject: 'Hi {{ first_name }}'}\n"
        "send_window: {start: '08:00', end: '21:00'}\nsend_time: {optimise: true, comparison_share: 0.5}\n",
        "select contact_id, email, first_name, true as is_customer from staging.contacts\n"))


PREFERRED = [5, 9, 14, 20, 23]  # 5 clamps to the start (08), 23 to the last hour before the end (20)


def _preferring(eng, n: int, zone: str) -> tuple[list[str], dict[str, int]]:
    """``n`` contacts in ``zone`` whose mart rows prefer the hours of PREFERRED in turn."""
    ids = [f"c{i:03d}" for i in range(n)]
    _contacts(eng, [(c, zone, "DE") for c in ids])
    _events(eng, [])
    _hours(eng)  # creates the mart (everyone default); the hours below replace it
    want = {c: PREFERRED[i % len(PREFERRED)] for i, c in enumerate(ids)}
    with eng.begin() as conn:
        conn.execute(sa.text("update marts.contact_send_hours set preferred_hour = :h, source = 'own'"
                             " where contact_id = :c"), [{"c": c, "h": h} for c, h in want.items()])
    return ids, want


def _members(eng) -> dict[str, tuple]:
    with eng.connect() as conn:
        return {r.contact_id: (r.send_time_arm, r.send_at, r.send_before, r.planned_send_at, r.planned_hour)
                for r in conn.execute(sa.text(
                    "select contact_id, send_time_arm, send_at, send_before, planned_send_at, planned_hour"
                    " from audiences.audience_members order by contact_id"))}


def test_each_member_is_sent_once_at_their_hour_and_a_rerun_sends_nothing(clean_warehouse, tmp_path) -> None:
    eng = clean_warehouse
    spec = _spec(tmp_path)
    ids, want = _preferring(eng, 60, "UTC")
    build_snapshot(eng, spec, RUN)
    first = _members(eng)
    build_snapshot(eng, spec, RUN)
    assert _members(eng) == first  # a rerun plans the same slots
    arms = {c: m[0] for c, m in first.items()}
    assert arms == {c: assign_send_time_arm("promo", c, 0.5) for c in ids}
    assert 15 < list(arms.values()).count("fixed") < 45
    expected_hour = {c: (min(max(want[c], 8), 20) if arms[c] == "sto" else 8) for c in ids}
    for c, (arm, send_at, send_before, planned, hour) in first.items():
        assert planned == dt.datetime(2026, 1, 20, expected_hour[c], tzinfo=UTC) and hour == expected_hour[c], c
        assert send_before == dt.datetime(2026, 1, 20, 21, tzinfo=UTC)
        assert send_at == (planned if arm == "sto" else dt.datetime(2026, 1, 20, 8, tzinfo=UTC))

    # Hourly dispatches through the day with a transport that cannot schedule: each goes out at its hour.
    transport = Recording()
    for h in range(6, 23):
        transport.now = dt.datetime(2026, 1, 20, h, 0, 30, tzinfo=UTC)
        dispatch(eng, spec, RUN, transport, now=transport.now, clock=lambda: transport.now)
    sent_hour = {m.to.split("@")[0]: at.hour for at, m in transport.sent}
    assert len(transport.sent) == len(ids) and sent_hour == expected_hour
    again = dispatch(eng, spec, RUN, transport, now=transport.now, clock=lambda: transport.now)
    assert again.sent_now == 0 and again.already_sent == len(ids) and len(transport.sent) == len(ids)
    with eng.connect() as conn:
        assert conn.execute(sa.text("select count(*), count(distinct contact_id) from campaigns.send_ledger"
                                    " where status = 'sent'")).one() == (len(ids), len(ids))


def test_an_hourly_run_past_the_preferred_hour_plans_it_for_tomorrow(clean_warehouse, tmp_path) -> None:
    eng = clean_warehouse
    spec = _spec(tmp_path)
    _, want = _preferring(eng, 30, "Asia/Tokyo")
    build_snapshot(eng, spec, RUN)
    at = dt.datetime(2026, 1, 20, 5, tzinfo=UTC)  # 14:00 in Tokyo
    with eng.begin() as conn:
        apply_send_window(conn, spec, "2026-01-20", RUN, at=at)
    tokyo = dt.timezone(dt.timedelta(hours=9))
    for c, (arm, send_at, send_before, planned, hour) in _members(eng).items():
        if arm == "fixed":  # inside the window: now
            assert planned == at and hour == 14 and send_at == dt.datetime(2026, 1, 20, 8, tzinfo=tokyo)
            continue
        slot = min(max(want[c], 8), 20)
        day = 20 if slot >= 14 else 21  # 08:00 and 09:00 have passed at 14:00: tomorrow
        assert planned == send_at == dt.datetime(2026, 1, day, slot, tzinfo=tokyo), c
        assert send_before == dt.datetime(2026, 1, day, 21, tzinfo=tokyo) and hour == slot


# -- the simulator: does the estimate find the true hour, and does sto open better? ---------------------

ZONES = {"UTC": 0, "Asia/Tokyo": 9, "America/Bogota": -5}  # no daylight saving: the offsets hold all year


def _simulate(ledger: pd.DataFrame, send_date: dt.date, days: int = 3) -> list[dict]:
    from martech.simulate.responses import simulate_events

    events, _ = simulate_events(ledger, send_date=send_date, days=days, seed=7)
    return events


def test_figures_estimated_hour_matches_the_truth_and_sto_opens_more(clean_warehouse, tmp_path) -> None:
    from martech.kpis.send_time import comparison_rows
    from martech.simulate.responses import true_preferred_hour

    eng = clean_warehouse
    n, history_days = 1200, 14
    rng = np.random.default_rng(11)
    ids = np.asarray([f"s{i:05d}" for i in range(n)])
    zone = np.asarray(list(ZONES))[rng.integers(0, len(ZONES), size=n)]
    offset = np.asarray([ZONES[z] for z in zone])
    _contacts(eng, [(c, z, "XX") for c, z in zip(ids, zone, strict=True)])

    # History: one message a day at a random local hour in 08-20.
    start = dt.date(2026, 1, 1)
    rows = []
    for k in range(history_days):
        day = start + dt.timedelta(days=k)
        local_hour = rng.integers(8, 21, size=n)
        planned = (pd.Timestamp(day, tz="UTC").timestamp() + (local_hour - offset) * 3600)
        ledger = pd.DataFrame({"campaign_id": "history", "run_id": day.isoformat(), "contact_id": ids,
                               "email": [f"{c}@example.com" for c in ids], "send_id": [f"h{k}:{c}" for c in ids],
                               "message_id": None, "planned_ts": planned, "utc_offset_h": offset})
        rows += [e for e in _simulate(ledger, day) if e["event"] in ("open", "click")]
    run_model(eng, "staging.email_events", {"run_date": RUN, "run_ts": RUN_TS})
    with eng.begin() as conn:
        conn.execute(sa.text("insert into staging.email_events (event_id, event, event_ts, send_id, contact_id,"
                             " machine_open) values (:id, :ev, to_timestamp(:ts), :send, :c, :m)"),
                     [{"id": e["sg_event_id"], "ev": e["event"], "ts": e["timestamp"], "send": e["send_id"],
                       "c": e["contact_id"], "m": bool(e.get("sg_machine_open", False))} for e in rows])
    machine = sum(1 for e in rows if e.get("sg_machine_open"))
    got = pd.DataFrame(_hours(eng).items(), columns=["contact_id", "v"])
    got[["estimated", "source", "engaged"]] = pd.DataFrame(got["v"].tolist(), index=got.index)
    got = got.set_index("contact_id").loc[ids]
    truth = true_preferred_hour(ids)
    own = (got["source"] == "own").to_numpy()
    diff = np.abs(got["estimated"].to_numpy(dtype=int) - truth) % 24
    within = np.minimum(diff, 24 - diff) <= 1
    share_within = float(within[own].mean())
    print(f"\nFIGURES history: {n} contacts x {history_days} messages, {machine} machine opens excluded;"
          f" {int(own.sum())} with their own hour (>= 3 engaged messages);"
          f" estimated within +-1 h of the true hour: {share_within:.1%} (exact {float((diff == 0)[own].mean()):.1%})")
    assert own.mean() > 0.8 and share_within > 0.8

    # The experiment: a campaign with send_time on, planned by the snapshot, played on the simulator.
    spec = _spec(tmp_path)
    send_day = RUN
    build_snapshot(eng, spec, send_day)
    with eng.connect() as conn:
        m = pd.read_sql_query(sa.text("select contact_id, send_time_arm, extract(epoch from planned_send_at)"
                                      "::float8 as planned_ts from audiences.audience_members order by contact_id"),
                              conn)
    m["utc_offset_h"] = m["contact_id"].map(dict(zip(ids, offset, strict=True)))
    ledger = m.assign(campaign_id="promo", run_id=send_day.isoformat(), email=m["contact_id"] + "@example.com",
                      send_id="p:" + m["contact_id"], message_id=None)
    events = _simulate(ledger, send_day)
    opened = {e["contact_id"] for e in events if e["event"] == "open" and not e.get("sg_machine_open")}
    clicked = {e["contact_id"] for e in events if e["event"] == "click"}
    arms = []
    for arm, group in m.groupby("send_time_arm"):
        members = set(group["contact_id"])
        arms.append({"campaign_id": "promo", "arm": arm, "period_start": send_day, "period_end": send_day,
                     "members": len(members), "sends": len(members), "human_opens": len(members & opened),
                     "clicks": len(members & clicked), "conversions": 0})
    sto, fixed = comparison_rows(arms, send_day)
    print(f"FIGURES experiment: sto {sto['human_opens']}/{sto['sends']} opened ({sto['open_rate']:.3f}), fixed"
          f" {fixed['human_opens']}/{fixed['sends']} ({fixed['open_rate']:.3f}); sto - fixed"
          f" {sto['open_rate_diff']:+.3f} (95% CI {sto['open_rate_diff_low']:+.3f} to {sto['open_rate_diff_high']:+.3f})")
    assert sto["open_rate_diff_low"] > 0
